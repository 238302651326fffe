"""High-order samplers of the probability-flow ODE: DPM-Solver++(2M), (2S), UniPC and Heun (EDM).

Symbols (VP): at a continuous step t, ᾱ(t) = 1/(1 + σ(t)²) with σ(t) = ``ode.sigma_of_t`` the EDM σ;
α_t = √ᾱ, σ_t = √(1 − ᾱ) (the VP noise scale), λ_t = log(α_t/σ_t) = −log σ(t) (half log-SNR), and
x̂_0 = x_θ(x_t, t), ε̂ = ε_θ(x_t, t) are read from the network at t (``param``'s maps with ᾱ(t)).

The grid. ``solver_timesteps(sched, K, spacing)`` gives K call points t_max = t_0 > … > t_{K−1} = 1:
"time" uniform in t, "logsnr" uniform in λ (Lu et al. 2022, DPM-Solver, Sec. 3.4), "karras"
σ_i = (σ_max^{1/ρ} + i/(K−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, ρ = 7 (Karras et al. 2022, Eq. 5) with
σ_min = σ_1. The solver steps through them and then to t = 0 (σ = 0, λ = +∞): that last step is the
denoise x_0 = x̂_0(x_{t_{K−1}}, t_{K−1}) (diffusers' final_sigmas_type="zero").

Where the grid starts. The papers start at t = T (σ_T = 99.7 for the 2-D recipe). Here it starts at
t_max = t(σ_max) with σ_max = ``ode.SIGMA_MAX`` = 3 (``sigma_max=None``: at T), and x_T ~ N(0, I) is taken
as x at t_max: the same model as ``ode.py``'s likelihood, which above σ_max replaces ε_θ by the Gaussian
limit N(0, I) of standardised data, whose flow keeps x_t = x̄/√(1 + σ²) constant (x̄ ∝ √(1 + σ²)), so the
step from T to t_max is x_{t_max} = x_T exactly. Measured (default moons model, 5,000 samples, ratios to
the floor, energy / W2): UniPC with 10 calls 5.9 / 1.79 from T and 1.03 / 1.09 from σ_max = 3; 200 calls
of 2M, i.e. the converged ODE, 1.76 / 1.45 from T and 1.11 / 1.09 from σ_max = 3 (from σ_max = 10:
1.53 / 1.26; 2: 1.38 / 1.15; 1: 7.9 / 2.3, where the data are far from Gaussian). The network's ε_θ
above σ ≈ 3 is what the ODE integrates wrongly (``ode.py``'s docstring), and the calls saved there go
where the data's shape is decided.

Data-prediction steps from s to t, h = λ_t − λ_s, e^{−h} = σ(t)/σ(s) (Lu et al. 2022b, DPM-Solver++):
    first order (= DDIM, Eq. 9 with the data model)   x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) x̂_0(s)
    2M (Alg. 2)  x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) D,  D = (1 + 1/(2r)) x̂_0(s) − 1/(2r) x̂_0(s'),
                 s' the point before s, r = h'/h with h' = λ_s − λ_s'; the first step and the step to σ = 0
                 are first order (the latter is the denoise: σ_t = 0, α_t = 1, e^{−h} = 0 give x_t = D).
    2S (Alg. 1)  from s through u to t, r = (λ_u − λ_s)/h:
                 x_u = (σ_u/σ_s) x_s − α_u (e^{−rh} − 1) x̂_0(s)
                 x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) D,  D = (1 − 1/(2r)) x̂_0(s) + 1/(2r) x̂_0(x_u, u)
                 u is the grid's next call point, so r = 1/2 (the midpoint in λ) on the "logsnr" grid.
    UniPC (Zhao et al. 2023, Alg. 2/3, data prediction, B(h) = e^{−h} − 1 = "bh2"):
                 UniP-2 with its simplified ρ = 1/2 is exactly the 2M step above (write D₁ = (x̂_0(s') −
                 x̂_0(s))/r₁ with r₁ = (λ_s' − λ_s)/h = −r: x_t = … − α_t B(h)·(x̂_0(s) + D₁/2)).
                 UniC then re-solves the same step with the model at the new point, m_t = x̂_0(x_t, t)
                 (the call the next step needs anyway, so no extra call):
                 x_t^c = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) x̂_0(s) − α_t B(h) (ρ₁ D₁ + ρ₂ (m_t − x̂_0(s))),
                 (ρ₁, ρ₂) solving [[1, 1], [r₁, 1]] ρ = (b₁, b₂), b_k = k!·φ_{k+1}(−h)·(−h)/B(h) with
                 hφ-recursion φ₂ = (e^{−h} − 1)/(−h) − 1, φ₃ = φ₂/(−h) − 1/2 (the paper's Eq. 7 / Alg. 3);
                 after a first-order predictor, ρ = 1/2: x_t^c = … − α_t B(h)·(m_t − x̂_0(s))/2.
                 The corrected x_t^c is the next step's x_s; m_t (taken at the uncorrected x_t) its x̂_0(s).
                 There is no corrector after the last call. UniP-2 + UniC is of order 3 (Thm. 3.1).
Heun (Karras et al. 2022, Alg. 1, S_churn = 0) on x̄ = x/√ᾱ = x √(1 + σ²) in the EDM σ:
    dx̄/dσ = ε̂(x̄/√(1 + σ²), t(σ)) (ode.py),  d_i = ε̂ at σ_i,  x̄' = x̄_i + (σ_{i+1} − σ_i) d_i,
    x̄_{i+1} = x̄_i + (σ_{i+1} − σ_i)(d_i + d')/2, d' = ε̂(x̄', σ_{i+1}),  except into σ = 0 (Euler: x̄ = x̂_0).

Cost: ``steps`` = K network calls exactly. dpmpp2m and unipc call once at each of the K points. dpmpp2s
calls at every point too: the K − 1 intervals before the denoise are 2S steps of two intervals each (the
inner point is u), and one first-order step first when K − 1 is odd. heun steps between N = ⌊K/2⌋ + 1
points (2N − 1 calls); for even K its first step, from σ_max, is Euler: at high noise x̄(σ) is nearly a
straight line in σ (for Gaussian data x̄ − μ ∝ √(s² + σ²)), so Euler loses least there.
"""

