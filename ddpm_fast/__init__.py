"""ddpm_fast: the hot loops of ``ddpm_ref`` — training (Algorithm 1) and sampling (Algorithm 2) — compiled.

Same functions, same signatures as the reference, plus ``backend=`` and ``dtype=``:

    train(state, data, sched, cfg, tcfg, rng, n_steps, callback=None, backend="numba", dtype=np.float32)
        ≡ ddpm_ref.train: the same draws from ``rng`` (so the same training run up to rounding),
          executed as fused K-step kernel calls.
    p_sample_loop(params, cfg, sched, x_T, *, z=None, rng=None, var_type="beta", parametrization="eps",
                  backend="numba", dtype=np.float32)
        ≡ ddpm_ref.p_sample_loop: with ``z`` the same noise (parity); with ``rng`` one seed is drawn
          from it and z comes from the in-kernel counter-based generator (statistically the same).

Backends: "numpy" (the reference itself), "numba" (CPU). Numba is imported only when a numba
function is first called, so ``import ddpm_fast`` needs numpy alone. float32 results agree with the
float64 reference to the tolerances in ``registry.TOLERANCES``; float64 agrees to ~1e-10 relative.
"""

from __future__ import annotations

import importlib.util

import numpy as np

import ddpm_ref

__all__ = ["BACKENDS", "available_backends", "default_backend", "train", "p_sample_loop", "supports", "CHUNK"]

BACKENDS = ("numpy", "numba")
CHUNK = 500        # training steps per compiled call: long enough to amortise the call, short for progress


def available_backends() -> tuple:
    """The backends usable on this machine (numba only when it is installed)."""
    return ("numpy",) + (("numba",) if importlib.util.find_spec("numba") is not None else ())


def default_backend() -> str:
    """"numba" when installed, else the reference "numpy"."""
    return "numba" if "numba" in available_backends() else "numpy"


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend not in available_backends():
        raise ValueError(f"backend {backend!r} needs numba: pip install 'ddpm[cpu]' (or pip install numba)")


def supports(tcfg: ddpm_ref.TrainConfig) -> str | None:
    """None if the fused numba training kernel implements ``tcfg``; else the reason it does not."""
    if tcfg.objective != "simple" or tcfg.parametrization != "eps":
        return (f"the numba backend implements objective 'simple' with parametrization 'eps' "
                f"(got {tcfg.objective!r}, {tcfg.parametrization!r}); use backend 'numpy'")
    return None


def _one_blas_thread():
    """The kernel's small matrix products go through SciPy's BLAS, a second OpenBLAS next to NumPy's;
    with two thread pools spinning on 2 cores each product waits for the other pool (measured 20 ms
    per step instead of 4). One BLAS thread is also the faster choice for these sizes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _n_chunks(batch: int) -> int:
    """How many fixed slices the batch is split into for parallel training: a function of the batch
    only (never of the thread count), so results are the same on any number of threads. Small
    batches stay in one slice: below ~128 rows a slice's matrix products are too small to share."""
    return 1 if batch < 256 else 4


def _widths(cfg: ddpm_ref.MLPConfig) -> np.ndarray:
    return np.array([cfg.dim + cfg.emb_dim] + [cfg.hidden] * cfg.depth + [cfg.n_out], dtype=np.int64)


