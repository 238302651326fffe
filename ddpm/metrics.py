"""Sample-quality statistics: how far generated points are from the data.

energy_distance (Székely & Rizzo 2013), the V-statistic
    E(X, Y) = 2·mean‖x_i − y_j‖ − mean‖x_i − x_k‖ − mean‖y_j − y_l‖   (all pairs, i = k included)
It is ≥ 0 and 0 only when the two empirical distributions coincide. Between two independent samples
of the same distribution it is not 0 but ≈ E‖X − X'‖·(1/n + 1/m): the *floor* a perfect model reaches.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mean_pairwise_distance", "energy_distance", "w2", "mmd2", "data_scale", "MMD_BANDWIDTHS", "sample_statistics"]


def mean_pairwise_distance(a: np.ndarray, b: np.ndarray, chunk: int = 1024) -> float:
    """mean over all (i, j) of ‖a_i − b_j‖₂, computed in row chunks to bound memory."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) arrays with the same D, got {a.shape} and {b.shape}")
    b2 = np.sum(b * b, axis=1)                                             # (M,)
    total = 0.0
    for i in range(0, a.shape[0], chunk):
        ac = a[i:i + chunk]                                                # (c, D)
        d2 = np.sum(ac * ac, axis=1)[:, None] + b2[None, :] - 2.0 * ac @ b.T  # (c, M)
        total += float(np.sqrt(np.maximum(d2, 0.0)).sum())
    return total / (a.shape[0] * b.shape[0])


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance (V-statistic) between point sets x (N, D) and y (M, D); see the module docstring."""
    for name, arr in (("x", x), ("y", y)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"energy_distance: {name} contains NaN or infinite values")
    return 2.0 * mean_pairwise_distance(x, y) - mean_pairwise_distance(x, x) - mean_pairwise_distance(y, y)


def w2(x: np.ndarray, y: np.ndarray) -> float:
    """Exact 2-Wasserstein distance between the empirical distributions of x (N, D) and y (M, D):
    W2² = min over couplings π of Σ π_ij ‖x_i − y_j‖², uniform weights 1/N and 1/M.

    Solved exactly with POT's network simplex (``ot.emd2``, the field's library, optional: pip install
    'ddpm[ot]'); without POT, for N = M the optimal coupling is a permutation (Birkhoff), so scipy's
    ``linear_sum_assignment`` gives the same exact value (about 1.5× slower)."""
    x, y = _check_pair(x, y, "w2")
    cost = np.sum(x * x, axis=1)[:, None] + np.sum(y * y, axis=1)[None, :] - 2.0 * x @ y.T    # (N, M)
    np.maximum(cost, 0.0, out=cost)
    try:
        import ot
    except ImportError:
        ot = None
    if ot is not None:
        a, b = np.full(x.shape[0], 1.0 / x.shape[0]), np.full(y.shape[0], 1.0 / y.shape[0])
        return float(np.sqrt(max(ot.emd2(a, b, cost, numItermax=100 * cost.size), 0.0)))
    if x.shape[0] != y.shape[0]:
        raise ImportError("exact W2 between point sets of different sizes needs POT: pip install 'ddpm[ot]' (or pot)")
    from scipy.optimize import linear_sum_assignment
    r, c = linear_sum_assignment(cost)
    return float(np.sqrt(cost[r, c].mean()))


MMD_BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0)   # × the data's scale: small ones see fine structure


def data_scale(x: np.ndarray) -> float:
    """The scale the MMD bandwidths are relative to: the root mean per-coordinate variance of x."""
    return float(np.sqrt(np.mean(np.var(np.asarray(x, dtype=np.float64), axis=0))))


def mmd2(x: np.ndarray, y: np.ndarray, scale: float, bandwidths=MMD_BANDWIDTHS) -> float:
    """Unbiased MMD² (Gretton et al. 2012, Eq. 3) between x (N, D) and y (M, D) for the kernel
    k(a, b) = Σ_h exp(−‖a − b‖²/(2 (h·scale)²)), h over ``bandwidths``:
        MMD² = mean_{i≠k} k(x_i, x_k) + mean_{j≠l} k(y_j, y_l) − 2 mean_{i,j} k(x_i, y_j).
    Unbiased, so it scatters around 0 (and can be < 0) between two samples of one distribution."""
    x, y = _check_pair(x, y, "mmd2")
    return _mmd2(x, y, _gammas(scale, bandwidths))


def _gammas(scale, bandwidths):
    if not scale > 0:
        raise ValueError(f"mmd2: scale must be > 0, got {scale!r}")
    return [1.0 / (2.0 * (h * scale) ** 2) for h in bandwidths]


def _kernel_mean(a, b, gammas, same: bool, chunk: int = 1024) -> float:
    """mean of k(a_i, b_j) over all pairs, or over i ≠ j when ``same`` (a is b)."""
    b2 = np.sum(b * b, axis=1)
    total = 0.0
    for i in range(0, a.shape[0], chunk):
        ac = a[i:i + chunk]
        d2 = np.maximum(np.sum(ac * ac, axis=1)[:, None] + b2[None, :] - 2.0 * ac @ b.T, 0.0)   # (c, M)
        total += sum(float(np.exp(-g * d2).sum()) for g in gammas)
    if same:                                                   # drop the diagonal: k(a_i, a_i) = len(gammas)
        n = a.shape[0]
        if n < 2:
            raise ValueError("mmd2 needs at least 2 points in each set")
        return (total - len(gammas) * n) / (n * (n - 1))
    return total / (a.shape[0] * b.shape[0])


def _mmd2(x, y, gammas, kyy: float | None = None) -> float:
    kyy = _kernel_mean(y, y, gammas, True) if kyy is None else kyy
    return _kernel_mean(x, x, gammas, True) + kyy - 2.0 * _kernel_mean(x, y, gammas, False)


def _check_pair(x, y, what):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or x.shape[0] < 1 or y.shape[0] < 1:
        raise ValueError(f"{what}: need two non-empty (N, D) arrays with the same D, got {x.shape} and {y.shape}")
    for name, arr in (("x", x), ("y", y)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: {name} contains NaN or infinite values")
    return x, y


def sample_statistics(samples: np.ndarray, held: np.ndarray, refs: list, n_floor_exact: int = 2) -> dict:
    """Energy distance, exact W2 and small-bandwidth MMD² of ``samples`` (n, D) against held-out data ``held``,
    each next to its floor — the same statistic between an independent reference draw of the data (of
    the samples' size) and ``held`` — averaged over ``refs`` (the energy distance, cheap, over all of
    them; W2 and MMD² over the first ``n_floor_exact``) and the ratio statistic / floor. A statistic means
    something only next to its floor: a perfect model scores ratio ≈ 1 (|MMD²| for MMD's floor, since
    the unbiased MMD² scatters around 0 between two samples of one distribution). ``refs`` have n points
    each; W2 compares the first k = min(n, len(held)) points of each side (exact for equal sizes with or
    without POT), the others use all points. The sizes are in the result."""
    n = samples.shape[0]
    k = min(n, held.shape[0])          # W2 on k points of each side: an equal-size transport problem
    if any(r.shape[0] != n for r in refs):
        raise ValueError(f"every reference draw must have the samples' size {n}: "
                         f"got {[r.shape[0] for r in refs]}")
    scale = data_scale(held)
    floors_ot = refs[:max(1, n_floor_exact)]
    held = np.asarray(held, dtype=np.float64)
    m_hh = mean_pairwise_distance(held, held)                     # the held-out side's terms, once
    gammas = _gammas(scale, MMD_BANDWIDTHS)
    k_hh = _kernel_mean(held, held, gammas, True)

    def energy(a):
        return 2.0 * mean_pairwise_distance(a, held) - mean_pairwise_distance(a, a) - m_hh

    for name, arr in (("samples", samples), ("held", held)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"sample statistics: {name} contain NaN or infinite values")
    res = {"n_samples": int(n), "n_heldout": int(held.shape[0]), "floor_draws_energy": len(refs),
           "floor_draws_w2_mmd": len(floors_ot), "mmd2_bandwidths": [h * scale for h in MMD_BANDWIDTHS],
           "energy_distance": energy(samples),
           "energy_distance_floor": float(np.mean([energy(r) for r in refs])),
           "n_w2": int(k), "w2": w2(samples[:k], held[:k]),
           "w2_floor": float(np.mean([w2(r[:k], held[:k]) for r in floors_ot])),
           "mmd2": _mmd2(np.asarray(samples, dtype=np.float64), held, gammas, k_hh),
           "mmd2_floor": float(np.mean([abs(_mmd2(r, held, gammas, k_hh)) for r in floors_ot]))}
    for key in ("energy_distance", "w2", "mmd2"):
        short = "energy" if key == "energy_distance" else key
        res[f"{short}_ratio"] = res[key] / res[f"{key}_floor"] if res[f"{key}_floor"] > 0 else float("inf")
    return res
