"""Numba kernels for the CPU: Algorithm 1 (K fused training steps), Algorithm 2 and DDIM (all reverse steps).

No new math: every kernel computes what a ``ddpm_ref`` function computes (named in its docstring),
in float32 or float64. Parameters live in one flat vector θ with fixed offsets per layer (``ddpm_fast.layout``), so
Adam, clipping and the EMA are single loops and no Python object is touched inside a compiled loop.

Random numbers: training takes its draws (data indices, t, ε) as arrays, so it can be fed exactly
the numbers the reference draws; the sampler takes z either as an array (parity) or draws it
in-kernel from a counter-based generator keyed by (seed, step, point, coordinate pair) — SplitMix64
of the key, then Box–Muller — so the result does not depend on the number of threads.

What makes the loops vectorise (each measured; see benchmarks/cpu_bench.py):
- ``error_model="numpy"``: with Python's error model every division checks for zero and may raise,
  which keeps LLVM from vectorising any loop that divides (Adam went from 190 µs to 11 µs per step).
- float32 constants in float32 code: a Python float literal promotes the arithmetic to float64.
- element-wise passes (bias + activation, its derivative, column sums) as small non-inlined
  functions on 2-D arrays: inlined into the big kernel the same loops stayed scalar (3× slower).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba.extending import overload

ACT_CODES = {"relu": 0, "silu": 1, "gelu": 2, "tanh": 3}
# Reassociation only (no "fast" NaN/inf assumptions): lets LLVM vectorise the reductions and loops.
FASTMATH = {"reassoc", "contract", "arcp"}
_GELU_C = math.sqrt(2.0 / math.pi)


# --- activations (same formulas as ddpm_ref.mlp) ---------------------------------------------------------

# float32 kernels use a rational tanh (the minimax approximation Eigen uses for float: |error| < 3e-7
# against tanh, within float32 rounding) and σ(a) = (1 + tanh(a/2))/2: only multiplies, adds and one
# division, all in float32 (constants included: a Python float literal would promote the arithmetic
# to float64 and halve the vector width), so the loops vectorise; libm's exp is a scalar call per
# unit. float64 kernels use math.*. The choice is made by the argument's type at compile time.
_F = np.float32
_TA = tuple(_F(c) for c in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                            5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                            -2.76076847742355e-16))
_TB = tuple(_F(c) for c in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                            1.19825839466702e-06))
_TCLAMP = _F(7.90531110763549805)
_H32, _ONE32, _ZERO32 = _F(0.5), _F(1.0), _F(0.0)
_GELU_C32, _GELU_K32, _GELU_K3_32 = _F(_GELU_C), _F(0.044715), _F(3 * 0.044715)


@nb.njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _tanh_fast(x):
    """tanh for float32 by Eigen's rational minimax approximation (|error| < 3e-7)."""
    x = min(max(x, -_TCLAMP), _TCLAMP)
    x2 = x * x
    p = x2 * _TA[6] + _TA[5]
    p = x2 * p + _TA[4]
    p = x2 * p + _TA[3]
    p = x2 * p + _TA[2]
    p = x2 * p + _TA[1]
    p = x * (x2 * p + _TA[0])
    q = x2 * _TB[3] + _TB[2]
    q = x2 * q + _TB[1]
    q = x2 * q + _TB[0]
    return p / q


@nb.njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _act32(a, code):
    if code == 0:
        return max(a, _ZERO32)
    if code == 1:
        return a * (_H32 + _H32 * _tanh_fast(_H32 * a))
    if code == 2:
        return _H32 * a * (_ONE32 + _tanh_fast(_GELU_C32 * (a + _GELU_K32 * a * a * a)))
    return _tanh_fast(a)


