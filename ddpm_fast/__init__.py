"""ddpm_fast: the hot loops of ``ddpm_ref`` — training (Algorithm 1) and sampling (Algorithm 2) — compiled.

Same functions, same signatures as the reference, plus ``backend=`` and ``dtype=``:

    train(state, data, sched, cfg, tcfg, rng, n_steps, callback=None, backend="numba", dtype=np.float32)
        ≡ ddpm_ref.train: the same draws from ``rng`` (so the same training run up to rounding),
          executed as fused K-step kernel calls.
    p_sample_loop(denoise_fn, sched, x_T, *, z=None, rng=None, var_type="beta", parametrization="eps",
                  t_model=None, backend="numba", dtype=np.float32)
        ≡ ddpm_ref.p_sample_loop_general (ddpm_ref.p_sample_loop with the defaults): with ``z`` the same
          noise (parity); with ``rng`` one seed is drawn
          from it and z comes from the in-kernel counter-based generator (statistically the same).
    p_sample_trajectory(...)  ≡ ddpm_ref.p_sample_trajectory_general: the same, returning (x_0, every x_t).
    ddim_sample_loop(denoise_fn, sched, x_T, *, ts=None, eta=0.0, z=None, rng=None, backend="numba", ...)
        ≡ ddpm_ref.ddim_sample_loop.
    solver_sample(denoise_fn, sched, x_T, *, solver, steps=None, spacing=None, ts=None, backend="numba", ...)
        ≡ ddpm_ref.solver_sample (DPM-Solver++(2M)/(2S), UniPC, Heun): numba and numpy; not on cupy.

The samplers take the network as the reference does, ``denoise_fn = ddpm_ref.network(params, cfg)``;
the compiled backends run its weights (any other function: backend "numpy" only).

Both samplers are one update rule x ← c_x·x − c_eps·ε_θ(x, t) + σ·z with per-step coefficients
(``ancestral_coefficients``, ``ddim_coefficients``), so one kernel per backend serves them all. The ODE
solvers are another: each call's input is a fixed linear combination of x_T and the earlier outputs, whose
coefficients ``solver_coefficients`` reads off the reference solver itself (``cpu.solver_kernel``).

Backends: "numpy" (the reference itself), "numba" (CPU, ``cpu.py``), "cupy" (GPU, ``gpu.py`` and
``cuda/kernels.cu``, float32 only). Numba and CuPy are imported only when one of their functions is
first called, so ``import ddpm_fast`` needs numpy alone. float32 results agree with the float64
reference to the tolerances in ``registry.TOLERANCES``; float64 agrees to ~1e-10 relative.
"""

from __future__ import annotations

import importlib.util

import numpy as np

import ddpm_ref

from .layout import check_sampler_arrays, check_train_arrays, class_table_shape, layout, model_widths, pack, unpack

__all__ = ["BACKENDS", "one_blas_thread", "available_backends", "default_backend", "train", "p_sample_loop", "p_sample_trajectory", "ddim_sample_loop",
           "solver_coefficients", "solver_sample", "unsupported", "CHUNK"]

BACKENDS = ("numpy", "numba", "cupy")
CHUNK = 500        # training steps per compiled call: long enough to amortise the call, short for progress


def available_backends() -> tuple:
    """The backends usable on this machine (numba when it is installed; cupy when CuPy sees a GPU)."""
    from .gpu import gpu_status
    return (("numpy",) + (("numba",) if importlib.util.find_spec("numba") is not None else ())
            + (("cupy",) if gpu_status() is None else ()))


def default_backend() -> str:
    """"numba" when installed, else the reference "numpy"."""
    return "numba" if "numba" in available_backends() else "numpy"


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == "cupy":
        from .gpu import require_gpu
        require_gpu()
    elif backend not in available_backends():
        raise ValueError(f"backend {backend!r} needs numba: pip install 'ddpm[cpu]' (or pip install numba)")


