"""The flat parameter vector θ shared by the compiled backends, and the shapes their kernels are handed
(numpy only; no numba, no cupy).

For L = depth + 1 linear layers of widths w_0 = F + E (F = D(1 + 2K): γ(x) with K Fourier octaves),
w_1..w_{L−1} = H, w_L = n_out:
    W_l (w_l, w_{l+1}) row-major, then b_l (w_{l+1},), for l = 0..L−1, in that order;
    a conditional network's class table C (C + 1, E) row-major after them, in training only (``pack(...,
    table=True)``): the samplers fold its rows into their time tables instead.

A compiled kernel indexes every array it is given by these widths without bounds checks (Numba in
its default mode, CUDA always), so each host path calls ``check_train_arrays`` or
``check_sampler_arrays`` — one per kernel kind, for both backends — before any kernel call: a wrong
shape is a ``ValueError`` here, never a read past a buffer there.
"""

from __future__ import annotations

import numpy as np


def model_widths(cfg) -> np.ndarray:
    """The layer widths w_0..w_L of ``cfg``'s MLP (int64): [F + E, H (depth times), n_out]."""
    from ddpm_ref.mlp import layer_widths
    return np.array(layer_widths(cfg), dtype=np.int64)


def layout(widths):
    """Offsets of W_l and b_l in θ: array (L, 2) of start indices, and the total size."""
    offs = []
    o = 0
    for fi, fo in zip(widths[:-1], widths[1:]):
        offs.append((o, o + fi * fo))
        o += fi * fo + fo
    return np.array(offs, dtype=np.int64), o


def pack(params: dict, widths, dtype, table: bool = False) -> np.ndarray:
    """dict of W{l}, b{l} -> flat θ (see module docstring); each array must have its layer's shape. With
    ``table``, a conditional network's class table ``C`` follows the layers."""
    offs, n = layout(widths)
    if table:
        return np.concatenate([pack(params, widths, dtype), np.asarray(params["C"], dtype=dtype).ravel()])
    theta = np.empty(n, dtype=dtype)
    for l, (fi, fo) in enumerate(zip(widths[:-1], widths[1:])):
        w, b = np.asarray(params[f"W{l}"]), np.asarray(params[f"b{l}"])
        if w.shape != (fi, fo) or b.shape != (fo,):
            raise ValueError(f"W{l}, b{l} must have shapes {(int(fi), int(fo))}, {(int(fo),)} for layer widths "
                             f"{[int(w_) for w_ in widths]}; got {w.shape}, {b.shape}")
        theta[offs[l, 0]:offs[l, 0] + w.size] = w.ravel()
        theta[offs[l, 1]:offs[l, 1] + b.size] = b
    return theta


def unpack(theta: np.ndarray, widths, table_shape: tuple | None = None) -> dict:
    """flat θ -> dict of float64 W{l}, b{l}; and C of ``table_shape`` from θ's tail when given."""
    offs, P = layout(widths)
    out = {}
    if table_shape is not None:
        out["C"] = theta[P:P + table_shape[0] * table_shape[1]].reshape(table_shape).astype(np.float64)
    for l, (fi, fo) in enumerate(zip(widths[:-1], widths[1:])):
        out[f"W{l}"] = theta[offs[l, 0]:offs[l, 0] + fi * fo].reshape(fi, fo).astype(np.float64)
        out[f"b{l}"] = theta[offs[l, 1]:offs[l, 1] + fo].astype(np.float64)
    return out


# --- what the kernels are handed ------------------------------------------------------------------------

def class_table_shape(cfg) -> tuple | None:
    """(C + 1, E) of a conditional network's class table, None for an unconditional one."""
    return (cfg.n_classes + 1, cfg.emb_dim) if cfg.n_classes else None


def _shape(name: str, a, shape: tuple) -> None:
    if tuple(a.shape) != tuple(int(s) for s in shape):
        raise ValueError(f"{name} must have shape {tuple(int(s) for s in shape)}, got {tuple(a.shape)}")


def _absent(a) -> bool:
    """None or no rows: how the kernels are told "no array" (the Numba kernels test the leading length)."""
    return a is None or (a.ndim >= 1 and a.shape[0] == 0)


def _check_widths(cfg, widths) -> None:
    want = model_widths(cfg)
    got = np.asarray(widths)
    if got.shape != want.shape or np.any(got != want):
        raise ValueError(f"layer widths {got.tolist()} do not match the model config {want.tolist()} "
                         f"(F + E, H × depth, n_out)")


