"""The forward (noising) process q and its true posterior (Ho et al. 2020, Sec. 2, Eqs. 2, 4, 6, 7).

    q(x_t | x_{t−1})      = N(x_t; √(1−β_t) x_{t−1}, β_t I)                          (Eq. 2)
    q(x_t | x_0)          = N(x_t; √ᾱ_t x_0, (1 − ᾱ_t) I)                             (Eq. 4)
    q(x_{t−1} | x_t, x_0) = N(x_{t−1}; μ̃_t(x_t, x_0), β̃_t I)                         (Eqs. 6, 7)

Every random function takes its standard-normal noise as an argument; none draws numbers itself.
``t`` is a Python int or an integer array of shape (B,) (one step per row of x).
"""

from __future__ import annotations

import numpy as np

from .schedule import Schedule

__all__ = ["q_step", "q_sample", "q_mean_variance", "q_posterior", "extract", "check_steps"]


def extract(arr: np.ndarray, t, x: np.ndarray, t_min: int = 1) -> np.ndarray:
    """``arr[t]`` shaped to broadcast against ``x`` (B, ...): a scalar for scalar t, (B, 1, ..) for t of shape (B,)."""
    t = check_steps(t, len(arr) - 1, x, t_min)
    return arr[int(t)] if t.ndim == 0 else arr[t].reshape((-1,) + (1,) * (x.ndim - 1))


def check_steps(t, T: int, x: np.ndarray, t_min: int = 1) -> np.ndarray:
    """t as an integer array, after checking it: integers (or integral floats) in t_min..T, a scalar or one
    per row of x. ValueError saying which is not so."""
    t_arr = np.asarray(t)
    if t_arr.dtype.kind not in "iu":
        if not (t_arr.dtype.kind == "f" and np.all(np.isfinite(t_arr)) and np.all(t_arr == np.round(t_arr))):
            raise ValueError(f"t must be an integer time step (or array of them), got {t!r}")
        t_arr = t_arr.astype(np.int64)
    if t_arr.ndim > 1:
        raise ValueError(f"t must be a scalar or a 1-D array of shape (B,), got shape {t_arr.shape}")
    if t_arr.size and (t_arr.min() < t_min or t_arr.max() > T):
        raise ValueError(f"t must lie in {t_min}..T = {t_min}..{T}, got values in "
                         f"{int(t_arr.min())}..{int(t_arr.max())}")
    if t_arr.ndim == 1 and (x.ndim == 0 or t_arr.shape[0] != x.shape[0]):
        raise ValueError(f"t has shape {t_arr.shape} but x has shape {x.shape}: one t per row expected")
    return t_arr


def _check_same_shape(a: np.ndarray, b: np.ndarray, an: str, bn: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{an} and {bn} must have the same shape, got {a.shape} and {b.shape}")


def q_step(sched: Schedule, x_prev: np.ndarray, t, noise: np.ndarray) -> np.ndarray:
    """One forward step, a draw from q(x_t | x_{t−1}) (Eq. 2): x_t = √(1−β_t)·x_{t−1} + √β_t·noise."""
    x_prev = np.asarray(x_prev, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    _check_same_shape(x_prev, noise, "x_prev", "noise")
    beta_t = extract(sched.beta, t, x_prev)
    return np.sqrt(1.0 - beta_t) * x_prev + np.sqrt(beta_t) * noise


def q_mean_variance(sched: Schedule, x0: np.ndarray, t) -> tuple[np.ndarray, np.ndarray]:
    """Mean √ᾱ_t·x_0 and variance (1 − ᾱ_t) of q(x_t | x_0) (Eq. 4); the variance broadcasts against x_0."""
    x0 = np.asarray(x0, dtype=np.float64)
    mean = extract(sched.sqrt_alpha_bar, t, x0) * x0
    var = extract(1.0 - sched.alpha_bar, t, x0, t_min=0)
    return mean, var


def q_sample(sched: Schedule, x0: np.ndarray, t, noise: np.ndarray) -> np.ndarray:
    """A draw from q(x_t | x_0) in closed form (Eq. 4): x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·noise."""
    x0 = np.asarray(x0, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    _check_same_shape(x0, noise, "x0", "noise")
    return extract(sched.sqrt_alpha_bar, t, x0) * x0 + extract(sched.sqrt_one_minus_alpha_bar, t, x0) * noise


def q_posterior(sched: Schedule, x0: np.ndarray, xt: np.ndarray, t) -> tuple[np.ndarray, np.ndarray]:
    """Mean μ̃_t(x_t, x_0) and variance β̃_t of the true posterior q(x_{t−1} | x_t, x_0) (Eqs. 6, 7).

    μ̃_t = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t,
    β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t.   At t = 1: μ̃_1 = x_0 and β̃_1 = 0.
    The variance is returned shaped to broadcast against x (a scalar, or (B, 1, ..)).
    """
    x0 = np.asarray(x0, dtype=np.float64)
    xt = np.asarray(xt, dtype=np.float64)
    _check_same_shape(x0, xt, "x0", "xt")
    mean = extract(sched.posterior_mean_coef_x0, t, x0) * x0 + extract(sched.posterior_mean_coef_xt, t, xt) * xt
    var = extract(sched.beta_tilde, t, x0)
    return mean, var
