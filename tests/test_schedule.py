import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ddpm_ref
from ddpm_ref import TerminalSNRWarning, make_schedule, schedule_from_betas

from strategies import schedules


def test_linear_schedule_matches_ho_at_T_1000():
    s = ddpm_ref.linear_schedule()
    assert s.T == 1000 and s.beta[0] == 0 and s.alpha_bar[0] == 1
    assert s.beta[1] == pytest.approx(1e-4) and s.beta[1000] == pytest.approx(0.02)
    assert s.beta[501] - s.beta[500] == pytest.approx((0.02 - 1e-4) / 999)            # evenly spaced
    assert s.alpha_bar[-1] < 1e-4
    named = make_schedule("linear", 1000)                 # the rescaled extension is Ho's at T = 1000
    np.testing.assert_array_equal(named.beta, s.beta)
    again = make_schedule(s.to_config()["name"], s.T, **s.to_config()["params"])   # as a checkpoint rebuilds it
    np.testing.assert_array_equal(again.beta, s.beta)


@pytest.mark.parametrize("T", [21, 50, 100, 250, 4000])
def test_linear_rescaling_keeps_alpha_bar_T_near_zero(T):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = make_schedule("linear", T)
    assert s.alpha_bar[-1] < 1e-3
    assert s.beta[1] == pytest.approx(1e-4 * 1000 / T)


def test_cosine_schedule_follows_nichol_dhariwal():
    T = 100
    s = make_schedule("cosine", T)
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    for t in (1, 10, 50, 90):
        assert s.alpha_bar[t] == pytest.approx(f(t) / f(0), rel=1e-12)
    assert s.beta.max() <= 0.999


@given(schedules())
def test_derived_arrays_follow_their_formulas(s):
    b = s.beta[1:]
    ab = np.cumprod(1 - b)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    np.testing.assert_allclose(s.alpha_bar[1:], ab, rtol=1e-12)
    np.testing.assert_allclose(s.beta_tilde[1:], (1 - ab_prev) / (1 - ab) * b, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(s.posterior_mean_coef_x0[1:], np.sqrt(ab_prev) * b / (1 - ab), rtol=1e-12)
    np.testing.assert_allclose(s.posterior_mean_coef_xt[1:], np.sqrt(1 - b) * (1 - ab_prev) / (1 - ab), rtol=1e-12)
    assert s.beta_tilde[1] == 0.0                      # ᾱ_0 = 1: the first posterior is exact
    assert all(len(getattr(s, k)) == s.T + 1 for k in ("beta", "alpha", "alpha_bar", "beta_tilde"))


def test_schedule_arrays_are_read_only():
    s = make_schedule("linear", 100)
    with pytest.raises(ValueError):
        s.beta[1] = 0.5


def test_weak_schedule_warns_with_alpha_bar_T():
    # Ho's unscaled 1e-4..0.02 at T = 50 (what popular toy code ships): ᾱ_T ≈ 0.6.
    with pytest.warns(TerminalSNRWarning, match=r"alpha_bar_T = 0\.6"):
        schedule_from_betas(np.linspace(1e-4, 0.02, 50))


@pytest.mark.parametrize("betas, match", [
    ([0.1, 0.0, 0.2], "beta_2 = 0.0"),
    ([0.1, 1.0, 0.2], "beta_2 = 1.0"),
    ([0.1, 1.5], "only beta_T may equal 1"),
    ([0.1, -0.3], "0 < beta_t < 1"),
    ([0.1, float("nan")], "finite"),
    ([0.1, float("inf")], "finite"),
    ([], "length T >= 1"),
    ([[0.1, 0.2]], "1-D"),
])
def test_invalid_betas_are_rejected(betas, match):
    with pytest.raises(ValueError, match=match):
        schedule_from_betas(np.array(betas, dtype=float))


def test_unknown_schedule_lists_known_ones():
    with pytest.raises(ValueError, match="unknown schedule 'cosin'.*cosine, linear"):
        make_schedule("cosin", 10)


@pytest.mark.parametrize("T", [0, -3, 2.5, "10", True])
def test_bad_T_is_rejected(T):
    with pytest.raises(ValueError, match="T must be a positive integer"):
        make_schedule("linear", T)


def test_bad_schedule_parameter_is_named():
    with pytest.raises(ValueError, match="bad parameters for schedule 'cosine'"):
        make_schedule("cosine", 10, beta_start=0.1)


def test_linear_schedule_with_too_few_steps_is_impossible():
    with pytest.raises(ValueError, match=r"needs T > 20 .* got T = 10"):
        make_schedule("linear", 10)


def test_sohl_dickstein_schedule_ends_at_pure_noise():
    s = make_schedule("sohl_dickstein", 40)
    np.testing.assert_allclose(s.beta[1:], 1.0 / (40 - np.arange(1, 41) + 1))
    np.testing.assert_allclose(s.alpha_bar, 1 - np.arange(41) / 40, atol=1e-15)   # ᾱ_t = 1 − t/T
    assert s.alpha_bar[-1] == 0 and s.posterior_mean_coef_xt[-1] == 0


def test_eps_parametrization_refuses_a_schedule_with_alpha_bar_T_zero():
    s = make_schedule("sohl_dickstein", 10)
    cfg = ddpm_ref.MLPConfig(hidden=4, depth=1)
    params = ddpm_ref.init_params(cfg, np.random.default_rng(0))
    with pytest.raises(ValueError, match="eps parametrization cannot recover x_0"):
        ddpm_ref.p_sample_loop(ddpm_ref.network(params, cfg), s, np.zeros((2, 2)), rng=np.random.default_rng(0))
    ddpm_ref.p_sample_loop_general(ddpm_ref.network(params, cfg), s, np.zeros((2, 2)), rng=np.random.default_rng(0), parametrization="mu")


@pytest.mark.parametrize("name", ["quadratic", "sigmoid"])
def test_new_schedules_share_the_linear_ends_and_reach_small_alpha_bar(name):
    s = make_schedule(name, 1000)
    assert s.beta[1] == pytest.approx(1e-4, rel=0.6) and s.beta[-1] == pytest.approx(0.02, rel=0.01)
    assert np.all(np.diff(s.beta[1:]) > 0) and s.alpha_bar[-1] < 1e-3


def test_quadratic_schedule_has_evenly_spaced_square_roots():
    s = make_schedule("quadratic", 100)
    np.testing.assert_allclose(np.diff(np.sqrt(s.beta[1:])), np.diff(np.sqrt(s.beta[1:]))[0], rtol=1e-9)


@pytest.mark.parametrize("name", ["linear", "cosine", "quadratic", "sigmoid"])
def test_zero_terminal_snr_rescaling_ends_at_pure_noise_and_keeps_the_first_step(name):
    s0 = make_schedule(name, 200)
    s = make_schedule(name, 200, zero_terminal_snr=True)
    assert s.alpha_bar[-1] == pytest.approx(0.0, abs=1e-15) and s.beta[-1] == pytest.approx(1.0)
    assert s.sqrt_alpha_bar[1] == pytest.approx(s0.sqrt_alpha_bar[1], rel=1e-12)
    assert np.all(np.diff(s.alpha_bar) < 0)


def test_schedule_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    from ddpm.plots import save_schedule_plot
    save_schedule_plot(tmp_path / "s.png", [make_schedule(n, 100) for n in ("linear", "cosine", "sigmoid")])
    assert (tmp_path / "s.png").stat().st_size > 1000
