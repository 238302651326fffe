"""The noise schedule: the variances β_1..β_T of the forward process and every array derived from them.

All arrays are float64 ("computations here in float64 for accuracy", Ho et al.), length T + 1 and
indexed by the paper's t: ``beta[t]`` is β_t, ``beta[0] = 0`` and ``alpha_bar[0] = 1`` (x_0 is data,
nothing has been added yet). Index 0 of arrays that have no meaning at t = 0 holds the value that
the formula gives there (e.g. ``beta_tilde[0] = 0``), never garbage.

Derived quantities (Ho et al. 2020, Sec. 2):
    α_t = 1 − β_t,   ᾱ_t = ∏_{s=1..t} α_s                        (used in Eq. 4)
    β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t                         (Eq. 7)
    μ̃_t(x_t, x_0) = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0
                   + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t          (Eq. 7)

Ho et al. use β_t rising linearly from β_1 = 10⁻⁴ to β_T = 0.02 over T = 1000 steps (Sec. 4):
:func:`linear_schedule`. Other schedules (cosine, quadratic, sigmoid, Sohl-Dickstein's, the linear one
rescaled for any T, zero terminal SNR) are extensions: ``ddpm_ref.make_schedule`` in named_schedules.py.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Schedule", "schedule_from_betas", "linear_schedule", "TerminalSNRWarning"]

# Above this ᾱ_T the prior term L_T = KL(q(x_T|x_0) ‖ N(0, I)) is no longer negligible
# (≈ ᾱ_T |x_0|²/2 nats for small ᾱ_T: the variance terms cancel to first order) and samples started from N(0, I) are
# visibly shrunk: x_T really has a mean √ᾱ_T · x_0 the sampler never sees.
ALPHA_BAR_T_WARN = 1e-3


class TerminalSNRWarning(UserWarning):
    """ᾱ_T is not close to 0: q(x_T) is not N(0, I), so the sampler starts from the wrong prior."""


@dataclass(frozen=True, eq=False)
class Schedule:
    """An immutable noise schedule: β_t for t = 1..T and the arrays derived from it (float64, length T + 1).

    Build it with :func:`linear_schedule` (Ho et al.'s), :func:`schedule_from_betas` (any β array) or
    ``ddpm_ref.make_schedule`` (every named schedule, in named_schedules.py).
    """

    name: str
    beta: np.ndarray
    alpha: np.ndarray = field(repr=False)
    alpha_bar: np.ndarray = field(repr=False)
    alpha_bar_prev: np.ndarray = field(repr=False)
    sqrt_alpha_bar: np.ndarray = field(repr=False)
    sqrt_one_minus_alpha_bar: np.ndarray = field(repr=False)
    beta_tilde: np.ndarray = field(repr=False)
    posterior_mean_coef_x0: np.ndarray = field(repr=False)
    posterior_mean_coef_xt: np.ndarray = field(repr=False)
    params: dict = field(default_factory=dict, repr=False)

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return len(self.beta) - 1

    def to_config(self) -> dict:
        """A JSON-serialisable description (name, T, parameters); the β array is stored separately."""
        return {"name": self.name, "T": self.T, "params": dict(self.params)}

    def __repr__(self) -> str:
        return (f"Schedule(name={self.name!r}, T={self.T}, beta_1={self.beta[1]:.3g}, "
                f"beta_T={self.beta[-1]:.3g}, alpha_bar_T={self.alpha_bar[-1]:.3g})")


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def schedule_from_betas(beta: np.ndarray, name: str = "custom", params: dict | None = None,
                        warn: bool = True) -> Schedule:
    """Build a :class:`Schedule` from β_1..β_T (an array of length T, *not* T + 1).

    Validates that every β_t is finite and 0 < β_t < 1 (β_t is a variance of the forward step
    q(x_t | x_{t−1}) = N(√(1−β_t) x_{t−1}, β_t I), Eq. 2). Warns with :class:`TerminalSNRWarning`
    when ᾱ_T > 1e-3, because then q(x_T | x_0) is far from the N(0, I) the sampler starts from.
    """
    b = np.asarray(beta, dtype=np.float64)
    if b.ndim != 1 or b.size < 1:
        raise ValueError(f"beta must be a 1-D array of length T >= 1 (β_1..β_T), got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        bad = int(np.flatnonzero(~np.isfinite(b))[0]) + 1
        raise ValueError(f"beta must be finite; beta_{bad} = {b[bad - 1]}")
    # β_T = 1 is allowed (ᾱ_T = 0: zero terminal SNR, x_T is pure noise); β_t = 1 earlier would erase
    # the data before the chain ends, and β_t ≥ 1 or ≤ 0 is not a variance of a contraction step.
    upper_ok = np.concatenate([b[:-1] < 1, b[-1:] <= 1])
    if np.any(b <= 0) or not np.all(upper_ok):
        bad = int(np.flatnonzero((b <= 0) | ~upper_ok)[0]) + 1
        raise ValueError(f"every beta_t must satisfy 0 < beta_t < 1 (a variance of one forward step; only "
                         f"beta_T may equal 1); beta_{bad} = {float(b[bad - 1])!r}")

    beta = np.concatenate([[0.0], b])                        # (T+1,), beta[0] = 0
    alpha = 1.0 - beta                                       # α_t
    alpha_bar = np.cumprod(alpha)                            # ᾱ_t, ᾱ_0 = 1
    alpha_bar_prev = np.concatenate([[1.0], alpha_bar[:-1]])  # ᾱ_{t−1}; index 0 set to 1 (unused)
    one_minus_ab = 1.0 - alpha_bar
    with np.errstate(divide="ignore", invalid="ignore"):
        # Eq. 7; at t = 0 the formulas are 0/0, defined as 0 (no posterior step exists there).
        beta_tilde = np.where(one_minus_ab > 0, (1.0 - alpha_bar_prev) / one_minus_ab * beta, 0.0)
        coef_x0 = np.where(one_minus_ab > 0, np.sqrt(alpha_bar_prev) * beta / one_minus_ab, 1.0)
        coef_xt = np.where(one_minus_ab > 0, np.sqrt(alpha) * (1.0 - alpha_bar_prev) / one_minus_ab, 0.0)

    sched = Schedule(
        name=name,
        beta=_readonly(beta),
        alpha=_readonly(alpha),
        alpha_bar=_readonly(alpha_bar),
        alpha_bar_prev=_readonly(alpha_bar_prev),
        sqrt_alpha_bar=_readonly(np.sqrt(alpha_bar)),
        sqrt_one_minus_alpha_bar=_readonly(np.sqrt(one_minus_ab)),
        beta_tilde=_readonly(beta_tilde),
        posterior_mean_coef_x0=_readonly(coef_x0),
        posterior_mean_coef_xt=_readonly(coef_xt),
        params=dict(params or {}),
    )
    if warn and sched.alpha_bar[-1] > ALPHA_BAR_T_WARN:
        ab = sched.alpha_bar[-1]
        warnings.warn(
            f"schedule {name!r} with T={sched.T} ends at alpha_bar_T = {ab:.3g} (sqrt = {math.sqrt(ab):.3g}): "
            f"q(x_T|x_0) keeps {math.sqrt(ab):.1%} of the data's scale, so samples started from N(0, I) "
            f"come out shrunk and the prior term L_T is not negligible. Increase T, use larger betas "
            f"(the 'linear' schedule rescales by 1000/T), or use the 'cosine' schedule.",
            TerminalSNRWarning, stacklevel=2)
    return sched


def linear_schedule(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> Schedule:
    """Ho et al.'s schedule (Sec. 4): β_t evenly spaced from β_1 = 10⁻⁴ to β_T = 0.02 over T = 1000 steps."""
    return schedule_from_betas(np.linspace(beta_1, beta_T, T, dtype=np.float64), name="linear",
                               params={"beta_start": beta_1, "beta_end": beta_T})
