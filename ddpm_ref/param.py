"""What the network predicts, and the reverse variance: conversions between parametrisations in one place.

The network's output ``out`` (B, D) can stand for any of four quantities; all are affine in x_t and
each other (Eq. 4: x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε):

    "eps"  ε               (Ho et al. 2020)        x̂_0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t
    "x0"   x_0                                      x̂_0 = out
    "v"    v = √ᾱ_t ε − √(1−ᾱ_t) x_0 (Salimans & Ho 2022)   x̂_0 = √ᾱ_t x_t − √(1−ᾱ_t) v
    "mu"   μ̃_t directly (Sohl-Dickstein 2015; Ho's ablation)  x̂_0 = (μ − c_t x_t)/c_0

and the reverse mean is always μ_θ = μ̃_t(x_t, x̂_0) = c_0·x̂_0 + c_t·x_t (Eq. 7) — for "eps" this is
Eq. 11. Because every map is affine in ``out``, μ_θ = a_t·out + b_t·x_t, and ∂μ_θ/∂out = a_t is all
backprop needs.

Reverse variance σ_t² (``var_type``): "beta" (β_t), "beta_tilde" (β̃_t; at t = 1, where β̃_1 = 0, the
log-variance is clipped to log β̃_2 as in Improved DDPM so that the decoder has a density), or
"learned" (Nichol & Dhariwal 2021, Eq. 15): the network outputs D more numbers ν ∈ ℝ (their "v"; here ν,
since v is the v-target above; Adam's second moment is s in optim.py) and log σ_t² = f·log β_t + (1 − f)·log β̃_t
with f = (ν + 1)/2, clipped to [0, 1] (see p_log_variance).
"""

from __future__ import annotations

import numpy as np

from .forward import extract
from .schedule import Schedule

__all__ = ["PARAMETRIZATIONS", "VAR_TYPES", "x0_from_eps", "eps_from_x0", "v_target", "x0_from_v",
           "eps_from_v", "x0_from_mean", "target", "predict_x0", "mean_from_output", "log_beta_tilde_clipped",
           "p_log_variance", "out_dim", "check_compatible", "check_var_type", "threshold_x0"]

PARAMETRIZATIONS = ("eps", "x0", "v", "mu")
VAR_TYPES = ("beta", "beta_tilde", "learned")


def _check_param(parametrization: str) -> None:
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"unknown parametrization {parametrization!r}; choose one of {', '.join(PARAMETRIZATIONS)}")


def check_var_type(var_type: str) -> None:
    """ValueError naming the choices unless ``var_type`` is one of VAR_TYPES."""
    if var_type not in VAR_TYPES:
        raise ValueError(f"unknown variance choice {var_type!r}; choose one of {', '.join(VAR_TYPES)}")


def check_compatible(sched: Schedule, parametrization: str) -> None:
    """ε-prediction cannot give x_0 at a step with ᾱ_t = 0 (x_t is pure noise, x̂_0 = (x_t − ε)/0):
    refuse that pairing up front rather than produce inf/NaN deep inside sampling."""
    _check_param(parametrization)
    if parametrization == "eps" and sched.alpha_bar[-1] <= 0:
        raise ValueError(f"schedule {sched.name!r} ends at alpha_bar_T = 0 (beta_T = 1): the eps "
                         f"parametrization cannot recover x_0 there; use x0, v or mu")


def out_dim(dim: int, var_type: str) -> int:
    """Width of the network's output: D, or 2D when it also outputs the variance interpolation ν."""
    check_var_type(var_type)
    return 2 * dim if var_type == "learned" else dim


# --- the affine maps of Eq. 4 ------------------------------------------------------------------------

def x0_from_eps(sched: Schedule, xt, t, eps):
    """x_0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t (Eq. 4 solved for x_0)."""
    return (xt - extract(sched.sqrt_one_minus_alpha_bar, t, xt) * eps) / extract(sched.sqrt_alpha_bar, t, xt)


def eps_from_x0(sched: Schedule, xt, t, x0):
    """ε = (x_t − √ᾱ_t x_0)/√(1−ᾱ_t) (Eq. 4 solved for ε)."""
    return (xt - extract(sched.sqrt_alpha_bar, t, xt) * x0) / extract(sched.sqrt_one_minus_alpha_bar, t, xt)


def v_target(sched: Schedule, x0, t, eps):
    """The v-target v = √ᾱ_t ε − √(1−ᾱ_t) x_0 (Salimans & Ho 2022, Sec. 4) of the draw (x_0, ε)."""
    return extract(sched.sqrt_alpha_bar, t, x0) * eps - extract(sched.sqrt_one_minus_alpha_bar, t, x0) * x0


def x0_from_v(sched: Schedule, xt, t, v):
    """x_0 = √ᾱ_t x_t − √(1−ᾱ_t) v (since ᾱ_t + (1−ᾱ_t) = 1)."""
    return extract(sched.sqrt_alpha_bar, t, xt) * xt - extract(sched.sqrt_one_minus_alpha_bar, t, xt) * v


def eps_from_v(sched: Schedule, xt, t, v):
    """ε = √(1−ᾱ_t) x_t + √ᾱ_t v."""
    return extract(sched.sqrt_one_minus_alpha_bar, t, xt) * xt + extract(sched.sqrt_alpha_bar, t, xt) * v


