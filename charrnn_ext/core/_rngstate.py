"""A checkpoint's sampling Generator state: JSON data, every field checked before numpy sees it."""
from __future__ import annotations

import numpy as np

# Bit generators a checkpoint may name (a whitelist: never getattr on file
# data) -> (class, the fields of its bit_generator.state besides its name).
# numpy's state setters range-check nothing (an MT19937 pos of 10**9 or a
# Philox buffer_pos of -1 crash the process at the next draw), so every field
# is checked against this first. A field is an int bound b (an integer in
# [0, b)), (dtype, n) (n unsigned integers of dtype; JSON lists in a file),
# or a dict of fields.
_PCG_FIELDS = {"state": {"state": 2**128, "inc": 2**128}, "has_uint32": 2, "uinteger": 2**32}
_BIT_GENERATORS = {
    "PCG64": (np.random.PCG64, _PCG_FIELDS),
    "PCG64DXSM": (np.random.PCG64DXSM, _PCG_FIELDS),
    "Philox": (np.random.Philox, {
        "state": {"counter": (np.uint64, 4), "key": (np.uint64, 2)},
        "buffer": (np.uint64, 4), "buffer_pos": 4 + 1,  # 4: buffer used up
        "has_uint32": 2, "uinteger": 2**32}),
    "SFC64": (np.random.SFC64, {"state": {"state": (np.uint64, 4)}, "has_uint32": 2,
                                "uinteger": 2**32}),
    "MT19937": (np.random.MT19937, {"state": {"key": (np.uint32, 624), "pos": 624 + 1}}),
}


def _plain(value):
    """A bit_generator.state as JSON data: arrays become lists of ints."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value


def rng_json(rng) -> dict:
    """The JSON form of the Generator ``rng``'s state, as a checkpoint holds it."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    return _plain(rng.bit_generator.state)


def _rng_fields(value, spec, where: str):
    """``value`` (JSON data) checked against ``spec`` (see _BIT_GENERATORS),
    with its arrays as numpy arrays; ValueError naming the first bad field."""
    if isinstance(spec, dict):
        if not isinstance(value, dict) or set(value) != set(spec):
            raise ValueError(f"{where} must hold exactly {', '.join(sorted(spec))}")
        return {key: _rng_fields(value[key], spec[key], f"{where}.{key}") for key in spec}
    if isinstance(spec, int):
        if type(value) is not int or not 0 <= value < spec:
            raise ValueError(f"{where} must be an integer in [0, {spec})")
        return value
    dtype, length = spec
    bound = 2 ** (8 * np.dtype(dtype).itemsize)
    if not isinstance(value, list) or len(value) != length or \
            not all(type(v) is int and 0 <= v < bound for v in value):
        raise ValueError(f"{where} must be a list of {length} integers in [0, 2**{bound.bit_length() - 1})")
    return np.array(value, dtype=dtype)


def restore_rng(state: dict) -> np.random.Generator:
    """The Generator whose state is ``state`` (the JSON form, rng_json), or
    ValueError: every field is checked (_BIT_GENERATORS) before numpy sees it."""
    name = state.get("bit_generator")
    if not isinstance(name, str) or name not in _BIT_GENERATORS:
        raise ValueError(f"unknown random generator {str(name)[:40]!r}")
    cls, spec = _BIT_GENERATORS[name]
    try:
        fields = _rng_fields({k: v for k, v in state.items() if k != "bit_generator"},
                             spec, "rng_state")
    except ValueError as exc:
        raise ValueError(f"'rng_state' is not a valid {name} state ({exc})") from None
    bit_generator = cls()
    try:
        bit_generator.state = {"bit_generator": name, **fields}
    except (ValueError, TypeError, KeyError, OverflowError):
        raise ValueError(f"'rng_state' is not a valid {name} state") from None
    # numpy keeps what it is given: the state reads back as written
    if _plain(bit_generator.state) != state:
        raise ValueError(f"'rng_state' is not a valid {name} state (it does not read back)")
    return np.random.Generator(bit_generator)
