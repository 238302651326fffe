"""Numerics at the edges (issue 13, item 7): T = 1, T = 10⁴, β reaching 1, D = 1, D = 64 and data with no
spread each train and sample without NaN, or are refused with the reason — never a NaN result."""

import warnings

import numpy as np
import pytest

import ddpm
from ddpm_ref import GeneralTrainConfig, MLPConfig, TrainConfig

SMALL = dict(model=MLPConfig(hidden=16, depth=2), n_eval=100, n_train=2000, progress=False)
rng = np.random.default_rng(0)

CASES = {
    "T=1 (cosine)": ("moons", dict(T=1, schedule="cosine"), None),
    "T=1 (linear)": ("moons", dict(T=1, schedule="linear"), "needs T > 20"),
    "T=10000": ("moons", dict(T=10_000), None),
    "beta_T=1, eps": ("moons", dict(T=40, schedule="sohl_dickstein"), "cannot recover x_0"),
    "beta_T=1, x0": ("moons", dict(T=40, schedule="sohl_dickstein", train=GeneralTrainConfig(steps=30, parametrization="x0")),
                     None),
    "D=1": (rng.normal(size=(500, 1)), {}, None),
    "D=64": (rng.normal(size=(500, 64)), {}, None),
    "one point repeated": (np.ones((100, 2)), {}, "every one of the 2 data columns is constant"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_edge_cases_train_and_sample_finite_or_are_refused_with_the_reason(name):
    data, kw, refusal = CASES[name]
    kw = {"train": TrainConfig(steps=30), **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                     # T = 1's prior-mismatch warning is expected
        if refusal is not None:
            with pytest.raises(ValueError, match=refusal):
                ddpm.fit(data, steps=kw["train"].steps, **SMALL, **kw)
            return
        res = ddpm.fit(data, steps=kw["train"].steps, **SMALL, **kw)
    assert np.all(np.isfinite(res.samples)) and np.all(np.isfinite(res.model.losses))
    for key in ("bound_bits_per_dim", "w2", "mmd2", "energy_distance", "final_loss"):
        assert np.isfinite(res.metrics[key]), key
    assert res.samples.shape == (100, np.shape(data)[1] if not isinstance(data, str) else 2)
