"""The variational bound on −log p_θ(x_0) (Sohl-Dickstein et al. 2015; Ho et al. 2020, Eq. 5), term by term.

    −log p_θ(x_0) ≤ L_T + Σ_{t=2..T} L_{t−1} + L_0                    (all in nats, per point)
    L_T = KL(q(x_T|x_0) ‖ N(0, I))                                     prior term, no parameters
    L_{t−1} = KL(q(x_{t−1}|x_t, x_0) ‖ p_θ(x_{t−1}|x_t)),  x_t ~ q(x_t|x_0)  (Gaussian KL in closed form)
    L_0 = −log p_θ(x_0|x_1),  x_1 ~ q(x_1|x_0)                           the decoder

The decoder is a continuous Gaussian N(x_0; μ_θ(x_1, 1), σ_1²) — a density, right for continuous
data — or, given a bin width w, Ho's discretised Gaussian: the probability mass of the bin
[x_0 − w/2, x_0 + w/2] (a probability, right for data on a grid of spacing w).

``terms_at`` computes the step-t term for a batch (and its gradients w.r.t. μ_θ and log σ_t², used
by the L_vlb objective); ``bound`` sums every t for every point (each L_{t−1} with one draw of x_t, so
the per-point total is an unbiased Monte Carlo estimate of the bound, with a standard error).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr

from .forward import extract, q_mean_variance, q_posterior, q_sample
from .param import check_compatible, mean_from_output, p_log_variance
from .schedule import Schedule

__all__ = ["LN2", "normal_kl", "normal_kl_grad", "gaussian_nll", "discretized_gaussian_nll", "prior_kl",
           "terms_at", "terms_and_grads_at", "bound"]

LN2 = math.log(2.0)
_LOG_2PI = math.log(2.0 * math.pi)


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) per coordinate, in nats:
    ½(−1 + logvar2 − logvar1 + e^(logvar1−logvar2) + (mean1 − mean2)² e^(−logvar2))."""
    r = logvar1 - logvar2                   # e^r − 1 − r ≥ 0, written with expm1 so it stays ≥ 0 in floating point
    return 0.5 * (np.expm1(r) - r + (mean1 - mean2) ** 2 * np.exp(-logvar2))


def normal_kl_grad(mean1, logvar1, mean2, logvar2):
    """(∂KL/∂mean2, ∂KL/∂logvar2) of :func:`normal_kl` — the model is the second Gaussian."""
    inv = np.exp(-logvar2)
    dmean2 = (mean2 - mean1) * inv
    dlogvar2 = 0.5 * (1.0 - np.exp(logvar1 - logvar2) - (mean1 - mean2) ** 2 * inv)
    return dmean2, dlogvar2


def gaussian_nll(x, mean, logvar):
    """−log N(x; mean, e^logvar) per coordinate (nats) and its gradients (∂/∂mean, ∂/∂logvar)."""
    inv = np.exp(-logvar)
    r2 = (x - mean) ** 2 * inv
    return 0.5 * (_LOG_2PI + logvar + r2), -(x - mean) * inv, 0.5 * (1.0 - r2)


def discretized_gaussian_nll(x, mean, logvar, bin_width: float):
    """−log P(bin of width w around x) under N(mean, e^logvar), per coordinate (nats):
    −log(Φ((x + w/2 − μ)/σ) − Φ((x − w/2 − μ)/σ)), evaluated in log space so far tails stay finite."""
    sigma = np.exp(0.5 * logvar)
    hi = (x + 0.5 * bin_width - mean) / sigma
    lo = (x - 0.5 * bin_width - mean) / sigma
    # Φ(hi) − Φ(lo) = Φ(−lo) − Φ(−hi): use the side where the CDFs are small, so no cancellation.
    flip = lo > 0
    a = np.where(flip, -lo, hi)
    b = np.where(flip, -hi, lo)
    la, lb = log_ndtr(a), log_ndtr(b)
    return -(la + np.log1p(-np.exp(np.minimum(lb - la, -1e-300))))


def prior_kl(sched: Schedule, x0) -> np.ndarray:
    """L_T = KL(q(x_T|x_0) ‖ N(0, I)) per point (sum over coordinates), nats."""
    mean, var = q_mean_variance(sched, x0, sched.T)
    kl = normal_kl(mean, np.log(np.broadcast_to(var, mean.shape)), 0.0, 0.0)
    return kl.sum(axis=1)


