"""Sample-quality statistics: exact W2, unbiased MMD², energy distance, sliced W2, marginal W1 and the
memorisation check, each against its floor."""

import json
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
    # the exponentials are float32 (metrics._pair_sums): ~1e-7 relative, while a wrong diagonal term
    # (i = k kept) moves MMD² by ~Σ_h 1/n ≈ 0.04 here
    assert metrics.mmd2(x, y, 0.7) == pytest.approx(_brute_mmd2(x, y, 0.7), rel=1e-6, abs=1e-9)
    # more chunks than one (chunk = 1024 rows): the same value
    x, y = rng.normal(size=(1100, 2)), rng.normal(size=(1030, 2))
    assert metrics.mmd2(x, y, 1.0) == pytest.approx(_brute_mmd2(x, y, 1.0), rel=1e-6, abs=1e-9)


def test_mmd2_bandwidths_not_four_times_apart_take_their_own_exponential():
    # _exp_plan reuses exp(−γd²)⁴ for 4γ only: bandwidths 1, 0.5 (γ × 4) and 0.3 (γ × 2.78) all exact
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(90, 2)), rng.normal(size=(80, 2)) + 0.2
    hs = (1.0, 0.5, 0.3)
    assert [h for h, _ in metrics._exp_plan(metrics._gammas(1.0, hs))] == ["exp", "pow4", "exp"]
    want = sum(_brute_mmd2_one(x, y, h) for h in hs)
    assert metrics.mmd2(x, y, 1.0, bandwidths=hs) == pytest.approx(want, rel=1e-6, abs=1e-9)


def _brute_mmd2_one(x, y, h):
    d2 = lambda a, b: ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    k = lambda a, b: np.exp(-d2(a, b) / (2 * h ** 2))
    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return (kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1)) - 2 * k(x, y).mean()


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
    assert good["n_samples"] == 1500 and good["n_w2"] == 1500 and good["floor_draws_w2"] == 2 and good["floor_draws_mmd"] == 3
    for key in ("energy_ratio", "w2_ratio"):
        assert 0.5 < good[key] < 2.0, (key, good[key])
        assert bad[key] > 2.0 * good[key], (key, bad[key], good[key])
    assert abs(good["mmd2_ratio"]) < 4 and bad["mmd2_ratio"] > 10
    assert good["w2_floor"] == pytest.approx(np.mean([metrics.w2(r, held) for r in refs[:2]]), rel=1e-12)
    scale = metrics.data_scale(held)                          # MMD²'s floor: every reference draw, not two
    assert good["mmd2_floor"] == pytest.approx(np.mean([abs(metrics.mmd2(r, held, scale)) for r in refs]), rel=1e-6)
    with pytest.raises(ValueError, match="size"):
        metrics.sample_statistics(draw(10), held, refs)


def _w2_1d_by_replication(a, b):
    """Exact 1-D W2 between n and m points by an independent route: repeat each sorted point lcm/n (lcm/m)
    times, then the sorted matching of two equal-size sets."""
    n, m = len(a), len(b)
    L = np.lcm(n, m)
    return np.sqrt(np.mean((np.repeat(np.sort(a), L // n) - np.repeat(np.sort(b), L // m)) ** 2))


def test_sliced_w2_in_one_dimension_is_the_exact_w2_for_equal_and_unequal_sizes():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 1)), rng.exponential(size=(400, 1))
    assert metrics.sliced_w2(a, b) == pytest.approx(metrics.w2(a, b), rel=1e-9)
    a, b = rng.normal(size=(120, 1)), rng.exponential(size=(84, 1))        # lcm 840: quantile pieces of 1/840
    assert metrics.sliced_w2(a, b) == pytest.approx(_w2_1d_by_replication(a[:, 0], b[:, 0]), rel=1e-9)


def test_sliced_w2_of_unequal_sizes_in_one_dimension_is_pots_exact_w2():
    pytest.importorskip("ot")
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(131, 1)), rng.exponential(size=(97, 1))        # coprime sizes: 227 quantile pieces
    assert metrics.sliced_w2(a, b) == pytest.approx(metrics.w2(a, b), rel=1e-7)


def test_one_d_transport_by_hand_for_two_and_three_points():
    # F⁻¹ = 0 on (0, 1/2], 1 on (1/2, 1]; G⁻¹ = 0, 0.5, 1 on thirds: they differ by 0.5 on (1/3, 2/3]
    x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [0.5], [1.0]])
    assert metrics.marginal_w1(x, y)[0] == pytest.approx(0.5 / 3, rel=1e-12)
    assert metrics.sliced_w2(x, y) == pytest.approx(np.sqrt(0.25 / 3), rel=1e-12)