def unsupported(tcfg: ddpm_ref.TrainConfig) -> str | None:
    """Why the fused training kernels (numba, cupy) cannot train ``tcfg`` (one line), or None when they can.

    They fit ε with L_simple and D outputs: objective 'simple', parametrization 'eps' and a fixed σ²
    (var_type 'beta' or 'beta_tilde'; a learned variance needs 2D outputs and another loss). Checked
    here whatever ``TrainConfig`` itself accepts; a plain TrainConfig is Algorithm 1's, which they can train."""
    tcfg = ddpm_ref.as_general(tcfg)
    if (tcfg.objective, tcfg.parametrization) != ("simple", "eps") or tcfg.var_type not in ("beta", "beta_tilde"):
        return (f"the numba and cupy backends implement objective 'simple', parametrization 'eps' and var_type "
                f"'beta' or 'beta_tilde' (got {tcfg.objective!r}, {tcfg.parametrization!r}, {tcfg.var_type!r}); "
                "use backend 'numpy'")
    return None


def one_blas_thread():
    """A context with one BLAS thread (threadpoolctl; unchanged without it). The kernel's small matrix products
    go through SciPy's BLAS, a second OpenBLAS next to NumPy's; with two thread pools spinning on 2 cores each
    product waits for the other pool (measured 20 ms per step instead of 4). The application uses it too:
    ``ddpm show``'s bound after the sampler (6.6 s → 0.75 s) and a fit's evaluation beside the W2 solve."""
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


def time_table(params: dict, cfg, t_steps, dtype) -> np.ndarray:
    """Layer 0's time part at each step, emb(t_k) W_0[F:] + b_0 (K, H): it does not depend on the point,
    so the samplers add a row of it instead of multiplying the embedding every time."""
    emb = ddpm_ref.timestep_embedding(np.asarray(t_steps), cfg.emb_dim, cfg.max_period)
    return np.ascontiguousarray(emb @ np.asarray(params["W0"])[cfg.n_in:] + np.asarray(params["b0"]), dtype=dtype)


def class_tables(params: dict, cfg, table: np.ndarray, y, w: float):
    """The samplers' layer-0 tables per class, for points of classes ``y`` (N,) (None: an unconditional network):
    a list of (rows, table_y, table_null) with table_y = ``table`` + C[y] W_0[F:] (the class enters like the
    time, ``ddpm_ref.mlp.forward``) and table_null the same for ∅ when the guidance weight w ≠ 0 (else no
    rows). One entry per class present; an unconditional network gets one entry with every row."""
    empty = np.zeros((0, table.shape[1]), dtype=table.dtype)
    if y is None:
        return [(None, table, empty)]
    rows_of = np.asarray(params["C"]) @ np.asarray(params["W0"])[cfg.n_in:]         # (C + 1, H)
    null = np.ascontiguousarray(table + rows_of[cfg.n_classes], dtype=table.dtype) if w != 0 else empty
    return [(np.flatnonzero(y == c), np.ascontiguousarray(table + rows_of[c], dtype=table.dtype), null)
            for c in np.unique(y)]


def _group_seed(seed: int, group: int, n_groups: int) -> np.uint64:
    """The counter generator's seed for one class group: the seed itself for a single group, else a distinct
    key per group (the kernel keys its noise by the point's index within the group)."""
    return np.uint64(seed if n_groups == 1 else (seed + (group + 1) * 0x9E3779B97F4A7C15) % 2**64)


def draw_chunk(rng: np.random.Generator, n_data: int, T: int, B: int, D: int, K: int, labels=None,
               p_uncond: float = 0.0, n_classes: int = 0):
    """The random draws of K training steps — data indices (K, B), t (K, B), ε (K, B, D) — made
    exactly as ``ddpm_ref.draw_batch`` makes them, step after step, from the same generator. With ``labels``
    (n_data,), as ``ddpm_ref.draw_batch_conditional``: also the classes (K, B), ∅ = n_classes where dropped."""
    idx = np.empty((K, B), dtype=np.int64)
    tt = np.empty((K, B), dtype=np.int64)
    eps = np.empty((K, B, D), dtype=np.float64)
    yy = np.empty((K, B) if labels is not None else (0, 0), dtype=np.int64)
    for k in range(K):
        idx[k] = rng.integers(0, n_data, size=B)
        tt[k] = rng.integers(1, T + 1, size=B)
        eps[k] = rng.standard_normal((B, D))
        if labels is not None:
            yy[k] = np.where(rng.random(B) < p_uncond, n_classes, labels[idx[k]])
    return (idx, tt, eps) if labels is None else (idx, tt, eps, yy)


