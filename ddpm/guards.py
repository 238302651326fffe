"""Guards of a run: refuse up front what would not fit in memory, stop training that diverges (keeping the
last good state), and warn about results that look wrong: samples that sit on the training points
(memorisation), and a deterministic sampler on an ε-model whose schedule ends at a tiny ᾱ_T."""

from __future__ import annotations

import os
import warnings

import numpy as np

from ddpm_ref import MLPConfig, TrainConfig

from .model import Model, param_shapes
from .recipe import default_steps

__all__ = ["DIVERGENCE_FACTOR", "DivergenceError", "available_memory", "check_memory", "fit_memory", "check_finite",
           "MEMORISATION_RATIO", "MemorisationWarning", "warn_if_memorised", "DETERMINISTIC_MIN_ALPHA_BAR_T",
           "DeterministicSamplerWarning", "warn_if_tiny_alpha_bar_T"]

DIVERGENCE_FACTOR = 1e4       # a loss this many times its start value means training has diverged


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or weights; the last good state was kept."""


def available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable, else free physical pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def check_memory(parts: dict, what: str) -> None:
    """Refuse up front (ValueError) when the estimated bytes ``parts`` (name → bytes) exceed 80% of the
    memory available, naming the largest part — so no option value makes a run allocate unboundedly."""
    need = sum(parts.values())
    avail = available_memory()
    if need > 0.8 * avail:
        big = max(parts, key=parts.get)
        raise ValueError(f"{what} needs about {need / 2**30:.1f} GiB of memory, mostly for {big} "
                         f"({parts[big] / 2**30:.1f} GiB); {avail / 2**30:.1f} GiB is available: lower it")


def fit_memory(cfg: MLPConfig, tcfg: TrainConfig, T: int, n_train: int, n_eval: int) -> dict:
    """Estimated bytes of a fit, by part (float64 host arrays; the compiled copies are smaller)."""
    P = sum(int(np.prod(s)) for s in param_shapes(cfg).values())
    widths = cfg.n_in + cfg.emb_dim + cfg.hidden * cfg.depth + cfg.n_out
    return {"the weights, their EMA and Adam's moments (--hidden, --depth)": 8 * 6 * P,
            "the per-step loss history (--steps)": 8 * tcfg.steps,
            "the schedule and per-t history (--T)": 8 * (T + 1) * 24,
            "the training data (--n-train)": 8 * 3 * n_train * cfg.dim,
            "a batch's activations (--batch-size)": 8 * 4 * tcfg.batch_size * widths,
            "evaluation samples and statistics": 8 * (6 * n_eval * cfg.dim + 3 * 1024 * n_eval)}


def check_finite(m: Model, state: dict, losses: np.ndarray, out) -> None:
    """Refuse a chunk whose losses or weights are not finite: the model ``m`` (still the state before the
    chunk) is saved as the last good checkpoint, and the error says where it diverged and what to change."""
    # non-finite, or 10⁴ × above the loss of the first step, taken at the initial weights (a diverged Adam
    # run reaches 1e20 while still finite)
    first = float(m.losses[0] if m.losses.size else losses[0])
    limit = DIVERGENCE_FACTOR * max(1.0, abs(first)) if np.isfinite(first) else np.inf
    bad_loss = np.flatnonzero(~np.isfinite(losses) | (np.abs(losses) > limit))
    bad_w = [k for g in ("params", "ema") for k, v in state[g].items() if not np.all(np.isfinite(v))]
    if bad_loss.size == 0 and not bad_w:
        return
    where = (f"the loss is {losses[bad_loss[0]]} at step {m.step + bad_loss[0] + 1}" if bad_loss.size
             else f"weights {', '.join(sorted(bad_w)[:3])} are not finite after step {m.step + losses.size}")
    kept = "nothing was written"
    if out is not None:
        m.save(os.path.join(out, "model.npz"))
        kept = f"the last good state (step {m.step}) is in {os.path.join(out, 'model.npz')}"
    raise DivergenceError(f"training diverged: {where}; {kept}. Lower the learning rate (--lr, now "
                          f"{m.tcfg.lr:g}) or the gradient clip (now {m.tcfg.grad_clip:g}), then fit again")


DETERMINISTIC_MIN_ALPHA_BAR_T = 1e-6   # below it, DDIM and the ODE on an ε-model amplify ε_θ's error by 1/√ᾱ_T ≥ 1000


class MemorisationWarning(UserWarning):
    """``fit``'s samples sit closer to the training points than held-out data does: the model has learned the points."""


MEMORISATION_RATIO = 0.8      # nn_train_ratio below this warns (iris at 16,000 steps: 0.58; a generalising fit: ≈ 1)


def warn_if_memorised(metrics: dict) -> None:
    """Warn (MemorisationWarning) when ``fit``'s ``nn_train_ratio`` is below MEMORISATION_RATIO."""
    r = metrics.get("nn_train_ratio")
    if r is not None and np.isfinite(r) and r < MEMORISATION_RATIO:
        warnings.warn(f"the samples sit closer to the training points than held-out data does (median nearest-"
                      f"training-point distance {metrics['nn_train_samples_median']:.3g} vs "
                      f"{metrics['nn_train_heldout_median']:.3g} for held-out points, ratio {r:.2f} < "
                      f"{MEMORISATION_RATIO}): the model has memorised its {metrics['n_train']} training points; "
                      f"fit with fewer --steps (now {metrics['steps']}; default for this size: "
                      f"{default_steps(metrics['n_train'])})", MemorisationWarning, stacklevel=3)


class DeterministicSamplerWarning(UserWarning):
    """DDIM or the probability-flow ODE on an ε-model whose schedule ends at a tiny ᾱ_T."""


def warn_if_tiny_alpha_bar_T(m, what: str, stacklevel: int) -> None:
    """DDIM and the ODE read x̂_0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t from an ε-model: at t = T the error of ε_θ is
    multiplied by 1/√ᾱ_T, and nothing stochastic damps it afterwards (ancestral sampling's fresh noise does)."""
    a_T = float(m.sched.alpha_bar[-1])
    if m.tcfg.parametrization == "eps" and a_T < DETERMINISTIC_MIN_ALPHA_BAR_T:
        warnings.warn(f"{what} on this ε-model: its schedule ends at alpha_bar_T = {a_T:.2g}, so ε_θ's error at t = T "
                      f"is multiplied by 1/sqrt(alpha_bar_T) = {a_T ** -0.5:.3g}; expect poor results (measured: "
                      f"thousands of times the energy floor). Use the ancestral sampler, or refit with a schedule "
                      f"that ends near 1e-4 (today's 2-D default caps the cosine schedule's beta_t for that)",
                      DeterministicSamplerWarning, stacklevel=stacklevel)
