"""A hand-written optimizer: Adam (Kingma & Ba 2015, Algorithm 1), global gradient-norm clipping
and an exponential moving average (EMA) of the weights (Ho et al. sample with the EMA, decay 0.9999).

All functions are pure: they take dicts of arrays and return new dicts; nothing is updated in place.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["adam_init", "adam_update", "clip_grad_norm", "global_norm", "ema_update"]


def adam_init(params: dict) -> dict:
    """Adam state: first moment m, second moment s (zeros like params) and the step count."""
    return {"m": {k: np.zeros_like(p) for k, p in params.items()},
            "s": {k: np.zeros_like(p) for k, p in params.items()},
            "step": 0}


def adam_update(params: dict, grads: dict, state: dict, lr: float, beta1: float = 0.9,
                beta2: float = 0.999, eps: float = 1e-8) -> tuple[dict, dict]:
    """One Adam step (Kingma & Ba, Alg. 1; their second moment v is s here, as v is the v-target of param.py):

        m ← β1·m + (1−β1)·g,   s ← β2·s + (1−β2)·g²,
        m̂ = m/(1−β1^n),  ŝ = s/(1−β2^n),   θ ← θ − lr·m̂/(√ŝ + ε)     (n = step count after increment)
    """
    step = state["step"] + 1
    m, s, new = {}, {}, {}
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    for k, theta in params.items():
        g = grads[k]
        m[k] = beta1 * state["m"][k] + (1.0 - beta1) * g
        s[k] = beta2 * state["s"][k] + (1.0 - beta2) * g * g
        new[k] = theta - lr * (m[k] / bc1) / (np.sqrt(s[k] / bc2) + eps)
    return new, {"m": m, "s": s, "step": step}


def global_norm(grads: dict) -> float:
    """‖g‖₂ over all gradient arrays taken together."""
    return math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))


def clip_grad_norm(grads: dict, max_norm: float) -> tuple[dict, float]:
    """Scale all gradients by min(1, max_norm/‖g‖) (global norm clipping). Returns (grads, ‖g‖ before)."""
    norm = global_norm(grads)
    if max_norm is None or max_norm <= 0 or norm <= max_norm:
        return grads, norm
    scale = max_norm / (norm + 1e-12)
    return {k: g * scale for k, g in grads.items()}, norm


def ema_update(ema: dict, params: dict, decay: float) -> dict:
    """θ_ema ← decay·θ_ema + (1 − decay)·θ."""
    return {k: decay * ema[k] + (1.0 - decay) * params[k] for k in ema}
