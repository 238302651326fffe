"""The flat parameter vector θ shared by the compiled backends (numpy only; no numba, no cupy).

For L = depth + 1 linear layers of widths w_0 = D + E, w_1..w_{L−1} = H, w_L = n_out:
    W_l (w_l, w_{l+1}) row-major, then b_l (w_{l+1},), for l = 0..L−1, in that order.
"""

from __future__ import annotations

import numpy as np


def layout(widths):
    """Offsets of W_l and b_l in θ: array (L, 2) of start indices, and the total size."""
    offs = []
    o = 0
    for fi, fo in zip(widths[:-1], widths[1:]):
        offs.append((o, o + fi * fo))
        o += fi * fo + fo
    return np.array(offs, dtype=np.int64), o


def pack(params: dict, widths, dtype) -> np.ndarray:
    """dict of W{l}, b{l} -> flat θ (see module docstring)."""
    offs, n = layout(widths)
    theta = np.empty(n, dtype=dtype)
    for l in range(len(widths) - 1):
        w, b = params[f"W{l}"], params[f"b{l}"]
        theta[offs[l, 0]:offs[l, 0] + w.size] = w.ravel()
        theta[offs[l, 1]:offs[l, 1] + b.size] = b
    return theta


def unpack(theta: np.ndarray, widths) -> dict:
    """flat θ -> dict of float64 W{l}, b{l}."""
    offs, _ = layout(widths)
    out = {}
    for l, (fi, fo) in enumerate(zip(widths[:-1], widths[1:])):
        out[f"W{l}"] = theta[offs[l, 0]:offs[l, 0] + fi * fo].reshape(fi, fo).astype(np.float64)
        out[f"b{l}"] = theta[offs[l, 1]:offs[l, 1] + fo].astype(np.float64)
    return out
