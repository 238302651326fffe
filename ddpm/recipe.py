"""The default recipe: the settings ``fit`` uses where the caller gives none, chosen by the data's dimension
(Fourier features, hidden width, the schedule and the cap on the cosine schedule's β_t) and by the
training-set size (the number of training steps)."""

from __future__ import annotations

import math

import numpy as np

import ddpm_ref
from ddpm_ref import TrainConfig

__all__ = ["RECIPE_ALPHA_BAR_T", "LOW_DIM", "WIDE_DIM", "STEPS_PER_POINT", "MIN_STEPS", "cosine_cap", "default_recipe",
           "default_steps"]

LOW_DIM = 3                   # the low-dimensional recipe (``default_recipe``) up to this many modelled coordinates
WIDE_DIM = 32                 # above this many, ``default_recipe`` widens the hidden layers
RECIPE_ALPHA_BAR_T = 1e-4       # the 2-D recipe caps the cosine schedule's β_t so that ᾱ_T is about this


def cosine_cap(T: int, alpha_bar_T: float = RECIPE_ALPHA_BAR_T) -> float:
    """The cap c on the cosine schedule's β_t (its ``max_beta``) at which its ᾱ_T is ``alpha_bar_T``, found by
    bisection (ᾱ_T falls as c grows) and rounded to 3 significant digits; 0.999 (the paper's) if even that
    leaves ᾱ_T above the target. At T = 1000 it is 0.108 and touches only the last 17 steps."""
    beta = ddpm_ref.make_schedule("cosine", T, warn=False, max_beta=1.0).beta[1:]        # uncapped: β_T = 1
    a_T = lambda c: math.exp(np.sum(np.log1p(-np.minimum(beta, c))))                    # ᾱ_T under cap c
    if a_T(0.999) >= alpha_bar_T:
        return 0.999
    lo, hi = 1e-6, 0.999                                  # a_T(lo) > target ≥ a_T(hi)
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if a_T(mid) > alpha_bar_T else (lo, mid)
    return float(f"{hi:.3g}")


def default_recipe(dim: int, T: int = 1000) -> dict:
    """The settings ``fit`` uses for data with ``dim`` modelled coordinates where the caller gives none.

    Up to ``LOW_DIM`` coordinates (2-D and 3-D point sets): input Fourier features of 6 octaves
    (``MLPConfig.fourier``) and the cosine schedule (Nichol & Dhariwal 2021), which spends more of the
    T steps at the low noise levels where fine structure is decided. Measured on the quality panel
    (README, "Quality"): with both, every 2-D set lands at its W2 and MMD² floors in 16,000 steps;
    without the features the MMD² of tight clusters stays 50–80× its floor. Above ``LOW_DIM``: x alone
    (the features add 2·6·D inputs and let small tables, iris's 150 points, be memorised) and, up to
    ``WIDE_DIM``, the linear schedule of Ho et al. The cosine schedule's β_t is capped (``max_beta``, :func:`cosine_cap`) so that ᾱ_T ≈ 1e-4
    (as the linear schedule's 4e-5), not the 2e-9 that the paper's cap of 0.999 leaves (2e-8 at a cap of 0.99):
    DDIM and the probability-flow ODE divide ε_θ's error by √ᾱ_T. At T = 1000 the cap is 0.108 (the last 17
    steps): with a cap of 0.99 instead, DDIM with 50 steps put moons samples at 2,529× the energy floor and
    the ODE's NLL 0.32 bits/dim above the bound, while ancestral sampling is the same at both caps
    (``benchmarks/ddim_table.py --max-beta 0.99`` against the default; README, "DDIM").
    Above ``WIDE_DIM`` coordinates (images such as the 64-pixel digits) the hidden width is 192 instead of
    128 (digits' sliced W2 went from 2.19× to 1.76× its floor, its fit from 33 s to 50 s), and the schedule
    is the capped cosine one again: with the cap (not the paper's 0.999, which gave the 11× above) digits'
    energy went from 3.06× to 2.47× its floor, MMD² 3.40× → 2.26×, per-pixel W1 2.65× → 2.37×, sliced W2
    1.76× → 1.57×, while its held-out bound rose from 5.79 to 6.64 bits/dim (README, "N-D data").
    Returns {"fourier": K, "hidden": H, "schedule": name, "schedule_params": dict}."""
    if dim <= LOW_DIM:
        return {"fourier": 6, "hidden": 128, "schedule": "cosine", "schedule_params": {"max_beta": cosine_cap(T)}}
    if dim > WIDE_DIM:
        return {"fourier": 0, "hidden": 192, "schedule": "cosine", "schedule_params": {"max_beta": cosine_cap(T)}}
    return {"fourier": 0, "hidden": 128, "schedule": "linear", "schedule_params": {}}


STEPS_PER_POINT = 16            # default training steps per training point, within [MIN_STEPS, TrainConfig.steps]
MIN_STEPS = 2_000


def default_steps(n_train: int) -> int:
    """The number of training steps ``fit`` takes where the caller gives none: 16 per training point,
    rounded to a thousand, within 2,000..16,000 (``TrainConfig.steps``).

    A built-in generator's 100,000 points get the full 16,000 steps. Small tables do not: at batch 512,
    16,000 steps are 68,000 passes over iris's 120 training points, and the model learns the points. Measured
    with ``ddpm fit NAME --steps S`` (median nearest-training-point distance of the samples over that of the
    held-out points, ``nn_train_ratio`` in metrics.json; held-out bound in bits/dim):

        iris (120 points)          S = 2,000: ratio 1.00, bound 5.61;  16,000: ratio 0.58, bound 7.05
        wine (142)                 S = 2,000: ratio 1.03, bound 5.96;  16,000: ratio 0.90, bound 54.4
        breast_cancer (455)        S = 8,000: ratio 1.14, bound −1.60; 16,000: ratio 1.05, bound −0.77
    """
    if not isinstance(n_train, (int, np.integer)) or isinstance(n_train, bool) or n_train < 1:
        raise ValueError(f"n_train must be a positive integer, got {n_train!r}")
    full = TrainConfig().steps
    return int(min(full, max(MIN_STEPS, round(STEPS_PER_POINT * n_train / 1000) * 1000)))
