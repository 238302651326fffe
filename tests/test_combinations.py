"""Every (objective × parametrization × variance × backend) combination the CLI can express either trains
like the reference or is refused with one line before any work starts (nothing written, no kernel run)."""

import itertools

import numpy as np
import pytest

import ddpm
import ddpm_fast
from ddpm.cli import main
from ddpm_ref import OBJECTIVES, PARAMETRIZATIONS, VAR_TYPES

COMBOS = list(itertools.product(OBJECTIVES, PARAMETRIZATIONS, VAR_TYPES))


def _expected_refusal(objective, parametrization, var_type, backend):
    """The words the one-line refusal must contain, or None where the combination must train."""
    if var_type == "learned" and objective == "simple":
        return "needs objective 'hybrid'"
    if objective == "hybrid" and var_type != "learned":
        return "'hybrid' adds"
    if backend == "cupy" and "cupy" not in ddpm_fast.available_backends():
        return "cupy"
    if backend in ("numba", "cupy") and (objective, parametrization) != ("simple", "eps"):
        return "use backend 'numpy'"
    return None


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pts.npy"
    np.save(path, np.random.default_rng(0).normal(size=(60, 2)) * [3.0, 0.5] + [1.0, -2.0])
    return path


def _fit(data_file, out, objective, parametrization, var_type, backend):
    return main(["fit", "--data", str(data_file), "--out", str(out), "--objective", objective,
                 "--parametrization", parametrization, "--var", var_type, "--backend", backend,
                 "--steps", "4", "--T", "6", "--schedule", "cosine", "--hidden", "8", "--depth", "2",
                 "--batch-size", "16", "--quiet"])


@pytest.mark.parametrize("objective, parametrization, var_type", COMBOS)
def test_every_cli_combination_trains_like_the_reference_or_is_refused_with_one_line(
        objective, parametrization, var_type, data_file, tmp_path, capsys):
    runs = {}
    for backend in ("numpy", "numba", "cupy"):
        out = tmp_path / backend
        rc = _fit(data_file, out, objective, parametrization, var_type, backend)
        captured = capsys.readouterr()
        refusal = _expected_refusal(objective, parametrization, var_type, backend)
        if refusal is not None:
            lines = captured.err.strip().splitlines()
            assert rc == 2 and len(lines) == 1 and lines[0].startswith("ddpm: error:"), captured.err
            assert refusal in lines[0], lines[0]
            assert not out.exists() or not any(out.iterdir())             # refused before any work
            continue
        assert rc == 0, captured.err
        runs[backend] = ddpm.load_model(out / "model.npz")
        assert runs[backend].info["backend"] == backend
        assert (runs[backend].tcfg.objective, runs[backend].tcfg.parametrization,
                runs[backend].tcfg.var_type) == (objective, parametrization, var_type)
    if _expected_refusal(objective, parametrization, var_type, "numpy") is None:
        ref = runs["numpy"]
        assert ref.cfg.n_out == (4 if var_type == "learned" else 2)
        assert np.all(np.isfinite(ref.losses)) and ref.step == 4
        for backend, m in runs.items():                                    # the same draws, float32 kernels
            np.testing.assert_allclose(m.losses, ref.losses, rtol=1e-4, atol=1e-5, err_msg=backend)
            for k in ref.state["params"]:
                np.testing.assert_allclose(m.state["params"][k], ref.state["params"][k], rtol=0, atol=2e-5,
                                           err_msg=f"{backend} {k}")
