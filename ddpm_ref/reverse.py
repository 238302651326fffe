"""The reverse process p_θ for every variant the library fits — an extension of the core ``sample.py``.

Algorithm 2 is the same loop (``sample.run_chain``); what changes is the reverse step's mean and variance:
    - what the network predicts (ε, x_0, v, μ: ``param.py``): μ_θ = μ̃_t(x_t, x̂_0) (Eq. 7);
    - σ_t² learned (Nichol & Dhariwal 2021, from the network's extra outputs);
    - a respaced schedule (``respace.respace``): step k of the new schedule calls the network at the
      original step τ_k = t_model[k];
    - x̂_0 processed before it forms the mean (``param.threshold_x0``: clipping, dynamic thresholding).
With parametrization "eps", fixed σ² and none of the rest, the numbers are those of ``sample.py``.
"""

from __future__ import annotations

import numpy as np

from .forward import extract
from .param import check_compatible, check_var_type, mean_from_output, p_log_variance, predict_x0, threshold_x0
from .sample import run_chain
from .schedule import Schedule

__all__ = ["p_mean_variance_general", "p_sample_general", "p_sample_loop_general", "p_sample_trajectory_general"]


def _t_model(sched: Schedule, t_model, parametrization: str):
    """The map k → τ_k of a respaced schedule: the one passed, else the one ``respace`` stored. A μ-model on a
    respaced schedule needs that schedule's ``parent`` (its one-step means are of the original steps)."""
    stored = getattr(sched, "t_model", None)                  # a respace.RespacedSchedule's map, if any
    if t_model is None:
        t_model = stored
    elif stored is not None and not np.array_equal(t_model, stored):
        raise ValueError("t_model differs from the map stored in the respaced schedule; pass the pair respace() returned")
    if t_model is not None:
        t_model = np.asarray(t_model)
        if t_model.shape != (sched.T + 1,):
            raise ValueError(f"t_model must map steps 0..T of the schedule (length T + 1 = {sched.T + 1}), "
                             f"got shape {t_model.shape}")
        if parametrization == "mu" and getattr(sched, "parent", None) is None:
            raise ValueError("a mu-model on a respaced schedule needs the schedule made by ddpm_ref.respace "
                             "(its output is a one-step mean of the original schedule)")
    return t_model


