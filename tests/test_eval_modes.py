"""fit's evaluation modes: "fast" (cached floors, stratified-t bound) stays within its stated error of "full";
"none" measures nothing; an unknown mode is refused. Model-free where it can be: sample_statistics takes any
point sets (a perturbed data draw stands in for a model's samples)."""

import json

import numpy as np
import pytest

import ddpm
import toy_data
from ddpm import floors, metrics
from ddpm.likelihood import strata
from ddpm.cli import main
from ddpm_ref import MLPConfig

N = 1000                                   # the table's small size (ddpm/floors.json: 1000x1000 and 5000x5000)
SMALL = dict(T=30, model=MLPConfig(hidden=16, depth=2), progress=False)


def _within(a, se_a, b, se_b, k=3.0):
    return abs(a - b) <= k * np.hypot(se_a, se_b)


def _sets(name, seed, n=N, n_refs=8):
    rng = np.random.default_rng(seed)
    held = toy_data.draw(name, n, rng)
    refs = [toy_data.draw(name, n, rng) for _ in range(n_refs)]
    samples = toy_data.draw(name, n, rng) * 1.03 + 0.02                   # a slightly-off "model"
    return samples, held, refs


@pytest.mark.parametrize("name", ["moons", "checkerboard", "8gaussians"])
def test_fast_statistics_are_the_full_ones_and_their_floors_agree_within_the_stated_error(name):
    samples, held, refs = _sets(name, 1)
    full = metrics.sample_statistics(samples, held, refs, n_floor_exact=len(refs))
    fast = metrics.sample_statistics(samples, held, refs, mode="fast", floors=floors.cached_floors(name, N, N))
    assert (full["eval_mode"], full["floor_source"], fast["eval_mode"], fast["floor_source"]) == (
        "full", "draws", "fast", "table")
    for key in ("energy_distance", "w2", "mmd2", "sliced_w2", "marginal_w1", "marginal_w1_max"):
        assert fast[key] == full[key], key                                  # the samples' statistics: the same numbers
    for key, short in (("energy_distance", "energy"), ("w2", "w2"), ("mmd2", "mmd2")):
        f, F = fast, full
        assert f[f"{key}_floor_se"] > 0 and F[f"{key}_floor_se"] > 0
        assert _within(f[f"{key}_floor"], f[f"{key}_floor_se"], F[f"{key}_floor"], F[f"{key}_floor_se"]), key
        assert _within(f[f"{short}_ratio"], f[f"{short}_ratio_se"], F[f"{short}_ratio"], F[f"{short}_ratio_se"]), key
        assert f[f"{short}_ratio_se"] == pytest.approx(f[f"{short}_ratio"] * f[f"{key}_floor_se"] / f[f"{key}_floor"])


def test_fast_mode_without_a_table_draws_fewer_floors_and_says_so():
    samples, held, refs = _sets("moons", 2, n=400, n_refs=4)
    fast = metrics.sample_statistics(samples, held, refs, mode="fast")
    assert fast["floor_source"] == "draws"
    assert (fast["floor_draws_energy"], fast["floor_draws_mmd"], fast["floor_draws_w2"]) == (
        metrics.N_FAST_FLOOR_DRAWS, metrics.N_FAST_FLOOR_DRAWS, 1)
    assert fast["w2_floor_se"] is None and fast["w2_ratio_se"] is None      # one draw: no error to state
    assert fast["w2_floor"] == pytest.approx(metrics.w2(refs[0], held))


def test_every_built_in_has_cached_floors_at_both_sizes_and_they_are_distinct():
    for name in toy_data.NAMES:
        for n in (1000, 5000):
            f = floors.cached_floors(name, n, n)
            assert f is not None, (name, n)
            for v in f.values():
                assert v["mean"] > 0 and 0 < v["se"] < 0.25 * v["mean"] and v["draws"] >= 12, (name, n, v)
    # a floor shrinks with the sample size: a lookup that ignored n could not pass this
    for name in toy_data.NAMES:
        small, big = floors.cached_floors(name, 1000, 1000), floors.cached_floors(name, 5000, 5000)
        assert big["energy_distance"]["mean"] < 0.5 * small["energy_distance"]["mean"], name
    assert floors.cached_floors("moons", 1234, 1234) is None and floors.cached_floors("no_such", N, N) is None
    assert floors.cached_floors(np.zeros((3, 2)), N, N) is None