def test_sliced_w2_is_invariant_to_rotating_both_sets():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 3)) * [3.0, 1.0, 0.1]                       # anisotropic: directions matter
    y = rng.standard_t(3, size=(300, 3)) * [0.5, 1.5, 0.1] + [0.5, 0.0, 0.0]
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))                          # a random orthogonal matrix
    # measured over 30 random rotations: SW2 moves by sd 0.4% at L = 20,000 (3% at the default L = 200);
    # directions uniform in a cube instead of on the sphere move it by 11%, in the positive orthant by 44%
    L = 20_000
    assert metrics.sliced_w2(x @ Q.T, y @ Q.T, n_directions=L) == pytest.approx(metrics.sliced_w2(x, y, n_directions=L), rel=0.03)
    assert metrics.sliced_w2(x @ Q.T, y @ Q.T) == pytest.approx(metrics.sliced_w2(x, y), rel=0.1)
    # a translation by c: SW2² = mean_l (θ_l·c)², whose expectation over the sphere is |c|²/D
    c = np.array([0.3, -0.4, 1.2])
    assert metrics.sliced_w2(x + c, x, n_directions=L) == pytest.approx(np.linalg.norm(c) / np.sqrt(3), rel=0.02)
    theta = metrics.slice_directions(3)
    np.testing.assert_allclose(np.linalg.norm(theta, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(theta, metrics.slice_directions(3))     # a fixed seed: the same directions


def test_marginal_w1_of_a_shifted_coordinate_is_the_shift_and_matches_scipy():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 3))
    for c in (0.7, -0.25):
        np.testing.assert_allclose(metrics.marginal_w1(x + [0.0, c, 0.0], x), [0.0, abs(c), 0.0], atol=1e-12)
    from scipy.stats import wasserstein_distance                            # an independent exact 1-D W1
    y = rng.exponential(size=(333, 3))
    np.testing.assert_allclose(metrics.marginal_w1(x, y), [wasserstein_distance(x[:, d], y[:, d]) for d in range(3)],
                               rtol=1e-9)


@pytest.mark.parametrize("dim", [2, 12])                                  # cKDTree, then chunked brute force
def test_nearest_neighbour_distances_are_the_brute_force_minimum(dim, monkeypatch):
    assert (dim <= metrics.KDTREE_MAX_DIM) == (dim == 2)
    monkeypatch.setattr(metrics, "NN_CHUNK_BYTES", 8 * 300 * 37)          # 37 rows a chunk: several chunks, one short
    rng = np.random.default_rng(6)
    x, ref = rng.normal(size=(200, dim)), rng.normal(size=(300, dim)) + 0.1
    brute = np.sqrt(((x[:, None, :] - ref[None, :, :]) ** 2).sum(-1)).min(axis=1)
    np.testing.assert_allclose(metrics.nearest_neighbour_distances(x, ref), brute, rtol=1e-10)
    assert np.all(metrics.nearest_neighbour_distances(ref[::3], ref) == 0.0)   # copies sit at exactly 0


