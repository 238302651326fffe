"""Untrusted checkpoints: whatever bytes model.npz holds, loading gives a model or one CheckpointError
naming the file — never another exception, never an allocation sized by a forged header."""

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ddpm
from ddpm.cli import main
from ddpm.model import Model
from ddpm_ref import CheckpointError, MLPConfig, TrainConfig


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    ddpm.fit("moons", folder, steps=3, T=25, schedule="cosine", model=MLPConfig(hidden=6, depth=1),
             train=TrainConfig(steps=3, batch_size=8), n_train=200, n_eval=40, progress=False, backend="numpy")
    return (folder / "model.npz").read_bytes()


def _members(blob):
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=True)
    return buf.getvalue()


def _load(tmp_path, blob):
    p = tmp_path / "model.npz"
    p.write_bytes(blob)
    try:
        return Model.load(p)
    except CheckpointError as e:
        msg = str(e)
        assert str(p) in msg and "\n" not in msg, msg                 # one line that names the file
        return None


def _with_config(good, edit):
    m = _members(good)
    cfg = json.loads(str(np.load(io.BytesIO(m["__config__.npy"]))))
    edit(cfg)
    m["__config__.npy"] = _npy(np.array(json.dumps(cfg)))
    return _zip(m)


def test_the_untouched_checkpoint_loads(tmp_path, good):
    assert _load(tmp_path, good) is not None


def test_truncation_at_every_few_bytes_is_refused(tmp_path, good):
    for cut in range(0, len(good), 37):
        assert _load(tmp_path, good[:cut]) is None, cut


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips_load_or_are_refused(tmp_path, good, flips):
    blob = bytearray(good)
    for pos, bit in flips:
        blob[pos % len(blob)] ^= 1 << bit
    m = _load(tmp_path, bytes(blob))
    if m is not None:                          # a flip inside a weight's bytes may still be a valid model
        assert all(np.all(np.isfinite(v)) for v in m.state["params"].values())


@pytest.mark.parametrize("name, value", [
    ("params.W0", np.zeros((34, 6), dtype=np.complex128)), ("params.W0", np.array(["a"] * 6)),
    ("params.W0", np.array([{"x": 1}], dtype=object)), ("params.W0", np.zeros((5, 6))),
    ("beta", np.zeros((25, 2))), ("beta", np.full(25, 1.5)), ("data_scale", np.zeros(2)),
    ("params.b0", np.full(6, np.nan)), ("lt_hist", np.zeros((3, 10))), ("losses", np.zeros((2, 2))),
    ("extra", np.zeros(3)),
])
def test_wrong_dtypes_shapes_values_and_extra_arrays_are_refused(tmp_path, good, name, value):
    m = _members(good)
    m[name + ".npy"] = _npy(value)
    assert _load(tmp_path, _zip(m)) is None


@pytest.mark.parametrize("missing", ["params.W0.npy", "beta.npy", "__config__.npy", "losses.npy", "adam_s.b0.npy"])
def test_missing_arrays_are_refused(tmp_path, good, missing):
    m = _members(good)
    del m[missing]
    assert _load(tmp_path, _zip(m)) is None


json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=5),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=6)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from(["model", "train", "schedule", "step", "rng_state", "info"]),
       key=st.sampled_from(["hidden", "depth", "dim", "emb_dim", "activation", "lr", "steps", "objective", "name",
                            "params", "state", "out_dim", None]),
       value=json_values)
@example(section="model", key="hidden", value=10**9)
@example(section="step", key=None, value=-1)
def test_config_with_wrong_types_is_refused_or_harmless(tmp_path, good, section, key, value):
    def edit(cfg):
        if key is None or not isinstance(cfg.get(section), dict):
            cfg[section] = value
        else:
            cfg[section][key] = value
    _load(tmp_path, _with_config(good, edit))          # a model or one CheckpointError line; nothing else


def test_enormous_declared_shapes_are_refused_before_any_allocation(tmp_path, good):
    m = _members(good)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    m["params.W0.npy"] = header.getvalue() + b"\0" * 64            # claims 8 TB, holds 64 bytes
    tracemalloc.start()
    assert _load(tmp_path, _zip(m)) is None
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20
    # a compressed member may hold many bytes in few: the declared total is still bounded
    m = _members(good)
    del m["losses.npy"]
    big = np.zeros(2**27 + 8)                                      # 1 GiB + 64 bytes of zeros
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in m.items():
            zf.writestr(name, data)
        zf.writestr("losses.npy", _npy(big))
    del big
    p = tmp_path / "bomb.npz"
    p.write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="more than"):
        Model.load(p)


def test_the_cli_names_a_corrupt_checkpoint_in_one_line(tmp_path, good, capsys):
    p = tmp_path / "model.npz"
    p.write_bytes(good[: len(good) // 3])
    assert main(["sample", str(p), "-n", "5", "--out", str(tmp_path / "s.npy")]) == 1       # a data error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ddpm: error:") and str(p) in err[0]


def test_a_file_from_before_the_adam_rename_loads_with_the_same_moments(tmp_path, good):
    # Adam's second moment was stored as adam_v.* until it was renamed s; such files must still load, unchanged.
    new = tmp_path / "new.npz"
    new.write_bytes(good)
    old = tmp_path / "old.npz"
    old.write_bytes(_zip({k.replace("adam_s.", "adam_v."): v for k, v in _members(good).items()}))
    a, b = Model.load(new), Model.load(old)
    assert a.state["opt"]["s"].keys() == b.state["opt"]["s"].keys() and a.state["opt"]["s"]
    for k in a.state["opt"]["s"]:
        np.testing.assert_array_equal(a.state["opt"]["s"][k], b.state["opt"]["s"][k])
        assert np.any(a.state["opt"]["s"][k] != a.state["opt"]["m"][k])
