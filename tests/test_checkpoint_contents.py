"""Checkpoint files from a stranger, member by member (issue 11): every
member's value is checked -- shapes, NaN and infinities, the vocabulary, the
random generator's state field by field, JSON (size, depth), floats wider
than float64, counters -- and a bad one is a one-line ValueError naming the
file and the member (the CLIs: one line on stderr, exit status 2), never a
crash or a model that would not train.

Fields against each other: test_checkpoint_consistency.
"""
import json

import numpy as np
import pytest

from charrnn_ext import Vocab, load_checkpoint
from charrnn_ext.ckpt import checkpoint as ckmod
from charrnn_ext.ckpt.checkpoint import FORMAT_VERSION

from conftest import (CHECKPOINT_TEXT, HAS_FLOAT128, TINY_FLAGS, assert_cli_refusal,
                      assert_load_refused, english_like_text, float128_array, new_checkpoint,
                      rewrite_archive, run_cli)

V = len(Vocab.from_text(CHECKPOINT_TEXT))
RESUME_FLAGS = (*TINY_FLAGS, "--no-keep-best")


@pytest.fixture(scope="module")
def resumable_run(tmp_path_factory):
    """A directory holding input.txt and base.npz, a 20-iteration run of the
    train command on it (one stream, RESUME_FLAGS), to resume crafted copies of."""
    cwd = tmp_path_factory.mktemp("resumable")
    (cwd / "input.txt").write_text(english_like_text(3000, seed=2), encoding="utf-8")
    result = run_cli("train", "input.txt", "--checkpoint", "base.npz", "--iters", 20,
                     *RESUME_FLAGS, cwd=cwd)
    assert result[0] == 0, result[2]
    return cwd


def copy_of_base(run_dir, name, **members):
    """run_dir/base.npz copied to run_dir/name with ``members`` replaced;
    returns ``name``."""
    rewrite_archive(run_dir / "base.npz", run_dir / name, **members)
    return name


@pytest.mark.parametrize("changes, message", [
    ({"version": np.array(FORMAT_VERSION + 1)}, "newer"),
    ({"format": np.array("something else")}, "not a charrnn_ext checkpoint"),
    ({"params.Whh": None}, "params.Whh"),
    ({"params.Whh": np.zeros((3, 3))}, "shape"),
    ({"params.Wxh": np.full((8, V), np.nan)}, "NaN"),
    ({"memory.by": -np.ones((V, 1))}, "negative"),
    ({"vocab": np.arange(5, dtype=np.uint32)}, "vocabulary"),
    ({"vocab": np.array([66, 65, 66] + list(range(90, 90 + V - 3)), dtype=np.uint32)}, "distinct"),
    ({"hidden": np.zeros(3)}, "hidden"),
    ({"smooth_loss": np.array(np.inf)}, "smoothed loss"),
    ({"state": np.array('{"iteration": -1, "position": 0}')}, "iteration"),
    ({"state": np.array("not json")}, "'state' is not valid JSON"),
    ({"rng_state": np.array('{"bit_generator": "os.system", "state": {}}')}, "random generator"),
    ({"rng_state": np.array('{"bit_generator": "PCG64", "state": {"state": "x"}}')}, "not a valid PCG64 state"),
    ({"history.val_bpc": np.zeros(5)}, "history"),
])
def test_inconsistent_contents(saved_trained, changes, message):
    ckpt, path = saved_trained
    rewrite_archive(path, **changes)
    with pytest.raises(ValueError, match=message) as info:
        load_checkpoint(path)
    assert "model.npz" in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------
# Adam and the input embedding (version 3): params.embed, memory.embed,
# moment.<name>, state's adam_steps
# ---------------------------------------------------------------------------

MOMENTS = [f"moment.{n}" for n in ("Wxh", "Whh", "Why", "bh", "by", "embed")]
D = 5   # conftest.ADAM_EMBED's embedding width


