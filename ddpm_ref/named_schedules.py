"""Every named noise schedule, for any T: ``make_schedule(name, T, **params)`` (an extension of schedule.py).

Ho et al. fix T = 1000 and β_t from 10⁻⁴ to 0.02 (``ddpm_ref.linear_schedule``). Later work changed the
schedule; each β array here is handed to ``schedule_from_betas``, which derives everything else:

    linear          Ho's ends scaled by 1000/T (Nichol & Dhariwal 2021), so that ᾱ_T ≈ 0 for any T
    cosine          ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s)·π/2) (Nichol & Dhariwal 2021, Eq. 17)
    quadratic       √β_t evenly spaced (Ho et al.'s code, "quad")
    sigmoid         β_t follows a sigmoid between the linear ends (GeoDiff)
    sohl_dickstein  β_t = 1/(T − t + 1), ending at β_T = 1 (Sohl-Dickstein et al. 2015)

and ``zero_terminal_snr=True`` rescales any of them so that ᾱ_T = 0 (Lin et al. 2023).
"""

from __future__ import annotations

import math

import numpy as np

from .schedule import Schedule, schedule_from_betas

__all__ = ["make_schedule", "SCHEDULES", "rescale_zero_terminal_snr"]


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
