"""Sampling from a fitted model: Algorithm 2 (ancestral, on all T steps or a respaced schedule), DDIM, the
probability-flow ODE and its few-step solvers, the sampler chosen where the caller names none, and
``sample_to_file``, which streams any number of points into a .npy file in bounded memory.

    x = ddpm.sample("runs/sr/model.npz", 10_000, seed=1)  # points in the data's own coordinates
"""

from __future__ import annotations

import os
import shutil

import numpy as np

import ddpm_fast
import ddpm_ref

from .data import quantize
from .guards import check_memory, warn_if_tiny_alpha_bar_T
from .model import Model
from .runtime import choose_backend, progress_bar

__all__ = ["SAMPLERS", "SOLVER_STEPS", "FEW_STEPS", "DEFAULT_SOLVER", "SAMPLE_CHUNK", "default_sampler", "sample",
           "sample_trajectory", "ode_sigma_max", "sample_to_file", "class_indices", "check_guidance",
           "model_network", "whole_data_classes", "MAX_GUIDANCE"]

SAMPLERS = ("ancestral", "ddim", "ode") + ddpm_ref.SOLVERS
SOLVER_STEPS = 20            # a solver's network calls where the caller gives no steps
FEW_STEPS = 50               # up to this many steps, sampler=None takes the best few-step solver


DEFAULT_SOLVER = "unipc"     # the best single row of benchmarks/few_step.py for K ≤ FEW_STEPS


def default_sampler(steps: int) -> str:
    """The sampler ``sample`` uses for ``steps`` = K network calls when none is named (and no option of
    Algorithm 2's is given): DEFAULT_SOLVER, the best of ``benchmarks/few_step.py`` over K ≤ FEW_STEPS, for
    K ≤ FEW_STEPS, else ancestral sampling on the respaced schedule."""
    return DEFAULT_SOLVER if steps <= FEW_STEPS else "ancestral"


MAX_GUIDANCE = 1000.0       # larger weights overflow the float32 kernels' (1 + w)·h − w·h_∅


def class_indices(m: Model, y, n: int):
    """A conditional model's class for each of n points, as rows of its class table (``ddpm_ref.mlp.class_index``):
    ``y`` a class name (as in ``m.info["classes"]``), or n of them; None: no class. A value is matched as a name
    first (``3`` and ``"3"`` are the class named "3", whatever its position), and an integer that names no class is
    taken as a position 0..C − 1."""
    if y is None:
        return None
    classes = m.info.get("classes")
    if not classes:
        raise ValueError("this model was fitted without labels: it has no classes (fit with --label / y=...)")
    names = {str(c): i for i, c in enumerate(classes)}

    def one(v):
        if isinstance(v, (np.generic,)):
            v = v.item()
        if not isinstance(v, bool) and str(v) in names:
            return names[str(v)]
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(classes):
            return v
        raise ValueError(f"unknown class {v!r}; this model's classes are {', '.join(map(str, classes))}")
    if isinstance(y, (str, int, np.generic)):
        return one(y)
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"y must be one class or {n} classes (one per point), got shape {y.shape}")
    values, inverse = np.unique(y, return_inverse=True)
    return np.array([one(v) for v in values], dtype=np.int64)[inverse.reshape(-1)]


def check_guidance(guidance) -> float:
    """The guidance weight w as a float: None is 0; w must lie in [−1, MAX_GUIDANCE] (w = −1 is the ∅ model, 0 the
    conditional one; below −1 it would push away from the class)."""
    w = 0.0 if guidance is None else guidance
    if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not -1.0 <= w <= MAX_GUIDANCE:
        raise ValueError(f"guidance must be a number in [-1, {MAX_GUIDANCE:g}] (0: no guidance), got {guidance!r}")
    return float(w)


def model_network(m: Model, weights: dict, y=None, guidance: float = 0.0, n: int = 1):
    """``denoise_fn(x_t, t)`` of a fitted model: its MLP, or for a conditional model the guided prediction of
    class ``y`` (``class_indices``) with weight ``guidance`` (``ddpm_ref.guided_network``: (1 + w)·ε_θ(y) − w·ε_θ(∅),
    Ho & Salimans 2022 Eq. 6); y None is ∅ (the unconditional model that label dropout trained; ``sample`` instead
    draws classes by their frequency, ``whole_data_classes``)."""
    w = check_guidance(guidance)
    yi = class_indices(m, y, n)
    if yi is None:
        if w != 0:
            raise ValueError("guidance needs a class: name one (--class NAME / y=...)")
        return ddpm_ref.network(weights, m.cfg)
    return ddpm_ref.guided_network(weights, m.cfg, yi, w)