def train(state: dict, data: np.ndarray, sched, cfg, tcfg, rng: np.random.Generator, n_steps: int,
          callback=None, backend: str = "numba", dtype=np.float32, draws: str = "rng", labels=None,
          p_uncond: float = ddpm_ref.P_UNCOND):
    """``ddpm_ref.train`` on the chosen backend. Returns (state, losses (n_steps,)).

    ``draws="rng"``: x_0, t, ε drawn from ``rng`` exactly as the reference draws them (the same training
    run up to rounding). ``draws="counter"`` (numba, cupy): one seed is taken from ``rng`` and the
    kernels draw x_0, t, ε themselves from (seed, step, row) (``counter.counter_draws``) — nothing per
    step on the host, and the same draws on both compiled backends.

    A conditional network (``cfg.n_classes`` > 0) takes one class per data row in ``labels``: this is
    ``ddpm_ref.train_conditional`` with label dropout ``p_uncond``, its draws from ``rng`` (numpy and numba;
    the CUDA kernels have no class table yet)."""
    _check_backend(backend)
    if draws not in ("rng", "counter"):
        raise ValueError(f"draws must be 'rng' or 'counter', got {draws!r}")
    if backend == "numpy" and draws != "rng":
        raise ValueError("the numpy reference draws from rng (draws='rng')")
    if bool(cfg.n_classes) != (labels is not None):
        raise ValueError("a conditional network (MLPConfig.n_classes > 0) trains on labels, an unconditional one "
                         f"without: got n_classes = {cfg.n_classes} and labels {'given' if labels is not None else 'None'}")
    if labels is not None:
        labels = ddpm_ref.guidance.check_labels(labels, np.shape(data)[0], cfg.n_classes)
        if not 0 <= p_uncond <= 1:                                  # also NaN
            raise ValueError(f"p_uncond must lie in [0, 1], got {p_uncond!r}")
        if backend == "numpy":
            return ddpm_ref.train_conditional(state, data, labels, sched, cfg, tcfg, rng, n_steps, p_uncond, callback)
        if backend == "cupy" or draws != "rng":
            raise ValueError("conditional training runs on backend 'numba' (draws from rng) or 'numpy': the CUDA "
                             "kernels and the counter draws have no class table yet")
    if backend == "numpy":
        return ddpm_ref.train_general(state, data, sched, cfg, tcfg, rng, n_steps, callback)
    reason = unsupported(tcfg)
    if reason:
        raise ValueError(reason)
    if backend == "cupy":
        from . import gpu
        if np.dtype(dtype) != np.float32:
            raise ValueError("the cupy backend computes in float32")
        return gpu.train(state, data, sched, cfg, tcfg, rng, n_steps, callback, draws=draws)
    from . import cpu

    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != cfg.dim:
        raise ValueError(f"data must have shape (N, {cfg.dim}), got {data.shape}")
    widths = model_widths(cfg)
    offs, _ = layout(widths)
    table = class_table_shape(cfg)
    theta, m, s, ema = (pack(d, widths, dtype, table is not None)
                        for d in (state["params"], state["opt"]["m"], state["opt"]["s"], state["ema"]))
    step = int(state["opt"]["step"])
    T, B, D = sched.T, tcfg.batch_size, cfg.dim
    emb = ddpm_ref.timestep_embedding(np.arange(T + 1), cfg.emb_dim, cfg.max_period).astype(dtype)
    sab = np.asarray(sched.sqrt_alpha_bar, dtype=dtype)
    s1m = np.asarray(sched.sqrt_one_minus_alpha_bar, dtype=dtype)
    data_c = data.astype(dtype)
    losses = np.empty(n_steps)
    done = 0
    seed = int(rng.integers(0, 2**63 - 1)) if draws == "counter" else 0
    while done < n_steps:
        K = min(CHUNK, n_steps - done)
        yy = np.zeros((0, 0), np.int64)
        if draws == "counter":                               # filled in by the kernel
            idx, tt, eps = np.zeros((K, B), np.int64), np.ones((K, B), np.int64), np.zeros((K, B, D), dtype)
        elif labels is not None:
            idx, tt, eps, yy = draw_chunk(rng, data.shape[0], T, B, D, K, labels, p_uncond, cfg.n_classes)
        else:
            idx, tt, eps = draw_chunk(rng, data.shape[0], T, B, D, K)
        lrs = np.array([ddpm_ref.learning_rate(tcfg, step + k) for k in range(K)], dtype=np.float64)
        eps = eps.astype(dtype, copy=False)
        check_train_arrays(cfg, widths, T, B, theta, m, s, ema, data_c, emb, sab, s1m, lrs, idx, tt, eps, yy)
        chunk_losses = np.empty(K, dtype=np.float64)
        with one_blas_thread():
            step = cpu.train_steps_kernel(theta, m, s, ema, step, widths, offs, cpu.ACT_CODES[cfg.activation],
                                          data_c, idx, tt, eps, emb,
                                          sab, s1m, lrs, tcfg.adam_beta1, tcfg.adam_beta2, tcfg.adam_eps,
                                          tcfg.grad_clip, tcfg.ema_decay, chunk_losses, _n_chunks(B),
                                          draws == "counter", np.uint64(seed), yy)
        losses[done:done + K] = chunk_losses
        if callback is not None:
            for k in range(K):
                callback(step - K + k + 1, chunk_losses[k])
        done += K
    new = dict(state)
    new["params"] = unpack(theta, widths, table)
    new["ema"] = unpack(ema, widths, table)
    new["opt"] = {"m": unpack(m, widths, table), "s": unpack(s, widths, table), "step": int(step)}
    return new, losses


