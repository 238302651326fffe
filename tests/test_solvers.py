"""The probability-flow ODE solvers against Gaussian data, where ε(x, t) and the flow are known exactly.

Data N(μ, diag(s²)): ε(x, t) = √(1−ᾱ)(x − √ᾱ μ)/(ᾱ s² + 1 − ᾱ) per coordinate, and in x̄ = x/√ᾱ the
flow is x̄(σ_b) = μ + (x̄(σ_a) − μ)·√(s² + σ_b²)/√(s² + σ_a²) (EDM σ). The order tests run on a grid
whose λ gaps alternate 1 : 2, so that a solver's step-size ratios r are not 1 and errors in r show.
"""

import numpy as np
import pytest

import ddpm_ref
from ddpm_ref import SIGMA_MAX, make_schedule, sigma_of_t, t_of_sigma
from ddpm_ref.respace import ddim_sample_loop, ddim_step
from ddpm_ref.solvers import SOLVER_SPACINGS, SOLVERS, KARRAS_RHO, solver_order, solver_sample, solver_timesteps

MU = np.array([1.5, -0.7])
S = np.array([0.5, 2.0])
SCHED = make_schedule("linear", 1000)


class GaussianModel:
    """The exact network of N(μ, diag(s²)) data as an eps-, x0- or v-model; counts its calls."""

    def __init__(self, sched, parametrization="eps"):
        self.sched, self.parametrization, self.calls = sched, parametrization, 0

    def __call__(self, x, t):
        self.calls += 1
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), (x.shape[0],))   # respace.py's DDIM passes an int
        ab = (1.0 / (1.0 + sigma_of_t(self.sched, t) ** 2))[:, None]           # ᾱ(t), (N, 1)
        eps = np.sqrt(1 - ab) * (x - np.sqrt(ab) * MU) / (ab * S ** 2 + 1 - ab)
        x0 = (x - np.sqrt(1 - ab) * eps) / np.sqrt(ab)
        return {"eps": eps, "x0": x0, "v": np.sqrt(ab) * eps - np.sqrt(1 - ab) * x0}[self.parametrization]


def exact_flow(sched, x_a, t_a, t_b):
    """x at step t_b on the exact PF-ODE trajectory through x_a at t_a (t_b = 0 means σ = 0)."""
    sa = float(sigma_of_t(sched, t_a))
    sb = 0.0 if t_b == 0 else float(sigma_of_t(sched, t_b))
    xbar = MU + (x_a * np.sqrt(1 + sa ** 2) - MU) * np.sqrt(S ** 2 + sb ** 2) / np.sqrt(S ** 2 + sa ** 2)
    return xbar / np.sqrt(1 + sb ** 2)


def alternating_grid(sched, n, t_end):
    """n points from T to t_end whose λ gaps alternate 1, 2, 1, 2, ... (in proportion)."""
    w = np.tile([1.0, 2.0], n)[:n - 1]
    c = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
    log_s = np.log(sigma_of_t(sched, float(sched.T))) + c * np.log(sigma_of_t(sched, t_end) / sigma_of_t(sched, float(sched.T)))
    ts = t_of_sigma(sched, np.exp(log_s))
    ts[0], ts[-1] = sched.T, t_end
    return ts


def x_T_points(n=64, seed=0):
    return 2.0 * np.random.default_rng(seed).standard_normal((n, 2))


# --- order of accuracy ------------------------------------------------------------------------------

ORDER_NS = (33, 65, 129, 257)
T_END = 200.0


def fitted_slope(errors, ns):
    return -np.polyfit(np.log(np.asarray(ns) - 1.0), np.log(errors), 1)[0]


@pytest.mark.parametrize("solver", SOLVERS)
def test_error_against_the_exact_flow_falls_at_the_solvers_order(solver):
    x_T = x_T_points()
    exact = exact_flow(SCHED, x_T, float(SCHED.T), T_END)
    errors = []
    for n in ORDER_NS:
        x = solver_sample(GaussianModel(SCHED), SCHED, x_T, solver=solver, ts=alternating_grid(SCHED, n, T_END),
                          final="none")
        errors.append(np.abs(x - exact).max())
    slope = fitted_slope(errors, ORDER_NS)
    assert abs(slope - solver_order(solver)) < 0.3, (solver, errors, slope)