def whole_data_classes(m: Model, n: int, rng: np.random.Generator):
    """Classes for n samples of the whole data from a conditional model: drawn with their training frequencies
    (``m.info["class_counts"]``; equal without them), so that the samples follow p(x) = Σ_y p(y)·p_θ(x|y). The
    conditional model saw 1 − p_uncond of the training labels and ∅ the rest: measured on digits, the ∅ model's
    samples were at 4.2× the energy floor where those of each class were at 1.05× (benchmarks/guidance.py).
    None for an unconditional model."""
    if not m.cfg.n_classes:
        return None
    counts = np.asarray(m.info.get("class_counts") or np.ones(m.cfg.n_classes), dtype=np.float64)
    return rng.choice(m.cfg.n_classes, size=int(n), p=counts / counts.sum())


def sample(model, n: int, *, seed: int | None = None, var_type: str | None = None, use_ema: bool = True,
           backend: str | None = None, sampler: str | None = None, steps: int | None = None, eta: float = 0.0,
           spacing: str | None = None, y=None, guidance: float = 0.0) -> np.ndarray:
    """Draw n points with Algorithm 2 from a fitted model (a :class:`Model` or a checkpoint path).

    Returns points (n, D) in the data's own coordinates (``sample_trajectory`` also returns every x_t).
    ``seed``: as ``numpy.random.default_rng`` — None (default)
    draws fresh entropy, so two calls give different points; pass an int to reproduce a draw. Uses the EMA weights unless ``use_ema=False``. The
    default backend is numba when installed and it implements the model (ε, fixed σ²), else numpy;
    the numba sampler draws z in-kernel from a seed taken from the same rng.

    ``sampler``: "ancestral" (Algorithm 2; with ``steps`` = K < T on the respaced schedule of K
    steps chosen by ``spacing``: even, leading, trailing or quad, default even), "ddim" (η = ``eta``, K = ``steps``
    or T, same spacings), "ode" (the probability-flow ODE, RK4 with ``steps`` or 100 steps in log σ, the network
    below σ_max = 3: ``ddpm_ref.ode``), or a high-order solver of that ODE with ``steps`` = K network calls
    (default ``SOLVER_STEPS``): "dpmpp2m", "dpmpp2s", "unipc" or "heun" (``ddpm_ref.solvers``; ``spacing``
    logsnr, time or karras, default the solver's own). ``sampler=None`` (default): ancestral over all T steps
    when ``steps`` is None, else ``default_sampler(steps)``. Ancestral, DDIM and the solvers run on the numba
    kernels by default for ε-models (ancestral: with fixed σ²); the ODE runs on the numpy reference.

    A model fitted with labels draws from class ``y`` (a class name, an index, or one per point; None: the whole
    data, each point's class drawn with the classes' training frequencies, ``whole_data_classes``), with
    classifier-free guidance of weight ``guidance`` (w = 0: the conditional model; larger w: closer to the class,
    less diverse) in every sampler (``model_network``).
    """
    return _sample(model, n, seed, var_type, use_ema, backend, sampler, steps, eta, spacing, False, y, guidance)


def sample_trajectory(model, n: int, *, seed: int | None = None, var_type: str | None = None, use_ema: bool = True,
                      backend: str | None = None, steps: int | None = None, spacing: str = "even", y=None,
                      guidance: float = 0.0):
    """``sample`` with the ancestral sampler, keeping the chain: returns (points (n, D), trajectory
    (K+1, n, D) indexed by step, row K = x_T, row 0 = x_0), both in the data's own coordinates (the points
    on the data's grid for quantised data; the trajectory not)."""
    return _sample(model, n, seed, var_type, use_ema, backend, "ancestral", steps, 0.0, spacing, True, y, guidance)