from __future__ import annotations

import numpy as np

from .ode import SIGMA_MAX, _sigma_top, sigma_of_t, sigmas, t_of_sigma
from .schedule import Schedule

__all__ = ["SOLVERS", "SOLVER_SPACINGS", "KARRAS_RHO", "solver_order", "solver_timesteps", "solver_sample"]

SOLVERS = ("dpmpp2m", "dpmpp2s", "unipc", "heun")
SOLVER_SPACINGS = ("logsnr", "karras", "time")
KARRAS_RHO = 7.0                  # Karras et al. 2022, Eq. 5: ρ = 7 ("equalises the truncation error")
# 2S: Karras steps, not the paper's log-SNR ones: on the default moons and clusters models (benchmarks/few_step.py)
# 10 calls gave energy ratios 2.82 and 1.82 on Karras steps against 5.70 and 4.49 on log-SNR steps.
_DEFAULT_SPACING = {"dpmpp2m": "logsnr", "dpmpp2s": "karras", "unipc": "logsnr", "heun": "karras"}
_ORDER = {"dpmpp2m": 2, "dpmpp2s": 2, "unipc": 3, "heun": 2}
FINALS = ("denoise", "none")


def _check_solver(name: str) -> None:
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")


def solver_order(name: str) -> int:
    """The global order of accuracy: 2 for dpmpp2m, dpmpp2s and heun; 3 for unipc (UniP-2 + UniC,
    Zhao et al. 2023, Thm. 3.1: UniC-p raises the order of UniP-p to p + 1)."""
    _check_solver(name)
    return _ORDER[name]


