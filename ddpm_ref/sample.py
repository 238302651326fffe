"""The reverse process p_θ and Algorithm 2 (Sampling) of Ho et al. 2020 — the core path.

    p_θ(x_{t−1} | x_t) = N(x_{t−1}; μ_θ(x_t, t), σ_t² I)                               (Eq. 1)
    μ_θ(x_t, t) = 1/√α_t · (x_t − β_t/√(1 − ᾱ_t) · ε_θ(x_t, t))                         (Eq. 11)
    σ_t² = β_t  or  σ_t² = β̃_t   (both give similar samples, Ho et al. Sec. 3.2)

Algorithm 2 (Sampling):
    1: x_T ~ N(0, I)
    2: for t = T, ..., 1:
    3:     z ~ N(0, I) if t > 1, else z = 0
    4:     x_{t−1} = 1/√α_t · (x_t − (1 − α_t)/√(1 − ᾱ_t) · ε_θ(x_t, t)) + σ_t z
    5: return x_0

The network is ``denoise_fn(x_t, t) -> ε_θ`` (``network(params, cfg)`` for the MLP). Other
parametrisations, learned variances, respaced schedules and x̂_0 thresholding: ``reverse.py``.
"""

from __future__ import annotations

import numpy as np

from .forward import extract
from .mlp import Denoiser
from .schedule import Schedule

__all__ = ["FIXED_VARIANCES", "p_mean_variance", "p_sample", "p_sample_loop", "p_sample_trajectory", "run_chain",
           "check_chain_inputs"]

FIXED_VARIANCES = ("beta", "beta_tilde")


def _check_fixed(var_type: str) -> None:
    if var_type not in FIXED_VARIANCES:
        raise ValueError(f"unknown variance choice {var_type!r}; Algorithm 2 fixes σ_t² to beta or beta_tilde "
                         "(learned variances: ddpm_ref.p_sample_loop_general)")


def _check_eps_chain(sched: Schedule, var_type: str) -> None:
    """Algorithm 2 as in the paper: σ_t² fixed, and ᾱ_T > 0 so that ε_θ determines x_0."""
    _check_fixed(var_type)
    if sched.alpha_bar[-1] <= 0:
        raise ValueError(f"schedule {sched.name!r} ends at alpha_bar_T = 0 (beta_T = 1): the eps "
                         f"parametrization cannot recover x_0 there; use x0, v or mu (p_sample_loop_general)")


def p_mean_variance(denoise_fn, sched: Schedule, xt: np.ndarray, t, var_type: str = "beta"):
    """Mean μ_θ(x_t, t) (Eq. 11) and variance σ_t² (β_t, or β̃_t: exactly, 0 at t = 1) of p_θ(x_{t−1} | x_t)."""
    _check_fixed(var_type)
    eps = denoise_fn(xt, t)[:, :xt.shape[1]]     # ε_θ(x_t, t): the first D outputs (a learned-Σ net adds D more)
    coef = extract(sched.beta, t, xt) / extract(sched.sqrt_one_minus_alpha_bar, t, xt)  # β_t/√(1−ᾱ_t)
    mean = (xt - coef * eps) / np.sqrt(extract(sched.alpha, t, xt))           # Eq. 11
    var = extract(sched.beta if var_type == "beta" else sched.beta_tilde, t, xt)
    return mean, var


def p_sample(denoise_fn, sched: Schedule, xt: np.ndarray, t: int, *, z: np.ndarray | None,
             var_type: str = "beta") -> np.ndarray:
    """Alg. 2 lines 3–4: x_{t−1} = μ_θ(x_t, t) + σ_t·z, with z forced to 0 at t = 1 (Alg. 2 line 3)."""
    t = int(t)
    mean, var = p_mean_variance(denoise_fn, sched, xt, t, var_type)
    if t == 1:
        return mean
    return mean + np.sqrt(var) * z


def p_sample_loop(denoise_fn, sched: Schedule, x_T: np.ndarray, *, z: np.ndarray | None = None,
                  rng: np.random.Generator | None = None, var_type: str = "beta") -> np.ndarray:
    """Algorithm 2 from a given x_T (N, D) (line 1) down to x_0 (line 5); returns x_0 (N, D).

    Line 3's noise comes either from ``z`` (T + 1, N, D), indexed by t like the schedule: z[t] is the z of
    step t (z[0] and z[1] are not used: z = 0 at t = 1), or is drawn step by step from ``rng``: one of the two."""
    _check_eps_chain(sched, var_type)
    x, z = check_chain_inputs(denoise_fn, sched, x_T, z, rng)
    for t in range(sched.T, 0, -1):                                        # line 2: t = T, ..., 1
        if t == 1:
            z_t = None                                                     # line 3: z = 0 at t = 1
        else:
            z_t = z[t] if z is not None else rng.standard_normal(x.shape)       # line 3: z ~ N(0, I)
        x = p_sample(denoise_fn, sched, x, t, z=z_t, var_type=var_type)   # line 4: x_{t−1} = μ_θ + σ_t z
    return x


def p_sample_trajectory(denoise_fn, sched: Schedule, x_T: np.ndarray, *, z: np.ndarray | None = None,
                        rng: np.random.Generator | None = None, var_type: str = "beta"):
    """``p_sample_loop``, keeping every step: returns (x_0, trajectory) with the trajectory (T + 1, N, D)
    indexed by t (``trajectory[T]`` is x_T, ``trajectory[0]`` is x_0)."""
    _check_eps_chain(sched, var_type)
    return run_chain(lambda x, t, z_t: p_sample(denoise_fn, sched, x, t, z=z_t, var_type=var_type),
                     denoise_fn, sched, x_T, z, rng, True)


def check_chain_inputs(denoise_fn, sched: Schedule, x_T, z, rng):
    """Algorithm 2's inputs checked: x_T as a float (N, D) array (D the network's), z (T + 1, N, D) as floats or
    None, and exactly one noise source. Returns (x_T, z)."""
    x = np.array(x_T, dtype=np.float64)
    dim = denoise_fn.cfg.dim if isinstance(denoise_fn, Denoiser) else x.shape[-1]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x_T must have shape (N, {dim}), got {x.shape}")
    if (z is None) == (rng is None):
        raise ValueError("pass exactly one noise source: z (an array of shape (T + 1, N, D), indexed by t) or rng")
    if z is not None:
        z = np.asarray(z, dtype=np.float64)
        if z.shape != (sched.T + 1,) + x.shape:
            raise ValueError(f"z must have shape (T + 1, N, D) = {(sched.T + 1,) + x.shape} (indexed by t), got {z.shape}")
    return x, z


def run_chain(step, denoise_fn, sched: Schedule, x_T, z, rng, keep: bool):
    """Algorithm 2's loop (lines 1–5) around ``step(x_t, t, z) -> x_{t−1}``: t = T, …, 1, z from ``z[t]``
    or ``rng``, None at t = 1. Returns (x_0, trajectory (T + 1, N, D) indexed by t, or None). The variants
    (``reverse.py``) and ``p_sample_trajectory`` run this; ``p_sample_loop`` is the same loop written out."""
    x, z = check_chain_inputs(denoise_fn, sched, x_T, z, rng)
    T = sched.T
    traj = None
    if keep:
        traj = np.empty((T + 1,) + x.shape)
        traj[T] = x
    for t in range(T, 0, -1):
        if t == 1:
            z_t = None                                                     # Alg. 2 line 3: z = 0 at t = 1
        else:
            z_t = z[t] if z is not None else rng.standard_normal(x.shape)
        x = step(x, t, z_t)
        if traj is not None:
            traj[t - 1] = x
    return x, traj