@pytest.mark.parametrize("changes, edit_state, words", [
    ({"moment.Whh": np.zeros((3, 3))}, None, ("moment['Whh']", "shape")),
    ({"moment.embed": np.zeros((V, D + 1))}, None, ("moment['embed']", "shape")),
    ({"moment.Wxh": np.zeros((8, V))}, None, ("moment['Wxh']", "shape")),
    ({"moment.bh": np.full((8, 1), np.nan)}, None, ("moment['bh']", "NaN")),
    ({"moment.by": np.zeros((V, 1), dtype=np.int64)}, None, ("moment.by", "dtype")),
    ({"moment.embed": None}, None, ("missing 'moment.embed'",)),
    ({"moment.Why": None}, None, ("missing 'moment.Why'",)),
    ({"memory.embed": None}, None, ("missing 'memory.embed'",)),
    ({"memory.embed": -np.ones((V, D))}, None, ("memory['embed']", "negative")),
    ({"params.embed": np.zeros((V, D + 2))}, None, ("embed", "shape")),
    ({"params.embed": np.zeros((V + 1, D))}, None, ("embed", "shape")),
    ({"params.embed": np.full((V, D), np.inf)}, None, ("params['embed']", "NaN")),
    # the embedding gone: its memory and moment are left over
    ({"params.embed": None}, None, ("'memory.embed'",)),
    ({"params.embed": None, "memory.embed": None}, None, ("'moment.embed'",)),
    # and without them, Wxh (H, D) no longer reads the vocabulary
    ({"params.embed": None, "memory.embed": None, "moment.embed": None}, None, ("shape",)),
    ({}, {"adam_steps": -1}, ("adam_steps",)),
    ({}, {"adam_steps": 1.5}, ("adam_steps",)),
    ({}, {"adam_steps": True}, ("adam_steps",)),
    ({}, {"adam_steps": "5"}, ("adam_steps",)),
    ({}, {"adam_steps": 2**62}, ("adam_steps",)),
    ({}, {"adam_steps": 10**400}, ("adam_steps",)),
    # Adam's moments after no step are zero: non-zero ones with adam_steps 0
    # would take a first step ten times too large (bias correction 1 / (1 - 0.9))
    ({}, {"adam_steps": 0}, ("adam_steps",)),
    ({}, {"adam_steps": None}, ("adam_steps",)),
    # the moments gone, Adam's step count left
    (dict.fromkeys(MOMENTS), None, ("adam",)),
])
def test_crafted_adam_and_embedding_members_are_refused(saved_adam, changes, edit_state, words):
    _, path = saved_adam
    rewrite_archive(path, edit_state=edit_state, **changes)
    message = assert_load_refused(path, *words)
    assert len(message) < 300


def test_stray_members_of_an_embedding_or_adam_are_refused(saved_trained):
    """An Adagrad one-hot file with an embedding's memory or Adam's first
    moment but no params.embed / no adam model: members the model does not
    use are refused, not silently dropped."""
    _, path = saved_trained
    base = path.with_name("base.npz")
    path.rename(base)
    H = 8
    for i, extra in enumerate([{"memory.embed": np.zeros((V, D))},
                               {"moment.embed": np.zeros((V, D))},
                               {"params.embed": np.zeros((V, D))},   # Wxh (H, V) then
                               {"moment.Wxh": np.zeros((H, V))}]):   # the other moments?
        target = rewrite_archive(base, path.with_name(f"stray{i}.npz"), **extra)
        assert_load_refused(target)


def test_an_adagrad_file_with_adam_steps_is_refused(saved_trained):
    _, path = saved_trained
    rewrite_archive(path, edit_state={"adam_steps": 3})
    assert_load_refused(path, "adam")