def _check_sampler_backend(backend: str, parametrization: str, what: str) -> None:
    _check_backend(backend)
    if backend != "numpy" and parametrization != "eps":
        raise ValueError(f"the numba {what} implements parametrization 'eps'; use backend 'numpy' for "
                         f"{parametrization!r}")


def _noise(z, rng, shape, dtype, needed: bool):
    """(z as the kernel wants it, seed): z checked against ``shape``, or an empty z and a seed from ``rng``."""
    if not needed:
        return np.zeros((0, 1, 1), dtype=dtype), 0
    if (z is None) == (rng is None):
        raise ValueError(f"pass exactly one noise source: z (an array of shape {shape}) or rng")
    if z is not None:
        z = np.asarray(z, dtype=dtype)
        if z.shape != shape:
            raise ValueError(f"z must have shape {shape}, got {z.shape}")
        return z, 0
    return np.zeros((0, 1, 1), dtype=dtype), int(rng.integers(0, 2**63 - 1))


def _sampler(backend: str):
    """The function that runs K update steps with given coefficients on ``backend``."""
    if backend == "cupy":
        from . import gpu
        def run(*args, cond=(None, 0.0)):        # _condition refused a conditional model on cupy: cond is unused
            return gpu.run_sampler(*args)
        return run
    return _run_sampler


