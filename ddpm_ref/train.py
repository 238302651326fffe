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
from .param import PARAMETRIZATIONS, VAR_TYPES, check_compatible
from .schedule import Schedule

__all__ = ["TrainConfig", "OBJECTIVES", "loss_simple", "draw_batch", "init_state", "loss_and_grads",
           "apply_step", "train_step", "train", "learning_rate", "HISTORY"]

OBJECTIVES = ("simple", "vlb", "hybrid")
HISTORY = 10                     # recent L_{t−1} values kept per t for importance sampling (objectives.py)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of Algorithm 1."""

    steps: int = 16000           # the default 2-D fit lands at its W2 and MMD² floors (README, "Quality")
    batch_size: int = 512        # large batches lower the variance of the t-and-ε Monte Carlo loss
    lr: float = 4e-3             # Adam step size at the start (2e-3: tight clusters at 20× the MMD² floor)
    lr_final_frac: float = 0.05  # cosine decay to lr·lr_final_frac: a settled end state for the EMA to average
    grad_clip: float = 1.0       # global-norm clipping, as Ho et al.
    ema_decay: float = 0.995     # EMA horizon ≈ 200 steps: short runs need a short horizon
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    objective: str = "simple"        # Ho et al.'s choice: best samples
    parametrization: str = "eps"     # what the network predicts: eps, x0, v or mu
    var_type: str = "beta"           # σ_t²: beta, beta_tilde (fixed) or learned
    t_sampling: str = "uniform"      # uniform, or importance (L_vlb only)
    hybrid_lambda: float = 0.001     # Nichol & Dhariwal's λ

    def __post_init__(self):
        for name, allowed in (("objective", OBJECTIVES), ("parametrization", PARAMETRIZATIONS),
                              ("var_type", VAR_TYPES), ("t_sampling", ("uniform", "importance"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        if self.t_sampling == "importance" and self.objective != "vlb":
            raise ValueError("t_sampling='importance' is for objective='vlb' (it reweights the bound's terms)")
        # L_simple gives a learned variance no gradient (its output never enters the loss), and the
        # hybrid's λ·L_vlb trains nothing but that variance (μ_θ is stop-gradient there): refuse both
        # pairings rather than silently train a head that stays at its initial values / add a zero.
        if self.var_type == "learned" and self.objective == "simple":
            raise ValueError("var_type 'learned' needs objective 'hybrid' (or 'vlb'): L_simple gives the variance "
                             "output no gradient (Nichol & Dhariwal 2021 train it with L_hybrid)")
        if self.objective == "hybrid" and self.var_type != "learned":
            raise ValueError(f"objective 'hybrid' adds λ·L_vlb to train the learned variance; with var_type "
                             f"{self.var_type!r} it is 'simple' exactly: use objective 'simple' or var_type 'learned'")
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


def init_state(cfg: MLPConfig, rng: np.random.Generator, T: int) -> dict:
    """Fresh training state: parameters θ, Adam moments, EMA copy of θ, and the per-t loss history
    (T+1, HISTORY) with its counts used by importance sampling."""
    params = init_params(cfg, rng)
    return {"params": params, "opt": adam_init(params), "ema": {k: v.copy() for k, v in params.items()},
            "lt_hist": np.zeros((T + 1, HISTORY)), "lt_count": np.zeros(T + 1, dtype=np.int64)}


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
    return {"params": params, "opt": opt, "ema": ema, "lt_hist": state["lt_hist"], "lt_count": state["lt_count"]}


def _check_core(tcfg) -> None:
    if (tcfg.objective, tcfg.parametrization, tcfg.t_sampling) != ("simple", "eps", "uniform"):
        raise ValueError(f"Algorithm 1 trains ε with L_simple and uniform t; objective {tcfg.objective!r}, "
                         f"parametrization {tcfg.parametrization!r}, t_sampling {tcfg.t_sampling!r}: "
                         "use ddpm_ref.train_general")


def train_step(state: dict, x0: np.ndarray, t: np.ndarray, eps: np.ndarray, sched: Schedule,
               cfg: MLPConfig, tcfg: TrainConfig) -> tuple[dict, float]:
    """Alg. 1 line 4 for given draws (x_0, t, ε): one clipped Adam step on L_simple, then the EMA update.
    Returns the new state and the loss."""
    _check_core(tcfg)
    loss, grads = loss_and_grads(state["params"], x0, t, eps, sched, cfg)
    return apply_step(state, grads, tcfg), loss


def check_train_inputs(state: dict, data, sched: Schedule, cfg: MLPConfig, tcfg: TrainConfig) -> np.ndarray:
    """The loop's inputs: data (N, D) as float64, a schedule the parametrisation can use, a state made for its T."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != cfg.dim:
        raise ValueError(f"data must have shape (N, {cfg.dim}), got {data.shape}")
    check_compatible(sched, tcfg.parametrization)
    if state["lt_hist"].shape[0] != sched.T + 1:
        raise ValueError(f"training state was made for T = {state['lt_hist'].shape[0] - 1}, schedule has T = {sched.T}")
    return data


def train(state: dict, data: np.ndarray, sched: Schedule, cfg: MLPConfig, tcfg: TrainConfig,
          rng: np.random.Generator, n_steps: int, callback=None) -> tuple[dict, np.ndarray]:
    """Run ``n_steps`` of Algorithm 1 from ``state``. Returns (state, losses (n_steps,)).

    ``callback(step, loss)`` is called after every step (progress bars, logging).
    """
    _check_core(tcfg)
    data = check_train_inputs(state, data, sched, cfg, tcfg)
    losses = np.empty(n_steps)
    for i in range(n_steps):
        x0, t, eps = draw_batch(rng, data, tcfg.batch_size, sched.T)
        state, losses[i] = train_step(state, x0, t, eps, sched, cfg, tcfg)
        if callback is not None:
            callback(state["opt"]["step"], losses[i])
    return state, losses