def _sample(model, n, seed, var_type, use_ema, backend, sampler, steps, eta, spacing, return_trajectory, y=None,
            guidance=0.0):
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer number of samples, got {n!r}")
    m = model if isinstance(model, Model) else Model.load(model)
    copies = 6 + (m.sched.T + 1 if return_trajectory else 0)              # x_T, x, noise, outputs (+ trajectory)
    check_memory({f"{n} points of dimension {m.cfg.dim}": 8 * copies * int(n) * m.cfg.dim},
                 f"sampling {n} points" + (" with their trajectory" if return_trajectory else "")
                 + " (ddpm sample streams to a file in chunks)")
    var_type_given = var_type is not None
    var_type = var_type or m.tcfg.var_type
    if (var_type == "learned") != (m.tcfg.var_type == "learned"):
        raise ValueError(f"this model was trained with var_type {m.tcfg.var_type!r}; it cannot sample with {var_type!r}")
    rng = np.random.default_rng(seed)
    weights = m.state["ema"] if use_ema else m.state["params"]
    net = model_network(m, weights, y, guidance, int(n))
    x_T = rng.standard_normal((int(n), m.cfg.dim))                         # Alg. 2 line 1
    if y is None and m.cfg.n_classes:                                      # the whole data: a class per point
        net = ddpm_ref.guided_network(weights, m.cfg, whole_data_classes(m, n, rng), 0.0)
    if sampler is None:
        sampler = _unnamed_sampler(m, steps, spacing, var_type_given)
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    sigma_max = ode_sigma_max(m)
    if sampler == "ddim" or (sampler != "ancestral" and sigma_max is None):   # else the ODE starts at σ_max
        warn_if_tiny_alpha_bar_T(m, f"the {sampler} sampler", stacklevel=4)    # the caller of sample()
    if sampler in ddpm_ref.SOLVERS:
        return _solver_sample(m, net, x_T, sampler, steps, spacing, backend, sigma_max)
    if sampler == "ode":
        x0 = ddpm_ref.ode_sample(net, m.sched, x_T, steps=steps or 100,
                                 parametrization=m.tcfg.parametrization, sigma_max=sigma_max)
        return quantize(m.norm.to_data(x0), m.info.get("grid"))
    T = m.sched.T
    K = T if steps is None else steps
    if not isinstance(K, (int, np.integer)) or not 1 <= K <= T:
        raise ValueError(f"steps must be an integer in 1..T = 1..{T}, got {steps!r}")
    ts = ddpm_ref.timesteps(T, int(K), spacing or "even")
    # the numba kernels implement ε-models with fixed σ² (every sampler here but the ODE)
    fused_ok = m.tcfg.parametrization == "eps" and (sampler == "ddim" or var_type in ("beta", "beta_tilde"))
    if backend is None:
        backend = ddpm_fast.default_backend() if fused_ok else "numpy"
    else:
        choose_backend(backend)
        if backend != "numpy" and not fused_ok:
            raise ValueError(f"the {backend} sampler implements eps-models with var_type beta or beta_tilde "
                             f"(this model: {m.tcfg.parametrization!r}, {var_type!r}); use backend 'numpy'")
    if sampler == "ddim":
        x0 = ddpm_fast.ddim_sample_loop(net, m.sched, x_T, ts=ts, eta=eta, rng=rng if eta > 0 else None,
                                        parametrization=m.tcfg.parametrization, backend=backend)
        return quantize(m.norm.to_data(x0), m.info.get("grid"))
    sched, t_model = (m.sched, None) if K == T else ddpm_ref.respace(m.sched, ts)
    chain = ddpm_fast.p_sample_trajectory if return_trajectory else ddpm_fast.p_sample_loop
    res = chain(net, sched, x_T, rng=rng, var_type=var_type, t_model=t_model,
                parametrization=m.tcfg.parametrization, backend=backend)
    if return_trajectory:
        x0, traj = res
        return quantize(m.norm.to_data(x0), m.info.get("grid")), m.norm.to_data(traj)
    return quantize(m.norm.to_data(res), m.info.get("grid"))


def _unnamed_sampler(m, steps, spacing, var_type_given: bool) -> str:
    """``sample``'s sampler when the caller names none: ancestral for all T steps; ancestral too when the
    options are Algorithm 2's (a respacing ``spacing``, a ``var_type``) or the model is a μ-model (no ε at a
    continuous t); the default solver when ``spacing`` is a solver's; else ``default_sampler(steps)``."""
    if steps is None and spacing not in ddpm_ref.SOLVER_SPACINGS:
        return "ancestral"
    if spacing in ddpm_ref.SPACINGS or var_type_given or m.tcfg.parametrization == "mu":
        return "ancestral"
    if spacing in ddpm_ref.SOLVER_SPACINGS:
        return DEFAULT_SOLVER
    return default_sampler(steps)