def test_an_embedding_file_without_adam_loads(tmp_path):
    """The input embedding with Adagrad (the batched recipe with --optimizer
    adagrad): no moments, adam_steps 0, and it loads as such."""
    from conftest import trained_checkpoint
    path = tmp_path / "e.npz"
    trained_checkpoint(embedding_size=D, init="pytorch").save(path)
    with np.load(path) as npz:
        assert not [k for k in npz.files if k.startswith("moment.")]
        assert "params.embed" in npz.files and "memory.embed" in npz.files
    back = load_checkpoint(path)
    assert back.model.optimizer == "adagrad" and back.model.embedding_size == D
    assert back.model.adam_steps == 0 and dict(back.model.moment) == {}
    rewrite_archive(path, edit_state={"adam_steps": 2})
    assert_load_refused(path, "adam")


def test_resume_from_crafted_adam_members_cli(tmp_path):
    """charrnn-train --resume and charrnn-sample on such a file: one line, exit 2."""
    (tmp_path / "t.txt").write_text(english_like_text(3000, seed=2), encoding="utf-8")
    result = run_cli("train", "t.txt", "--checkpoint", "a.npz", "--iters", 10, "--batch-size",
                     2, "--hidden-size", 8, "--embedding-size", 4, "--seq-length", 10,
                     "--no-keep-best", cwd=tmp_path)
    assert result[0] == 0, result[2]
    with np.load(tmp_path / "a.npz") as npz:
        V_t = npz["params.embed"].shape[0]
    rewrite_archive(tmp_path / "a.npz", tmp_path / "b.npz", **{"moment.embed": np.zeros((V_t, 3))})
    rewrite_archive(tmp_path / "a.npz", tmp_path / "c.npz", edit_state={"adam_steps": -4})
    for name, word in (("b.npz", "moment['embed']"), ("c.npz", "adam_steps")):
        assert_cli_refusal(run_cli("train", "t.txt", "--resume", name, "--iters", 20,
                                   cwd=tmp_path), name, word)
        assert_cli_refusal(run_cli("sample", name, cwd=tmp_path), name, word)


# ---------------------------------------------------------------------------
# random generator states: every field checked
# ---------------------------------------------------------------------------