def test_ddim_on_the_same_grid_is_first_order():
    """The sanity row: respace.py's DDIM, the first-order scheme, on the rounded grid shows slope 1."""
    x_T = x_T_points()
    exact = exact_flow(SCHED, x_T, float(SCHED.T), T_END)
    errors = []
    for n in ORDER_NS:
        ts = np.unique(np.round(alternating_grid(SCHED, n, T_END)).astype(int))[::-1]
        x = x_T.copy()
        for t, t_prev in zip(ts[:-1], ts[1:]):
            eps = GaussianModel(SCHED)(x, np.full(len(x), float(t)))
            x0 = (x - SCHED.sqrt_one_minus_alpha_bar[t] * eps) / SCHED.sqrt_alpha_bar[t]
            x = ddim_step(SCHED, x, int(t), int(t_prev), x0, eps, 0.0, None)
        errors.append(np.abs(x - exact).max())
    assert abs(fitted_slope(errors, ORDER_NS) - 1.0) < 0.3, errors


def test_unipc_corrects_its_first_step_by_the_trapezoid_in_x0_hat():
    """Three points, final="none" (two calls): the first-order predictor to t_1, UniC-1 there (ρ = 1/2: the
    trapezoid (x̂_0(s) + x̂_0(t))/2 in place of x̂_0(s)), then a 2M step from the corrected point."""
    ts = np.array([800.0, 500.0, 300.0])
    x_T = x_T_points(8)
    model = GaussianModel(SCHED, "x0")
    s_ = sigma_of_t(SCHED, ts)                                   # EDM σ = e^{−λ}
    a, sig = 1.0 / np.sqrt(1 + s_ ** 2), s_ / np.sqrt(1 + s_ ** 2)
    step = lambda x, i, j, d: sig[j] / sig[i] * x - a[j] * (s_[j] / s_[i] - 1.0) * d     # DPM-Solver++ Eq. 9
    m0 = model(x_T, np.full(8, ts[0]))
    x1 = step(x_T, 0, 1, m0)
    m1 = model(x1, np.full(8, ts[1]))                            # taken at the uncorrected point
    x1c = step(x_T, 0, 1, 0.5 * (m0 + m1))
    r = np.log(s_[0] / s_[1]) / np.log(s_[1] / s_[2])            # h_0/h_1
    x2 = step(x1c, 1, 2, (1 + 1 / (2 * r)) * m1 - 1 / (2 * r) * m0)
    got = solver_sample(model, SCHED, x_T, solver="unipc", ts=ts, final="none", parametrization="x0")
    np.testing.assert_allclose(got, x2, rtol=0, atol=1e-12)


def test_solver_orders():
    assert [solver_order(s) for s in SOLVERS] == [2, 2, 3, 2]


# --- the full sampler ---------------------------------------------------------------------------------

def x_T_from_the_exact_prior(sched, n=2000, seed=1):
    """x_T ~ q(x_T) = N(√ᾱ_T μ, ᾱ_T s² + 1 − ᾱ_T) with the draw whitened, so that the exact flow's images
    have exactly mean μ and std s: the statistics below carry no Monte Carlo error."""
    z = np.random.default_rng(seed).standard_normal((n, 2))
    z = (z - z.mean(0)) / z.std(0)
    ab = sched.alpha_bar[-1]
    return np.sqrt(ab) * MU + np.sqrt(ab * S ** 2 + 1 - ab) * z


# |std/s − 1| measured at 50 calls on each solver's default grid (linear schedule, T = 1000), ×2 as the bound:
# dpmpp2m 2.4e-3, dpmpp2s 9.2e-3, unipc 6.1e-4, heun 2.7e-2 (25 Heun steps in σ do worse than 50 steps in λ).
STD_RTOL_AT_50 = {"dpmpp2m": 5e-3, "dpmpp2s": 2e-2, "unipc": 1.5e-3, "heun": 6e-2}


@pytest.mark.parametrize("solver", SOLVERS)
def test_fifty_calls_give_the_datas_mean_and_std(solver):
    # N(μ, s²) is not standardised data: the network's ODE from σ_T (sigma_max=None), as the papers do
    x = solver_sample(GaussianModel(SCHED), SCHED, x_T_from_the_exact_prior(SCHED), solver=solver, steps=50,
                      sigma_max=None)
    np.testing.assert_allclose(x.mean(0), MU, rtol=0, atol=1e-10)       # the flow maps the mean's path exactly
    np.testing.assert_allclose(x.std(0), S, rtol=STD_RTOL_AT_50[solver])


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_final_step_is_the_denoise_x0_hat_at_the_last_point(solver):
    """final="denoise" = final="none" on the same points followed by x̂_0 = E[x_0|x_t] at the last one."""
    ts = alternating_grid(SCHED, 9, 1.0)
    x_T = x_T_points()
    model = GaussianModel(SCHED, "x0")
    x_last = solver_sample(model, SCHED, x_T, solver=solver, ts=ts, final="none", parametrization="x0")
    x0 = solver_sample(model, SCHED, x_T, solver=solver, ts=ts, parametrization="x0")
    np.testing.assert_allclose(x0, model(x_last, np.full(len(x_last), 1.0)), rtol=0, atol=1e-12)