@pytest.mark.parametrize("dim", [2, 12])
def test_memorisation_ratio_is_zero_for_copies_of_training_points_and_one_for_fresh_draws(dim):
    rng = np.random.default_rng(7)
    draw = lambda n: rng.normal(size=(n, dim)) * np.linspace(0.2, 1.0, dim)
    train, held, refs = draw(4000), draw(1000), [draw(1000)]
    copies = metrics.sample_statistics(train[rng.choice(4000, 1000)], held, refs, train=train)
    fresh = metrics.sample_statistics(draw(1000), held, refs, train=train)
    assert copies["nn_train_samples_median"] == 0.0 and copies["nn_train_ratio"] == 0.0
    assert 0.85 < fresh["nn_train_ratio"] < 1.18, fresh["nn_train_ratio"]    # sd over seeds: 0.04 (2-D), 0.01 (12-D)
    assert fresh["nn_train_heldout_median"] == copies["nn_train_heldout_median"] > 0
    assert fresh["nn_train_heldout_median"] == pytest.approx(np.median(metrics.nearest_neighbour_distances(held, train)))
    assert fresh["n_nn_train"] == 4000
    jitter = 0.1 * fresh["nn_train_heldout_median"] / np.sqrt(dim)        # a tenth of fresh data's distance
    blurred = metrics.sample_statistics(train[:1000] + jitter * rng.normal(size=(1000, dim)), held, refs, train=train)
    assert blurred["nn_train_ratio"] < 0.3                                # near-copies: still far below fresh data
    overlap = metrics.sample_statistics(train[:1000], train[1000:2000], refs, train=train)
    assert np.isnan(overlap["nn_train_ratio"])                            # held-out median 0: nothing to compare


NEW_STATISTICS = ("sliced_w2", "marginal_w1", "marginal_w1_max")


def test_sample_statistics_report_the_n_d_statistics_with_floors_ratios_and_sizes():
    rng = np.random.default_rng(8)
    draw = lambda n: rng.normal(size=(n, 3)) * [1.0, 0.5, 1.5]
    held, refs, train = draw(900), [draw(600) for _ in range(3)], draw(3000)
    good = metrics.sample_statistics(draw(600), held, refs, train=train)
    bad = metrics.sample_statistics(draw(600) + [0.0, 0.75, 0.0], held, refs, train=train)   # 1.5 sd in coordinate 1
    for key in NEW_STATISTICS:
        assert good[f"{key}_ratio"] == pytest.approx(good[key] / good[f"{key}_floor"], rel=1e-12)
        assert 0.5 < good[f"{key}_ratio"] < 2.0, (key, good[f"{key}_ratio"])
        assert bad[f"{key}_ratio"] > 2.0 * good[f"{key}_ratio"], (key, bad[f"{key}_ratio"])
    assert good["floor_draws_sliced_marginal"] == 3 and good["slice_directions"] == metrics.SLICE_DIRECTIONS
    assert good["n_samples"] == 600 and good["n_heldout"] == 900 and good["n_nn_train"] == 3000
    assert good["sliced_w2_floor"] == pytest.approx(np.mean([metrics.sliced_w2(r, held) for r in refs]), rel=1e-12)
    w1_refs = [metrics.marginal_w1(r, held) for r in refs]
    assert good["marginal_w1_floor"] == pytest.approx(np.mean([w.mean() for w in w1_refs]), rel=1e-12)
    assert good["marginal_w1_max_floor"] == pytest.approx(np.mean([w.max() for w in w1_refs]), rel=1e-12)
    assert bad["marginal_w1_argmax"] == 1 and bad["marginal_w1_max"] == pytest.approx(0.75, rel=0.2)
    assert 0.8 < good["nn_train_ratio"] < 1.25
    assert not any(k.startswith("nn_train") for k in metrics.sample_statistics(draw(600), held, refs))   # no train: no keys


def test_fit_writes_the_n_d_statistics_into_metrics_json(tmp_path):
    import ddpm
    from ddpm_ref import MLPConfig
    ddpm.fit("moons", tmp_path / "run", steps=50, T=30, model=MLPConfig(hidden=16, depth=2), n_eval=300,
             n_train=2000, progress=False)
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in NEW_STATISTICS:
        assert m[f"{key}_ratio"] == pytest.approx(m[key] / m[f"{key}_floor"]) and m[f"{key}_ratio"] > 1   # 50 steps
    assert m["n_nn_train"] == m["n_train"] == 2000 and m["nn_train_samples_median"] > 0
    assert m["nn_train_ratio"] == pytest.approx(m["nn_train_samples_median"] / m["nn_train_heldout_median"])


def test_sample_statistics_need_a_reference_draw_for_the_floors():
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="at least one reference draw"):
        metrics.sample_statistics(x, x, [])
