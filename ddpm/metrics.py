"""Sample-quality statistics: how far generated points are from the data.

energy_distance (Székely & Rizzo 2013), the V-statistic
    E(X, Y) = 2·mean‖x_i − y_j‖ − mean‖x_i − x_k‖ − mean‖y_j − y_l‖   (all pairs, i = k included)
It is ≥ 0 and 0 only when the two empirical distributions coincide. Between two independent samples
of the same distribution it is not 0 but ≈ E‖X − X'‖·(1/n + 1/m): the *floor* a perfect model reaches.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mean_pairwise_distance", "energy_distance"]


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