def solver_timesteps(sched: Schedule, K: int, spacing: str, sigma_max: float | None = SIGMA_MAX) -> np.ndarray:
    """K continuous steps (float64), descending from t_max = t(min(σ_max, σ_T)) (T when ``sigma_max`` is
    None) to 1, spaced uniformly in t ("time"), in λ = −log σ ("logsnr") or by EDM Eq. 5 with ρ = 7 between
    σ(t_max) and σ_1 ("karras"). K = 1 gives [t_max]."""
    if not isinstance(K, (int, np.integer)) or isinstance(K, bool) or K < 1:
        raise ValueError(f"K must be a positive integer, got {K!r}")
    if spacing not in SOLVER_SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SOLVER_SPACINGS)}")
    T = sched.T
    s_max, s_min = (sigmas(sched)[-1], None) if T == 1 else (_sigma_top(sched, sigma_max), sigmas(sched)[1])
    t_max = float(T) if sigma_max is None or s_max == sigmas(sched)[-1] else float(t_of_sigma(sched, s_max))
    if K == 1:
        return np.array([t_max])
    if T == 1:
        raise ValueError(f"a schedule with T = 1 has one continuous step (t = 1): K = {K} must be 1")
    if spacing == "time":
        t = np.linspace(t_max, 1.0, K)
    elif spacing == "logsnr":
        t = t_of_sigma(sched, np.exp(np.linspace(np.log(s_max), np.log(s_min), K)))
    else:
        ramp = np.linspace(0.0, 1.0, K)
        inv = 1.0 / KARRAS_RHO
        t = t_of_sigma(sched, (s_max ** inv + ramp * (s_min ** inv - s_max ** inv)) ** KARRAS_RHO)  # Eq. 5
    t[0], t[-1] = t_max, 1.0          # the exact ends (log/exp round trips are off by an ulp)
    return t


def _check_ts(ts, T: int) -> np.ndarray:
    a = np.asarray(ts, dtype=np.float64) if np.ndim(ts) == 1 else None
    if a is None or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"ts must be a non-empty 1-D sequence of finite steps in [1, {T}], got {ts!r}")
    if np.any(np.diff(a) >= 0):
        raise ValueError(f"ts must be strictly decreasing (the order the solver visits them), got {a.tolist()[:8]}")
    # ode.py's t ↔ σ map is defined on [1, T] (linear in log σ between integer steps); below step 1 only
    # σ = 0 at t = 0 exists, which the denoise step reaches, so ts may not go below 1.
    if a[-1] < 1 or a[0] > T:
        raise ValueError(f"ts must lie in [1, T] = [1, {T}], got {a[-1]}..{a[0]}")
    return a


class _Grid:
    """The points the solver steps through, built once: t, the EDM σ, α, σ (VP) and λ at each."""

    def __init__(self, sched: Schedule, ts: np.ndarray, final: str):
        s = sigma_of_t(sched, ts)
        self.t = ts
        if final == "denoise":                                   # the last point: t = 0, σ = 0, λ = +∞
            self.t, s = np.append(ts, 0.0), np.append(s, 0.0)
        self.s = s                                               # EDM σ = σ_t/α_t = e^{−λ}
        self.alpha = 1.0 / np.sqrt(1.0 + s * s)                  # α_t = √ᾱ(t)
        self.sigma = s * self.alpha                              # σ_t = √(1 − ᾱ(t))
        with np.errstate(divide="ignore"):
            self.lam = -np.log(s)                                # λ_t (+∞ at σ = 0)
        self.h = np.diff(self.lam)                               # h_i = λ_{i+1} − λ_i > 0

    def first_order(self, x, i: int, j: int, x0):
        """x_j = (σ_j/σ_i) x_i − α_j (e^{−h} − 1) x̂_0, e^{−h} = σ(t_j)/σ(t_i) (DPM-Solver++ Eq. 9; DDIM)."""
        return (self.sigma[j] / self.sigma[i]) * x - self.alpha[j] * (self.s[j] / self.s[i] - 1.0) * x0


def _check_parametrization(parametrization: str) -> None:
    if parametrization not in ("eps", "x0", "v"):
        raise ValueError(f"the ODE solvers need epsilon at any continuous t: parametrization {parametrization!r} "
                         f"has none (use eps, x0 or v; a mu-model's output is tied to step t - 1)")