def _run_sampler(params, cfg, x_T, t_steps, c_x, c_eps, sigma, z, seed, dtype, tile, keep_traj, cond=(None, 0.0)):
    """Run ``cpu.sample_kernel`` for the model steps ``t_steps`` (K,) with the given coefficients; ``cond`` =
    (classes (N,) or None, guidance weight w) of a conditional network: one kernel call per class present."""
    from . import cpu

    x = np.array(x_T, dtype=dtype)
    if not (isinstance(tile, (int, np.integer)) and tile >= 1):
        raise ValueError(f"tile must be a positive integer, got {tile!r}")
    widths = model_widths(cfg)
    offs, _ = layout(widths)
    theta = pack(params, widths, dtype)
    table = time_table(params, cfg, t_steps, dtype)                                  # (K, H)
    K = len(t_steps)
    traj = np.empty((K + 1,) + x.shape, dtype=dtype) if keep_traj else np.zeros((0, 1, 1), dtype=dtype)
    as_dt = lambda a: np.ascontiguousarray(a, dtype=dtype)
    c_x, c_eps, sigma = as_dt(c_x), as_dt(c_eps), as_dt(sigma)
    z = np.zeros((0, 1, 1), dtype=dtype) if z is None or (np.ndim(z) >= 1 and np.shape(z)[0] == 0) else as_dt(z)
    if keep_traj:
        traj[K] = x
    groups = class_tables(params, cfg, table, cond[0], cond[1])
    for i, (rows, t_y, t_null) in enumerate(groups):
        sub = (lambda a: a) if rows is None else (lambda a: np.ascontiguousarray(a[rows]))
        sub_k = (lambda a: a) if rows is None else (lambda a: np.ascontiguousarray(a[:, rows]))
        xs, zs = sub(x), (z if z.shape[0] == 0 else sub_k(z))
        ts = traj if not keep_traj else sub_k(traj)
        check_sampler_arrays(cfg, widths, theta, xs, t_y, c_x, c_eps, sigma, zs, ts, t_null)
        with one_blas_thread():
            cpu.sample_kernel(theta, widths, offs, cpu.ACT_CODES[cfg.activation], cfg.fourier, xs,
                              t_y, c_x, c_eps, sigma, zs, _group_seed(seed, i, len(groups)), int(tile), ts,
                              t_null, x.dtype.type(cond[1]))
        if rows is not None:
            x[rows] = xs
            if keep_traj:
                traj[:, rows] = ts
    x = x.astype(np.float64)
    return (x, traj.astype(np.float64)) if keep_traj else x


def _weights(denoise_fn):
    """(params, cfg) of the MLP behind ``denoise_fn``: the compiled kernels run its weights, not a Python function."""
    if not isinstance(denoise_fn, ddpm_ref.Denoiser):
        raise TypeError(f"the compiled samplers run the MLP's weights: pass denoise_fn = ddpm_ref.network(params, cfg), "
                        f"got {type(denoise_fn).__name__} (backend 'numpy' takes any function)")
    return denoise_fn.params, denoise_fn.cfg


def _condition(denoise_fn, N: int, backend: str):
    """(classes (N,), guidance weight w) of a conditional network behind ``denoise_fn`` (``ddpm_ref.network(params,
    cfg, y)`` or ``ddpm_ref.guided_network``), (None, 0.0) for an unconditional one."""
    cfg = denoise_fn.cfg
    if not cfg.n_classes:
        return None, 0.0
    if backend == "cupy":
        raise ValueError("the CUDA samplers have no class table yet: sample a conditional model on 'numba' or 'numpy'")
    return ddpm_ref.mlp.class_index(denoise_fn.y, N, cfg.n_classes), float(getattr(denoise_fn, "w", 0.0))


def p_sample_loop(denoise_fn, sched, x_T: np.ndarray, *, z: np.ndarray | None = None,
                  rng: np.random.Generator | None = None, var_type: str = "beta", parametrization: str = "eps",
                  t_model: np.ndarray | None = None, backend: str = "numba", dtype=np.float32, tile: int = 256):
    """``ddpm_ref.p_sample_loop_general`` (Algorithm 2; with the defaults ``ddpm_ref.p_sample_loop``) on the
    chosen backend; numba: all T steps in one compiled call.

    Line 4 (Eq. 11) for t = T..1 of ``sched`` (respaced schedules with their ``t_model`` map too), with
    σ_t² = β_t or β̃_t and z = 0 at t = 1. ``z`` (T + 1, N, D) uses z[t] at step t like the reference;
    with ``rng`` the kernel draws its own counter-based normals from one seed taken from ``rng``.
    """
    return _ancestral(denoise_fn, sched, x_T, z, rng, var_type, parametrization, t_model, backend, dtype, tile,
                      False)