def p_mean_variance_general(denoise_fn, sched: Schedule, xt: np.ndarray, t,
                    var_type: str = "beta", parametrization: str = "eps",
                    t_model: np.ndarray | None = None, clip_x0: float | None = None,
                    dynamic_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean μ_θ(x_t, t) (Eq. 11 for "eps") and variance σ_t² of p_θ(x_{t−1} | x_t).

    ``denoise_fn(x_t, t) -> out`` is the network (``network(params, cfg)`` for the MLP). σ_t² is β_t,
    β̃_t (exactly; 0 at t = 1) or learned (from the network's extra outputs). On a respaced schedule
    ``t_model[t]`` is the original step the network was trained with.
    """
    check_var_type(var_type)
    t_model = _t_model(sched, t_model, parametrization)
    t_net = t if t_model is None else t_model[t]                          # the step the network was trained on
    out = denoise_fn(xt, t_net)                                           # (B, n_out)
    D = xt.shape[1]
    if t_model is None and clip_x0 is None and dynamic_threshold is None:
        mean, _ = mean_from_output(parametrization, sched, xt, t, out[:, :D])
    else:                                                                  # μ̃_t(x_t, x̂_0), Eq. 7
        # x̂_0 is read off the output on the schedule the network was trained on (for ε, x_0 and v
        # only ᾱ enters, the same at k and τ_k; a μ-model's output is the one-step mean at τ_k), and the
        # mean of a respaced step k — a jump τ_k → τ_{k−1} — is formed from it with sched's coefficients.
        on_parent = t_model is not None and getattr(sched, "parent", None) is not None
        model_sched, model_t = (sched.parent, t_net) if on_parent else (sched, t)
        x0 = threshold_x0(predict_x0(parametrization, model_sched, xt, model_t, out[:, :D]), clip_x0,
                          dynamic_threshold)
        mean = extract(sched.posterior_mean_coef_x0, t, xt) * x0 + extract(sched.posterior_mean_coef_xt, t, xt) * xt
    if var_type == "beta":
        var = extract(sched.beta, t, xt)
    elif var_type == "beta_tilde":
        var = extract(sched.beta_tilde, t, xt)
    else:
        var = np.exp(p_log_variance(sched, var_type, t, xt, out[:, D:])[0])
    return mean, var


def p_sample_general(denoise_fn, sched: Schedule, xt: np.ndarray, t: int, *, z: np.ndarray,
             var_type: str = "beta", parametrization: str = "eps", t_model: np.ndarray | None = None,
             clip_x0: float | None = None, dynamic_threshold: float | None = None) -> np.ndarray:
    """Alg. 2 lines 3–4: x_{t−1} = μ_θ(x_t, t) + σ_t·z, with z forced to 0 at t = 1 (Alg. 2 line 3)."""
    t = int(t)
    mean, var = p_mean_variance_general(denoise_fn, sched, xt, t, var_type, parametrization, t_model, clip_x0,
                                dynamic_threshold)
    if t == 1:
        return mean
    return mean + np.sqrt(var) * z


def p_sample_loop_general(denoise_fn, sched: Schedule, x_T: np.ndarray, *, z: np.ndarray | None = None,
                  rng: np.random.Generator | None = None, var_type: str = "beta",
                  parametrization: str = "eps", t_model: np.ndarray | None = None, clip_x0: float | None = None,
                  dynamic_threshold: float | None = None) -> np.ndarray:
    """``sample.p_sample_loop`` (Algorithm 2) for any parametrisation, variance, respaced schedule and
    x̂_0 processing; returns x_0 (N, D).

    The noise of line 3 comes either from ``z`` of shape (T + 1, N, D), indexed by t: ``z[t]`` is used at step
    t (``z[0]`` and ``z[1]`` are ignored: z = 0 at t = 1), or is drawn step by step from ``rng`` — exactly one of
    the two. For a respaced schedule (``respace.respace``) pass its ``t_model`` map: the network sees
    the original steps. ``clip_x0`` / ``dynamic_threshold`` process x̂_0 (``param.threshold_x0``); both
    off by default. ``p_sample_trajectory_general`` also returns every x_t.
    """
    return _chain(denoise_fn, sched, x_T, z, rng, var_type, parametrization, t_model, clip_x0, dynamic_threshold,
                  False)[0]


def p_sample_trajectory_general(denoise_fn, sched: Schedule, x_T: np.ndarray, *, z: np.ndarray | None = None,
                        rng: np.random.Generator | None = None, var_type: str = "beta",
                        parametrization: str = "eps", t_model: np.ndarray | None = None,
                        clip_x0: float | None = None, dynamic_threshold: float | None = None):
    """``p_sample_loop_general``, keeping every step: returns (x_0, trajectory) with the trajectory (T + 1, N, D)
    indexed by t (``trajectory[T]`` is x_T, ``trajectory[0]`` is x_0)."""
    return _chain(denoise_fn, sched, x_T, z, rng, var_type, parametrization, t_model, clip_x0, dynamic_threshold,
                  True)


def _chain(denoise_fn, sched, x_T, z, rng, var_type, parametrization, t_model, clip_x0, dynamic_threshold, keep):
    check_var_type(var_type)
    check_compatible(sched, parametrization)

    def step(x, t, z_t):
        return p_sample_general(denoise_fn, sched, x, t, z=z_t, var_type=var_type, parametrization=parametrization,
                                t_model=t_model, clip_x0=clip_x0, dynamic_threshold=dynamic_threshold)
    return run_chain(step, denoise_fn, sched, x_T, z, rng, keep)