@nb.njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _dact32(a, h, code):
    if code == 0:
        return _ONE32 if a > _ZERO32 else _ZERO32
    if code == 1:
        s = _H32 + _H32 * _tanh_fast(_H32 * a)
        return s * (_ONE32 + a * (_ONE32 - s))
    if code == 2:
        th = _tanh_fast(_GELU_C32 * (a + _GELU_K32 * a * a * a))
        return (_H32 * (_ONE32 + th)
                + _H32 * a * (_ONE32 - th * th) * _GELU_C32 * (_ONE32 + _GELU_K3_32 * a * a))
    return _ONE32 - h * h


@nb.njit(inline="always")
def _sigmoid64(a):
    if a >= 0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)


@nb.njit(inline="always")
def _act64(a, code):
    if code == 0:
        return a if a > 0 else 0.0
    if code == 1:
        return a * _sigmoid64(a)
    if code == 2:
        return 0.5 * a * (1.0 + math.tanh(_GELU_C * (a + 0.044715 * a * a * a)))
    return math.tanh(a)


@nb.njit(inline="always")
def _dact64(a, h, code):
    if code == 0:
        return 1.0 if a > 0 else 0.0
    if code == 1:
        s = _sigmoid64(a)
        return s * (1.0 + a * (1.0 - s))
    if code == 2:
        u = _GELU_C * (a + 0.044715 * a * a * a)
        th = math.tanh(u)
        return 0.5 * (1.0 + th) + 0.5 * a * (1.0 - th * th) * _GELU_C * (1.0 + 3 * 0.044715 * a * a)
    return 1.0 - h * h


def _act(a, code):
    """act(a) of ``ddpm_ref.mlp`` (code: ACT_CODES); float32 arguments take the rational-tanh forms."""
    raise NotImplementedError("compiled only")


def _dact(a, h, code):
    """act'(a), given a and h = act(a)."""
    raise NotImplementedError("compiled only")


@overload(_act, inline="always")
def _act_by_type(a, code):
    return (lambda a, code: _act32(a, code)) if a == nb.types.float32 else (lambda a, code: _act64(a, code))


@overload(_dact, inline="always")
def _dact_by_type(a, h, code):
    return ((lambda a, h, code: _dact32(a, h, code)) if a == nb.types.float32
            else (lambda a, h, code: _dact64(a, h, code)))


# --- counter-based normal numbers ---------------------------------------------------------------------

@nb.njit(inline="always")
def _splitmix64(x):
    x = (x + np.uint64(0x9E3779B97F4A7C15))
    z = x
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always")
def counter_normal_pair(seed, step, index):
    """Two independent standard normals that are a pure function of (seed, step, index):
    SplitMix64 of the key gives two uniforms, Box–Muller turns them into (r cos φ, r sin φ)."""
    key = _splitmix64(np.uint64(seed) ^ _splitmix64(np.uint64(step) * np.uint64(0x100000001B3) + np.uint64(index)))
    k2 = _splitmix64(key)
    u1 = ((key >> np.uint64(11)) + np.uint64(1)) * (1.0 / 9007199254740993.0)  # (0, 1]
    u2 = (k2 >> np.uint64(11)) * (1.0 / 9007199254740992.0)                   # [0, 1)
    r = math.sqrt(-2.0 * math.log(u1))
    phi = 2.0 * math.pi * u2
    return r * math.cos(phi), r * math.sin(phi)