def terms_at(sched: Schedule, x0, xt, t, out, parametrization: str = "eps", var_type: str = "beta",
             bin_width: float | None = None) -> np.ndarray:
    """The step-t term of the bound for a batch, per point (sum over D), in nats (B,).

    t ≥ 2: L_{t−1} = KL(q(x_{t−1}|x_t,x_0) ‖ N(μ_θ, σ_t²)); t = 1: L_0 = −log p_θ(x_0|x_1) (continuous
    Gaussian, or discretised with ``bin_width``). ``out`` is the network output (B, D), or (B, 2D)
    for learned variances.
    """
    return _terms(sched, x0, xt, t, out, parametrization, var_type, bin_width, False)


def terms_and_grads_at(sched: Schedule, x0, xt, t, out, parametrization: str = "eps", var_type: str = "beta"):
    """``terms_at`` (continuous decoder) and its gradient ∂term/∂out (B, out width): (term, dout)."""
    return _terms(sched, x0, xt, t, out, parametrization, var_type, None, True)


def _terms(sched, x0, xt, t, out, parametrization, var_type, bin_width, grads):
    """Rows with t ≥ 2 get the KL L_{t−1}, rows with t = 1 the decoder L_0; each computed on its own rows."""
    B, D = x0.shape
    t_arr = np.broadcast_to(np.asarray(t), (B,))
    out_mean, nu = (out[:, :D], out[:, D:]) if var_type == "learned" else (out, None)
    mean, dmean_dout = mean_from_output(parametrization, sched, xt, t_arr, out_mean)   # μ_θ (B, D)
    logvar, dlogvar_dnu = p_log_variance(sched, var_type, t_arr, xt, nu)                # log σ_t²
    logvar = np.broadcast_to(logvar, mean.shape)
    term, dmean, dlogvar = np.empty(B), np.empty((B, D)), np.empty((B, D))
    dec = t_arr == 1
    kl = ~dec
    if kl.any():                                    # L_{t−1} = KL(q(x_{t−1}|x_t, x_0) ‖ N(μ_θ, σ_t²)), t ≥ 2
        true_mean, true_var = q_posterior(sched, x0[kl], xt[kl], t_arr[kl])
        true_logvar = np.broadcast_to(np.log(true_var), true_mean.shape)
        term[kl] = normal_kl(true_mean, true_logvar, mean[kl], logvar[kl]).sum(axis=1)
        if grads:
            dmean[kl], dlogvar[kl] = normal_kl_grad(true_mean, true_logvar, mean[kl], logvar[kl])
    if dec.any():                                   # L_0 = −log p_θ(x_0|x_1), t = 1
        if bin_width is None:
            nll, dmean[dec], dlogvar[dec] = gaussian_nll(x0[dec], mean[dec], logvar[dec])
        else:
            bw = bin_width if np.ndim(bin_width) < 2 else bin_width[dec]
            nll = discretized_gaussian_nll(x0[dec], mean[dec], logvar[dec], bw)
        term[dec] = nll.sum(axis=1)
    if not grads:
        return term
    dout_mean = dmean * dmean_dout
    if var_type != "learned":
        return term, dout_mean
    return term, np.concatenate([dout_mean, dlogvar * dlogvar_dnu], axis=1)


def bound(denoise_fn, sched: Schedule, x0, rng: np.random.Generator, parametrization: str = "eps",
          var_type: str = "beta", bin_width: float | None = None, log_scale: float = 0.0) -> dict:
    """Every term of the bound for every point x_0 (N, D), summed over all t = 1..T (not one random t).

    ``denoise_fn(x_t, t) -> out`` is the network (``network(params, cfg)`` for the MLP). Each t uses one fresh draw x_t ~ q(x_t|x_0) from ``rng``.
    ``log_scale`` = Σ_d log s_d converts a density of standardised data u = (x − m)/s back to data
    coordinates (log p_x = log p_u − Σ log s); it is added to the continuous decoder term L_0 only,
    since KL terms do not change under an invertible map and a discretised probability has no Jacobian.

    Returns per-point arrays in nats, indexed by the paper's subscript: ``L`` (T + 1, N) with L[0] = L_0 (the
    decoder), L[k] = L_k = the KL of step t = k + 1 for k = 1..T−1, and L[T] = L_T (the prior); ``total`` (N,).
    """
    x0 = np.asarray(x0, dtype=np.float64)
    check_compatible(sched, parametrization)
    N, D = x0.shape
    T = sched.T
    L = np.zeros((T + 1, N))                                            # L[k] = L_k of Eq. 5
    L[T] = prior_kl(sched, x0)                                          # L_T
    for t in range(1, T + 1):                                           # step t's term is L_{t−1}
        xt = q_sample(sched, x0, t, rng.standard_normal(x0.shape))
        L[t - 1] = terms_at(sched, x0, xt, t, denoise_fn(xt, t), parametrization, var_type, bin_width)
    if bin_width is None:
        L[0] += log_scale                                               # the decoder's density in data coordinates
    return {"L": L, "total": L.sum(axis=0), "N": N, "D": D}
