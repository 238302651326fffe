"""Sample-quality statistics: exact W2, unbiased MMD², energy distance, each against its floor."""

import sys

import numpy as np
import pytest

from ddpm import metrics


def _brute_mmd2(x, y, scale):
    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d2 / (2 * (h * scale) ** 2)) for h in metrics.MMD_BANDWIDTHS)
    kxx, kyy = k(x, x), k(y, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * k(x, y).mean())


def test_mmd2_is_the_unbiased_estimator_written_out_pair_by_pair():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(130, 2)), rng.normal(size=(70, 2)) * 1.2 + 0.1
    assert metrics.mmd2(x, y, 0.7) == pytest.approx(_brute_mmd2(x, y, 0.7), rel=1e-12)
    # more chunks than one (chunk = 1024 rows): the same value
    x, y = rng.normal(size=(1100, 2)), rng.normal(size=(1030, 2))
    assert metrics.mmd2(x, y, 1.0) == pytest.approx(_brute_mmd2(x, y, 1.0), rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("use_pot", [True, False])
def test_w2_is_exact_translation_distance_and_1d_sorted_matching(use_pot, monkeypatch):
    if use_pot:
        pytest.importorskip("ot")
    else:
        monkeypatch.setitem(sys.modules, "ot", None)                     # import ot → ImportError: scipy path
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 2))
    c = np.array([0.3, -0.4])
    # W2²(x + c, y) = |c|² + W2²(x, y) − 2 c·(mean y − mean x); with y = x: exactly |c|
    assert metrics.w2(x + c, x) == pytest.approx(0.5, rel=1e-9)
    a, b = rng.normal(size=(400, 1)), rng.exponential(size=(400, 1))     # 1-D: the sorted matching is optimal
    assert metrics.w2(a, b) == pytest.approx(np.sqrt(np.mean((np.sort(a[:, 0]) - np.sort(b[:, 0])) ** 2)), rel=1e-9)


def test_w2_of_unequal_sizes_without_pot_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "ot", None)
    with pytest.raises(ImportError, match="POT"):
        metrics.w2(np.zeros((3, 2)), np.ones((4, 2)))


def test_sample_statistics_sit_at_their_floor_for_data_and_above_it_for_a_shifted_copy():
    rng = np.random.default_rng(2)
    draw = lambda n: rng.normal(size=(n, 2)) * [1.0, 0.2]
    held, refs = draw(1500), [draw(1500) for _ in range(3)]
    good = metrics.sample_statistics(draw(1500), held, refs)
    bad = metrics.sample_statistics(draw(1500) + [0.0, 0.3], held, refs)   # 1.5 standard deviations in y
    assert good["n_samples"] == 1500 and good["n_w2"] == 1500 and good["floor_draws_w2_mmd"] == 2
    for key in ("energy_ratio", "w2_ratio"):
        assert 0.5 < good[key] < 2.0, (key, good[key])
        assert bad[key] > 2.0 * good[key], (key, bad[key], good[key])
    assert abs(good["mmd2_ratio"]) < 4 and bad["mmd2_ratio"] > 10
    assert good["w2_floor"] == pytest.approx(np.mean([metrics.w2(r, held) for r in refs[:2]]), rel=1e-12)
    with pytest.raises(ValueError, match="size"):
        metrics.sample_statistics(draw(10), held, refs)