@pytest.mark.parametrize("name", ["moons", "8gaussians", "checkerboard"])
def test_cached_floors_agree_with_freshly_drawn_ones(name):
    cached = floors.cached_floors(name, N, N)
    fresh = floors.fresh_floors(name, N, N, draws=16, draws_w2=16, seed=987)   # not the table's seed
    for key in floors.FLOOR_KEYS:
        c, f = cached[key], fresh[key]
        assert _within(c["mean"], c["se"], f["mean"], f["se"]), (key, c, f)


def test_cached_floors_at_fit_size_agree_with_freshly_drawn_ones():
    cached = floors.cached_floors("moons", 5000, 5000)
    fresh = floors.fresh_floors("moons", 5000, 5000, draws=4, draws_w2=2, seed=55)
    for key in floors.FLOOR_KEYS:
        assert _within(cached[key]["mean"], cached[key]["se"], fresh[key]["mean"], fresh[key]["se"]), key


def test_strata_cover_every_step_once_geometrically():
    for T, K in ((1000, 32), (30, 32), (30, 10), (3, 8), (2, 1), (1000, 1)):
        start, size = strata(T, K)
        assert len(start) == min(K, T - 1) and np.all(size >= 1)
        steps = np.concatenate([np.arange(s, s + w) for s, w in zip(start, size)])
        np.testing.assert_array_equal(steps, np.arange(2, T + 1))           # t = 2..T, each once, in order
    _, size = strata(1000, 32)
    assert size[0] == 1 and size[-1] > 50                                   # fine where L_{t−1} is steep
    assert strata(1, 32)[0].size == 0
    with pytest.raises(ValueError, match="t_draws"):
        strata(1000, 0)


@pytest.fixture(scope="module")
def fitted():
    return ddpm.fit("moons", steps=300, n_eval=N, eval="none", **SMALL).model


def test_stratified_bound_agrees_with_the_full_sum_within_the_stated_error(fitted):
    x = toy_data.draw("moons", 600, np.random.default_rng(3))
    full = ddpm.likelihood_bound(fitted, x, seed=1)
    assert (full["t_sampling"], full["t_draws"]) == ("all", 29)
    for K in (4, 12):
        fast = ddpm.likelihood_bound(fitted, x, seed=2, t_draws=K)
        assert (fast["t_sampling"], fast["t_draws"]) == ("stratified", K)
        assert _within(fast["bound_bits_per_dim"], fast["bound_bits_per_dim_se"],
                       full["bound_bits_per_dim"], full["bound_bits_per_dim_se"]), (K, fast, full)
        assert fast["bound_bits_per_dim"] == pytest.approx(
            fast["L_T_bits_per_dim"] + fast["L_t_minus_1_sum_bits_per_dim"] + fast["L_0_bits_per_dim"])
        prof = np.asarray(fast["profile_bits_per_dim"])
        assert prof.sum() == pytest.approx(fast["L_t_minus_1_sum_bits_per_dim"])


def test_stratified_and_full_bounds_share_L_0_exactly_with_the_standardisation_jacobian(fitted):
    """Both bounds draw x_1 first from the same seed, so their decoder terms L_0 (with the log-Jacobian
    Σ_d log s_d of the standardisation, not 0 on moons) must agree to rounding: dropping the Jacobian from
    one of them, a shift of Σ log s_d / (D ln 2) bits/dim, fails here though it hides in 3 standard errors."""
    log_scale = float(np.sum(np.log(fitted.norm.scale)))
    assert abs(log_scale) > 0.1                                     # the Jacobian matters on this model
    x = toy_data.draw("moons", 200, np.random.default_rng(4))
    full = ddpm.likelihood_bound(fitted, x, seed=5)
    fast = ddpm.likelihood_bound(fitted, x, seed=5, t_draws=4)
    assert fast["L_0_bits_per_dim"] == pytest.approx(full["L_0_bits_per_dim"], rel=1e-12, abs=1e-12)
    assert fast["L_T_bits_per_dim"] == pytest.approx(full["L_T_bits_per_dim"], rel=1e-12, abs=1e-15)


