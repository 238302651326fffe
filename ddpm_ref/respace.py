"""Sampling in K < T steps: which timesteps, the schedule of that subsequence, and DDIM.

    timesteps(T, K, spacing)  K strictly decreasing steps in 1..T ("even", "leading", "trailing", "quad")
    respace(sched, ts)        the schedule of the subsequence, built from ᾱ (Improved DDPM, Sec. 4):
                              ᾱ'_k = ᾱ_{τ_k} with τ_1 < … < τ_K (k counts up, as t does),
                              β'_k = 1 − ᾱ'_k/ᾱ'_{k−1}, so ancestral sampling on the K
                              steps is exact for that subsequence; the network is still called with τ_k.
    ddim_sample_loop          DDIM (Song et al. 2021, Eq. 12) with η ∈ [0, 1] on any subsequence
    ddim_invert               deterministic DDIM run upwards, x_0 → x_T (η = 0)

DDIM step from τ to the previous step τ' (ᾱ' = ᾱ_{τ'}, ᾱ_0 = 1):
    x̂_0 from the network, ε̂ = (x_τ − √ᾱ_τ x̂_0)/√(1 − ᾱ_τ)
    σ = η √((1 − ᾱ')/(1 − ᾱ_τ)) √(1 − ᾱ_τ/ᾱ')
    x_τ' = √ᾱ' x̂_0 + √(1 − ᾱ' − σ²) ε̂ + σ z
η = 1 on the full schedule is ancestral sampling with σ_t² = β̃_t; η = 0 is deterministic.
"""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass, field, fields

from .param import check_compatible, eps_from_x0, predict_x0, threshold_x0

from .schedule import Schedule, schedule_from_betas

__all__ = ["SPACINGS", "timesteps", "check_timesteps", "respace", "ddim_step", "ddim_sample_loop", "ddim_invert"]

SPACINGS = ("even", "leading", "trailing", "quad")


def _strictly_increasing_in(s: np.ndarray, T: int) -> np.ndarray:
    """Nudge an increasing integer sequence to be strictly increasing within 1..T (needs len ≤ T)."""
    s = np.clip(s.astype(np.int64), 1, T)
    for i in range(1, len(s)):                       # forward: at least one more than the previous
        s[i] = max(s[i], s[i - 1] + 1)
    s[-1] = min(s[-1], T)
    for i in range(len(s) - 2, -1, -1):              # backward: at most one less than the next
        s[i] = min(s[i], s[i + 1] - 1)
    return s


def timesteps(T: int, K: int, spacing: str = "even") -> np.ndarray:
    """K timesteps in 1..T, returned in descending order (as the sampler visits them; ``respace`` numbers
    them upwards, τ_1 < … < τ_K, like t).

    even: round(linspace(1, T, K)); leading: 1, 1 + c, 1 + 2c, ... with c = T // K (DDIM's "uniform");
    trailing: T, T − T/K, ... (ends exactly at T); quad: 1 + (T − 1)·(i/(K − 1))² (DDIM's quadratic,
    dense near t = 1). Collisions from rounding are resolved so the result is strictly decreasing.
    """
    for name, v in (("T", T), ("K", K)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if K > T:
        raise ValueError(f"cannot take K = {K} steps out of T = {T}")
    if spacing == "even":
        s = np.floor(np.linspace(1, T, K) + 0.5)
    elif spacing == "leading":
        s = np.arange(K) * (T // K) + 1
    elif spacing == "trailing":
        s = np.floor(np.arange(T, 0, -T / K)[:K][::-1] + 0.5)
    elif spacing == "quad":
        s = np.floor(1 + (T - 1) * (np.arange(K) / max(K - 1, 1)) ** 2 + 0.5) if K > 1 else np.array([T])
    else:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    return _strictly_increasing_in(np.asarray(s), T)[::-1].copy()


def check_timesteps(ts, T: int) -> np.ndarray:
    """``ts`` as an int64 array after checking it is what the samplers visit: a non-empty 1-D sequence of
    integers, strictly decreasing, within 1..T (as ``timesteps`` makes them). Raises ValueError otherwise."""
    a = np.asarray(ts)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"timesteps must be a non-empty 1-D sequence of steps in 1..{T}, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or (np.issubdtype(a.dtype, np.floating)
                                                   and np.all(np.isfinite(a)) and np.all(a == np.round(a)))):
        raise ValueError(f"timesteps must be integers in 1..{T}, got {a.tolist()[:8]}")
    a = a.astype(np.int64)
    if np.any(np.diff(a) >= 0):
        raise ValueError(f"timesteps must be strictly decreasing (the order the sampler visits them), "
                         f"got {a.tolist()[:8]}{' ...' if a.size > 8 else ''}")
    if a[-1] < 1 or a[0] > T:
        raise ValueError(f"timesteps must lie in 1..T = 1..{T}, got {a[-1]}..{a[0]}")
    return a