def test_the_denoise_step_is_exact_in_the_limit():
    """From the exact x at t = 1, x̂_0 misses the flow's x_0 by O(σ_1²): ≈ σ_1²/(2s²)·|x̄ − μ|."""
    for sched in (make_schedule("linear", 1000), make_schedule("linear", 1000, beta_start=1e-6)):
        x_T = x_T_points()
        x_1 = exact_flow(sched, x_T, float(sched.T), 1.0)
        x0_hat = GaussianModel(sched, "x0")(x_1, np.ones(len(x_1)))
        s1 = float(sigma_of_t(sched, 1.0))
        err = np.abs(x0_hat - exact_flow(sched, x_T, float(sched.T), 0)).max()
        assert err < 2 * s1 ** 2 / S.min() ** 2 * np.abs(x_1 - MU).max()


@pytest.mark.parametrize("solver", SOLVERS)
def test_two_calls_are_ddim(solver):
    """With two calls every solver is first order throughout: DDIM (Song et al. Eq. 12, η = 0) on [T, τ]."""
    x_T = x_T_points()
    a = solver_sample(GaussianModel(SCHED), SCHED, x_T, solver=solver, ts=[1000, 300] if solver != "heun" else None,
                      steps=None if solver != "heun" else 2, spacing=None, sigma_max=None)
    ts = [1000, 300] if solver != "heun" else [1000, 1]
    b = ddim_sample_loop(GaussianModel(SCHED), SCHED, x_T, ts=ts)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


# --- parametrizations and cost -------------------------------------------------------------------------