def p_sample_trajectory(denoise_fn, sched, x_T: np.ndarray, *, z: np.ndarray | None = None,
                        rng: np.random.Generator | None = None, var_type: str = "beta", parametrization: str = "eps",
                        t_model: np.ndarray | None = None, backend: str = "numba", dtype=np.float32, tile: int = 256):
    """``ddpm_ref.p_sample_trajectory_general`` on the chosen backend: (x_0, trajectory (T + 1, N, D) indexed by t)."""
    return _ancestral(denoise_fn, sched, x_T, z, rng, var_type, parametrization, t_model, backend, dtype, tile,
                      True)


def _ancestral(denoise_fn, sched, x_T, z, rng, var_type, parametrization, t_model, backend, dtype, tile, keep):
    _check_sampler_backend(backend, parametrization, "sampler")
    if backend == "numpy":
        ref = ddpm_ref.p_sample_trajectory_general if keep else ddpm_ref.p_sample_loop_general
        return ref(denoise_fn, sched, x_T, z=z, rng=rng, var_type=var_type, parametrization=parametrization,
                   t_model=t_model)
    params, cfg = _weights(denoise_fn)
    if var_type not in ("beta", "beta_tilde"):
        raise ValueError(f"the numba sampler implements var_type 'beta' or 'beta_tilde' (got {var_type!r}); "
                         "use backend 'numpy' for learned variances")
    ddpm_ref.param.check_compatible(sched, parametrization)
    t_steps, c_x, c_eps, sigma = ancestral_coefficients(sched, var_type, t_model)
    T = sched.T
    z, seed = _noise(z, rng, (T + 1,) + tuple(np.shape(x_T)), dtype, needed=T > 1)
    if z.shape[0] == T + 1:
        z = np.ascontiguousarray(z[:0:-1])                           # z[T], …, z[1]: the kernel's order of steps
    return _sampler(backend)(params, cfg, x_T, t_steps, c_x, c_eps, sigma, z, seed, dtype, tile, keep,
                             cond=_condition(denoise_fn, np.shape(x_T)[0], backend))


def ancestral_coefficients(sched, var_type: str, t_model=None):
    """Algorithm 2 line 4 (Eq. 11) as the kernels' update x ← c_x·x − c_eps·ε̂ + σ·z, for steps
    k = 0..T−1 ↔ t = T..1: returns (model steps t_model[t], c_x = 1/√α_t, c_eps = β_t/(√α_t √(1−ᾱ_t)),
    σ_t with σ_1 = 0)."""
    T = sched.T
    t = np.arange(T, 0, -1)
    t_steps = t if t_model is None else np.asarray(t_model)[t]
    if len(t_steps) != T:
        raise ValueError(f"t_model must map steps 0..T of the schedule (length T + 1 = {T + 1})")
    with np.errstate(divide="ignore"):
        c_x = 1.0 / np.sqrt(sched.alpha[t])
        c_eps = sched.beta[t] / np.maximum(sched.sqrt_one_minus_alpha_bar[t], 1e-300) * c_x
    sigma2 = (sched.beta if var_type == "beta" else sched.beta_tilde)[t]
    sigma = np.where(t > 1, np.sqrt(sigma2), 0.0)                    # Alg. 2 line 3: z = 0 at t = 1
    return t_steps, c_x, c_eps, sigma


def ddim_coefficients(sched, ts: np.ndarray, eta: float):
    """DDIM (Song et al. Eq. 12) from t to s (the next of ``ts``, 0 after the last) as the kernels'
    update x_s = c_x·x_t − c_eps·ε̂ + σ·z: with x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t,
    c_x = √ᾱ_s/√ᾱ_t, c_eps = c_x √(1−ᾱ_t) − √(1−ᾱ_s−σ²), σ = η √((1−ᾱ_s)/(1−ᾱ_t)) √(1−ᾱ_t/ᾱ_s)."""
    prev = np.append(ts[1:], 0)
    ab_t, ab_p = sched.alpha_bar[ts], sched.alpha_bar[prev]
    sigma = eta * np.sqrt((1.0 - ab_p) / (1.0 - ab_t)) * np.sqrt(np.maximum(1.0 - ab_t / ab_p, 0.0))
    c_x = np.sqrt(ab_p) / np.sqrt(ab_t)
    c_eps = c_x * np.sqrt(1.0 - ab_t) - np.sqrt(np.maximum(1.0 - ab_p - sigma ** 2, 0.0))
    return c_x, c_eps, sigma