def check_train_arrays(cfg, widths, T: int, B: int, theta, m, s, ema, data, emb, sqrt_ab, sqrt_1mab, lrs,
                       idx=None, tt=None, eps=None, yy=None) -> None:
    """The fused training kernels' arguments (cpu.train_steps_kernel, kernels.cu ddpm_train_tiles/ddpm_adam):
    widths of ``cfg`` with w_L = D (L_simple on ε: a learned-variance model's 2D outputs are not ε);
    θ, m, s, ema of the layout's length P (plus the class table's size, conditional); data (N ≥ 1, D); the embedding table (T+1, E); √ᾱ, √(1−ᾱ)
    (T+1,); one learning rate per step (K,); and, unless the kernels draw them themselves (None),
    idx, tt (K, B) with 0 ≤ idx < N and 1 ≤ tt ≤ T, and ε (K, B, D). Arrays may be NumPy or CuPy; the
    value ranges are checked on NumPy arrays (the host draws). A conditional network's classes yy (K, B) in
    0..C (C = no class)."""
    D = cfg.dim
    _check_widths(cfg, widths)
    if int(widths[-1]) != D:
        raise ValueError(f"the fused training kernels fit ε with L_simple: the network needs {D} outputs, "
                         f"this one has {int(widths[-1])} (out_dim {cfg.out_dim}, learned variances?); "
                         "use backend 'numpy'")
    _, P = layout(widths)
    table = class_table_shape(cfg)
    P += 0 if table is None else table[0] * table[1]
    for name, a in (("theta", theta), ("m", m), ("s", s), ("ema", ema)):
        _shape(name, a, (P,))
    if data.ndim != 2 or data.shape[1] != D or data.shape[0] < 1:
        raise ValueError(f"data must have shape (N, {D}) with N >= 1, got {tuple(data.shape)}")
    _shape("the embedding table", emb, (T + 1, cfg.emb_dim))
    _shape("sqrt_alpha_bar", sqrt_ab, (T + 1,))
    _shape("sqrt_one_minus_alpha_bar", sqrt_1mab, (T + 1,))
    if lrs.ndim != 1:
        raise ValueError(f"lrs must have shape (K,), got {tuple(lrs.shape)}")
    K = lrs.shape[0]
    if (idx is None) != (tt is None) or (idx is None) != (eps is None):
        raise ValueError("pass all of idx, tt, eps (the draws), or none (the kernels draw them)")
    if idx is None:
        return
    _shape("idx", idx, (K, B))
    _shape("tt", tt, (K, B))
    _shape("eps", eps, (K, B, D))
    if isinstance(idx, np.ndarray) and idx.size and (idx.min() < 0 or idx.max() >= data.shape[0]):
        raise ValueError(f"idx must index the {data.shape[0]} data rows, got values in {idx.min()}..{idx.max()}")
    if isinstance(tt, np.ndarray) and tt.size and (tt.min() < 1 or tt.max() > T):
        raise ValueError(f"tt must lie in 1..T = 1..{T}, got values in {tt.min()}..{tt.max()}")
    if table is None and not _absent(yy):
        raise ValueError("classes yy were given for an unconditional network (MLPConfig.n_classes = 0)")
    if table is not None:
        if yy is None:
            raise ValueError("a conditional network's training needs the classes yy (K, B)")
        _shape("yy", yy, (K, B))
        if isinstance(yy, np.ndarray) and yy.size and (yy.min() < 0 or yy.max() > cfg.n_classes):
            raise ValueError(f"yy must lie in 0..{cfg.n_classes} ({cfg.n_classes} = no class), got "
                             f"{yy.min()}..{yy.max()}")


def check_sampler_arrays(cfg, widths, theta, x, t_table, c_x, c_eps, sigma, z=None, traj=None,
                         t_null=None) -> None:
    """The sampler kernels' arguments (cpu.sample_kernel, kernels.cu ddpm_sample/ddpm_sample_tc):
    widths of ``cfg`` with w_L ≥ D (the kernels read ε̂ from the first D outputs, so a learned-variance
    model's extra outputs are ignored); θ of the layout's length; x (N, D); the time table (K, H); c_x,
    c_eps, sigma (K,); z None or without rows (drawn in-kernel) or (K, N, D); traj None or without rows,
    or (K+1, N, D); the guided samplers' no-class table ``t_null`` None or without rows, or (K, H)."""
    D, H = cfg.dim, cfg.hidden
    _check_widths(cfg, widths)
    if int(widths[-1]) < D:
        raise ValueError(f"the sampler reads ε̂ from the first D = {D} outputs; this network has {int(widths[-1])}")
    _, P = layout(widths)
    _shape("theta", theta, (P,))
    if x.ndim != 2 or x.shape[1] != D:
        raise ValueError(f"x_T must have shape (N, {D}), got {tuple(x.shape)}")
    N = x.shape[0]
    if t_table.ndim != 2 or t_table.shape[1] != H:
        raise ValueError(f"the time table must have shape (K, {H}), got {tuple(t_table.shape)}")
    K = t_table.shape[0]
    if not _absent(t_null):
        _shape("the no-class time table", t_null, (K, H))
    for name, a in (("c_x", c_x), ("c_eps", c_eps), ("sigma", sigma)):
        _shape(name, a, (K,))
    if not _absent(z):
        _shape("z", z, (K, N, D))
    if not _absent(traj):
        _shape("traj", traj, (K + 1, N, D))