def ode_sigma_max(m) -> float | None:
    """Where the model's probability-flow ODE stops calling the network (``ddpm_ref.ode``): σ_max = 3 for data
    standardised per coordinate, whose Gaussian limit above it is N(0, I); None (the network up to σ_T) for
    isotropic normalisation, which leaves the coordinates' variances unequal."""
    return ddpm_ref.SIGMA_MAX if m.info.get("normalize", "per_dim") == "per_dim" else None


def _solver_sample(m, net, x_T, solver, steps, spacing, backend, sigma_max):
    """x_0 in data coordinates from a high-order solver of the probability-flow ODE (``sample``)."""
    K = SOLVER_STEPS if steps is None else steps
    if not isinstance(K, (int, np.integer)) or isinstance(K, bool) or K < 1:
        raise ValueError(f"steps must be a positive integer number of network calls, got {steps!r}")
    if spacing is not None and spacing not in ddpm_ref.SOLVER_SPACINGS:
        raise ValueError(f"the {solver} solver spaces its steps by {', '.join(ddpm_ref.SOLVER_SPACINGS)}; got "
                         f"spacing {spacing!r} (for K respaced steps of Algorithm 2 name sampler 'ancestral')")
    if backend is None:
        fused_ok = m.tcfg.parametrization == "eps" and K <= ddpm_fast.SOLVER_MAX_CALLS
        backend = ddpm_fast.default_backend() if fused_ok else "numpy"
    else:
        choose_backend(backend)
    x0 = ddpm_fast.solver_sample(net, m.sched, x_T, solver=solver, steps=int(K),
                                 spacing=spacing, parametrization=m.tcfg.parametrization, backend=backend,
                                 sigma_max=sigma_max)
    return quantize(m.norm.to_data(x0), m.info.get("grid"))


SAMPLE_CHUNK = 100_000       # points per call when streaming samples to a file: bounds memory whatever n


def sample_to_file(model, n: int, out, *, seed: int = 0, progress: bool = True, chunk: int | None = None,
                   **kw) -> dict:
    """Draw n points (``sample``'s options in ``kw``) into the .npy file ``out``, ``chunk`` points at a
    time: ``numpy.lib.format.open_memmap`` writes the header, then each chunk is written through a map of
    its own bytes only (a map of the whole file would keep every written page resident: RSS grew with n
    by the file's size), so peak memory depends on ``chunk`` (default ``SAMPLE_CHUNK``), not on n. Chunk 0
    uses ``seed`` itself (so for n ≤ chunk the file equals ``sample(model, n, seed=seed)``), chunk k the
    seed SeedSequence([seed, k]). The file appears (atomically renamed) only when complete. Returns a
    summary: n, dim, seed, mean and std of the points."""
    m = model if isinstance(model, Model) else Model.load(model)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer number of samples, got {n!r}")
    chunk = SAMPLE_CHUNK if chunk is None else chunk
    seed = int(np.random.SeedSequence().entropy) if seed is None else seed
    out = os.fspath(out)
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    D = m.norm.data_dim                           # the data's columns: the modelled ones and the constants
    need = 128 + int(n) * D * 8
    free = shutil.disk_usage(folder).free
    if need > free:
        raise ValueError(f"{n} samples of dimension {D} need {need / 2**30:.2f} GiB on disk; "
                         f"{folder} has {free / 2**30:.2f} GiB free")
    tmp = out + ".partial.npy"
    bar = progress_bar(int(n), 0, progress and n > chunk, desc="sampling", unit="point")
    s1 = np.zeros(D)
    s2 = np.zeros(D)
    try:
        head = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(int(n), D))
        offset = head.offset                      # the header is written and the file sized; map one chunk at a
        del head                                  # time, so written pages leave memory with their chunk
        for k, lo in enumerate(range(0, int(n), chunk)):
            hi = min(int(n), lo + chunk)
            seed_k = seed if k == 0 else np.random.SeedSequence([seed, k])
            x = sample(m, hi - lo, seed=seed_k, **kw)
            view = np.memmap(tmp, dtype=np.float64, mode="r+", offset=offset + lo * D * 8,
                             shape=(hi - lo, D))
            view[:] = x
            view.flush()
            del view
            s1 += x.sum(axis=0)
            s2 += (x * x).sum(axis=0)
            if bar is not None:
                bar.update(hi - lo)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        if bar is not None:
            bar.close()
    mean = s1 / n
    return {"out": out, "n": int(n), "dim": D, "seed": seed, "mean": mean.round(4).tolist(),
            "std": np.sqrt(np.maximum(s2 / n - mean ** 2, 0.0)).round(4).tolist()}