@dataclass(frozen=True, eq=False, repr=False)
class RespacedSchedule(Schedule):
    """The schedule of K steps that ``respace`` makes from a subsequence τ_1 < … < τ_K of ``parent``'s steps, with
    ``t_model`` (K + 1,): the step τ_k of ``parent`` that new step k stands for (the network was trained on
    ``parent``'s steps; t_model[0] = 0). Everything else is a Schedule's."""

    parent: Schedule | None = field(default=None, repr=False)
    t_model: np.ndarray | None = field(default=None, repr=False)


def respace(sched: Schedule, ts: np.ndarray) -> tuple[RespacedSchedule, np.ndarray]:
    """The schedule of the subsequence ``ts`` (descending steps of ``sched``) and the map k → τ_k.

    Returns (sched_K, t_model) where sched_K has K steps with ᾱ'_k = ᾱ_{τ_k} and t_model (K + 1,)
    holds the original step to give the network at new step k (t_model[0] = 0). sched_K also keeps
    ``sched`` (``parent``) and ``t_model``: a μ-model's output is a one-step mean of ``sched``, so its
    x̂_0 needs the original posterior coefficients at τ_k (``sample.p_mean_variance``).
    """
    up = check_timesteps(ts, sched.T)[::-1]
    ab = sched.alpha_bar[up]                                             # ᾱ'_1..ᾱ'_K
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    prev_step = np.concatenate([[0], up[:-1]])
    # A new step that spans one original step keeps its β exactly; longer spans come from ᾱ.
    beta = np.where(up - prev_step == 1, sched.beta[up], 1.0 - ab / ab_prev)
    new = schedule_from_betas(beta, name=f"{sched.name}[{len(up)} of {sched.T}]",
                              params={**sched.params, "respaced_from": sched.T}, warn=False)
    t_model = np.concatenate([[0], up])
    return RespacedSchedule(**{f.name: getattr(new, f.name) for f in fields(Schedule)}, parent=sched,
                            t_model=t_model), t_model


def _x0_eps(denoise_fn, sched, xt, t, t_model, parametrization):
    out = denoise_fn(xt, t_model)[:, :xt.shape[1]]
    if parametrization == "eps":
        eps = out
        x0 = predict_x0("eps", sched, xt, t, out)
    else:
        x0 = predict_x0(parametrization, sched, xt, t, out)
        eps = eps_from_x0(sched, xt, t, x0)
    return x0, eps


def ddim_step(sched: Schedule, xt, t: int, t_prev: int, x0_hat, eps_hat, eta: float, z):
    """One DDIM update from step t to t_prev < t of the same schedule (Song et al. Eq. 12); z may be None if η = 0."""
    ab_t, ab_p = sched.alpha_bar[t], sched.alpha_bar[t_prev]
    sigma = eta * np.sqrt((1.0 - ab_p) / (1.0 - ab_t)) * np.sqrt(max(1.0 - ab_t / ab_p, 0.0))
    x = np.sqrt(ab_p) * x0_hat + np.sqrt(max(1.0 - ab_p - sigma ** 2, 0.0)) * eps_hat
    if sigma > 0:
        x = x + sigma * z
    return x