def x0_from_mean(sched: Schedule, xt, t, mean):
    """x_0 = (μ̃ − c_t x_t)/c_0, inverting μ̃_t(x_t, x_0) = c_0 x_0 + c_t x_t (Eq. 7)."""
    return (mean - extract(sched.posterior_mean_coef_xt, t, xt) * xt) / extract(sched.posterior_mean_coef_x0, t, xt)


def target(parametrization: str, sched: Schedule, x0, xt, t, eps):
    """What the network should output for the draw (x_0, ε) that made x_t: the regression target of L_simple."""
    _check_param(parametrization)
    if parametrization == "eps":
        return eps
    if parametrization == "x0":
        return x0
    if parametrization == "v":
        return v_target(sched, x0, t, eps)
    return extract(sched.posterior_mean_coef_x0, t, x0) * x0 + extract(sched.posterior_mean_coef_xt, t, xt) * xt


def predict_x0(parametrization: str, sched: Schedule, xt, t, out):
    """x̂_0 implied by the network output ``out`` under ``parametrization``."""
    _check_param(parametrization)
    if parametrization == "eps":
        return x0_from_eps(sched, xt, t, out)
    if parametrization == "x0":
        return out
    if parametrization == "v":
        return x0_from_v(sched, xt, t, out)
    return x0_from_mean(sched, xt, t, out)


def mean_from_output(parametrization: str, sched: Schedule, xt, t, out):
    """μ_θ(x_t, t) = μ̃_t(x_t, x̂_0) and a_t = ∂μ_θ/∂out (broadcastable against x_t).

    For "eps" this is Eq. 11, μ_θ = (x_t − β_t/√(1−ᾱ_t)·ε_θ)/√α_t, written directly.
    """
    _check_param(parametrization)
    c0 = extract(sched.posterior_mean_coef_x0, t, xt)
    if parametrization == "eps":                                           # Eq. 11 as the paper writes it
        coef = extract(sched.beta, t, xt) / extract(sched.sqrt_one_minus_alpha_bar, t, xt)  # β_t/√(1−ᾱ_t)
        sqrt_alpha = np.sqrt(extract(sched.alpha, t, xt))
        return (xt - coef * out) / sqrt_alpha, -coef / sqrt_alpha
    if parametrization == "x0":
        a = c0
    elif parametrization == "v":
        a = -c0 * extract(sched.sqrt_one_minus_alpha_bar, t, xt)
    else:
        return out, 1.0
    return c0 * predict_x0(parametrization, sched, xt, t, out) + extract(sched.posterior_mean_coef_xt, t, xt) * xt, a


def log_beta_tilde_clipped(sched: Schedule) -> np.ndarray:
    """log β̃_t with t = 1 (where β̃_1 = 0) replaced by log β̃_2 (Improved DDPM); log β_1 when T = 1."""
    bt = np.array(sched.beta_tilde)
    bt[1] = bt[2] if sched.T >= 2 else sched.beta[1]
    bt[0] = bt[1]
    return np.log(bt)


def p_log_variance(sched: Schedule, var_type: str, t, xt, nu=None):
    """log σ_t² of p_θ(x_{t−1}|x_t) and, for "learned", ∂ log σ_t²/∂ν. Returns (logvar, dlogvar_dnu or None).

    "learned" needs ν (B, D), the network's extra outputs: log σ² = f log β_t + (1 − f) log β̃_t, f = (ν+1)/2.
    """
    check_var_type(var_type)
    log_beta = np.log(np.maximum(sched.beta, 1e-300))
    log_bt = log_beta_tilde_clipped(sched)
    if var_type == "beta":
        return extract(log_beta, t, xt), None
    if var_type == "beta_tilde":
        return extract(log_bt, t, xt), None
    if nu is None:
        raise ValueError("var_type 'learned' needs the network's variance outputs nu")
    hi, lo = extract(log_beta, t, xt), extract(log_bt, t, xt)
    # Deviation from Improved DDPM: f is clipped to [0, 1], so σ_t² stays between β̃_t and β_t — the
    # two bounds on the optimal reverse variance (Ho et al. Sec. 3.2). Unclipped, an untrained
    # network's extrapolated ν overflows exp(log σ²) within a few sampling steps. ∂/∂ν is 0 outside.
    f_raw = (nu + 1.0) / 2.0
    f = np.clip(f_raw, 0.0, 1.0)
    inside = (f_raw >= 0.0) & (f_raw <= 1.0)
    return f * hi + (1.0 - f) * lo, np.where(inside, 0.5 * (hi - lo), 0.0)


def threshold_x0(x0, clip: float | None = None, dynamic: float | None = None):
    """Optional processing of x̂_0 before it forms the mean — both off by default, because toy data are
    not confined to [−1, 1] and clipping them silently distorts the distribution.

    ``clip=c``: x̂_0 ← clip(x̂_0, −c, c). ``dynamic=p`` (Saharia et al. 2022): per point,
    s = max(1, p-th percentile of |x̂_0|), x̂_0 ← clip(x̂_0, −s, s)/s.
    """
    if clip is not None:
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip!r}")
        x0 = np.clip(x0, -clip, clip)
    if dynamic is not None:
        if not 0 < dynamic <= 100:
            raise ValueError(f"dynamic thresholding percentile must lie in (0, 100], got {dynamic!r}")
        s = np.maximum(1.0, np.percentile(np.abs(x0), dynamic, axis=1, keepdims=True))
        x0 = np.clip(x0, -s, s) / s
    return x0