def test_fit_defaults_to_fast_and_its_figures_are_within_their_stated_error_of_full(tmp_path):
    fast = ddpm.fit("moons", tmp_path / "fast", steps=300, n_eval=N, **SMALL).metrics
    full = ddpm.fit("moons", tmp_path / "full", steps=300, n_eval=N, eval="full", **SMALL).metrics
    assert (fast["eval"], fast["eval_mode"], fast["floor_source"]) == ("fast", "fast", "table")
    assert (full["eval"], full["eval_mode"], full["floor_source"]) == ("full", "full", "draws")
    assert fast["heldout_bound"]["t_sampling"] == "stratified" and full["heldout_bound"]["t_sampling"] == "all"
    table = floors.cached_floors("moons", N, N)
    for key, short in (("energy_distance", "energy"), ("w2", "w2"), ("mmd2", "mmd2")):
        assert fast[key] == full[key]                                        # same seed: same samples, same statistic
        assert (fast[f"{key}_floor"], fast[f"{key}_floor_se"]) == (table[key]["mean"], table[key]["se"])
        # full's floor is conditional on this fit's held-out set: it moves with it by up to one draw's sd
        # (the table's se·√draws), which neither SE states; the expectation is what the table holds
        sd = table[key]["se"] * np.sqrt(table[key]["draws"])
        assert abs(fast[f"{key}_floor"] - full[f"{key}_floor"]) <= 3 * np.sqrt(
            fast[f"{key}_floor_se"] ** 2 + full[f"{key}_floor_se"] ** 2 + sd ** 2), key
    assert _within(fast["bound_bits_per_dim"], fast["bound_bits_per_dim_se"],
                   full["bound_bits_per_dim"], full["bound_bits_per_dim_se"])
    on_disk = json.loads((tmp_path / "fast" / "metrics.json").read_text())
    assert on_disk["w2_ratio_se"] == fast["w2_ratio_se"] and (tmp_path / "fast" / "bound_profile.png").is_file()


def test_eval_none_writes_metrics_without_statistics_and_exits_0(tmp_path, capsys):
    out = tmp_path / "none"
    rc = main(["fit", "moons", "--out", str(out), "--steps", "50", "--T", "30", "--hidden", "16", "--depth", "2",
               "--eval", "none", "--quiet"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["eval"] == "none" and m["steps"] == 50
    for key in ("energy_distance", "w2", "mmd2", "energy_ratio", "bound_bits_per_dim", "heldout_bound"):
        assert key not in m, key
    assert (out / "samples.npy").is_file() and not (out / "bound_profile.png").exists()
    assert "no statistics" in capsys.readouterr().out


def test_an_unknown_eval_mode_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown eval 'quick'; choose one of full, fast, none"):
        ddpm.fit("moons", tmp_path / "q", steps=50, eval="quick", **SMALL)
    assert not (tmp_path / "q").exists()
    with pytest.raises(ValueError, match="unknown evaluation mode"):
        metrics.sample_statistics(np.zeros((4, 2)), np.ones((4, 2)), [np.ones((4, 2))], mode="quick")
    with pytest.raises(ValueError, match="choose one of full, fast"):
        ddpm.evaluate(ddpm.fit("moons", steps=20, n_eval=50, eval="none", **SMALL).model, "moons", n=50, eval="none")
    with pytest.raises(ValueError, match="mode='fast'"):
        metrics.sample_statistics(np.zeros((4, 2)), np.ones((4, 2)), [np.ones((4, 2))],
                                  floors={k: {"mean": 1.0, "se": 0.1, "draws": 2} for k in floors.FLOOR_KEYS})
    with pytest.raises(SystemExit) as e:
        main(["fit", "moons", "--out", str(tmp_path / "c"), "--eval", "quick"])
    assert e.value.code == 2 and "invalid choice: 'quick'" in capsys.readouterr().err
