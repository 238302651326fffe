"""Quantised data (issue 15): the grid is inferred or given, training sees the data dequantised, samples
are put back on the grid, and the held-out bound is on bin probabilities (the discretised decoder)."""

import numpy as np
import pytest

import ddpm
import ddpm_fast
from ddpm.api import dequantize, quantize
from ddpm.cli import main
from ddpm_ref import MLPConfig

SMALL = dict(T=30, model=MLPConfig(hidden=16, depth=2), n_eval=200, progress=False)


def _counts(n=600, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.poisson(3.0, n), rng.integers(0, 17, n), rng.poisson(9.0, n)]).astype(float)


def test_dequantisation_fills_each_bin_uniformly_and_quantize_undoes_it():
    x = _counts()
    grid = {"bin_width": 1.0, "offset": 0.0, "min": x.min(0).tolist(), "max": x.max(0).tolist()}
    u = dequantize(x, grid, np.random.default_rng(1), copies=20)
    assert u.shape == (20 * len(x), 3)
    r = u - np.repeat(x, 20, axis=0)
    assert np.abs(r).max() <= 0.5 and abs(r.mean()) < 0.01 and abs(r.var() - 1 / 12) < 0.003   # U(−½, ½)
    np.testing.assert_array_equal(quantize(u, grid), np.repeat(x, 20, axis=0))
    assert quantize(np.array([[-3.2, 40.0, 9.4]]), grid).tolist() == [[x[:, 0].min(), x[:, 1].max(), 9.0]]


def test_integer_data_are_fitted_as_quantised_and_report_the_inferred_grid(tmp_path):
    x = _counts()
    res = ddpm.fit(x, tmp_path / "m", steps=20, **SMALL)
    g = res.metrics["grid"]
    assert g["bin_width"] == 1.0 and g["offset"] == 0.0 and g["inferred"] is True
    assert np.all(res.samples == np.round(res.samples)) and np.all(res.samples >= x.min(0)) and np.all(res.samples <= x.max(0))
    assert res.metrics["heldout_bound"]["decoder"] == "discretized" and res.metrics["heldout_bound"]["bin_width"] == 1.0
    m = ddpm.load_model(tmp_path / "m" / "model.npz")
    s = ddpm.sample(m, 50, seed=0)
    assert np.all(s == np.round(s))
    ev = ddpm.evaluate(m, x, n=100)
    assert ev["decoder"] == "discretized" and ev["bound_bits_per_dim"] > 0      # a probability: ≥ 0 bits
    ex = ddpm.evaluate(m, x, n=100, exact=True)                                # the ODE bound on the bin
    assert ex["ode_decoder"] == "dequantized" and ex["ode_nll_bits_per_dim"] > 0


def test_the_training_data_are_dequantised(monkeypatch):
    seen = []
    real = ddpm_fast.train
    monkeypatch.setattr(ddpm_fast, "train", lambda state, data, *a, **k: seen.append(data) or real(state, data, *a, **k))
    x = _counts()
    res = ddpm.fit(x, steps=5, **SMALL)
    u = res.model.norm.to_data(seen[0])
    assert len(u) > len(x) and not np.all(u == np.round(u))
    assert np.abs(u - np.round(u)).max() <= 0.5 + 1e-9


def test_a_given_bin_width_is_checked_and_zero_means_continuous(tmp_path, capsys):
    x = _counts() * 0.5 + 0.25                                   # a grid of width 0.5, offset 0.25
    res = ddpm.fit(x, steps=5, bin_width=0.5, **SMALL)
    assert res.metrics["grid"]["bin_width"] == 0.5 and res.metrics["grid"]["offset"] == 0.25
    assert np.allclose(((res.samples - 0.25) / 0.5) % 1, 0)
    assert ddpm.fit(x, steps=5, **SMALL).metrics["grid"] is None                      # not integers: continuous
    assert ddpm.fit(_counts(), steps=5, bin_width=0, **SMALL).metrics["grid"] is None
    with pytest.raises(ValueError, match="do not lie on a grid of width 0.3"):
        ddpm.fit(x, steps=5, bin_width=0.3, **SMALL)
    np.save(tmp_path / "x.npy", x)
    assert main(["fit", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o"), "--bin-width", "0.3",
                 "--quiet"]) == 2
    assert "grid of width 0.3" in capsys.readouterr().err


def test_built_in_generators_stay_continuous():
    assert ddpm.fit("moons", steps=5, **SMALL).metrics["grid"] is None


def test_resume_refuses_another_bin_width_and_eval_takes_zero_as_continuous(tmp_path):
    x = _counts()
    ddpm.fit(x, tmp_path / "m", steps=6, checkpoint_every=3, **SMALL)
    with pytest.raises(ValueError, match="bin_width = 0.5"):
        ddpm.fit(x, tmp_path / "m", resume=tmp_path / "m" / "model.npz", bin_width=0.5, **SMALL)
    with pytest.raises(ValueError, match="image_shape"):
        ddpm.fit(x, tmp_path / "m", resume=tmp_path / "m" / "model.npz", image_shape=(1, 3), **SMALL)
    assert ddpm.fit(x, tmp_path / "m", resume=tmp_path / "m" / "model.npz", bin_width=1.0, **SMALL).model.step == 6
    ev = ddpm.evaluate(tmp_path / "m" / "model.npz", x, n=60, bin_width=0)
    assert ev["decoder"] == "gaussian"
