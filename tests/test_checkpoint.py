import os
import zipfile

import numpy as np
import pytest

from ddpm_ref import CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip_is_exact(tmp_path):
    arrays = {"W0": np.random.default_rng(0).standard_normal((3, 4)), "step": np.array(7)}
    save_checkpoint(tmp_path / "m.npz", arrays, {"a": 1, "b": [1.5, "x"]})
    got, cfg = load_checkpoint(tmp_path / "m.npz")
    assert cfg == {"a": 1, "b": [1.5, "x"]}
    np.testing.assert_array_equal(got["W0"], arrays["W0"])
    assert int(got["step"]) == 7
    assert os.listdir(tmp_path) == ["m.npz"]           # no temporary files left behind


def test_truncated_file_is_rejected_and_named(tmp_path):
    p = tmp_path / "m.npz"
    save_checkpoint(p, {"W0": np.ones((50, 50))}, {})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"m\.npz: not a readable ddpm checkpoint \(truncated or corrupt"):
        load_checkpoint(p)


def test_foreign_npz_and_npy_are_rejected(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(CheckpointError, match=r"other\.npz: not a ddpm checkpoint \(no 'ddpm-checkpoint' tag\)"):
        load_checkpoint(tmp_path / "other.npz")
    np.save(tmp_path / "arr.npy", np.ones(3))
    with pytest.raises(CheckpointError, match="not a ddpm checkpoint"):
        load_checkpoint(tmp_path / "arr.npy")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "text.npz")


def test_pickled_object_arrays_are_never_loaded(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(p, __format__=np.array("ddpm-checkpoint"), __version__=np.array(1),
             __config__=np.array("{}"), obj=np.array([{"x": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="'obj' has dtype object.*numeric arrays only"):
        load_checkpoint(p)


def test_newer_version_is_rejected(tmp_path):
    p = tmp_path / "new.npz"
    np.savez(p, __format__=np.array("ddpm-checkpoint"), __version__=np.array(99), __config__=np.array("{}"))
    with pytest.raises(CheckpointError, match="version 99 is newer"):
        load_checkpoint(p)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"none\.npz: no such checkpoint file"):
        load_checkpoint(tmp_path / "none.npz")


def test_failed_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "m.npz"
    save_checkpoint(p, {"a": np.ones(2)}, {"v": 1})
    with pytest.raises(ValueError, match="must be numeric"):
        save_checkpoint(p, {"a": np.array(["s"])}, {"v": 2})
    assert load_checkpoint(p)[1] == {"v": 1}
    assert os.listdir(tmp_path) == ["m.npz"]
