"""Noise schedules: the variances β_1..β_T of the forward process and every array derived from them.

All arrays are float64 ("computations here in float64 for accuracy", Ho et al.), length T + 1 and
indexed by the paper's t: ``beta[t]`` is β_t, ``beta[0] = 0`` and ``alpha_bar[0] = 1`` (x_0 is data,
nothing has been added yet). Index 0 of arrays that have no meaning at t = 0 holds the value that
the formula gives there (e.g. ``beta_tilde[0] = 0``), never garbage.

Derived quantities (Ho et al. 2020, Sec. 2):
    α_t = 1 − β_t,   ᾱ_t = ∏_{s=1..t} α_s                        (used in Eq. 4)
    β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t                         (Eq. 7)
    μ̃_t(x_t, x_0) = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x_0
                   + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t          (Eq. 7)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Schedule", "make_schedule", "schedule_from_betas", "SCHEDULES", "TerminalSNRWarning",
           "rescale_zero_terminal_snr"]

# Above this ᾱ_T the prior term L_T = KL(q(x_T|x_0) ‖ N(0, I)) is no longer negligible
# (≈ ᾱ_T/2 · (|x_0|² − 1) nats per dimension for small ᾱ_T) and samples started from N(0, I) are
# visibly shrunk: x_T really has a mean √ᾱ_T · x_0 the sampler never sees.
ALPHA_BAR_T_WARN = 1e-3


class TerminalSNRWarning(UserWarning):
    """ᾱ_T is not close to 0: q(x_T) is not N(0, I), so the sampler starts from the wrong prior."""


@dataclass(frozen=True, eq=False)
class Schedule:
    """An immutable noise schedule: β_t for t = 1..T and the arrays derived from it (float64, length T + 1).

    Build it with :func:`make_schedule` (named schedules) or :func:`schedule_from_betas` (any β array).
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
    # Set by ``respace.respace`` only: the schedule this one is a subsequence of, and t_model (T + 1,),
    # the step of ``parent`` that new step k stands for (the network was trained on ``parent``'s steps).
    parent: "Schedule | None" = field(default=None, repr=False)
    t_model: np.ndarray | None = field(default=None, repr=False)

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


def _rescaled_ends(T: int, beta_start, beta_end):
    scale = 1000.0 / T
    b0 = scale * 1e-4 if beta_start is None else beta_start
    b1 = scale * 0.02 if beta_end is None else beta_end
    if b1 >= 1:
        raise ValueError(f"the rescaled schedule needs T > 20 (β_T = 0.02·1000/T = {b1:.3g} must be < 1); "
                         f"got T = {T}: pass beta_end or use 'cosine'")
    return b0, b1


def _linear_betas(T: int, beta_start: float | None = None, beta_end: float | None = None) -> np.ndarray:
    # Ho et al.: β from 1e-4 to 0.02 at T = 1000. Improved DDPM (Nichol & Dhariwal 2021, Sec. 3 and
    # their code) scales both ends by 1000/T so that ᾱ_T ≈ 0 for any T.
    b0, b1 = _rescaled_ends(T, beta_start, beta_end)
    return np.linspace(b0, b1, T, dtype=np.float64)


def _cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    # Nichol & Dhariwal 2021, Eq. 17: ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2),
    # β_t = 1 − ᾱ_t/ᾱ_{t−1}, clipped at max_beta to avoid the singularity at t = T.
    t = np.arange(T + 1, dtype=np.float64)
    f = np.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)


def _sohl_dickstein_betas(T: int, beta_1: float | None = None) -> np.ndarray:
    # β_t = 1/(T − t + 1), β_T = 1 (ᾱ_T = 0 exactly); β_1 = 1/T unless ``beta_1`` sets it smaller
    # (Sohl-Dickstein et al. 2015 fix β_1 to a small constant so the last reverse step can be
    # sharp; their Gaussian runs learned β_2..T, 1/(T − t + 1) is their binomial schedule).
    t = np.arange(1, T + 1, dtype=np.float64)
    beta = 1.0 / (T - t + 1.0)
    if beta_1 is not None:
        beta[0] = beta_1
    return beta


def _quadratic_betas(T: int, beta_start: float | None = None, beta_end: float | None = None) -> np.ndarray:
    # √β evenly spaced between √β_1 and √β_T (Ho et al.'s "quad" option), ends as the linear schedule.
    b0, b1 = _rescaled_ends(T, beta_start, beta_end)
    return np.linspace(math.sqrt(b0), math.sqrt(b1), T) ** 2


def _sigmoid_betas(T: int, beta_start: float | None = None, beta_end: float | None = None) -> np.ndarray:
    # β_t = β_1 + (β_T − β_1)·σ(s_t), s_t evenly spaced in [−6, 6] (the "sigmoid" schedule of GeoDiff).
    b0, b1 = _rescaled_ends(T, beta_start, beta_end)
    return b0 + (b1 - b0) / (1.0 + np.exp(-np.linspace(-6.0, 6.0, T)))


def rescale_zero_terminal_snr(beta: np.ndarray) -> np.ndarray:
    """Shift and scale √ᾱ_t so that √ᾱ_T = 0 and √ᾱ_1 is unchanged (Lin et al. 2023, "Common Diffusion
    Noise Schedules and Sample Steps are Flawed", arXiv:2305.08891, Alg. 1); returns the new β_1..β_T
    (β_T = 1)."""
    sab = np.sqrt(np.cumprod(1.0 - np.asarray(beta, dtype=np.float64)))
    s1, sT = sab[0], sab[-1]
    sab = (sab - sT) * s1 / (s1 - sT)
    ab = sab ** 2
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    return 1.0 - ab / ab_prev


SCHEDULES = {"linear": _linear_betas, "cosine": _cosine_betas, "quadratic": _quadratic_betas,
             "sigmoid": _sigmoid_betas, "sohl_dickstein": _sohl_dickstein_betas}


def make_schedule(name: str, T: int, warn: bool = True, zero_terminal_snr: bool = False, **params) -> Schedule:
    """Build a named schedule with T steps.

    ``linear``: β_t evenly spaced from 1e-4·(1000/T) to 0.02·(1000/T) (Ho et al. at T = 1000,
    rescaled as Improved DDPM does; ``beta_start``/``beta_end`` override the ends).
    ``cosine``: Nichol & Dhariwal Eq. 17 (``s`` = 0.008, ``max_beta`` = 0.999).
    ``quadratic``: √β evenly spaced; ``sigmoid``: β follows a sigmoid between the linear ends.
    ``sohl_dickstein``: β_t = 1/(T − t + 1), ending at β_T = 1 (ᾱ_T = 0); ``beta_1`` overrides β_1.
    ``zero_terminal_snr=True`` rescales any of them so that ᾱ_T = 0 (Lin et al. 2023).
    """
    if not isinstance(T, (int, np.integer)) or isinstance(T, bool) or T < 1:
        raise ValueError(f"T must be a positive integer number of steps, got {T!r}")
    T = int(T)
    try:
        make_betas = SCHEDULES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown schedule {name!r}; known schedules: {', '.join(sorted(SCHEDULES))}") from None
    try:
        betas = make_betas(T, **params)
    except TypeError as e:
        raise ValueError(f"bad parameters for schedule {name!r}: {e}") from None
    if zero_terminal_snr:
        betas = rescale_zero_terminal_snr(betas)
        params = {**params, "zero_terminal_snr": True}
    return schedule_from_betas(betas, name=name, params=params, warn=warn)
