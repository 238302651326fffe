"""Default training length scales with the training-set size (api.default_steps), and fit warns when its samples
sit closer to the training points than held-out data does (issue 20, point 3)."""
import warnings

import numpy as np
import pytest

import ddpm
from ddpm import api, fit_plan, guards
from ddpm.cli import main
from ddpm_ref import MLPConfig, TrainConfig

SMALL = dict(T=20, model=MLPConfig(hidden=8, depth=2), n_eval=60, progress=False)


@pytest.mark.parametrize("n, steps", [(1, 2000), (120, 2000), (142, 2000), (200, 3000), (455, 7000),
                                      (600, 10000), (1000, 16000), (1437, 16000), (100_000, 16000)])
def test_default_steps_are_16_per_point_rounded_to_thousands_within_2000_and_16000(n, steps):
    assert api.default_steps(n) == steps


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "100"])
def test_default_steps_refuses_a_non_positive_or_non_integer_size(bad):
    with pytest.raises(ValueError, match="n_train"):
        api.default_steps(bad)


def _points(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 2))


def test_fit_without_steps_takes_default_steps_of_the_training_set_size(monkeypatch):
    seen = []
    monkeypatch.setattr(fit_plan, "default_steps", lambda n: seen.append(n) or 7)
    res = ddpm.fit(_points(50), train={"lr": 1e-3}, **SMALL)   # 20% held out: 40 training points
    assert seen == [40] and res.metrics["steps"] == 7 and res.model.tcfg.lr == 1e-3


def test_steps_or_a_train_config_override_the_size_rule(monkeypatch):
    monkeypatch.setattr(fit_plan, "default_steps", lambda n: 7)
    assert ddpm.fit(_points(50), steps=3, train={"lr": 1e-3}, **SMALL).metrics["steps"] == 3
    assert ddpm.fit(_points(50), train={"steps": 4}, **SMALL).metrics["steps"] == 4
    assert ddpm.fit(_points(50), train=TrainConfig(steps=5), **SMALL).metrics["steps"] == 5


def test_unknown_train_setting_is_named():
    with pytest.raises(ValueError, match="unknown train settings.*'lrate'"):
        ddpm.fit(_points(50), train={"lrate": 1e-3}, **SMALL)


def test_cli_fit_with_lr_but_no_steps_takes_the_size_rule(monkeypatch, tmp_path):
    monkeypatch.setattr(fit_plan, "default_steps", lambda n: 6)
    np.save(tmp_path / "x.npy", _points(50))
    assert main(["fit", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "m"), "--lr", "1e-3",
                 "--T", "20", "--hidden", "8", "--quiet"]) == 0
    m = ddpm.load_model(tmp_path / "m" / "model.npz")
    assert m.step == 6 and m.tcfg.lr == 1e-3


def _metrics(ratio):
    return {"nn_train_ratio": ratio, "nn_train_samples_median": 0.1, "nn_train_heldout_median": 0.2,
            "n_train": 120, "steps": 16000}


@pytest.mark.parametrize("ratio, warns", [(0.58, True), (0.79, True), (0.8, False), (1.0, False),
                                          (float("nan"), False), (None, False)])
def test_memorisation_warning_below_ratio_0_8(ratio, warns):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        guards.warn_if_memorised(_metrics(ratio))
    got = [x for x in w if issubclass(x.category, api.MemorisationWarning)]
    assert bool(got) == warns
    if warns:
        assert "memorised its 120 training points" in str(got[0].message) and "default for this size: 2000" in str(got[0].message)


def test_fit_checks_its_samples_for_memorisation(monkeypatch):
    monkeypatch.setattr(guards, "MEMORISATION_RATIO", 1e9)            # any finite ratio now counts as memorised
    with pytest.warns(api.MemorisationWarning, match="training points"):
        ddpm.fit(_points(50), steps=2, **SMALL)
