"""Training: Algorithm 1 of Ho et al. 2020 with L_simple — the core path.

Algorithm 1 (Training), repeated until converged:
    1: x_0 ~ q(x_0)                       (a batch of data)
    2: t ~ Uniform({1, ..., T})
    3: ε ~ N(0, I)
    4: gradient step on ∇_θ ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖²      (Eq. 14)

``draw_batch`` draws lines 1–3 from a passed ``rng``; ``train_step`` does line 4 given those draws
(so any backend can be fed the same numbers); ``train`` is the loop. The other objectives (L_vlb,
L_hybrid), targets (x_0, v, μ̃) and importance sampling of t: ``objectives.py``, which reuses
``apply_step`` and ``draw_batch``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .forward import q_sample
from .mlp import MLPConfig, backward, forward, init_params
from .optim import adam_init, adam_update, clip_grad_norm, ema_update
from .schedule import Schedule

__all__ = ["TrainConfig", "loss_simple", "draw_batch", "init_state", "loss_and_grads", "apply_step", "train_step",
           "train", "learning_rate", "check_train_inputs"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of Algorithm 1 (Adam, as Ho et al., with a cosine lr decay and an EMA of θ).
    What the variants change (objective, target, σ_t², t sampling) is ``objectives.GeneralTrainConfig``."""

    steps: int = 16000           # the default 2-D fit lands at its W2 and MMD² floors (docs/results.md)
    batch_size: int = 512        # large batches lower the variance of the t-and-ε Monte Carlo loss
    lr: float = 4e-3             # Adam step size at the start (2e-3: tight clusters at 20× the MMD² floor)
    lr_final_frac: float = 0.05  # cosine decay to lr·lr_final_frac: a settled end state for the EMA to average
    grad_clip: float = 1.0       # global-norm clipping, as Ho et al.
    ema_decay: float = 0.995     # EMA horizon ≈ 200 steps: short runs need a short horizon
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8

    def __post_init__(self):
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {v!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr!r}")
        if not (0 <= self.lr_final_frac <= 1):
            raise ValueError(f"TrainConfig.lr_final_frac must lie in [0, 1], got {self.lr_final_frac!r}")
        if not (0 <= self.ema_decay < 1):
            raise ValueError(f"TrainConfig.ema_decay must lie in [0, 1), got {self.ema_decay!r}")
        if not (self.grad_clip >= 0):
            raise ValueError(f"TrainConfig.grad_clip must be >= 0 (0 turns clipping off), got {self.grad_clip!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate(tcfg: TrainConfig, step: int) -> float:
    """Cosine decay from lr (step 0) to lr·lr_final_frac (step = steps)."""
    frac = min(step, tcfg.steps) / tcfg.steps
    lo = tcfg.lr * tcfg.lr_final_frac
    return lo + 0.5 * (tcfg.lr - lo) * (1.0 + math.cos(math.pi * frac))


def loss_simple(target_: np.ndarray, out: np.ndarray) -> tuple[float, np.ndarray]:
    """L_simple = mean over the batch and the D coordinates of (target − out)² (Eq. 14 with target ε,
    averaged not summed over coordinates, like Ho's ``mean_flat``). Returns (loss, ∂loss/∂out)."""
    diff = out - target_                                                   # (B, D)
    loss = float(np.mean(diff * diff))
    dout = 2.0 * diff / diff.size                                          # (B, D)
    return loss, dout


def draw_batch(rng: np.random.Generator, data: np.ndarray, batch_size: int, T: int):
    """Alg. 1 lines 1–3: x_0 (B, D) drawn with replacement from data, t ~ U{1..T} (B,), ε ~ N(0, I) (B, D)."""
    idx = rng.integers(0, data.shape[0], size=batch_size)
    t = rng.integers(1, T + 1, size=batch_size)
    eps = rng.standard_normal((batch_size, data.shape[1]))
    return data[idx], t, eps


def init_state(cfg: MLPConfig, rng: np.random.Generator) -> dict:
    """Fresh training state: parameters θ, Adam moments and the EMA copy of θ."""
    params = init_params(cfg, rng)
    return {"params": params, "opt": adam_init(params), "ema": {k: v.copy() for k, v in params.items()}}


def loss_and_grads(params: dict, x0: np.ndarray, t: np.ndarray, eps: np.ndarray, sched: Schedule, cfg: MLPConfig):
    """L_simple (Eq. 14) for the draws (x_0, t, ε) and its gradient w.r.t. every parameter: (loss, grads)."""
    xt = q_sample(sched, x0, t, eps)                                       # (B, D), Eq. 4
    out, cache = forward(params, xt, t, cfg)                               # (B, D)
    loss, dout = loss_simple(eps, out)
    return loss, backward(params, cache, dout, cfg)


def apply_step(state: dict, grads: dict, tcfg) -> dict:
    """One optimiser step from ``grads``: global-norm clipping, Adam at the step's cosine lr, then the EMA."""
    grads, _ = clip_grad_norm(grads, tcfg.grad_clip)
    lr = learning_rate(tcfg, state["opt"]["step"])
    params, opt = adam_update(state["params"], grads, state["opt"], lr, tcfg.adam_beta1, tcfg.adam_beta2,
                              tcfg.adam_eps)
    ema = ema_update(state["ema"], params, tcfg.ema_decay)
    return {**state, "params": params, "opt": opt, "ema": ema}      # other keys (a variant's) pass through


def _check_algorithm_1(tcfg) -> None:
    if type(tcfg) is not TrainConfig:
        raise ValueError(f"Algorithm 1 takes a TrainConfig, got a {type(tcfg).__name__} (a variant's settings): "
                         "use ddpm_ref.train_general")


def train_step(state: dict, x0: np.ndarray, t: np.ndarray, eps: np.ndarray, sched: Schedule,
               cfg: MLPConfig, tcfg: TrainConfig) -> tuple[dict, float]:
    """Alg. 1 line 4 for given draws (x_0, t, ε): one clipped Adam step on L_simple, then the EMA update.
    Returns the new state and the loss."""
    _check_algorithm_1(tcfg)
    loss, grads = loss_and_grads(state["params"], x0, t, eps, sched, cfg)
    return apply_step(state, grads, tcfg), loss


def check_train_inputs(data, sched: Schedule, cfg: MLPConfig, parametrization: str = "eps") -> np.ndarray:
    """The loop's inputs: data (N, D) as float64, and a schedule from which ε gives x_0 (ᾱ_T > 0)."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != cfg.dim:
        raise ValueError(f"data must have shape (N, {cfg.dim}), got {data.shape}")
    if parametrization == "eps" and sched.alpha_bar[-1] <= 0:
        raise ValueError(f"schedule {sched.name!r} ends at alpha_bar_T = 0 (beta_T = 1): the eps "
                         f"parametrization cannot recover x_0 there; use x0, v or mu")
    return data


def train(state: dict, data: np.ndarray, sched: Schedule, cfg: MLPConfig, tcfg: TrainConfig,
          rng: np.random.Generator, n_steps: int, callback=None) -> tuple[dict, np.ndarray]:
    """Run ``n_steps`` of Algorithm 1 from ``state``. Returns (state, losses (n_steps,)).

    ``callback(step, loss)`` is called after every step (progress bars, logging).
    """
    _check_algorithm_1(tcfg)
    data = check_train_inputs(data, sched, cfg)
    losses = np.empty(n_steps)
    for i in range(n_steps):
        x0, t, eps = draw_batch(rng, data, tcfg.batch_size, sched.T)
        state, losses[i] = train_step(state, x0, t, eps, sched, cfg, tcfg)
        if callback is not None:
            callback(state["opt"]["step"], losses[i])
    return state, losses