def _x0_eps_fn(denoise_fn, g: _Grid, parametrization: str, D: int):
    """``x0_eps(x, i) -> (x̂_0, ε̂)`` from one call of the network at grid point i (Eq. 4 with ᾱ(t_i))."""
    _check_parametrization(parametrization)

    def x0_eps(x, i):
        out = denoise_fn(x, np.full(x.shape[0], g.t[i]))[:, :D]      # (N, D)
        a, s = g.alpha[i], g.sigma[i]
        if parametrization == "eps":
            return (x - s * out) / a, out
        x0 = out if parametrization == "x0" else a * x - s * out      # v: x̂_0 = α x − σ v
        eps = (x - a * x0) / s if parametrization == "x0" else s * x + a * out
        return x0, eps

    return x0_eps


def _dpmpp2m(x, g, x0_eps, denoise_last, corrector=False):
    """DPM-Solver++(2M) (Alg. 2); with ``corrector`` UniPC: UniP-2 (= the 2M step) + UniC-bh2."""
    n = len(g.t)
    x0_prev = None                    # x̂_0 at the point before the current one
    for i in range(n - 1):            # the step from point i to point i + 1
        x0, _ = x0_eps(x, i)          # (N, D), at the (uncorrected) x_i
        if corrector and i > 0:       # UniC for the step i − 1 → i, reusing this call
            x = _unic(g, x_s, i - 1, x0_s, x0_ss, x0)
            x0_ss = x0_s
        elif corrector:
            x0_ss = None
        x_s, x0_s = x, x0
        last = denoise_last and i == n - 2
        if i == 0 or last:            # first order: the first step, and the denoise to σ = 0
            D = x0
        else:
            r = g.h[i - 1] / g.h[i]   # r = h_{i−1}/h_i
            D = (1.0 + 1.0 / (2.0 * r)) * x0 - 1.0 / (2.0 * r) * x0_prev
        x = g.first_order(x, i, i + 1, D)
        x0_prev = x0
    return x


def _unic(g, x_s, i, x0_s, x0_ss, m_t):
    """UniC-bh2 for the step i → i + 1 (Zhao et al. 2023, Alg. 3, data prediction): order 1 after the first
    (first-order) predictor, else order 2 with the difference D₁ = (x̂_0(s') − x̂_0(s))/r₁ of the history."""
    h = g.h[i]
    B = g.s[i + 1] / g.s[i] - 1.0                                # B(h) = e^{−h} − 1 = hφ₁(−h)
    base = g.first_order(x_s, i, i + 1, x0_s)                    # (σ_t/σ_s) x_s − α_t (e^{−h} − 1) x̂_0(s)
    if x0_ss is None:
        return base - g.alpha[i + 1] * B * 0.5 * (m_t - x0_s)
    hh = -h
    phi2 = B / hh - 1.0                                          # the recursion of Alg. 3 (k = 1, 2)
    phi3 = phi2 / hh - 0.5
    b1, b2 = phi2 / B, 2.0 * phi3 / B
    r1 = -g.h[i - 1] / h                                         # r₁ = (λ_{s'} − λ_s)/h < 0
    rho1, rho2 = (b1 - b2) / (1.0 - r1), (b2 - r1 * b1) / (1.0 - r1)   # [[1, 1], [r₁, 1]] ρ = b
    D1 = (x0_ss - x0_s) / r1
    return base - g.alpha[i + 1] * B * (rho1 * D1 + rho2 * (m_t - x0_s))


def _dpmpp2s(x, g, x0_eps, denoise_last):
    """DPM-Solver++(2S) (Alg. 1): the intervals before the denoise in pairs (s, u, t), one first-order step
    first when their number is odd; then the denoise."""
    n = len(g.t)
    end = n - 2 if denoise_last else n - 1                       # the last point reached by 2S steps
    i = 0
    if end % 2 == 1:                                             # an odd number of intervals
        x0, _ = x0_eps(x, 0)
        x, i = g.first_order(x, 0, 1, x0), 1
    while i < end:
        u, j = i + 1, i + 2
        x0_s, _ = x0_eps(x, i)
        r = (g.lam[u] - g.lam[i]) / (g.lam[j] - g.lam[i])        # r = 1/2 on the logsnr grid
        x_u = g.first_order(x, i, u, x0_s)
        x0_u, _ = x0_eps(x_u, u)
        D = (1.0 - 1.0 / (2.0 * r)) * x0_s + 1.0 / (2.0 * r) * x0_u
        x, i = g.first_order(x, i, j, D), j
    if denoise_last:
        x0, _ = x0_eps(x, n - 2)
        x = x0                                                   # σ = 0: x_0 = x̂_0
    return x