def train(state: dict, data: np.ndarray, sched, cfg, tcfg, rng: np.random.Generator, n_steps: int,
          callback=None, backend: str = "numba", dtype=np.float32):
    """``ddpm_ref.train`` on the chosen backend. Returns (state, losses (n_steps,))."""
    _check_backend(backend)
    if backend == "numpy":
        return ddpm_ref.train(state, data, sched, cfg, tcfg, rng, n_steps, callback)
    reason = supports(tcfg)
    if reason:
        raise ValueError(reason)
    from . import cpu

    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != cfg.dim:
        raise ValueError(f"data must have shape (N, {cfg.dim}), got {data.shape}")
    widths = _widths(cfg)
    offs, _ = cpu.layout(widths)
    theta = cpu.pack(state["params"], widths, dtype)
    m = cpu.pack(state["opt"]["m"], widths, dtype)
    v = cpu.pack(state["opt"]["v"], widths, dtype)
    ema = cpu.pack(state["ema"], widths, dtype)
    step = int(state["opt"]["step"])
    T, B, D = sched.T, tcfg.batch_size, cfg.dim
    emb = ddpm_ref.timestep_embedding(np.arange(T + 1), cfg.emb_dim, cfg.max_period).astype(dtype)
    sab = np.asarray(sched.sqrt_alpha_bar, dtype=dtype)
    s1m = np.asarray(sched.sqrt_one_minus_alpha_bar, dtype=dtype)
    data_c = data.astype(dtype)
    losses = np.empty(n_steps)
    done = 0
    while done < n_steps:
        K = min(CHUNK, n_steps - done)
        idx = np.empty((K, B), dtype=np.int64)
        tt = np.empty((K, B), dtype=np.int64)
        eps = np.empty((K, B, D), dtype=np.float64)
        for k in range(K):                                   # exactly ddpm_ref.draw_batch's draws, in order
            idx[k] = rng.integers(0, data.shape[0], size=B)
            tt[k] = rng.integers(1, T + 1, size=B)
            eps[k] = rng.standard_normal((B, D))
        lrs = np.array([ddpm_ref.learning_rate(tcfg, step + k) for k in range(K)], dtype=np.float64)
        chunk_losses = np.empty(K, dtype=np.float64)
        with _one_blas_thread():
            step = cpu.train_steps_kernel(theta, m, v, ema, step, widths, offs, cpu.ACT_CODES[cfg.activation],
                                          np.dtype(dtype) == np.float32, data_c, idx, tt, eps.astype(dtype), emb,
                                          sab, s1m, lrs, tcfg.adam_beta1, tcfg.adam_beta2, tcfg.adam_eps,
                                          tcfg.grad_clip, tcfg.ema_decay, chunk_losses, _n_chunks(B))
        losses[done:done + K] = chunk_losses
        if callback is not None:
            for k in range(K):
                callback(step - K + k + 1, chunk_losses[k])
        done += K
    new = dict(state)
    new["params"] = cpu.unpack(theta, widths)
    new["ema"] = cpu.unpack(ema, widths)
    new["opt"] = {"m": cpu.unpack(m, widths), "v": cpu.unpack(v, widths), "step": int(step)}
    return new, losses


def p_sample_loop(params: dict, cfg, sched, x_T: np.ndarray, *, z: np.ndarray | None = None,
                  rng: np.random.Generator | None = None, var_type: str = "beta", parametrization: str = "eps",
                  return_trajectory: bool = False, backend: str = "numba", dtype=np.float32, tile: int = 256):
    """``ddpm_ref.p_sample_loop`` on the chosen backend (numba: all T steps in one compiled call)."""
    _check_backend(backend)
    if backend == "numpy":
        return ddpm_ref.p_sample_loop(params, cfg, sched, x_T, z=z, rng=rng, var_type=var_type,
                                      parametrization=parametrization, return_trajectory=return_trajectory)
    if parametrization != "eps" or var_type not in ("beta", "beta_tilde") or return_trajectory:
        raise ValueError("the numba sampler implements parametrization 'eps' with var_type beta or beta_tilde "
                         "and no trajectory; use backend 'numpy' for the others")
    from . import cpu

    x = np.array(x_T, dtype=dtype)
    if x.ndim != 2 or x.shape[1] != cfg.dim:
        raise ValueError(f"x_T must have shape (N, {cfg.dim}), got {x.shape}")
    if (z is None) == (rng is None):
        raise ValueError("pass exactly one noise source: z (an array of shape (T, N, D)) or rng")
    T = sched.T
    if z is not None:
        z = np.asarray(z, dtype=dtype)
        if z.shape != (T,) + x.shape:
            raise ValueError(f"z must have shape (T, N, D) = {(T,) + x.shape}, got {z.shape}")
        seed = 0
    else:
        z = np.zeros((0, 1, 1), dtype=dtype)
        seed = int(rng.integers(0, 2**63 - 1))
    ddpm_ref.param.check_compatible(sched, parametrization)
    widths = _widths(cfg)
    offs, _ = cpu.layout(widths)
    theta = cpu.pack(params, widths, dtype)
    D, H = cfg.dim, cfg.hidden
    # Per-t first-layer table: emb(t) @ W_0[D:] + b_0 — the time embedding's contribution.
    emb = ddpm_ref.timestep_embedding(np.arange(T + 1), cfg.emb_dim, cfg.max_period)
    table = (emb @ params["W0"][D:] + params["b0"]).astype(dtype)                    # (T+1, H)
    with np.errstate(divide="ignore"):
        coef_eps = np.asarray(sched.beta / np.maximum(sched.sqrt_one_minus_alpha_bar, 1e-300), dtype=dtype)
        inv_sqrt_alpha = np.asarray(1.0 / np.sqrt(sched.alpha), dtype=dtype)
    sigma2 = sched.beta if var_type == "beta" else sched.beta_tilde
    sigma = np.sqrt(np.asarray(sigma2)).astype(dtype)
    with _one_blas_thread():
        x = cpu.sample_kernel(theta, widths, offs, cpu.ACT_CODES[cfg.activation], np.dtype(dtype) == np.float32, x,
                              table, coef_eps,
                              inv_sqrt_alpha, sigma, z, np.uint64(seed), tile)
    return x.astype(np.float64)