def ddim_sample_loop(denoise_fn, sched: Schedule, x_T, *, ts=None, eta: float = 0.0,
                     z=None, rng: np.random.Generator | None = None, parametrization: str = "eps",
                     clip_x0: float | None = None, dynamic_threshold: float | None = None):
    """DDIM from x_T (N, D) down the steps ``ts`` (descending; default all T) to x_0.

    ``denoise_fn(x_t, t) -> out`` is the network (``network(params, cfg)`` for the MLP). ``clip_x0`` /
    ``dynamic_threshold`` process x̂_0 (``param.threshold_x0``) and ε̂ is recomputed from it; both off by default.

    Noise for η > 0: ``z`` of shape (K, N, D) (z[k] used at the k-th visited step) or ``rng``.
    """
    if not (0.0 <= eta <= 1.0):
        raise ValueError(f"eta must lie in [0, 1], got {eta!r}")
    check_compatible(sched, parametrization)
    ts = np.arange(sched.T, 0, -1) if ts is None else check_timesteps(ts, sched.T)
    x = np.array(x_T, dtype=np.float64)
    if eta > 0 and (z is None) == (rng is None):
        raise ValueError("with eta > 0 pass exactly one noise source: z (K, N, D) or rng")
    if z is not None and np.shape(z) != (len(ts),) + x.shape:
        raise ValueError(f"z must have shape (K, N, D) = {(len(ts),) + x.shape}, got {np.shape(z)}")
    for k, t in enumerate(ts):
        t = int(t)
        t_prev = int(ts[k + 1]) if k + 1 < len(ts) else 0
        x0_hat, eps_hat = _x0_eps(denoise_fn, sched, x, t, t, parametrization)
        if clip_x0 is not None or dynamic_threshold is not None:
            x0_hat = threshold_x0(x0_hat, clip_x0, dynamic_threshold)
            eps_hat = eps_from_x0(sched, x, t, x0_hat)
        zk = None
        if eta > 0:
            zk = z[k] if z is not None else rng.standard_normal(x.shape)
        x = ddim_step(sched, x, t, t_prev, x0_hat, eps_hat, eta, zk)
    return x


def ddim_invert(denoise_fn, sched: Schedule, x0, *, ts=None, parametrization: str = "eps"):
    """Deterministic DDIM run upwards (η = 0): x_0 → x_{τ_1} through the steps ``ts`` (descending, as
    for sampling; default all T). Sampling back with the same ``ts`` and η = 0 returns ≈ x_0, with an
    error that shrinks as the steps get finer."""
    check_compatible(sched, parametrization)
    ts = np.arange(sched.T, 0, -1) if ts is None else check_timesteps(ts, sched.T)
    x = np.array(x0, dtype=np.float64)
    prev = 0
    for t in ts[::-1]:
        t = int(t)
        if prev == 0:
            # The network has no step 0: evaluate it at the first step, at √ᾱ_t x_0 — one fixed-point
            # iteration of the implicit x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε̂(x_t, t).
            ab = sched.alpha_bar[t]
            _, eps_hat = _x0_eps(denoise_fn, sched, np.sqrt(ab) * x, t, t, parametrization)
            x = np.sqrt(ab) * x + np.sqrt(1.0 - ab) * eps_hat
        else:                                        # explicit step: ε̂ at the lower step (standard inversion)
            x0_hat, eps_hat = _x0_eps(denoise_fn, sched, x, prev, prev, parametrization)
            x = ddim_step(sched, x, prev, t, x0_hat, eps_hat, 0.0, None)
        prev = t
    return x