@pytest.mark.parametrize("solver", SOLVERS)
def test_eps_x0_and_v_models_give_the_same_samples(solver):
    x_T = x_T_points(16)
    out = [solver_sample(GaussianModel(SCHED, p), SCHED, x_T, solver=solver, steps=9, parametrization=p)
           for p in ("eps", "x0", "v")]
    np.testing.assert_allclose(out[1], out[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out[2], out[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("solver", SOLVERS)
def test_steps_is_the_number_of_network_calls(solver):
    for K in range(1, 8):
        model = GaussianModel(SCHED)
        x = solver_sample(model, SCHED, x_T_points(4), solver=solver, steps=K)
        assert model.calls == K and np.all(np.isfinite(x)), (solver, K, model.calls)


def test_final_none_makes_no_call_at_the_last_point():
    ts = alternating_grid(SCHED, 6, 50.0)
    for solver, calls in (("dpmpp2m", 5), ("dpmpp2s", 5), ("unipc", 5), ("heun", 10)):
        model = GaussianModel(SCHED)
        solver_sample(model, SCHED, x_T_points(4), solver=solver, ts=ts, final="none")
        assert model.calls == calls, solver


# --- the grids ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sched", [make_schedule("linear", 1000), make_schedule("cosine", 400)], ids=["linear", "cosine"])
def test_spacings(sched):
    T, K = sched.T, 12
    for sigma_max, s_top in ((None, float(sigma_of_t(sched, float(T)))), (SIGMA_MAX, SIGMA_MAX), (2.0, 2.0)):
        t_max = float(T) if sigma_max is None else float(t_of_sigma(sched, sigma_max))
        assert sigma_max is None or t_max < T
        for spacing in SOLVER_SPACINGS:
            t = solver_timesteps(sched, K, spacing, sigma_max)
            assert t.shape == (K,) and t.dtype == np.float64 and t[0] == t_max and t[-1] == 1.0
            assert np.all(np.diff(t) < 0)
        np.testing.assert_allclose(np.diff(solver_timesteps(sched, K, "time", sigma_max)), -(t_max - 1) / (K - 1),
                                   rtol=1e-12)
        lam = -np.log(sigma_of_t(sched, solver_timesteps(sched, K, "logsnr", sigma_max)))     # λ = −log σ
        np.testing.assert_allclose(np.diff(lam), (lam[-1] - lam[0]) / (K - 1), rtol=1e-9)
        np.testing.assert_allclose(lam[0], -np.log(s_top), rtol=1e-12)
        s_min, rho = float(sigma_of_t(sched, 1.0)), 7.0
        i = np.arange(K)
        karras = (s_top ** (1 / rho) + i / (K - 1) * (s_min ** (1 / rho) - s_top ** (1 / rho))) ** rho   # EDM Eq. 5
        np.testing.assert_allclose(sigma_of_t(sched, solver_timesteps(sched, K, "karras", sigma_max)), karras,
                                   rtol=1e-9)
        assert list(solver_timesteps(sched, 1, "karras", sigma_max)) == [t_max]
    assert KARRAS_RHO == rho
    np.testing.assert_array_equal(solver_timesteps(sched, K, "logsnr"), solver_timesteps(sched, K, "logsnr", SIGMA_MAX))
    np.testing.assert_array_equal(solver_timesteps(sched, K, "logsnr", 1e9), solver_timesteps(sched, K, "logsnr", None))


class RecordingRippledModel(GaussianModel):
    """The exact ε of standardised Gaussian data N(0, I) plus a ripple 0.02·sin(8x) above σ_max (where the
    default 8gaussians model's ε_θ is 0.02 rms off, ``ode.py``); records the steps it is called at."""

    def __init__(self, sched, a=0.02):
        super().__init__(sched)
        self.a, self.ts = a, []

    def __call__(self, x, t):
        self.ts.append(float(np.asarray(t).flat[0]))
        ab = 1.0 / (1.0 + sigma_of_t(self.sched, self.ts[-1]) ** 2)
        above = sigma_of_t(self.sched, self.ts[-1]) > SIGMA_MAX * (1 + 1e-12)      # σ(t_max) = 3 up to an ulp
        return np.sqrt(1 - ab) * x + (self.a * np.sin(8 * x) if above else 0.0)


@pytest.mark.parametrize("solver", SOLVERS)
def test_the_solvers_start_at_sigma_max_where_standardised_data_is_its_gaussian_limit(solver):
    # N(0, I) data: x_t is constant along the exact flow above σ_max, so x_T is x at t(σ_max): the solvers call
    # the network from there down, and a ripple of ε_θ above σ_max changes nothing. From T it moves samples.
    sched = make_schedule("cosine", 1000, max_beta=0.108)
    t_max = float(t_of_sigma(sched, SIGMA_MAX))
    x_T = np.random.default_rng(3).standard_normal((500, 2))
    model = RecordingRippledModel(sched)
    x = solver_sample(model, sched, x_T, solver=solver, steps=10)
    assert max(model.ts) == pytest.approx(t_max, abs=1e-9) and model.ts[0] == max(model.ts), model.ts[:3]
    np.testing.assert_array_equal(x, solver_sample(RecordingRippledModel(sched, a=0.0), sched, x_T, solver=solver,
                                                   steps=10))
    ripple, smooth = (solver_sample(RecordingRippledModel(sched, a), sched, x_T, solver=solver, steps=10,
                                    sigma_max=None) for a in (0.02, 0.0))
    assert np.abs(ripple - smooth).max() > 1e-2


# --- the boundary ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(solver="euler", steps=5), "unknown solver 'euler'"),
    (dict(solver="heun", steps=5, spacing="even"), "unknown spacing 'even'"),
    (dict(solver="unipc", steps=0), "steps must be a positive integer"),
    (dict(solver="unipc", steps=True), "steps must be a positive integer"),
    (dict(solver="unipc"), "pass steps"),
    (dict(solver="unipc", steps=3, ts=[1000, 10]), "not both"),
    (dict(solver="unipc", ts=[10, 1000]), "strictly decreasing"),
    (dict(solver="unipc", ts=[1000, 0.5]), r"\[1, T\]"),
    (dict(solver="unipc", ts=[1001, 3]), r"\[1, T\]"),
    (dict(solver="unipc", ts=[]), "non-empty"),
    (dict(solver="unipc", ts=[1000, np.nan]), "finite"),
    (dict(solver="unipc", ts=[1000], final="none"), "at least two"),
    (dict(solver="unipc", steps=3, final="none"), "explicit ts"),
    (dict(solver="unipc", steps=3, final="zero"), "unknown final"),
    (dict(solver="dpmpp2m", steps=3, parametrization="mu"), "parametrization 'mu' has none"),
])
def test_bad_arguments_are_refused_with_what_is_allowed(kwargs, match):
    with pytest.raises(ValueError, match=match):
        solver_sample(GaussianModel(SCHED), SCHED, x_T_points(2), **kwargs)


def test_bad_step_counts_and_spacings_for_the_grid():
    with pytest.raises(ValueError, match="K must be a positive integer"):
        solver_timesteps(SCHED, 0, "logsnr")
    with pytest.raises(ValueError, match="unknown spacing 'quad'"):
        solver_timesteps(SCHED, 4, "quad")
    with pytest.raises(ValueError, match="unknown solver"):
        solver_order("ddim")


def test_exported_from_the_package():
    assert ddpm_ref.solver_sample is solver_sample and ddpm_ref.SOLVERS == SOLVERS