def _json_state(name: str, seed: int = 3) -> dict:
    """A valid bit_generator.state of ``name`` as JSON data (arrays as lists)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v.tolist() if isinstance(v, np.ndarray) else v
    return plain(getattr(np.random, name)(seed).state)


def _set(path, value):
    def change(state):
        *keys, last = path
        for key in keys:
            state = state[key]
        if value is KeyError:
            del state[last]
        else:
            state[last] = value(state[last]) if callable(value) else value
    return change


BAD_RNG_STATES = [
    ("MT19937", _set(("state", "pos"), 10**9), "pos-huge"),
    ("MT19937", _set(("state", "pos"), -1), "pos-negative"),
    ("MT19937", _set(("state", "pos"), 625), "pos-625"),
    ("MT19937", _set(("state", "pos"), 1.0), "pos-float"),
    ("MT19937", _set(("state", "pos"), True), "pos-bool"),
    ("MT19937", _set(("state", "key"), lambda k: k[:10]), "key-short"),
    ("MT19937", _set(("state", "key"), lambda k: k + [1]), "key-long"),
    ("MT19937", _set(("state", "key"), lambda k: [2**32] + k[1:]), "key-value"),
    ("MT19937", _set(("state", "key"), lambda k: [-1] + k[1:]), "key-negative"),
    ("MT19937", _set(("state", "key"), "x" * 624), "key-string"),
    ("Philox", _set(("buffer_pos",), -10**9), "buffer_pos-negative"),
    ("Philox", _set(("buffer_pos",), 5), "buffer_pos-5"),
    ("Philox", _set(("buffer",), lambda b: b[:1]), "buffer-short"),
    ("Philox", _set(("state", "key"), lambda k: k[:1]), "key-short"),
    ("Philox", _set(("state", "counter"), lambda c: c + [0]), "counter-long"),
    ("Philox", _set(("state", "counter"), lambda c: [2**64] + c[1:]), "counter-value"),
    ("SFC64", _set(("state", "state"), lambda s: s[:3]), "state-short"),
    ("SFC64", _set(("has_uint32",), 2), "has_uint32-2"),
    ("PCG64", _set(("state", "state"), -1), "state-negative"),
    ("PCG64", _set(("state", "inc"), 2**128), "inc-too-big"),
    ("PCG64", _set(("state", "state"), "x"), "state-string"),
    ("PCG64", _set(("has_uint32",), KeyError), "missing-field"),
    ("PCG64", _set(("extra",), 0), "extra-field"),
    ("PCG64DXSM", _set(("uinteger",), 2**32), "uinteger-too-big"),
    ("PCG64DXSM", _set(("state",), [1, 2]), "state-not-a-dict"),
]


@pytest.mark.parametrize("name, change", [pytest.param(n, c, id=f"{n}-{i}")
                                          for n, c, i in BAD_RNG_STATES])
def test_bad_rng_state_is_refused(saved_new, name, change):
    state = _json_state(name)
    change(state)
    rewrite_archive(saved_new, rng_state=np.array(json.dumps(state)))
    assert_load_refused(saved_new, f"not a valid {name} state")


@pytest.mark.parametrize("name", ["os.system", "RandomState", "pcg64", ["PCG64"], None])
def test_unknown_bit_generator_is_refused(saved_new, name):
    state = _json_state("PCG64")
    state["bit_generator"] = name
    rewrite_archive(saved_new, rng_state=np.array(json.dumps(state)))
    assert_load_refused(saved_new, "unknown random generator")


def test_resume_with_an_out_of_range_rng_state_is_refused(resumable_run):
    """An MT19937 pos of 10**9 loaded fine, and train --resume then crashed
    the process (numpy's state setters do not range-check)."""
    state = _json_state("MT19937")
    state["state"]["pos"] = 10**9
    name = copy_of_base(resumable_run, "mt_pos.npz", rng_state=np.array(json.dumps(state)))
    result = run_cli("train", "input.txt", "--resume", name, "--iters", 30, *RESUME_FLAGS,
                     cwd=resumable_run)
    assert_cli_refusal(result, name, "not a valid MT19937 state")


def test_resume_trains_and_saves_with_a_philox_state(resumable_run):
    """A valid Philox state resumes, trains and saves (saving failed with
    "ndarray is not JSON serializable"); the stream carries on from it."""
    rng = np.random.Generator(np.random.Philox(5))
    rng.random(3)
    state = _json_state("Philox")
    state.update(json.loads(json.dumps(rng.bit_generator.state,
                                       default=lambda a: a.tolist())))
    name = copy_of_base(resumable_run, "philox.npz", rng_state=np.array(json.dumps(state)))
    before = load_checkpoint(resumable_run / name)
    code, _, err = run_cli("train", "input.txt", "--resume", name, "--iters", 30, *RESUME_FLAGS,
                           "--sample-every", 5, cwd=resumable_run)
    assert code == 0, err
    after = load_checkpoint(resumable_run / name)
    assert after.iteration == 30
    assert type(after.rng.bit_generator).__name__ == "Philox"
    assert after.rng.bit_generator.state["state"]["key"].tolist() == state["state"]["key"]
    assert not np.array_equal(after.rng.random(4), before.rng.random(4))  # it sampled


# ---------------------------------------------------------------------------
# deeply nested JSON
# ---------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("member", ["state", "hyperparameters", "rng_state"])
def test_deeply_nested_json_is_refused(saved_new, member):
    """100,000 levels (within the size bound) were a RecursionError traceback."""
    rewrite_archive(saved_new, **{member: np.array(DEEP)})
    assert_load_refused(saved_new, f"'{member}' nests JSON deeper than")


def test_json_depth_bound_is_exact(tmp_path):
    depth = ckmod._MAX_JSON_DEPTH
    ok = tmp_path / "ok.npz"
    nested = json.loads("[" * (depth - 1) + "]" * (depth - 1))
    new_checkpoint(hyperparameters={"a": nested}).save(ok)
    assert load_checkpoint(ok).hyperparameters["a"] == nested
    with pytest.raises(ValueError, match="nests JSON deeper"):
        new_checkpoint(hyperparameters={"a": [nested]}).save(tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_brackets_quotes_and_backslashes_inside_strings_do_not_count(tmp_path):
    tricky = {"a": "[" * 200, "b": '\\"' + "{" * 200, "c": "\\", "d": '"]]]' + "[" * 100,
              "e": "\\\\[[[", "[" * 50: ["\\", '"[', "]"]}
    path = tmp_path / "tricky.npz"
    new_checkpoint(hyperparameters=tricky).save(path)
    assert load_checkpoint(path).hyperparameters == tricky


@pytest.mark.parametrize("tool, member", [("sample", "state"), ("train", "hyperparameters")])
def test_deeply_nested_json_cli(resumable_run, tool, member):
    name = copy_of_base(resumable_run, f"deep_{member}.npz", **{member: np.array(DEEP)})
    if tool == "sample":
        result = run_cli("sample", name, "--length", 5, cwd=resumable_run)
    else:
        result = run_cli("train", "input.txt", "--resume", name, "--iters", 30, *RESUME_FLAGS,
                         cwd=resumable_run)
    assert_cli_refusal(result, name, "nests JSON deeper than")


# ---------------------------------------------------------------------------
# floats wider than float64 (1e400 in float128 became inf in the cast)
# ---------------------------------------------------------------------------

needs_float128 = pytest.mark.skipif(not HAS_FLOAT128, reason="long double is float64 here")


@needs_float128
@pytest.mark.parametrize("member", ["params.Wxh", "memory.by", "hidden", "smooth_loss",
                                    "history.val_bpc"])
def test_checkpoint_refuses_float128(saved_new, member):
    if member.startswith("history."):  # a consistent group of one evaluation
        changes = {"history.val_iteration": np.array([3]), "history.val_bpc": float128_array((1,)),
                   "history.train_bpc": np.array([2.0])}
    else:
        with np.load(saved_new) as npz:
            changes = {member: float128_array(npz[member].shape)}
    rewrite_archive(saved_new, **changes)
    assert_load_refused(saved_new, f"'{member}'", "float128")


@needs_float128
def test_resume_from_float128_params_cli(resumable_run):
    """train --resume exited 0, writing a checkpoint its own loader rejects."""
    with np.load(resumable_run / "base.npz") as npz:
        shape = npz["params.Why"].shape
    name = copy_of_base(resumable_run, "f128.npz", **{"params.Why": float128_array(shape)})
    result = run_cli("train", "input.txt", "--resume", name, "--iters", 30, *RESUME_FLAGS,
                     cwd=resumable_run)
    assert_cli_refusal(result, name, "float128")


# ---------------------------------------------------------------------------
# counters a crafted file could set out of range
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("interval_steps", 10**400), ("interval_steps", 101), ("best_iteration", 101),
    ("iteration", 2**63), ("interval_loss", 10**400),
])
def test_state_counters_are_bounded(tmp_path, field, value):
    """Counters are checked against each other (no more steps in the open
    interval, and no best, after the iteration reached) and against 2**63."""
    path = tmp_path / "c.npz"
    new_checkpoint(iteration=100, interval_steps=3, interval_loss=1.0, best_val_bpc=2.0,
                   best_iteration=50).save(path)
    with np.load(path, allow_pickle=False) as npz:
        state = json.loads(str(npz["state"]))
    state[field] = value
    rewrite_archive(path, state=np.array(json.dumps(state)))
    message = assert_load_refused(path, field)
    assert len(message) < 300
