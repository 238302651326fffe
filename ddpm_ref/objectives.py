"""Training objectives beyond Algorithm 1's L_simple on ε — an extension of the core ``train.py``.

Objectives (``TrainConfig.objective``), each with its gradient written by hand:
    simple   L_simple = mean ‖target − out‖² (Eq. 14; the target is ε, x_0, v or μ̃ per parametrisation)
    vlb      L_vlb = Σ_{t=1..T} L_{t−1} (the step-t term; L_0 is the decoder) estimated as T·E_t[L_{t−1}]
             (bits per dimension), t uniform or importance-sampled with p_t ∝ √E[L_{t−1}²] over the last 10 values seen at each t, weight 1/(T p_t)
             (Nichol & Dhariwal 2021, Sec. 3.3)
    hybrid   L_simple + λ·L_vlb with λ = 0.001 and μ_θ held fixed inside L_vlb (stop-gradient), so
             L_vlb only trains the learned variance (Nichol & Dhariwal 2021, Sec. 3.1)
``train_general`` is Algorithm 1's loop with these; objective "simple", parametrization "eps" and uniform
t give exactly the numbers of ``train.train``.
"""

from __future__ import annotations

import numpy as np

from .bound import LN2, terms_and_grads_at
from .forward import q_sample
from .mlp import MLPConfig, backward, forward
from .param import target
from .schedule import Schedule
from .train import HISTORY, TrainConfig, apply_step, check_train_inputs, draw_batch, loss_simple

__all__ = ["importance_probs", "importance_weights", "objective_and_grads", "train_step_general", "train_general"]


def importance_probs(state: dict, T: int) -> np.ndarray | None:
    """p_t ∝ √E[L_{t−1}²] over the stored history, mixed with 0.1% uniform; None until every t has
    HISTORY values (sampling stays uniform until then)."""
    count = state["lt_count"][1:]
    if count.min() < HISTORY:
        return None
    p = np.sqrt(np.mean(state["lt_hist"][1:] ** 2, axis=1))                # (T,)
    p = p / p.sum()
    return p * (1.0 - 1e-3) + 1e-3 / T


def importance_weights(p_t: np.ndarray | None, t: np.ndarray, T: int) -> np.ndarray | None:
    """The weights 1/(T·p_t) that make Σ_t L_{t−1} = T·E_{t~U}[L_{t−1}] = E_{t~p}[L_{t−1}/p_t] unbiased under
    importance sampling t ~ p_t (Nichol & Dhariwal 2021, Eq. 18); None (weight 1) for uniform t."""
    return None if p_t is None else 1.0 / (T * p_t[np.asarray(t) - 1])


def _draw(rng: np.random.Generator, data: np.ndarray, batch_size: int, T: int, p_t: np.ndarray | None):
    """Alg. 1 lines 1–3, with t ~ p_t (T,) under importance sampling (``train.draw_batch`` when p_t is None)."""
    if p_t is None:
        return draw_batch(rng, data, batch_size, T)
    idx = rng.integers(0, data.shape[0], size=batch_size)
    t = rng.choice(T, size=batch_size, p=p_t) + 1
    eps = rng.standard_normal((batch_size, data.shape[1]))
    return data[idx], t, eps


def objective_and_grads(params: dict, x0: np.ndarray, t: np.ndarray, eps: np.ndarray, sched: Schedule,
                        cfg: MLPConfig, tcfg: TrainConfig, weights: np.ndarray | None = None):
    """The training objective for given draws (x_0, t, ε) and its gradient w.r.t. every parameter.

    Returns (loss, grads, vlb_terms): ``vlb_terms`` (B,) are the per-point bound terms L_{t−1} in nats
    (None for L_simple), which feed the importance sampler's history.
    """
    D = x0.shape[1]
    xt = q_sample(sched, x0, t, eps)                                       # (B, D), Eq. 4
    out, cache = forward(params, xt, t, cfg)                               # (B, n_out)
    dout = np.zeros_like(out)
    loss, term = 0.0, None
    if tcfg.objective in ("simple", "hybrid"):
        l_s, dout[:, :D] = loss_simple(target(tcfg.parametrization, sched, x0, xt, t, eps), out[:, :D])
        loss += l_s
    if tcfg.objective in ("vlb", "hybrid"):
        term, dterm = terms_and_grads_at(sched, x0, xt, t, out, tcfg.parametrization, tcfg.var_type)
        w = np.ones(x0.shape[0]) if weights is None else weights
        scale = sched.T / (D * LN2)                                        # Σ_t L_{t−1} = T·E_t[L_{t−1}], bits/dim
        l_v = float(np.mean(w * term)) * scale
        dv = (w * scale / x0.shape[0])[:, None] * dterm                     # (B, n_out)
        if tcfg.objective == "hybrid":
            dv[:, :D] = 0.0                                                # stop-gradient on μ_θ
            l_v, dv = tcfg.hybrid_lambda * l_v, tcfg.hybrid_lambda * dv
        loss += l_v
        dout += dv
    return loss, backward(params, cache, dout, cfg), term


def train_step_general(state: dict, x0: np.ndarray, t: np.ndarray, eps: np.ndarray, sched: Schedule,
                       cfg: MLPConfig, tcfg: TrainConfig, weights: np.ndarray | None = None) -> tuple[dict, float]:
    """``train.train_step`` for any objective and parametrisation: one clipped Adam step, then the EMA.

    ``weights`` (B,) multiply the L_vlb terms (1/(T p_t) under importance sampling). Returns the new
    state and the loss.
    """
    loss, grads, term = objective_and_grads(state["params"], x0, t, eps, sched, cfg, tcfg, weights)
    new = apply_step(state, grads, tcfg)
    if term is not None:
        new["lt_hist"], new["lt_count"] = _push_history(state, t, term)
    return new, loss


def _push_history(state: dict, t: np.ndarray, term: np.ndarray):
    """Append each L_{t−1} value of the batch to its t's ring buffer of the last HISTORY values."""
    hist, count = state["lt_hist"].copy(), state["lt_count"].copy()
    for ti, li in zip(np.broadcast_to(t, term.shape), term):
        hist[ti, count[ti] % HISTORY] = li
        count[ti] += 1
    return hist, count


def train_general(state: dict, data: np.ndarray, sched: Schedule, cfg: MLPConfig, tcfg: TrainConfig,
                  rng: np.random.Generator, n_steps: int, callback=None) -> tuple[dict, np.ndarray]:
    """``train.train`` for any ``tcfg`` (objective, parametrisation, importance sampling of t)."""
    data = check_train_inputs(state, data, sched, cfg, tcfg)
    losses = np.empty(n_steps)
    for i in range(n_steps):
        p_t = importance_probs(state, sched.T) if tcfg.t_sampling == "importance" else None
        x0, t, eps = _draw(rng, data, tcfg.batch_size, sched.T, p_t)
        weights = importance_weights(p_t, t, sched.T)
        state, losses[i] = train_step_general(state, x0, t, eps, sched, cfg, tcfg, weights)
        if callback is not None:
            callback(state["opt"]["step"], losses[i])
    return state, losses