def ddim_sample_loop(denoise_fn, sched, x_T: np.ndarray, *, ts: np.ndarray | None = None,
                     eta: float = 0.0, z: np.ndarray | None = None, rng: np.random.Generator | None = None,
                     parametrization: str = "eps", backend: str = "numba", dtype=np.float32, tile: int = 256):
    """``ddpm_ref.ddim_sample_loop`` on the chosen backend, for the MLP ``denoise_fn = network(params, cfg)``.

    DDIM (Song et al. Eq. 12) down the descending steps ``ts`` (default all T) with η = ``eta``:
    x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ + σ z, x̂_0 = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t, written in the kernel as
    x_s = c_x x_t − c_eps ε̂ + σ z. ``z`` (K, N, D) uses z[k] at the k-th visited step like the reference.
    """
    _check_sampler_backend(backend, parametrization, "DDIM sampler")
    if not (0.0 <= eta <= 1.0):
        raise ValueError(f"eta must lie in [0, 1], got {eta!r}")
    if backend == "numpy":
        return ddpm_ref.ddim_sample_loop(denoise_fn, sched, x_T, ts=ts, eta=eta, z=z, rng=rng,
                                         parametrization=parametrization)
    params, cfg = _weights(denoise_fn)
    ddpm_ref.param.check_compatible(sched, parametrization)
    ts = np.arange(sched.T, 0, -1) if ts is None else np.asarray(ts, dtype=np.int64)
    if ts.ndim != 1 or len(ts) == 0 or np.any(np.diff(ts) >= 0) or ts[-1] < 1 or ts[0] > sched.T:
        raise ValueError(f"ts must be strictly decreasing steps in 1..T = 1..{sched.T}, got {ts!r}")
    c_x, c_eps, sigma = ddim_coefficients(sched, ts, eta)
    z, seed = _noise(z, rng, (len(ts),) + tuple(np.shape(x_T)), dtype, needed=eta > 0)
    return _sampler(backend)(params, cfg, x_T, ts, c_x, c_eps, sigma, z, seed, dtype, tile, False,
                             cond=_condition(denoise_fn, np.shape(x_T)[0], backend))


class _Trace:
    """A stand-in network for ``solver_coefficients``: a point is a coefficient row over the basis
    [x_T, ε̂_0, ε̂_1, …]; call k records its input row and time and returns the basis vector of ε̂_k."""

    def __init__(self, width: int):
        self.width, self.inputs, self.ts = width, [], []

    def __call__(self, x, t):
        k = len(self.inputs)
        if 1 + k >= self.width:
            raise RuntimeError("the solver made more network calls than it announced")
        self.inputs.append(np.array(x[0]))
        self.ts.append(float(np.asarray(t).flat[0]))
        out = np.zeros_like(x)
        out[0, 1 + k] = 1.0
        return out


def solver_coefficients(sched, *, solver: str, steps: int | None = None, spacing: str | None = None, ts=None,
                        final: str = "denoise", sigma_max: float | None = ddpm_ref.SIGMA_MAX):
    """(call times t_k (K,), A (K + 1, K + 1)) of ``ddpm_ref.solver_sample`` on an ε-model, read off the
    reference by running it once on symbolic points: every step of the solvers is a linear combination of
    the current points and the network's outputs with coefficients that depend on the grid alone, so call k
    sees x_k = A[k, 0]·x_T + Σ_{j<k} A[k, 1 + j]·ε̂_j and the solver returns Σ_j A[K, j]·(x_T, ε̂_0, …)[j]."""
    n_calls = steps if ts is None else 2 * np.size(ts)              # at most 2 per point (Heun)
    if not isinstance(n_calls, (int, np.integer)) or isinstance(n_calls, bool) or n_calls < 1:
        n_calls = 1                                                 # the reference names what was wrong
    trace = _Trace(int(n_calls) + 2)
    x_T = np.zeros((1, trace.width))
    x_T[0, 0] = 1.0
    result = ddpm_ref.solver_sample(trace, sched, x_T, solver=solver, steps=steps, spacing=spacing, ts=ts,
                                    final=final, parametrization="eps", sigma_max=sigma_max)
    K = len(trace.inputs)
    A = np.vstack(trace.inputs + [result[0]])                       # (K + 1, width)
    if np.any(A[:, K + 1:] != 0) or np.any(np.triu(A[:K, 1:K + 1]) != 0):
        raise AssertionError("a solver's call depends on an output it has not made yet")
    return np.array(trace.ts), np.ascontiguousarray(A[:, :K + 1])