def _heun(x, g, x0_eps, denoise_last, euler_first):
    """Karras et al. 2022, Alg. 1 (S_churn = 0) on x̄ = x/α in the EDM σ."""
    n = len(g.t)
    xbar = x / g.alpha[0]
    for i in range(n - 1):
        ds = g.s[i + 1] - g.s[i]                                 # σ_{i+1} − σ_i < 0
        _, d = x0_eps(xbar * g.alpha[i], i)                      # d_i = ε̂ (Alg. 1, line 4)
        xbar_next = xbar + ds * d                                # Euler (line 5)
        if not ((denoise_last and i == n - 2) or (euler_first and i == 0)):
            _, d2 = x0_eps(xbar_next * g.alpha[i + 1], i + 1)    # line 7
            xbar_next = xbar + ds * 0.5 * (d + d2)               # line 8
        xbar = xbar_next
    return xbar * g.alpha[-1]


def solver_sample(denoise_fn, sched: Schedule, x_T, *, solver: str, steps: int | None = None,
                  spacing: str | None = None, parametrization: str = "eps", ts=None,
                  final: str = "denoise", sigma_max: float | None = SIGMA_MAX) -> np.ndarray:
    """x_0 (N, D) from x_T (N, D) by a high-order solver of the probability-flow ODE, deterministic.

    ``steps`` = K network calls (``denoise_fn(x_t, t)``, t a float array; ``network(params, cfg)`` for the
    MLP), at ``solver_timesteps(sched, K, spacing)`` (heun: ⌊K/2⌋ + 1 of them, see the module docstring);
    ``spacing`` defaults to "logsnr" for dpmpp2m and unipc, "karras" for dpmpp2s and heun; the grid starts at
    t(σ_max) with x = x_T there (``sigma_max=None``: at T; module docstring). Or give the points
    ``ts`` (descending, in [1, T]) instead of ``steps``: heun then makes Heun steps between all of them.
    ``final="denoise"`` ends with the step to σ = 0 (x_0 = x̂_0 at the last point); ``final="none"`` stops at
    ts[-1] and returns x_{ts[-1]} (no call there: K − 1 calls for dpmpp2m, dpmpp2s, unipc; 2(K − 1) heun).
    """
    _check_solver(solver)
    if final not in FINALS:
        raise ValueError(f"unknown final {final!r}; choose one of {', '.join(FINALS)}")
    x = np.array(x_T, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x_T must have shape (N, D), got {x.shape}")
    _check_parametrization(parametrization)
    euler_first = False
    if ts is None:
        if steps is None:
            raise ValueError("pass steps (the number of network calls) or ts (the call points)")
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be a positive integer (network calls), got {steps!r}")
        if final != "denoise":
            raise ValueError("final='none' needs explicit ts (it stops at ts[-1])")
        spacing = _DEFAULT_SPACING[solver] if spacing is None else spacing
        K = steps // 2 + 1 if solver == "heun" else steps
        euler_first = solver == "heun" and steps % 2 == 0
        ts = solver_timesteps(sched, K, spacing, sigma_max)
    else:
        if steps is not None or spacing is not None:
            raise ValueError("pass either steps (with spacing) or ts, not both")
        ts = _check_ts(ts, sched.T)
        if final == "none" and len(ts) < 2:
            raise ValueError("final='none' needs at least two points in ts (start and end)")
    g = _Grid(sched, ts, final)
    x0_eps = _x0_eps_fn(denoise_fn, g, parametrization, x.shape[1])
    denoise_last = final == "denoise"
    if solver == "dpmpp2m":
        return _dpmpp2m(x, g, x0_eps, denoise_last)
    if solver == "unipc":
        return _dpmpp2m(x, g, x0_eps, denoise_last, corrector=True)
    if solver == "dpmpp2s":
        return _dpmpp2s(x, g, x0_eps, denoise_last)
    return _heun(x, g, x0_eps, denoise_last, euler_first)
