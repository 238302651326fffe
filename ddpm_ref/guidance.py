"""Class-conditional diffusion and classifier-free guidance (Ho & Salimans 2022) — an extension of the core.

The network ε_θ(x_t, t, y) is the MLP with a class table (``MLPConfig(n_classes=C)``): emb(t) + E_y enters
layer 0, and row C of the table is ∅, "no class". One network learns both the conditional and the
unconditional model:

    training   Algorithm 1 on labelled pairs (x_0, y), with y replaced by ∅ with probability p_uncond
               (Ho & Salimans 2022, Algorithm 1; p_uncond = 0.1 here, 0.1–0.2 there);
    sampling   any sampler, with ε_θ replaced by the guided prediction (their Eq. 6)

                   ε̃_θ(x_t, t, y) = (1 + w)·ε_θ(x_t, t, y) − w·ε_θ(x_t, t, ∅),

               w = 0: the conditional model; w > 0 trades diversity for class fidelity.

The combination has coefficients (1 + w) and −w that sum to 1, so it commutes with every affine map of the
output: guiding an x_0-, v- or μ-prediction is the same as guiding the ε it implies, and ``guided_network``
combines whatever the network outputs (its first D columns; learned-variance columns are the conditional
pass's). The samplers take it as any ``denoise_fn(x_t, t)``: ancestral (``p_sample_loop_general``), DDIM and
the few-step solvers need no change.
"""

from __future__ import annotations

import numpy as np

from .mlp import Denoiser, MLPConfig, class_index, forward
from .objectives import as_general, train_step_general, with_history
from .schedule import Schedule
from .train import TrainConfig, check_train_inputs

__all__ = ["P_UNCOND", "check_labels", "draw_batch_conditional", "train_conditional", "guided_output",
           "GuidedDenoiser", "guided_network"]

P_UNCOND = 0.1                   # probability that training drops a label (Ho & Salimans: 0.1 or 0.2)


def check_labels(labels, n: int, n_classes: int) -> np.ndarray:
    """The training labels as (n,) int64 in 0..C − 1 (``n_classes`` = C): one class per data row."""
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be {n} integers (one class index per data row), got {labels.dtype} of "
                         f"shape {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {int(labels.min())}..{int(labels.max())}")
    return labels.astype(np.int64)


def draw_batch_conditional(rng: np.random.Generator, data: np.ndarray, labels: np.ndarray, batch_size: int,
                           T: int, p_uncond: float, n_classes: int):
    """Alg. 1 lines 1–3 on labelled data, then the label dropout of classifier-free guidance:
    (x_0, y, t, ε), with x_0, t and ε the numbers ``train.draw_batch`` draws from the same ``rng``, y the
    drawn rows' labels, each replaced by ∅ (= ``n_classes``) where a uniform draw falls below p_uncond."""
    idx = rng.integers(0, data.shape[0], size=batch_size)
    t = rng.integers(1, T + 1, size=batch_size)
    eps = rng.standard_normal((batch_size, data.shape[1]))
    drop = rng.random(batch_size) < p_uncond
    return data[idx], np.where(drop, n_classes, labels[idx]), t, eps


def train_conditional(state: dict, data: np.ndarray, labels, sched: Schedule, cfg: MLPConfig, tcfg: TrainConfig,
                      rng: np.random.Generator, n_steps: int, p_uncond: float = P_UNCOND,
                      callback=None) -> tuple[dict, np.ndarray]:
    """Algorithm 1 for ε_θ(x_t, t, y) with label dropout: ``n_steps`` steps of ``train_step_general`` (any
    objective and parametrisation of ``tcfg``) on the draws of ``draw_batch_conditional``. Returns (state,
    losses (n_steps,))."""
    if not cfg.n_classes:
        raise ValueError("a conditional model needs MLPConfig(n_classes=C) with C >= 1")
    if not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond!r}")
    tcfg = as_general(tcfg)
    if tcfg.t_sampling != "uniform":
        raise ValueError("conditional training draws t uniformly (importance sampling of t is not supported)")
    data = check_train_inputs(data, sched, cfg, tcfg.parametrization)
    labels = check_labels(labels, data.shape[0], cfg.n_classes)
    state = with_history(state, sched.T)
    losses = np.empty(n_steps)
    for i in range(n_steps):
        x0, y, t, eps = draw_batch_conditional(rng, data, labels, tcfg.batch_size, sched.T, p_uncond, cfg.n_classes)
        state, losses[i] = train_step_general(state, x0, t, eps, sched, cfg, tcfg, None, y)
        if callback is not None:
            callback(state["opt"]["step"], losses[i])
    return state, losses


def guided_output(out_y: np.ndarray, out_null: np.ndarray, w: float, D: int) -> np.ndarray:
    """Ho & Salimans 2022, Eq. 6, on the network's outputs (B, n_out): (1 + w)·out_y − w·out_∅ in the first D
    columns (the prediction), the conditional pass's values in the rest (a learned variance)."""
    out = out_y.copy()
    out[:, :D] = (1.0 + w) * out_y[:, :D] - w * out_null[:, :D]
    return out


class GuidedDenoiser(Denoiser):
    """``denoise_fn(x_t, t)`` = the guided prediction ε̃_θ(x_t, t, y) with guidance weight w (Eq. 6): two passes
    of the network, with y and with ∅ (one when w = 0). ``y`` is a class index for every point or one per point;
    its ``divergence`` is (1 + w)·div_y − w·div_∅ (the trace is linear), so the ODE likelihood takes it too."""

    def __init__(self, params: dict, cfg: MLPConfig, y, w: float):
        if not cfg.n_classes:
            raise ValueError("guidance needs a conditional network (MLPConfig(n_classes=C) with C >= 1)")
        if not np.isfinite(w):
            raise ValueError(f"the guidance weight w must be a finite number, got {w!r}")
        super().__init__(params, cfg, y)
        self.w = float(w)

    def _y(self, B: int) -> np.ndarray:
        return class_index(self.y, B, self.cfg.n_classes)

    def __call__(self, xt, t) -> np.ndarray:
        y = self._y(np.shape(xt)[0])
        out_y = forward(self.params, xt, t, self.cfg, y)[0]
        if self.w == 0:
            return out_y
        return guided_output(out_y, forward(self.params, xt, t, self.cfg, None)[0], self.w, self.cfg.dim)

    def divergence(self, xt, t) -> np.ndarray:
        div_y = Denoiser(self.params, self.cfg, self._y(np.shape(xt)[0])).divergence(xt, t)
        if self.w == 0:
            return div_y
        return (1.0 + self.w) * div_y - self.w * Denoiser(self.params, self.cfg, None).divergence(xt, t)


def guided_network(params: dict, cfg: MLPConfig, y, w: float = 0.0) -> GuidedDenoiser:
    """The conditional MLP as a guided ``denoise_fn(x_t, t)`` for class ``y`` with guidance weight ``w``."""
    return GuidedDenoiser(params, cfg, y, w)
