"""A model as plain data: pickling (rebuilt through from_params) and equality, every cell alike."""
from __future__ import annotations

import numpy as np

from ._rngstate import restore_rng, rng_json


def model_data(model) -> dict:
    """What a model is: its arrays (params, the optimiser's memory and moment,
    copies), cell, Adam's step count, its compute type, its dropout and the
    state of dropout's Generator (its draws go on from there). Its caches
    (thread choices, blocks per call) and lock are not the model."""
    data = {"class": "CharRNN", "cell": model.cell, "dtype": model.dtype.name,
            "optimizer": model.optimizer, "adam_steps": int(model.adam_steps),
            "dropout": model.dropout, "rng": rng_json(model._rng)}
    for kind in ("params", "memory", "moment"):
        data[kind] = {name: np.array(a) for name, a in getattr(model, kind).items()} or None
    return data


def from_model_data(cls, data: dict):
    """The model of class ``cls`` (CharRNN) that model_data describes (also as
    written before one class held every cell: "class" GatedCharRNN, no "cell")."""
    model = cls.from_params(data["params"], data["memory"], data.get("dropout", 0.0),
                                cell=data.get("cell"), optimizer=data["optimizer"],
                                moment=data["moment"], adam_steps=data["adam_steps"],
                                dtype=data["dtype"])
    if "rng" in data:
        model._rng = restore_rng(data["rng"])
    return model


def reduce_model(model):
    """``__reduce__`` of a model: pickled (joblib, multiprocessing) as model_data."""
    return from_model_data, (type(model), model_data(model))


def same_model(model, other) -> bool:
    """``__eq__`` of a model: the same model_data (arrays equal bit for bit)."""
    if type(other) is not type(model):
        return NotImplemented
    a, b = model_data(model), model_data(other)
    for kind in ("params", "memory", "moment"):
        x, y = a.pop(kind) or {}, b.pop(kind) or {}
        if x.keys() != y.keys() or not all(np.array_equal(x[n], y[n]) for n in x):
            return False
    return a == b