SOLVER_TILE_FLOATS = 1 << 20     # cap on a tile's stored outputs K·tile·D (4 MiB in float32)
SOLVER_MAX_CALLS = 2048          # A is (K + 1)² and its trace K²: 34 MB at this K; more calls run on numpy


def solver_sample(denoise_fn, sched, x_T: np.ndarray, *, solver: str, steps: int | None = None,
                  spacing: str | None = None, ts=None, parametrization: str = "eps", final: str = "denoise",
                  sigma_max: float | None = ddpm_ref.SIGMA_MAX, backend: str = "numba", dtype=np.float32,
                  tile: int = 256):
    """``ddpm_ref.solver_sample`` on the chosen backend, for the MLP ``denoise_fn = network(params, cfg)``:
    numba runs all K calls in one compiled call (``cpu.solver_kernel`` with ``solver_coefficients``)."""
    _check_sampler_backend(backend, parametrization, "ODE solver")
    if backend == "numpy":
        return ddpm_ref.solver_sample(denoise_fn, sched, x_T, solver=solver, steps=steps, spacing=spacing, ts=ts,
                                      parametrization=parametrization, final=final, sigma_max=sigma_max)
    if backend == "cupy":
        raise ValueError("the ODE solvers have no CUDA kernel yet; use backend 'numba' or 'numpy'")
    from . import cpu
    params, cfg = _weights(denoise_fn)
    if steps is not None and isinstance(steps, (int, np.integer)) and steps > SOLVER_MAX_CALLS:
        raise ValueError(f"the numba ODE solvers make at most {SOLVER_MAX_CALLS} network calls (their coefficient "
                         f"matrix grows as K²); got steps = {steps}: use backend 'numpy'")
    t_calls, A = solver_coefficients(sched, solver=solver, steps=steps, spacing=spacing, ts=ts, final=final,
                                     sigma_max=sigma_max)
    x = np.array(x_T, dtype=dtype)
    if x.ndim != 2 or x.shape[1] != cfg.dim:
        raise ValueError(f"x_T must have shape (N, {cfg.dim}), got {x.shape}")
    if not (isinstance(tile, (int, np.integer)) and tile >= 1):
        raise ValueError(f"tile must be a positive integer, got {tile!r}")
    K = len(t_calls)
    tile = int(max(1, min(tile, SOLVER_TILE_FLOATS // (K * cfg.dim))))
    widths = model_widths(cfg)
    offs, _ = layout(widths)
    theta = pack(params, widths, dtype)
    table = time_table(params, cfg, t_calls, dtype)                                  # (K, H)
    ones = np.ones(K, dtype=dtype)
    y, w = _condition(denoise_fn, x.shape[0], backend)
    for rows, t_y, t_null in class_tables(params, cfg, table, y, w):
        xs = x if rows is None else np.ascontiguousarray(x[rows])
        check_sampler_arrays(cfg, widths, theta, xs, t_y, ones, ones, ones, t_null=t_null)
        with one_blas_thread():
            cpu.solver_kernel(theta, widths, offs, cpu.ACT_CODES[cfg.activation], cfg.fourier, xs, t_y,
                              np.ascontiguousarray(A, dtype=dtype), tile, t_null, x.dtype.type(w))
        if rows is not None:
            x[rows] = xs
    return x.astype(np.float64)
