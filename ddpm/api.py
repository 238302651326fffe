"""The Python API: fit a diffusion model to 2-D (or N-D) points, sample from it, measure it.

    result = ddpm.fit("swiss_roll", out="runs/sr")       # or fit(data=array) / fit("points.csv")
    x = ddpm.sample("runs/sr/model.npz", 10_000, seed=1)  # points in the data's own coordinates

Randomness: one ``seed`` is split (``numpy.random.SeedSequence.spawn``) into independent streams for
the training data, for training (Algorithm 1) and for evaluation, so changing the number of training
steps never changes the data or the evaluation draws.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, fields, replace

import numpy as np

import ddpm_fast
import ddpm_ref
import toy_data
from ddpm_ref import MLPConfig, TrainConfig

from .bound_strata import FAST_BOUND_POINTS, FAST_BOUND_T_DRAWS, bound_stratified
from .floors import cached_floors
from .metrics import EVAL_MODES, FIT_EVAL_MODES, sample_statistics
from .model import Model, Normalizer, data_fingerprint

__all__ = ["DivergenceError", "DeterministicSamplerWarning", "cosine_cap", "default_recipe", "default_steps", "MemorisationWarning", "dequantize", "quantize", "fit", "sample", "sample_trajectory", "sample_to_file", "check_memory", "evaluate", "likelihood_bound", "load_model", "resolve_data", "FitResult", "BACKENDS",
           "OUTPUT_FILES"]

BACKENDS = ddpm_fast.BACKENDS
OUTPUT_FILES = ("model.npz", "samples.npy", "samples.png", "reverse.png", "loss.png", "bound_profile.png",
                "metrics.json")
N_REVERSE_GRID = 1_000        # points in fit's reverse.png (2-D data only; ~1 s with the trajectory)
N_TRAIN_DEFAULT = 100_000     # points drawn from a built-in generator for training: enough that the
                              # training set's own sampling error is small next to the evaluation floor
LOW_DIM = 3                   # the low-dimensional recipe (``default_recipe``) up to this many modelled coordinates
WIDE_DIM = 32                 # above this many, ``default_recipe`` widens the hidden layers
N_EVAL = 5_000                # samples drawn after a fit, and fresh data points they are compared with
FINAL_LOSS_WINDOW = 200       # final_loss = mean L_simple over the last steps (one step is noisy)
N_BOUND = 1_000               # held-out points on which fit reports the likelihood bound (SE ≈ 0.02 bits/dim)
N_FLOOR_DRAWS = 4             # the floor is averaged over this many reference draws: one draw's value
                              # fluctuates by about ±50% around its expectation


@dataclass
class FitResult:
    model: Model
    samples: np.ndarray       # (n_eval, D) generated points, data coordinates
    metrics: dict
    out: str | None


def _choose_backend(backend: str | None, tcfg: TrainConfig | None = None) -> str:
    """The backend to run: the one asked for (checked), or by default numba when it is installed and
    implements the configuration, else the numpy reference."""
    if backend is None:
        backend = ddpm_fast.default_backend()
        if backend == "numba" and tcfg is not None and ddpm_fast.unsupported(tcfg):
            backend = "numpy"
        return backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    if backend == "cupy":
        from ddpm_fast.gpu import gpu_status
        if gpu_status():
            raise ValueError(f"backend 'cupy' cannot run here: {gpu_status()}")
    elif backend not in ddpm_fast.available_backends():
        raise ValueError(f"backend {backend!r} is not installed: pip install 'ddpm[cpu]' (or pip install numba)")
    reason = ddpm_fast.unsupported(tcfg) if backend in ("numba", "cupy") and tcfg is not None else None
    if reason:
        raise ValueError(reason)
    return backend


def resolve_data(data, seed: int = 0, n_train: int = N_TRAIN_DEFAULT, n_eval: int = N_EVAL):
    """Turn ``data`` (a built-in name, a .npy/.csv path, or an (N, D) array) into training and evaluation sets.

    Returns (train (N, D), held_out (M, D), references [(R, D)] * N_FLOOR_DRAWS, source). For a
    built-in name the held-out set and each reference are fresh, independent draws of n_eval points;
    for a user's data a random 20% (at most n_eval points) is held out and the references are random
    subsets of R = min(n_eval, N) training points: R is the number of samples compared with the
    held-out set, so that statistic and floor are measured at the same sizes.
    """
    ss_data, _, ss_eval = np.random.SeedSequence(seed).spawn(3)
    ss_held, *ss_refs = ss_eval.spawn(1 + N_FLOOR_DRAWS)
    if isinstance(data, str) and data in toy_data.NAMES:
        train = toy_data.draw(data, n_train, np.random.default_rng(ss_data))
        held = toy_data.draw(data, n_eval, np.random.default_rng(ss_held))
        refs = [toy_data.draw(data, n_eval, np.random.default_rng(ss)) for ss in ss_refs]
        return train, held, refs, data
    if isinstance(data, str) and data in toy_data.FIXED:          # a fixed data set: held out like a user's file
        x, source = toy_data.load_fixed(data), data
    elif isinstance(data, (str, os.PathLike)):
        if not os.path.exists(os.fspath(data)) and not os.path.splitext(os.fspath(data))[1]:
            raise ValueError(f"unknown dataset {os.fspath(data)!r}: not a built-in name "
                             f"({', '.join(toy_data.ALL_NAMES)}) nor an existing .npy/.csv file")
        x = toy_data.load(data)
        source = os.fspath(data)
    else:
        x = toy_data.validate(np.asarray(data), "data array")
        source = "array"
    if x.shape[0] < 10:
        raise ValueError(f"{source}: need at least 10 points to fit and hold out some, got {x.shape[0]}")
    perm = np.random.default_rng(ss_data).permutation(x.shape[0])
    m = min(n_eval, max(2, x.shape[0] // 5))
    held, train = x[perm[:m]], x[perm[m:]]
    r = min(n_eval, train.shape[0])
    refs = [train[np.random.default_rng(ss).permutation(train.shape[0])[:r]] for ss in ss_refs]
    return train, held, refs, source


def _progress(total: int, initial: int, enabled: bool, desc: str = "training", unit: str = "step"):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)


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


def _train_settings(train) -> dict | None:
    """``fit``'s ``train`` as {field: value} (checked against TrainConfig's fields), None for None."""
    if train is None or isinstance(train, TrainConfig):
        return None if train is None else {f.name: getattr(train, f.name) for f in fields(TrainConfig)}
    if not isinstance(train, dict):
        raise TypeError(f"train must be a TrainConfig, a dict of its fields or None, got {type(train).__name__}")
    names = [f.name for f in fields(TrainConfig)]
    unknown = sorted(set(train) - set(names))
    if unknown:
        raise ValueError(f"unknown train settings {unknown}; TrainConfig has {sorted(names)}")
    return dict(train)


def fit(data="swiss_roll", out=None, *, steps: int | None = None, T: int | None = None, schedule: str | None = None,
        seed: int | None = None, backend: str | None = None, model: MLPConfig | None = None,
        train: TrainConfig | dict | None = None, n_train: int | None = None, n_eval: int = N_EVAL, progress: bool = True,
        overwrite: bool = False, resume=None, checkpoint_every: int = 2000, callback=None,
        normalize: str | None = None, schedule_params: dict | None = None, bin_width="auto",
        image_shape: tuple | None = None, eval: str = "fast") -> FitResult:
    """Fit ε_θ to ``data`` with Algorithm 1, then draw ``n_eval`` samples with Algorithm 2 and measure them.

    ``data``: a built-in name (``toy_data.NAMES``), a path to .npy/.csv, or an (N, D) array. With
    ``out`` set, writes model.npz, samples.npy, samples.png, loss.png and metrics.json into it (and
    model.npz every ``checkpoint_every`` steps while training); an existing fit there is never
    replaced unless ``overwrite=True`` or it is the ``resume`` source. ``resume``: path to a
    checkpoint of an interrupted fit of the same data; training continues exactly as the
    uninterrupted run would have. A setting given together with ``resume`` must agree with the
    checkpoint's (else ValueError naming it), except ``steps``, which may grow (the run is extended;
    its cosine lr then decays over the new length). ``model`` sets the architecture: an ``MLPConfig``
    (used as given), or a dict of some of its fields laid over the defaults (unnamed fields: the
    ``MLPConfig`` defaults and ``default_recipe``'s ``fourier`` and ``hidden``); its ``dim`` is taken from the data.
    ``train`` sets Algorithm 1's optimisation the same way: a ``TrainConfig`` (its ``steps`` included), or a dict of
    some of its fields over the defaults. The number of steps is ``steps`` if given, else the TrainConfig's, else
    :func:`default_steps` of the training-set size (16,000 for a built-in generator, fewer for a small table).
    ``T`` (default 1000), ``schedule`` (default: ``default_recipe``'s, by the data's dimension) and
    ``schedule_params`` (passed to ``ddpm_ref.make_schedule``, e.g. ``{"beta_start": 1e-3}`` with
    ``schedule="linear"``; parameters need the schedule named) make the schedule.
    ``normalize``: "per_dim" (default: z-score each coordinate) or "isotropic" (centre, one scale for all).
    ``bin_width``: quantised data (pixel values, counts) lie on a grid of this width; "auto" (default)
    infers 1 for integer-valued data and None (continuous) otherwise; 0/None: continuous. With a grid,
    training sees the data dequantised (``dequantize``), samples are rounded to the grid and clipped to
    the data's range, and the held-out bound uses the discretised decoder (bits per modelled dimension of
    the bin's probability). What was inferred is in ``metrics['grid']``. ``image_shape`` (h, w) with
    h·w = D draws samples.png as images.
    ``eval``: how the samples and the held-out bound are measured (``FIT_EVAL_MODES``). "full": every floor
    from fresh reference draws (three exact W2 solves) and the bound summed over all T steps on N_BOUND
    points; "fast" (default): the same statistics of the samples, the floors of a built-in data set from
    ``ddpm/floors.json`` (``ddpm.floors``), and the bound from FAST_BOUND_T_DRAWS stratified t per point on
    FAST_BOUND_POINTS points (``ddpm.bound_strata``) — each floor, ratio and the bound with its standard
    error; "none": samples only, no statistics, no bound (metrics.json says ``"eval": "none"``).
    Returns a :class:`FitResult`.
    """
    if eval not in FIT_EVAL_MODES:
        raise ValueError(f"unknown eval {eval!r}; choose one of {', '.join(FIT_EVAL_MODES)}")
    given_train = _train_settings(train)
    if given_train is not None and resume is None:
        TrainConfig(**given_train)               # an impossible combination is refused before the backend is sought
    if backend is not None:
        _choose_backend(backend)                                           # fail early on unknown names
    if normalize not in (None, "per_dim", "isotropic"):
        raise ValueError(f"unknown normalize {normalize!r}; choose per_dim or isotropic")
    if not isinstance(checkpoint_every, (int, np.integer)) or isinstance(checkpoint_every, bool) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    out = None if out is None else os.fspath(out)
    with _output_lock(out):
        if out is not None:                         # checked under the lock: two fits cannot both pass it
            existing = [f for f in OUTPUT_FILES if os.path.exists(os.path.join(out, f))]
            same_as_resume = resume is not None and os.path.abspath(os.fspath(resume)) == os.path.abspath(
                os.path.join(out, "model.npz"))
            if existing and not overwrite and not same_as_resume:
                raise FileExistsError(f"{out} already holds {', '.join(existing)}; choose another --out, pass "
                                      f"overwrite=True (--overwrite) to replace them, or resume from {out}/model.npz")
        stored = Model.load(resume) if resume is not None else None
        if stored is not None and given_train is not None:
            train = replace(stored.tcfg, **given_train)                    # a dict over the checkpoint's settings
        if seed is None:                                # a resumed fit keeps its seed and data size unless given
            seed = stored.info.get("seed", 0) if stored is not None else 0
        if n_train is None:
            n_train = stored.info.get("n_train", N_TRAIN_DEFAULT) if stored is not None else N_TRAIN_DEFAULT
        if isinstance(data, str) and data in toy_data.NAMES:                  # before drawing n_train points
            check_memory({"the training data (--n-train)": 8 * 3 * n_train * toy_data.draw(data, 2, np.random.default_rng(0)).shape[1]},
                         f"drawing {n_train} training points")
        train_x, held, refs, source = resolve_data(data, seed, n_train, n_eval)
        _, ss_train, ss_eval = np.random.SeedSequence(seed).spawn(3)

        if resume is not None:
            m = stored
            if m.info.get("data_sha256") != data_fingerprint(train_x):
                raise ValueError(f"{resume}: it was trained on other data ({m.info.get('data_source')!r}, seed "
                                 f"{m.info.get('seed')}); resume with the same data and seed")
            _check_resume(resume, m, steps=steps, T=T, schedule=schedule, schedule_params=schedule_params,
                          model=model, train=train, normalize=normalize)
            stored_w = (m.info.get("grid") or {}).get("bin_width")
            if not (isinstance(bin_width, str) and bin_width == "auto") and stored_w != (bin_width or None):
                raise ValueError(f"{resume}: resume with bin_width = {bin_width!r}, but the checkpoint has "
                                 f"bin_width = {stored_w!r}; drop the setting (resuming uses the stored one) or start a new fit")
            if image_shape is not None and [int(v) for v in image_shape] != m.info.get("image_shape"):
                raise ValueError(f"{resume}: resume with image_shape = {tuple(image_shape)}, but the checkpoint has "
                                 f"image_shape = {m.info.get('image_shape')!r}; drop the setting or start a new fit")
            new_steps = max(steps or 0, train.steps if train is not None else 0)
            if new_steps > m.tcfg.steps:
                m.tcfg = replace(m.tcfg, steps=new_steps)                  # extend the run
            rng = np.random.default_rng()
            rng.bit_generator.state = m.rng_state
        else:
            tcfg = TrainConfig(**{"steps": default_steps(int(train_x.shape[0])), **(given_train or {}),
                                  **({} if steps is None else {"steps": steps})})
            normalize = normalize or "per_dim"
            whole = train_x if source in toy_data.NAMES else np.concatenate([train_x, held])
            norm = Normalizer.fit(train_x, isotropic=normalize == "isotropic", whole=whole)
            D = int(norm.mean.shape[0])                                        # the data's modelled columns
            n_out = ddpm_ref.param.out_dim(D, tcfg.var_type)
            recipe = default_recipe(D)
            given = _model_settings(model)
            if not isinstance(model, MLPConfig):
                model = MLPConfig(**{"fourier": recipe["fourier"], "hidden": recipe["hidden"], **given})
            cfg = replace(model, dim=D, out_dim=None if n_out == D else n_out)
            n_steps_T = 1000 if T is None else T
            check_memory(_fit_memory(cfg, tcfg, n_steps_T, train_x.shape[0], n_eval), "this fit")
            if schedule is None:                   # the recipe's schedule, with its parameters
                recipe = default_recipe(D, n_steps_T)       # its cap depends on T: only after the memory check
                if schedule_params:
                    raise ValueError(f"schedule_params {schedule_params!r} need the schedule they are for: name it "
                                     f"(schedule=..., --schedule); the default here is {recipe['schedule']!r} "
                                     f"with {recipe['schedule_params']!r}")
                schedule, schedule_params = recipe["schedule"], recipe["schedule_params"]
            sched = ddpm_ref.make_schedule(schedule, n_steps_T, **(schedule_params or {}))
            rng = np.random.default_rng(ss_train)
            ddpm_ref.param.check_compatible(sched, tcfg.parametrization)
            m = Model(cfg, tcfg, sched, ddpm_ref.init_state(cfg, rng, sched.T),
                      norm,
                      rng.bit_generator.state, np.empty(0),
                      {"data_source": source, "data_sha256": data_fingerprint(train_x), "seed": seed,
                       "n_train": int(train_x.shape[0]), "backend": backend, "normalize": normalize,
                       "grid": _infer_grid(np.concatenate([train_x, held]) if source not in toy_data.NAMES else train_x,
                                           _fixed_default(source, "bin_width", bin_width), source),
                       "image_shape": (None if _fixed_default(source, "image_shape", image_shape) is None
                                       else [int(v) for v in _fixed_default(source, "image_shape", image_shape)])})
            if image_shape is not None and int(np.prod(image_shape)) != train_x.shape[1]:
                raise ValueError(f"image_shape {tuple(image_shape)} has {int(np.prod(image_shape))} pixels; the data "
                                 f"has {train_x.shape[1]} columns")

        backend = _choose_backend(backend, m.tcfg)
        m.info["backend"] = backend
        u = m.norm.to_model(dequantize(train_x, m.info.get("grid"), np.random.default_rng(ss_train.spawn(1)[0]))
                            if m.info.get("grid") else train_x)
        bar = _progress(m.tcfg.steps, m.step, progress)
        t0 = time.perf_counter()

        def cb(step, loss):
            if bar is not None:
                bar.update(1)
                if step % 50 == 0:
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if callback is not None:
                callback(step, loss)

        try:
            while m.step < m.tcfg.steps:
                # one compiled chunk at a time (the same draws as one long call): divergence is seen within a chunk
                n = min(ddpm_fast.CHUNK, m.tcfg.steps - m.step)
                if out is not None:
                    n = min(n, checkpoint_every - m.step % checkpoint_every)
                state, chunk = ddpm_fast.train(m.state, u, m.sched, m.cfg, m.tcfg, rng, n, callback=cb, backend=backend)
                _check_finite(m, state, chunk, out)
                m.state = state
                m.losses = np.concatenate([m.losses, chunk])
                m.rng_state = rng.bit_generator.state
                if out is not None and (m.step % checkpoint_every == 0 or m.step == m.tcfg.steps):
                    m.save(os.path.join(out, "model.npz"))
        finally:
            if bar is not None:
                bar.close()
        train_seconds = time.perf_counter() - t0

        grid = m.info.get("grid")
        bound_kw = dict(seed=int(ss_eval.generate_state(2)[1]), bin_width=None if not grid else grid["bin_width"])
        samples, metrics, lb = _sample_and_measure(m, n_eval, ss_eval, backend, source, seed, train_x, held, refs,
                                                   train_seconds, eval, bound_kw)
        if out is not None:
            from .plots import save_loss_plot, save_profile_plot, save_samples_plot
            _atomic(os.path.join(out, "samples.npy"), lambda p: np.save(p, samples))
            _atomic(os.path.join(out, "samples.png"),
                    lambda p: save_samples_plot(p, held, samples, title=source, **_image_kw(m)))
            _atomic(os.path.join(out, "loss.png"), lambda p: save_loss_plot(p, m.losses))
            if lb is not None:
                _atomic(os.path.join(out, "bound_profile.png"), lambda p: save_profile_plot(p, lb))
            if m.cfg.dim == 2:                            # cheap in 2-D: one more chain of N_REVERSE_GRID points
                t0 = time.perf_counter()
                _atomic(os.path.join(out, "reverse.png"),
                        lambda p: _save_reverse_grid(p, m, held, int(ss_eval.generate_state(3)[2]), source))
                metrics["reverse_png_seconds"] = round(time.perf_counter() - t0, 3)
            _atomic(os.path.join(out, "metrics.json"), lambda p: _write_json(p, metrics))
        return FitResult(m, samples, metrics, out)


def _save_reverse_grid(path, m: Model, held: np.ndarray, seed: int, source) -> None:
    """Algorithm 2 for N_REVERSE_GRID points shown at t = T, …, 0 (``ddpm show``'s reverse.png), held-out data in grey."""
    from .plots import save_scatter_grid
    from .show import _limits, display_steps
    _, traj = sample_trajectory(m, N_REVERSE_GRID, seed=seed)
    traj = m.norm.to_model(traj)                                            # (T+1, n, 2), indexed by t
    u0 = m.norm.to_model(held[:N_REVERSE_GRID])
    ts = display_steps(m.sched.T)[::-1]
    save_scatter_grid(path, ts, [("p_θ samples", traj[ts])], lims=_limits(u0, traj[-1]), background=u0,
                      title=f"{source}: reverse process (Algorithm 2) from x_T ~ N(0, I) at t = {m.sched.T}, …, 0; "
                            f"grey: held-out data, standardised")


def _sample_and_measure(m, n_eval, ss_eval, backend, source, seed, train_x, held, refs, train_seconds, mode, bound_kw):
    """After a fit: n_eval samples (Algorithm 2), the metrics dict with their statistics against the held-out
    data and the held-out bound (``likelihood_bound``'s result, None for mode "none"), as ``fit``'s ``eval`` says."""
    t0 = time.perf_counter()
    sample_seed = int(ss_eval.generate_state(1)[0])
    samples = sample(m, n_eval, seed=sample_seed, backend=backend if backend in ("numpy", "cupy") else None)
    sample_seconds = time.perf_counter() - t0
    if not np.all(np.isfinite(samples)):
        raise DivergenceError(f"the trained model's samples are not finite ({int(np.sum(~np.isfinite(samples).all(axis=1)))} "
                              f"of {samples.shape[0]}; final loss {np.mean(m.losses[-FINAL_LOSS_WINDOW:]):.4g}): the "
                              f"reverse chain ran away — the first reverse steps divide by √α_t (β_T = "
                              f"{m.sched.beta[-1]:.3g} here), so an ε_θ that is off there is amplified; lower the learning "
                              f"rate (--lr, now {m.tcfg.lr:g}) and fit again")
    metrics = {
        "dataset": source, "seed": m.info.get("seed", seed), "sample_seed": sample_seed,
        "n_train": int(train_x.shape[0]), "dim": int(train_x.shape[1]), "dim_modelled": m.cfg.dim,
        "constant_columns": {str(k): v for k, v in m.norm.constant_columns.items()}, "grid": m.info.get("grid"),
        "steps": m.step, "T": m.sched.T, "schedule": m.sched.name, "backend": backend, "objective": m.tcfg.objective,
        "parametrization": m.tcfg.parametrization, "var_type": m.tcfg.var_type, "fourier": m.cfg.fourier,
        "final_loss": float(np.mean(m.losses[-FINAL_LOSS_WINDOW:])) if m.losses.size else None,
        "final_loss_window": FINAL_LOSS_WINDOW,
        "n_eval": int(n_eval), "train_seconds": round(train_seconds, 3), "sample_seconds": round(sample_seconds, 3),
    }
    metrics["eval"] = mode
    if mode == "none":
        return samples, metrics, None
    from concurrent.futures import ThreadPoolExecutor
    t0 = time.perf_counter()
    n = refs[0].shape[0]
    floors = cached_floors(source, n, held.shape[0]) if mode == "fast" and source in toy_data.NAMES else None

    def bound():
        t1 = time.perf_counter()
        if mode == "full":
            lb = likelihood_bound(m, held[:N_BOUND], **bound_kw)
        else:
            lb = likelihood_bound(m, held[:FAST_BOUND_POINTS], t_draws=FAST_BOUND_T_DRAWS, **bound_kw)
        return lb, time.perf_counter() - t1

    # fast: the bound runs beside the statistics, whose one exact W2 solve holds a core by itself
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(bound) if mode == "fast" else None
        t1 = time.perf_counter()
        metrics.update(sample_statistics(samples[:n], held, refs, train=train_x, mode=mode, floors=floors))
        metrics["statistics_seconds"] = round(time.perf_counter() - t1, 3)
        lb, bound_seconds = job.result() if job is not None else bound()
    lb.pop("per_point_nats")
    metrics["heldout_bound"] = {k: v for k, v in lb.items() if not k.startswith("profile")}
    metrics["bound_bits_per_dim"] = lb["bound_bits_per_dim"]
    metrics["bound_bits_per_dim_se"] = lb["bound_bits_per_dim_se"]
    metrics["bound_seconds"] = round(bound_seconds, 3)
    metrics["eval_seconds"] = round(time.perf_counter() - t0, 3)          # statistics + bound, wall clock
    _warn_if_memorised(metrics)
    return samples, metrics, lb


LOCK_FILE = ".ddpm.lock"      # present in --out only while a fit writes there


@contextlib.contextmanager
def _output_lock(out):
    """Hold ``out``/.ddpm.lock (created exclusively, holding our pid) while a fit writes there: a second fit
    into the same folder refuses. A lock whose process no longer runs (a crash, SIGKILL) is stale and taken over."""
    if out is None:
        yield
        return
    created = not os.path.isdir(out)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, LOCK_FILE)
    me = str(os.getpid())
    tmp = f"{path}.{me}"
    with open(tmp, "w") as f:                       # the pid is in the file before it appears under the lock's name
        f.write(me)
    try:
        for _ in range(3):
            try:
                os.link(tmp, path)                      # atomic and exclusive: fails if the lock exists
                break
            except FileExistsError:
                try:
                    with open(path) as f:
                        pid = int(f.read().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid > 0 and pid != os.getpid() and _alive(pid):
                    raise FileExistsError(f"{out} is being written by another fit (process {pid}, lock file "
                                          f"{path}); wait for it or choose another --out") from None
                try:
                    os.unlink(path)                     # stale: its process is gone
                except FileNotFoundError:
                    pass
        else:
            raise FileExistsError(f"could not take the lock {path}; another fit may be starting there")
    finally:
        os.unlink(tmp)
    try:
        yield
    finally:
        try:
            with open(path) as f:
                ours = f.read().strip() == me
            if ours:
                os.unlink(path)
            if created and not os.listdir(out):                            # a refused fit leaves no folder
                os.rmdir(out)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _atomic(path: str, write) -> None:
    """``write(tmp)`` into a temporary name beside ``path``, then rename: a crash or a full disk never leaves
    half a file under ``path`` (the temporary file is removed on error)."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.partial{ext}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


DIVERGENCE_FACTOR = 1e4       # a loss this many times its start value means training has diverged


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or weights; the last good state was kept."""


def available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable, else free physical pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def check_memory(parts: dict, what: str) -> None:
    """Refuse up front (ValueError) when the estimated bytes ``parts`` (name → bytes) exceed 80% of the
    memory available, naming the largest part — so no option value makes a run allocate unboundedly."""
    need = sum(parts.values())
    avail = available_memory()
    if need > 0.8 * avail:
        big = max(parts, key=parts.get)
        raise ValueError(f"{what} needs about {need / 2**30:.1f} GiB of memory, mostly for {big} "
                         f"({parts[big] / 2**30:.1f} GiB); {avail / 2**30:.1f} GiB is available: lower it")


def _fit_memory(cfg: MLPConfig, tcfg: TrainConfig, T: int, n_train: int, n_eval: int) -> dict:
    """Estimated bytes of a fit, by part (float64 host arrays; the compiled copies are smaller)."""
    from .model import param_shapes
    P = sum(int(np.prod(s)) for s in param_shapes(cfg).values())
    widths = cfg.n_in + cfg.emb_dim + cfg.hidden * cfg.depth + cfg.n_out
    return {"the weights, their EMA and Adam's moments (--hidden, --depth)": 8 * 6 * P,
            "the per-step loss history (--steps)": 8 * tcfg.steps,
            "the schedule and per-t history (--T)": 8 * (T + 1) * 24,
            "the training data (--n-train)": 8 * 3 * n_train * cfg.dim,
            "a batch's activations (--batch-size)": 8 * 4 * tcfg.batch_size * widths,
            "evaluation samples and statistics": 8 * (6 * n_eval * cfg.dim + 3 * 1024 * n_eval)}


def _infer_grid(x: np.ndarray, bin_width, source: str) -> dict | None:
    """The grid quantised data lie on: {bin_width, offset, min, max (per column)}, or None for continuous
    data. ``bin_width`` "auto": width 1 when every value is an integer (pixel intensities, counts), else
    continuous; a number w > 0: values must be offset + k·w (checked to 1e-6·w); 0 or None: continuous."""
    if bin_width is None or (not isinstance(bin_width, str) and bin_width == 0):
        return None
    if isinstance(bin_width, str):
        if bin_width != "auto":
            raise ValueError(f"bin_width must be 'auto', a number > 0, or 0/None for continuous data; got {bin_width!r}")
        if source in toy_data.NAMES or not np.all(x == np.round(x)):
            return None
        w, offset = 1.0, 0.0
    else:
        w = float(bin_width)
        if not (w > 0 and np.isfinite(w)):
            raise ValueError(f"bin_width must be > 0 (or 0 for continuous data), got {bin_width!r}")
        offset = float(x.flat[0] - w * np.floor(x.flat[0] / w))
        k = (x - offset) / w
        if np.abs(k - np.round(k)).max() > 1e-6:
            raise ValueError(f"the data do not lie on a grid of width {w:g} (offset {offset:g}); give the right "
                             f"--bin-width, or 0 for continuous data")
    return {"bin_width": w, "offset": offset, "inferred": isinstance(bin_width, str),
            "min": x.min(axis=0).tolist(), "max": x.max(axis=0).tolist()}


def _fixed_default(source: str, key: str, given):
    """A fixed data set's own metadata (toy_data.FIXED_INFO: its grid's bin width, its image shape) where
    the caller left the setting at its default ("auto" / None)."""
    info = toy_data.FIXED_INFO.get(source) if isinstance(source, str) else None
    if info is None or not (given is None or (isinstance(given, str) and given == "auto")):
        return given
    return info.get(key) or given


def _image_kw(m: Model) -> dict:
    """save_samples_plot's image_shape argument, when the fit has one and the plot function takes it."""
    import inspect
    from .plots import save_samples_plot
    if m.info.get("image_shape") and "image_shape" in inspect.signature(save_samples_plot).parameters:
        return {"image_shape": tuple(m.info["image_shape"])}
    return {}


def dequantize(x: np.ndarray, grid: dict, rng: np.random.Generator, copies: int | None = None) -> np.ndarray:
    """Uniform dequantisation for training: each point of quantised data x (a grid of width w) is replaced
    by x + U(−w/2, w/2), ``copies`` times with fresh noise (default: enough copies for ~100,000 rows, at
    most 64), so the network fits the continuous density whose bin probabilities are the data's."""
    w = grid["bin_width"]
    copies = copies or int(min(64, max(1, 100_000 // max(1, x.shape[0]))))
    rep_x = np.repeat(x, copies, axis=0)
    return rep_x + rng.uniform(-0.5 * w, 0.5 * w, size=rep_x.shape)


def quantize(x: np.ndarray, grid: dict | None) -> np.ndarray:
    """Samples of a model of quantised data put back on the data's grid: rounded to offset + k·w and
    clipped to each column's observed range."""
    if not grid:
        return x
    w, o = grid["bin_width"], grid["offset"]
    return np.clip(o + w * np.round((x - o) / w), grid["min"], grid["max"])


def _check_finite(m: Model, state: dict, losses: np.ndarray, out) -> None:
    """Refuse a chunk whose losses or weights are not finite: the model ``m`` (still the state before the
    chunk) is saved as the last good checkpoint, and the error says where it diverged and what to change."""
    # non-finite, or 10⁴ × above the loss of the first step, taken at the initial weights (a diverged Adam
    # run reaches 1e20 while still finite)
    first = float(m.losses[0] if m.losses.size else losses[0])
    limit = DIVERGENCE_FACTOR * max(1.0, abs(first)) if np.isfinite(first) else np.inf
    bad_loss = np.flatnonzero(~np.isfinite(losses) | (np.abs(losses) > limit))
    bad_w = [k for g in ("params", "ema") for k, v in state[g].items() if not np.all(np.isfinite(v))]
    if bad_loss.size == 0 and not bad_w:
        return
    where = (f"the loss is {losses[bad_loss[0]]} at step {m.step + bad_loss[0] + 1}" if bad_loss.size
             else f"weights {', '.join(sorted(bad_w)[:3])} are not finite after step {m.step + losses.size}")
    kept = "nothing was written"
    if out is not None:
        m.save(os.path.join(out, "model.npz"))
        kept = f"the last good state (step {m.step}) is in {os.path.join(out, 'model.npz')}"
    raise DivergenceError(f"training diverged: {where}; {kept}. Lower the learning rate (--lr, now "
                          f"{m.tcfg.lr:g}) or the gradient clip (now {m.tcfg.grad_clip:g}), then fit again")


def _model_settings(model) -> dict:
    """``fit``'s ``model`` as {field: value}: an MLPConfig's fields, a dict's keys (checked against them), {} for None."""
    names = [f.name for f in fields(MLPConfig)]
    if model is None:
        return {}
    if isinstance(model, MLPConfig):
        return {n: getattr(model, n) for n in names}
    if not isinstance(model, dict):
        raise TypeError(f"model must be an MLPConfig, a dict of its fields or None, got {type(model).__name__}")
    unknown = sorted(set(model) - set(names))
    if unknown:
        raise ValueError(f"unknown model settings {unknown}; MLPConfig has {sorted(names)}")
    return dict(model)


def _check_resume(path, m: Model, *, steps, T, schedule, schedule_params, model, train, normalize) -> None:
    """Refuse, with one line naming the setting, any argument of ``fit`` that contradicts the checkpoint
    being resumed (None means "not given"). More steps than planned are allowed; fewer are not."""
    def refuse(what, given, stored):
        raise ValueError(f"{path}: resume with {what} = {given!r}, but the checkpoint has {what} = {stored!r}; "
                         f"drop the setting (resuming uses the stored one) or start a new fit")
    for name, n in (("steps", steps), ("train.steps", None if train is None else train.steps)):
        if n is not None and n < m.tcfg.steps:
            raise ValueError(f"{path}: resume with {name} = {n}, fewer than the {m.tcfg.steps} the run was planned "
                             f"for (its learning-rate schedule depends on it); give at least {m.tcfg.steps}")
    if T is not None and T != m.sched.T:
        refuse("T", T, m.sched.T)
    if schedule is not None and schedule != m.sched.name:
        refuse("schedule", schedule, m.sched.name)
    if schedule_params is not None:
        stored = {k: v for k, v in m.sched.params.items() if k != "zero_terminal_snr"}
        given = {k: v for k, v in schedule_params.items() if k != "zero_terminal_snr"}
        if given != stored or bool(schedule_params.get("zero_terminal_snr")) != bool(m.sched.params.get("zero_terminal_snr")):
            refuse("schedule_params", schedule_params, m.sched.params)
    if normalize is not None and normalize != m.info.get("normalize", "per_dim"):
        refuse("normalize", normalize, m.info.get("normalize", "per_dim"))
    if model is not None:
        for name, value in _model_settings(model).items():
            if name not in ("dim", "out_dim") and value != getattr(m.cfg, name):
                refuse(f"model.{name}", value, getattr(m.cfg, name))
    if train is not None:
        for f in fields(TrainConfig):
            if f.name != "steps" and getattr(train, f.name) != getattr(m.tcfg, f.name):
                refuse(f"train.{f.name}", getattr(train, f.name), getattr(m.tcfg, f.name))


def load_model(path) -> Model:
    """Load a fitted model from a checkpoint file (see :class:`ddpm.model.Model`)."""
    return Model.load(path)


SAMPLERS = ("ancestral", "ddim", "ode") + ddpm_ref.SOLVERS
SOLVER_STEPS = 20            # a solver's network calls where the caller gives no steps
FEW_STEPS = 50               # up to this many steps, sampler=None takes the best few-step solver


DEFAULT_SOLVER = "unipc"     # the best single row of benchmarks/few_step.py for K ≤ FEW_STEPS


def default_sampler(steps: int) -> str:
    """The sampler ``sample`` uses for ``steps`` = K network calls when none is named (and no option of
    Algorithm 2's is given): DEFAULT_SOLVER, the best of ``benchmarks/few_step.py`` over K ≤ FEW_STEPS, for
    K ≤ FEW_STEPS, else ancestral sampling on the respaced schedule."""
    return DEFAULT_SOLVER if steps <= FEW_STEPS else "ancestral"


DETERMINISTIC_MIN_ALPHA_BAR_T = 1e-6   # below it, DDIM and the ODE on an ε-model amplify ε_θ's error by 1/√ᾱ_T ≥ 1000


class MemorisationWarning(UserWarning):
    """``fit``'s samples sit closer to the training points than held-out data does: the model has learned the points."""


MEMORISATION_RATIO = 0.8      # nn_train_ratio below this warns (iris at 16,000 steps: 0.58; a generalising fit: ≈ 1)


def _warn_if_memorised(metrics: dict) -> None:
    r = metrics.get("nn_train_ratio")
    if r is not None and np.isfinite(r) and r < MEMORISATION_RATIO:
        warnings.warn(f"the samples sit closer to the training points than held-out data does (median nearest-"
                      f"training-point distance {metrics['nn_train_samples_median']:.3g} vs "
                      f"{metrics['nn_train_heldout_median']:.3g} for held-out points, ratio {r:.2f} < "
                      f"{MEMORISATION_RATIO}): the model has memorised its {metrics['n_train']} training points; "
                      f"fit with fewer --steps (now {metrics['steps']}; default for this size: "
                      f"{default_steps(metrics['n_train'])})", MemorisationWarning, stacklevel=3)


class DeterministicSamplerWarning(UserWarning):
    """DDIM or the probability-flow ODE on an ε-model whose schedule ends at a tiny ᾱ_T."""


def _warn_if_tiny_alpha_bar_T(m, what: str, stacklevel: int) -> None:
    """DDIM and the ODE read x̂_0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t from an ε-model: at t = T the error of ε_θ is
    multiplied by 1/√ᾱ_T, and nothing stochastic damps it afterwards (ancestral sampling's fresh noise does)."""
    a_T = float(m.sched.alpha_bar[-1])
    if m.tcfg.parametrization == "eps" and a_T < DETERMINISTIC_MIN_ALPHA_BAR_T:
        warnings.warn(f"{what} on this ε-model: its schedule ends at alpha_bar_T = {a_T:.2g}, so ε_θ's error at t = T "
                      f"is multiplied by 1/sqrt(alpha_bar_T) = {a_T ** -0.5:.3g}; expect poor results (measured: "
                      f"thousands of times the energy floor). Use the ancestral sampler, or refit with a schedule "
                      f"that ends near 1e-4 (today's 2-D default caps the cosine schedule's beta_t for that)",
                      DeterministicSamplerWarning, stacklevel=stacklevel)


def sample(model, n: int, *, seed: int | None = None, var_type: str | None = None, use_ema: bool = True,
           backend: str | None = None, sampler: str | None = None, steps: int | None = None, eta: float = 0.0,
           spacing: str | None = None) -> np.ndarray:
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
    """
    return _sample(model, n, seed, var_type, use_ema, backend, sampler, steps, eta, spacing, False)


def sample_trajectory(model, n: int, *, seed: int | None = None, var_type: str | None = None, use_ema: bool = True,
                      backend: str | None = None, steps: int | None = None, spacing: str = "even"):
    """``sample`` with the ancestral sampler, keeping the chain: returns (points (n, D), trajectory
    (K+1, n, D) indexed by step, row K = x_T, row 0 = x_0), both in the data's own coordinates (the points
    on the data's grid for quantised data; the trajectory not)."""
    return _sample(model, n, seed, var_type, use_ema, backend, "ancestral", steps, 0.0, spacing, True)


def _sample(model, n, seed, var_type, use_ema, backend, sampler, steps, eta, spacing, return_trajectory):
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
    x_T = rng.standard_normal((int(n), m.cfg.dim))                         # Alg. 2 line 1
    if sampler is None:
        sampler = _unnamed_sampler(m, steps, spacing, var_type_given)
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    sigma_max = ode_sigma_max(m)
    if sampler == "ddim" or (sampler != "ancestral" and sigma_max is None):   # else the ODE starts at σ_max
        _warn_if_tiny_alpha_bar_T(m, f"the {sampler} sampler", stacklevel=4)    # the caller of sample()
    if sampler in ddpm_ref.SOLVERS:
        return _solver_sample(m, weights, x_T, sampler, steps, spacing, backend, sigma_max)
    if sampler == "ode":
        x0 = ddpm_ref.ode_sample(ddpm_ref.network(weights, m.cfg), m.sched, x_T, steps=steps or 100,
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
        _choose_backend(backend)
        if backend != "numpy" and not fused_ok:
            raise ValueError(f"the {backend} sampler implements eps-models with var_type beta or beta_tilde "
                             f"(this model: {m.tcfg.parametrization!r}, {var_type!r}); use backend 'numpy'")
    if sampler == "ddim":
        x0 = ddpm_fast.ddim_sample_loop(ddpm_ref.network(weights, m.cfg), m.sched, x_T, ts=ts, eta=eta, rng=rng if eta > 0 else None,
                                        parametrization=m.tcfg.parametrization, backend=backend)
        return quantize(m.norm.to_data(x0), m.info.get("grid"))
    sched, t_model = (m.sched, None) if K == T else ddpm_ref.respace(m.sched, ts)
    chain = ddpm_fast.p_sample_trajectory if return_trajectory else ddpm_fast.p_sample_loop
    res = chain(ddpm_ref.network(weights, m.cfg), sched, x_T, rng=rng, var_type=var_type, t_model=t_model,
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


def _solver_sample(m, weights, x_T, solver, steps, spacing, backend, sigma_max):
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
        _choose_backend(backend)
    x0 = ddpm_fast.solver_sample(ddpm_ref.network(weights, m.cfg), m.sched, x_T, solver=solver, steps=int(K),
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
    bar = _progress(int(n), 0, progress and n > chunk, desc="sampling", unit="point")
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


def likelihood_bound(model, x, *, seed: int = 0, bin_width: float | None = None, use_ema: bool = True,
                     t_draws: int | None = None) -> dict:
    """The variational bound on −log p_θ(x) for data points x (N, D) in the data's own coordinates.

    Every term is summed over all t (``ddpm_ref.bound``) and reported in bits, per point and per
    dimension, with its Monte Carlo standard error over points; the standardisation's log-Jacobian
    Σ_d log s_d is included in L_0 (continuous decoder), so the numbers are densities of x itself.
    ``bin_width`` (data units) switches to a discretised decoder (Ho's Eq. 13 without its ±∞ edge bins: every bin is [x − w/2, x + w/2]): then the bound is on the
    probability of x's bin, in bits, and no Jacobian applies. Also returns the per-t profile.
    ``t_draws`` K: instead of all T steps, K stratified draws of t per point (``ddpm.bound_strata``): the same
    bound in expectation, its standard error (over points) then includes the choice of t; the profile is
    the unbiased per-t estimate (noisy). ``t_draws`` in the result: K, or T − 1 for the full sum.
    """
    m = model if isinstance(model, Model) else Model.load(model)
    x = toy_data.validate(np.asarray(x), "data")
    if x.shape[1] != m.norm.data_dim:
        raise ValueError(f"data has {x.shape[1]} columns but the model was fitted to {m.norm.data_dim}")
    if bin_width is not None and not (bin_width > 0):
        raise ValueError(f"bin_width must be > 0, got {bin_width!r}")
    weights = m.state["ema"] if use_ema else m.state["params"]
    u = m.norm.to_model(x)
    log_scale = float(np.sum(np.log(m.norm.scale)))
    # A discretised bin of width w in data units is w/s_d wide in standardised coordinates.
    bw = None if bin_width is None else np.asarray(bin_width / m.norm.scale)

    if t_draws is None:
        b = ddpm_ref.bound(ddpm_ref.network(weights, m.cfg), m.sched, u, np.random.default_rng(seed),
                           m.tcfg.parametrization, m.tcfg.var_type, bw, log_scale)
    else:
        b = bound_stratified(ddpm_ref.network(weights, m.cfg), m.sched, u, np.random.default_rng(seed), t_draws,
                             m.tcfg.parametrization, m.tcfg.var_type, bw, log_scale)
    N, D = x.shape[0], m.cfg.dim          # bits per modelled dimension: constant columns are point masses
    to_bpd = 1.0 / (D * ddpm_ref.LN2)
    total = b["total"]
    return {
        "n_points": int(N), "dim": int(D), "T": m.sched.T, "decoder": "gaussian" if bin_width is None else "discretized",
        "bin_width": bin_width, "t_draws": int(b.get("t_draws", m.sched.T - 1)),
        "t_sampling": "all" if t_draws is None else "stratified",
        "bound_bits_per_dim": float(total.mean() * to_bpd),
        "bound_bits_per_dim_se": float(total.std(ddof=1) / np.sqrt(N) * to_bpd),
        "bound_bits_per_point": float(total.mean() / ddpm_ref.LN2),
        "L_T_bits_per_dim": float(b["L_T"].mean() * to_bpd),
        "L_t_minus_1_sum_bits_per_dim": float(b["L_t_minus_1"].sum(axis=0).mean() * to_bpd),
        "L_0_bits_per_dim": float(b["L_0"].mean() * to_bpd),
        "L_T_bits_per_point": float(b["L_T"].mean() / ddpm_ref.LN2),
        "L_t_minus_1_sum_bits_per_point": float(b["L_t_minus_1"].sum(axis=0).mean() / ddpm_ref.LN2),
        "L_0_bits_per_point": float(b["L_0"].mean() / ddpm_ref.LN2),
        "bound_bits_per_point_se": float(total.std(ddof=1) / np.sqrt(N) / ddpm_ref.LN2),
        "profile_bits_per_dim": (b["L_t_minus_1"].mean(axis=1) * to_bpd).tolist(),  # [t] = L_{t−1}; L_0 below
        "profile_L_0_bits_per_dim": float(b["L_0"].mean() * to_bpd),
        "per_point_nats": total,
    }


def ode_nll(model, x, *, steps: int = 100, use_ema: bool = True, bin_width: float | None = None,
            seed: int = 0, sigma_max: float | None | str = "auto") -> dict:
    """Exact NLL of points x (N, D) under the model's probability-flow ODE, bits/dim in data coordinates:
    −log p_x(x) = −log p_u(u) + Σ_d log s_d for the standardised u = (x − m)/s (ε-, x_0- and v-models).
    The network's ODE runs up to ``sigma_max`` ("auto": ``ode_sigma_max`` of the model; None: σ_T), above it the standardised data's Gaussian limit
    (``ddpm_ref.ode``: integrated to σ_T, ε_θ's errors there put 8gaussians' NLL 0.146 ± 0.010 bits/dim too high).

    ``bin_width`` w (quantised data): the probability of x's bin instead, bounded by uniform dequantisation
    (Theis et al. 2016, Sec. 3.1; Song et al. 2021's NLL on images): by Jensen's inequality
    −log P(bin) = −log E_{u~U(bin)}[w^D p(x + u)] ≤ E_u[−log p(x + u)] − D log w, estimated with one u per
    point drawn from ``seed`` — an upper bound in bits, comparable with the discretised variational bound."""
    m = model if isinstance(model, Model) else Model.load(model)
    x = toy_data.validate(np.asarray(x), "data")
    if x.shape[1] != m.norm.data_dim:
        raise ValueError(f"data has {x.shape[1]} columns but the model was fitted to {m.norm.data_dim}")
    if bin_width is not None and not (bin_width > 0 and np.isfinite(bin_width)):
        raise ValueError(f"bin_width must be > 0, got {bin_width!r}")
    weights = m.state["ema"] if use_ema else m.state["params"]
    if isinstance(sigma_max, str) and sigma_max == "auto":
        sigma_max = ode_sigma_max(m)
    if sigma_max is None:          # the network's ODE up to σ_T reads ε_θ at T
        _warn_if_tiny_alpha_bar_T(m, "the exact (ODE) likelihood", stacklevel=3)   # the caller of ode_nll()
    if bin_width is not None:
        x = x + np.random.default_rng(seed).uniform(-0.5 * bin_width, 0.5 * bin_width, size=x.shape)
    ll, _ = ddpm_ref.ode_log_likelihood(ddpm_ref.network(weights, m.cfg), m.sched, m.norm.to_model(x), steps,
                                        parametrization=m.tcfg.parametrization, sigma_max=sigma_max)
    nll_bpd = (-ll + float(np.sum(np.log(m.norm.scale)))) / (m.cfg.dim * ddpm_ref.LN2)
    if bin_width is not None:
        nll_bpd = nll_bpd - np.log2(bin_width)                          # − D log w, per modelled dimension
    return {"ode_nll_bits_per_dim": float(nll_bpd.mean()),
            "ode_nll_bits_per_dim_se": float(nll_bpd.std(ddof=1) / np.sqrt(nll_bpd.size)),
            "ode_steps": steps, "ode_sigma_max": sigma_max,
            "ode_decoder": "gaussian" if bin_width is None else "dequantized",
            "per_point_bpd": nll_bpd}


def evaluation_streams(seed: int) -> list:
    """The four seed sequences of ``evaluate`` (its points, its references, the bound's noise, the samples),
    independent of every stream of ``fit`` with the same seed."""
    return np.random.SeedSequence([seed, 7919]).spawn(4)


def evaluate(model, data, *, seed: int = 0, n: int = N_EVAL, bin_width: float | None = None,
             exact: bool = False, eval: str = "full") -> dict:
    """``ddpm eval``: the likelihood bound on ``data`` and the sample statistics of ``metrics.json``.

    ``data``: a built-in name (n fresh points, independent of the training draw) or a .npy/.csv file
    / array (half its points, at most n, for the bound and as the held-out side of the sample
    statistics; references for their floors from the other half). n samples are drawn; as many as a
    reference holds are compared (``sample_statistics``). ``eval``: "full" (default: the bound over all T
    steps on all n points, floors from fresh draws) or "fast" (as ``fit``'s: FAST_BOUND_T_DRAWS stratified t
    per point on at most FAST_BOUND_POINTS points, cached floors for built-in data).
    """
    if eval not in EVAL_MODES:
        raise ValueError(f"unknown eval {eval!r}; choose one of {', '.join(EVAL_MODES)}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an integer ≥ 2, got {n!r}")
    m = model if isinstance(model, Model) else Model.load(model)
    grid = m.info.get("grid")
    if bin_width == 0:                                   # as in fit: 0 means the continuous decoder
        bin_width, grid = None, None
    if bin_width is None and grid:
        bin_width = grid["bin_width"]                    # quantised data: the discretised decoder
    check_memory({f"{n} evaluation points and samples": 8 * (12 + N_FLOOR_DRAWS) * int(n) * m.cfg.dim
                  + 8 * 3 * 1024 * int(n)}, f"evaluating on {n} points")
    ss_x, ss_ref, ss_bound, ss_sample = evaluation_streams(seed)
    if isinstance(data, str) and data in toy_data.NAMES:
        x = toy_data.draw(data, n, np.random.default_rng(ss_x))
        refs = [toy_data.draw(data, n, np.random.default_rng(s_)) for s_ in ss_ref.spawn(N_FLOOR_DRAWS)]
        source = data
    else:
        if isinstance(data, str) and data in toy_data.FIXED:
            x_all = toy_data.load_fixed(data)
        elif isinstance(data, (str, os.PathLike)):
            x_all = toy_data.load(data)
        else:
            x_all = toy_data.validate(np.asarray(data), "data")
        perm = np.random.default_rng(ss_x).permutation(x_all.shape[0])
        half = max(1, min(n, x_all.shape[0] // 2))
        x, rest = x_all[perm[:half]], x_all[perm[half:]]
        r = min(n, rest.shape[0])
        refs = [rest[np.random.default_rng(s_).permutation(rest.shape[0])[:r]] for s_ in ss_ref.spawn(N_FLOOR_DRAWS)]
        source = os.fspath(data) if isinstance(data, (str, os.PathLike)) else "array"
    xb = x if eval == "full" else x[:FAST_BOUND_POINTS]                    # the points of the bound
    res = likelihood_bound(m, xb, seed=int(ss_bound.generate_state(1)[0]), bin_width=bin_width,
                           t_draws=None if eval == "full" else FAST_BOUND_T_DRAWS)
    per_point_bpd = res.pop("per_point_nats") / (m.cfg.dim * ddpm_ref.LN2)
    sample_seed = int(ss_sample.generate_state(1)[0])
    samples = sample(m, n, seed=sample_seed)
    res.update({"data": source, "seed": seed, "sample_seed": sample_seed})
    floors = cached_floors(source, refs[0].shape[0], x.shape[0]) if eval == "fast" and source in toy_data.NAMES else None
    res.update(sample_statistics(samples[:refs[0].shape[0]], x, refs, mode=eval, floors=floors))
    if exact:                     # with a bin width: the dequantised ODE bound on the bin's probability
        ode = ode_nll(m, xb, bin_width=bin_width, seed=int(ss_bound.generate_state(2)[1]))
        ode_pp = ode.pop("per_point_bpd")
        res.update(ode)
        diff = per_point_bpd - ode_pp                                           # bound − exact, same points
        res["bound_minus_ode_nll_bits_per_dim"] = float(diff.mean())
        res["bound_minus_ode_nll_bits_per_dim_se"] = float(diff.std(ddof=1) / np.sqrt(diff.size))
    if source in toy_data.LOG_DENSITIES and bin_width is None:
        nll = -toy_data.LOG_DENSITIES[source](xb) / (xb.shape[1] * ddpm_ref.LN2)   # exact, bits/dim
        gap = per_point_bpd - nll                                                # paired on the same points
        res["true_nll_bits_per_dim"] = float(nll.mean())
        res["bound_minus_true_nll_bits_per_dim"] = float(gap.mean())
        res["bound_minus_true_nll_bits_per_dim_se"] = float(gap.std(ddof=1) / np.sqrt(gap.size))
    return res