@nb.njit(inline="always")
def train_draw(seed, step, row, n_data, T, eps_row):
    """Alg. 1 lines 2–4 for one row from (seed, step, row): (data row, t) and ε into ``eps_row`` —
    ``counter.counter_draws`` and ddpm_train_draw (cuda/ddpm_common.cuh) compute the same numbers."""
    base = np.uint64(step) * np.uint64(0x100000001B3)
    r2 = np.uint64(2) * np.uint64(row)
    i = _splitmix64(np.uint64(seed) ^ _splitmix64(base + r2)) % np.uint64(n_data)
    t = _splitmix64(np.uint64(seed) ^ _splitmix64(base + r2 + np.uint64(1))) % np.uint64(T)
    eseed = _splitmix64(np.uint64(seed) + np.uint64(0xD1B54A32D192ED03))
    D = eps_row.shape[0]
    half = (D + 1) // 2
    for d in range(0, D, 2):
        z0, z1 = counter_normal_pair(eseed, step, row * half + d // 2)
        eps_row[d] = z0
        if d + 1 < D:
            eps_row[d + 1] = z1
    return np.int64(i), np.int64(t) + 1


# --- Algorithm 1: K fused training steps ----------------------------------------------------------------

@nb.njit(fastmath=FASTMATH, error_model="numpy", inline="never")
def _bias_act(a, bias, hn, code):
    """a += bias (pre-activation kept for backward); hn = act(a)."""
    n, fo = a.shape
    for b in range(n):
        for j in range(fo):
            s = a[b, j] + bias[j]
            a[b, j] = s
            hn[b, j] = _act(s, code)


@nb.njit(fastmath=FASTMATH, error_model="numpy", inline="never")
def _add_bias(a, bias):
    n, fo = a.shape
    for b in range(n):
        for j in range(fo):
            a[b, j] += bias[j]


@nb.njit(fastmath=FASTMATH, error_model="numpy", inline="never")
def _mul_dact(dH, a, h, code):
    """dH ⊙= act'(a): ∂loss/∂h → ∂loss/∂a."""
    n, fi = dH.shape
    for b in range(n):
        for j in range(fi):
            dH[b, j] *= _dact(a[b, j], h[b, j], code)


@nb.njit(fastmath=FASTMATH, error_model="numpy", inline="never")
def _col_sum(dA, gb):
    """gb = Σ_b dA[b, :] (the bias gradient)."""
    n, fo = dA.shape
    for j in range(fo):
        gb[j] = 0.0
    for b in range(n):
        for j in range(fo):
            gb[j] += dA[b, j]


@nb.njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _fourier_row(h, D, n_freq):
    """The Fourier columns of γ(x) (ddpm_ref.mlp.input_features) for one row h whose first D entries are x:
    h[D + kD + d] = sin(2^k x_d), h[D + KD + kD + d] = cos(2^k x_d), k < K = n_freq.

    One sin and one cos per coordinate; the higher octaves by the double-angle formulas
    sin 2a = 2 sin a cos a, cos 2a = (cos a − sin a)(cos a + sin a), whose rounding error at most doubles
    per octave: ≤ 2^(K−1)·1e-7 in float32 (3e-6 at K = 6, as large as the change of sin(2^5 x) when x moves
    by its own rounding), within the documented tolerance. The GPU kernels call sinf/cosf per column."""
    KD = n_freq * D
    for d in range(D):
        sn = math.sin(h[d])
        cs = math.cos(h[d])
        for kk in range(n_freq):
            h[D + kk * D + d] = sn
            h[D + KD + kk * D + d] = cs
            sn, cs = (sn + sn) * cs, (cs - sn) * (cs + sn)


@nb.njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def train_steps_kernel(theta, m, s, ema, adam_step, widths, offs, act_code, data, idx, tt, eps, emb_table,
                       sqrt_ab, sqrt_1mab, lrs, beta1, beta2, adam_eps, grad_clip, ema_decay, losses, n_chunks,
                       counter, seed, yy):
    """K steps of ``ddpm_ref.train_step`` (objective simple, ε-parametrisation), all in one call.

    A conditional network (``ddpm_ref.guidance.train_conditional``) has its class table C (C + 1, E) at θ's
    tail and the classes of step k's rows in ``yy[k]`` (∅ = C where the label was dropped): its input is
    [γ(x_t), emb(t) + C[y]] and the table's gradient the embedding columns of ∂loss/∂h_0, added row by row.
    ``yy`` without rows: unconditional.

    θ, m, s, ema (P,) are updated in place (m, s: Adam's moments); ``losses`` (K,) receives L_simple per step. Draws for
    step k: x_0 = data[idx[k]], t = tt[k], ε = eps[k] — or, with ``counter``, the kernel first writes
    into those arrays the draws ``train_draw`` makes from (seed, Adam step count, row), the GPU
    kernels' draws. Returns the Adam step count after the K steps.
    The batch is split into ``n_chunks`` fixed slices processed in parallel, each with its own
    workspace and partial gradient; the partials are then summed in chunk order, so the result does
    not depend on the number of threads. Workspaces are allocated once per call (flat vectors whose
    slices are reshaped into contiguous (rows, width) views): the K-step loop allocates nothing.
    """
    K, B = idx.shape
    D = data.shape[1]
    E = emb_table.shape[1]
    F = widths[0] - E                                      # γ(x)'s width D(1 + 2·n_freq)
    n_freq = (F // D - 1) // 2
    L = widths.shape[0] - 1
    P = theta.shape[0]
    rows = (B + n_chunks - 1) // n_chunks
    hoff = np.zeros(L + 1, dtype=np.int64)                 # h_l: input of linear layer l, (rows, w_l)
    aoff = np.zeros(L + 1, dtype=np.int64)                 # a_l: its output, (rows, w_{l+1})
    wmax = 0
    for l in range(L):
        hoff[l + 1] = hoff[l] + rows * widths[l]
        aoff[l + 1] = aoff[l] + rows * widths[l + 1]
    for l in range(L + 1):
        wmax = max(wmax, widths[l])
    dt = theta.dtype
    hws = np.zeros((n_chunks, hoff[L]), dtype=dt)
    aws = np.zeros((n_chunks, aoff[L]), dtype=dt)
    d1 = np.zeros((n_chunks, rows * wmax), dtype=dt)
    d2 = np.zeros((n_chunks, rows * wmax), dtype=dt)
    grads = np.zeros((n_chunks, P), dtype=dt)
    part_loss = np.zeros(n_chunks)
    grad = np.zeros(P, dtype=dt)
    n_out = widths[L]
    T = sqrt_ab.shape[0] - 1
    # checked on the host (layout.check_train_arrays); nothing below checks an index
    assert n_out == D and eps.shape[2] == D and tt.shape == idx.shape and theta.shape[0] >= offs[L - 1, 1] + D
    assert F == D * (1 + 2 * n_freq)
    cond = yy.shape[0] == K
    c_off = offs[L - 1, 1] + D                             # the class table's start in θ (conditional)
    assert (not cond) or ((P - c_off) % E == 0 and yy.shape[1] == B)
    if not cond:
        assert P == c_off
    for k in range(K):
        if counter:
            for b in range(B):
                idx[k, b], tt[k, b] = train_draw(seed, adam_step, b, data.shape[0], T, eps[k, b])
        for c in nb.prange(n_chunks):
            lo = c * rows
            nb_ = min(B, lo + rows) - lo                   # rows in this chunk (the last may be short)
            hw, aw, g = hws[c], aws[c], grads[c]
            # forward: x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε (Eq. 4); input [γ(x_t), emb(t)]
            h0 = hw[0:nb_ * widths[0]].reshape((nb_, widths[0]))
            for b in range(nb_):
                t = tt[k, lo + b]
                for d in range(D):
                    h0[b, d] = sqrt_ab[t] * data[idx[k, lo + b], d] + sqrt_1mab[t] * eps[k, lo + b, d]
                _fourier_row(h0[b], D, n_freq)
                for e in range(E):
                    h0[b, F + e] = emb_table[t, e]
                if cond:                                   # emb(t) + C[y]
                    cy = c_off + yy[k, lo + b] * E
                    for e in range(E):
                        h0[b, F + e] += theta[cy + e]
            for l in range(L):
                fi, fo = widths[l], widths[l + 1]
                W = theta[offs[l, 0]:offs[l, 0] + fi * fo].reshape((fi, fo))
                bias = theta[offs[l, 1]:offs[l, 1] + fo]
                h = hw[hoff[l]:hoff[l] + nb_ * fi].reshape((nb_, fi))
                a = aw[aoff[l]:aoff[l] + nb_ * fo].reshape((nb_, fo))
                np.dot(h, W, a)                                               # (rows, fo)
                if l < L - 1:
                    _bias_act(a, bias, hw[hoff[l + 1]:hoff[l + 1] + nb_ * fo].reshape((nb_, fo)), act_code)
                else:
                    _add_bias(a, bias)
            # L_simple = mean (ε_θ − ε)², ∂/∂ε_θ = 2(ε_θ − ε)/(B·D) — B is the whole batch
            out = aw[aoff[L - 1]:aoff[L - 1] + nb_ * n_out].reshape((nb_, n_out))
            dcur = d1[c][0:nb_ * n_out].reshape((nb_, n_out))
            sl = 0.0
            for b in range(nb_):
                for j in range(n_out):
                    diff = out[b, j] - eps[k, lo + b, j]
                    sl += diff * diff
                    dcur[b, j] = 2.0 * diff / (B * n_out)
            part_loss[c] = sl
            # backward (ddpm_ref.mlp.backward) into this chunk's partial gradient
            src, dst = d1[c], d2[c]
            if cond:
                for i in range(c_off, P):
                    g[i] = 0.0
            for l in range(L - 1, -1, -1):
                fi, fo = widths[l], widths[l + 1]
                dA = src[0:nb_ * fo].reshape((nb_, fo))
                h = hw[hoff[l]:hoff[l] + nb_ * fi].reshape((nb_, fi))
                gW = g[offs[l, 0]:offs[l, 0] + fi * fo].reshape((fi, fo))
                np.dot(h.T, dA, gW)                                           # (fi, fo)
                _col_sum(dA, g[offs[l, 1]:offs[l, 1] + fo])
                if l > 0:
                    W = theta[offs[l, 0]:offs[l, 0] + fi * fo].reshape((fi, fo))
                    dH = dst[0:nb_ * fi].reshape((nb_, fi))
                    np.dot(dA, W.T, dH)                                       # ∂loss/∂h_l (rows, fi)
                    a_prev = aw[aoff[l - 1]:aoff[l - 1] + nb_ * fi].reshape((nb_, fi))
                    _mul_dact(dH, a_prev, h, act_code)                   # → ∂loss/∂a_{l−1}
                    src, dst = dst, src
                elif cond:                     # ∂loss/∂C[y] += ∂loss/∂emb = dA_0 W_0[F:]ᵀ, row by row
                    for b in range(nb_):
                        cy = c_off + yy[k, lo + b] * E
                        for e in range(E):
                            acc = 0.0
                            for j in range(fo):
                                acc += dA[b, j] * theta[offs[0, 0] + (F + e) * fo + j]
                            g[cy + e] += acc
        # reduce the partials in chunk order (deterministic), then the loss
        loss = 0.0
        for c in range(n_chunks):
            loss += part_loss[c]
        losses[k] = loss / (B * n_out)
        for i in range(P):
            s_ = grads[0, i]
            for c in range(1, n_chunks):
                s_ += grads[c, i]
            grad[i] = s_
        # global-norm clipping, Adam (Kingma & Ba Alg. 1), EMA — ddpm_ref.optim
        nrm = 0.0
        for i in range(P):
            nrm += grad[i] * grad[i]
        nrm = math.sqrt(nrm)
        scale = 1.0
        if grad_clip > 0 and nrm > grad_clip:
            scale = grad_clip / (nrm + 1e-12)
        adam_step += 1
        # constants in θ's dtype, so the loop below runs in float32 vectors when θ is float32
        step_size = dt.type(lrs[k] / (1.0 - beta1 ** adam_step))
        inv_sqrt_bc2 = dt.type(1.0 / math.sqrt(1.0 - beta2 ** adam_step))
        b1, b1c = dt.type(beta1), dt.type(1.0 - beta1)
        b2, b2c = dt.type(beta2), dt.type(1.0 - beta2)
        eps_a, sc = dt.type(adam_eps), dt.type(scale)
        dec, decc = dt.type(ema_decay), dt.type(1.0 - ema_decay)
        for i in range(P):
            gi = grad[i] * sc
            mi = b1 * m[i] + b1c * gi
            si = b2 * s[i] + b2c * gi * gi
            m[i] = mi
            s[i] = si
            th = theta[i] - step_size * mi / (math.sqrt(si) * inv_sqrt_bc2 + eps_a)
            theta[i] = th
            ema[i] = dec * ema[i] + decc * th
    return adam_step


# --- Algorithm 2 (and DDIM): all reverse steps for tiles of points ------------------------------------------

@nb.njit(fastmath=FASTMATH, error_model="numpy", inline="never")
def _bias_act_into(src, n, bias, dst, code):
    """dst[:n] = act(src[:n] + bias)."""
    H = src.shape[1]
    for i in range(n):
        for j in range(H):
            dst[i, j] = _act(src[i, j] + bias[j], code)


@nb.njit(inline="always")
def _end_layers(theta, widths, offs, F):
    """Views of θ the samplers use: W_0[:F] (F, H), the γ(x) rows of layer 0; W_L transposed (n_out, H), a
    contiguous copy for the readout's dot products; b_L (n_out,)."""
    L = widths.shape[0] - 1
    H = widths[1]
    n_out = widths[L]
    W0 = theta[offs[0, 0]:offs[0, 0] + F * H].reshape((F, H))
    w_out_t = np.ascontiguousarray(theta[offs[L - 1, 0]:offs[L - 1, 0] + H * n_out].reshape((H, n_out)).T)
    return W0, w_out_t, theta[offs[L - 1, 1]:offs[L - 1, 1] + n_out]


@nb.njit(fastmath=FASTMATH, error_model="numpy", inline="never")
def _hidden(theta, offs, L, H, W0, t_row, xs, lo, n, n_freq, g, hA, hB, act_code):
    """hA[:n] = the MLP's last hidden activations at the points xs[lo:lo + n]: layer 0 is γ(x) W_0[:F] (a
    rank-F product) + the step's time-table row, then the activation; then L − 2 (H × H) hidden layers."""
    D = xs.shape[1]
    if n_freq == 0:
        np.dot(xs[lo:lo + n], W0, hB[:n])
    else:
        for i in range(n):
            for d in range(D):
                g[i, d] = xs[lo + i, d]
            _fourier_row(g[i], D, n_freq)
        np.dot(g[:n], W0, hB[:n])
    _bias_act_into(hB, n, t_row, hA, act_code)
    for l in range(1, L - 1):                  # hidden layers: one (tile × H) @ (H × H) product each
        W = theta[offs[l, 0]:offs[l, 0] + H * H].reshape((H, H))
        np.dot(hA, W, hB)
        _bias_act_into(hB, n, theta[offs[l, 1]:offs[l, 1] + H], hA, act_code)


@nb.njit(fastmath=FASTMATH, error_model="numpy", inline="never")
def _guide(hA, hC, n, w):
    """hA[:n] = (1 + w)·hA − w·hC: the last hidden activations of the guided prediction. The read-out is affine
    with coefficients (1 + w) − w = 1, so ε̃ = (1 + w)·ε_θ(y) − w·ε_θ(∅) (Ho & Salimans Eq. 6) is this hA's read-out."""
    H = hA.shape[1]
    a, b = 1 + w, w
    for i in range(n):
        for j in range(H):
            hA[i, j] = a * hA[i, j] - b * hC[i, j]


@nb.njit(fastmath=FASTMATH, error_model="numpy", inline="never")
def _readout_update(hA, n, w_out_t, b_out, x, lo, c_x, c_eps, sig, z, k, use_z, seed, traj, k_traj):
    """ε̂ = hA W_L + b_L, then x ← c_x·x − c_eps·ε̂ + σ·z for the tile's points (in place)."""
    D = x.shape[1]
    H = hA.shape[1]
    half = (D + 1) // 2
    for i in range(n):
        z_odd = 0.0
        for d in range(D):
            e = b_out[d]
            for kk in range(H):
                e += hA[i, kk] * w_out_t[d, kk]
            xn = c_x * x[lo + i, d] - c_eps * e
            if sig > 0:
                if use_z:
                    zz = z[k, lo + i, d]
                elif d % 2 == 0:                 # one Box–Muller pair per two coordinates
                    zz, z_odd = counter_normal_pair(seed, k, (lo + i) * half + d // 2)
                else:
                    zz = z_odd
                xn += sig * zz
            x[lo + i, d] = xn
            if k_traj >= 0:
                traj[k_traj, lo + i, d] = xn


@nb.njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def sample_kernel(theta, widths, offs, act_code, n_freq, x, t_table, c_x, c_eps, sigma, z, seed, tile, traj,
                  t_null, w):
    """K reverse steps of an ε-model for x = x_T (N, D), in place; one update rule covers them all:

        x ← c_x[k]·x − c_eps[k]·ε_θ(x, t_k) + sigma[k]·z_k,      k = 0..K−1,

    which is Algorithm 2 line 4 (Eq. 11: c_x = 1/√α_t, c_eps = β_t/(√α_t √(1−ᾱ_t)), sigma = σ_t and 0 at
    t = 1) on the full or a respaced schedule, and DDIM (Song et al. Eq. 12) for any η — the wrapper in
    ``ddpm_fast`` computes the coefficients. ``t_table`` (K, H) = emb(t_k) @ W_0[D:] + b_0 is layer 0's
    time part at step k (it does not depend on the point); layer 0's point part is γ(x) W_0[:F] with n_freq
    Fourier octaves (``ddpm_ref.mlp.input_features``). Noise from ``z`` (K, N, D) when it has K rows, else
    from the counter-based generator keyed by (seed, k, point, coordinate pair). ``traj`` (K+1, N, D)
    receives x after step k at row K−1−k when it has K+1 rows (the trajectory, x_t at row t).
    Tiles of ``tile`` points run all K steps in parallel, each in its own small workspace.

    Classifier-free guidance (``ddpm_ref.guidance``): a conditional network's class row enters layer 0 like the
    time, so ``t_table`` holds (emb(t_k) + C[y]) W_0[F:] + b_0 for the points' class y and ``t_null`` (K, H) the
    same for ∅; with ``t_null`` of K rows, ε̂ is the guided (1 + w)·ε_θ(y) − w·ε_θ(∅) (``_guide``).
    """
    N, D = x.shape
    K = t_table.shape[0]
    L = widths.shape[0] - 1
    H = widths[1]
    F = D * (1 + 2 * n_freq)                                                  # γ(x)'s width
    # checked on the host (layout.check_sampler_arrays); ε̂ is read from the first D outputs
    assert L >= 2 and widths[L] >= D and t_table.shape[1] == H and c_x.shape[0] == K and sigma.shape[0] == K
    assert widths[0] >= F
    use_z = z.shape[0] == K
    keep = traj.shape[0] == K + 1
    guided = t_null.shape[0] == K
    n_tiles = (N + tile - 1) // tile
    W0, w_out_t, b_out = _end_layers(theta, widths, offs, F)
    for ti in nb.prange(n_tiles):
        lo = ti * tile
        n = min(N, lo + tile) - lo
        hA = np.zeros((tile, H), dtype=x.dtype)
        hB = np.zeros((tile, H), dtype=x.dtype)
        hC = np.zeros((tile if guided else 0, H), dtype=x.dtype)
        g = np.zeros((tile, F), dtype=x.dtype)
        for k in range(K):
            _hidden(theta, offs, L, H, W0, t_table[k], x, lo, n, n_freq, g, hA, hB, act_code)
            if guided:
                _hidden(theta, offs, L, H, W0, t_null[k], x, lo, n, n_freq, g, hC, hB, act_code)
                _guide(hA, hC, n, w)
            _readout_update(hA, n, w_out_t, b_out, x, lo, c_x[k], c_eps[k], sigma[k], z, k, use_z, seed,
                            traj, K - 1 - k if keep else -1)
    return x


@nb.njit(fastmath=FASTMATH, error_model="numpy", inline="never")
def _readout_into(hA, n, w_out_t, b_out, e):
    """e[:n] = ε̂ = hA W_L + b_L, the first D outputs."""
    D = e.shape[1]
    H = hA.shape[1]
    for i in range(n):
        for d in range(D):
            v = b_out[d]
            for kk in range(H):
                v += hA[i, kk] * w_out_t[d, kk]
            e[i, d] = v


@nb.njit(fastmath=FASTMATH, error_model="numpy", inline="never")
def _combine_into(A, k, x, lo, n, E, xin):
    """xin[:n] = A[k, 0]·x[lo:lo + n] + Σ_{j<k} A[k, 1 + j]·E[j, :n] (the zero coefficients skipped)."""
    D = x.shape[1]
    for i in range(n):
        for d in range(D):
            xin[i, d] = A[k, 0] * x[lo + i, d]
    for j in range(k):
        c = A[k, 1 + j]
        if c != 0:
            for i in range(n):
                for d in range(D):
                    xin[i, d] += c * E[j, i, d]


@nb.njit(parallel=True, cache=True, fastmath=FASTMATH, error_model="numpy")
def solver_kernel(theta, widths, offs, act_code, n_freq, x, t_table, A, tile, t_null, w):
    """A solver of the probability-flow ODE as K calls of an ε-model, for x = x_T (N, D), in place.

    Each solver of ``ddpm_ref.solvers`` on an ε-model is linear in x_T and the network's outputs ε̂_j:
    call k runs at x_k = A[k, 0]·x_T + Σ_{j<k} A[k, 1 + j]·ε̂_j with time-table row k, and the result x_0 is
    row K of A (K + 1, K + 1). ``ddpm_fast.solver_coefficients`` reads A and the call times off the reference
    solver itself. Tiles of ``tile`` points run all K calls in parallel, each keeping its ε̂_j (K, tile, D).
    ``t_null`` (K, H) and ``w``: classifier-free guidance, as in ``sample_kernel``.
    """
    N, D = x.shape
    K = t_table.shape[0]
    L = widths.shape[0] - 1
    H = widths[1]
    F = D * (1 + 2 * n_freq)                                                  # γ(x)'s width
    # checked on the host (layout.check_sampler_arrays); ε̂ is read from the first D outputs
    assert L >= 2 and widths[L] >= D and t_table.shape[1] == H and A.shape[0] == K + 1 and A.shape[1] == K + 1
    assert widths[0] >= F
    guided = t_null.shape[0] == K
    n_tiles = (N + tile - 1) // tile
    W0, w_out_t, b_out = _end_layers(theta, widths, offs, F)
    for ti in nb.prange(n_tiles):
        lo = ti * tile
        n = min(N, lo + tile) - lo
        hA = np.zeros((tile, H), dtype=x.dtype)
        hB = np.zeros((tile, H), dtype=x.dtype)
        hC = np.zeros((tile if guided else 0, H), dtype=x.dtype)
        g = np.zeros((tile, F), dtype=x.dtype)
        xin = np.zeros((tile, D), dtype=x.dtype)
        E = np.zeros((K, tile, D), dtype=x.dtype)                             # ε̂_j of this tile's points
        for k in range(K):
            _combine_into(A, k, x, lo, n, E, xin)
            _hidden(theta, offs, L, H, W0, t_table[k], xin, 0, n, n_freq, g, hA, hB, act_code)
            if guided:
                _hidden(theta, offs, L, H, W0, t_null[k], xin, 0, n, n_freq, g, hC, hB, act_code)
                _guide(hA, hC, n, w)
            _readout_into(hA, n, w_out_t, b_out, E[k])
        _combine_into(A, K, x, lo, n, E, xin)
        for i in range(n):
            for d in range(D):
                x[lo + i, d] = xin[i, d]
    return x
