"""The Python API: fit a diffusion model to 2-D (or N-D) points, sample from it, measure it.

    result = ddpm.fit("swiss_roll", out="runs/sr")       # or fit(data=array) / fit("points.csv")
    x = ddpm.sample("runs/sr/model.npz", 10_000, seed=1)  # points in the data's own coordinates

Randomness: one ``seed`` is split (``numpy.random.SeedSequence.spawn``) into independent streams for
the training data, for training (Algorithm 1) and for evaluation, so changing the number of training
steps never changes the data or the evaluation draws.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace

import numpy as np

import ddpm_ref
import toy_data
from ddpm_ref import MLPConfig, TrainConfig

from .metrics import energy_distance
from .model import Model, Normalizer, data_fingerprint

__all__ = ["fit", "sample", "load_model", "resolve_data", "FitResult", "BACKENDS", "OUTPUT_FILES"]

BACKENDS = ("numpy",)
OUTPUT_FILES = ("model.npz", "samples.npy", "samples.png", "loss.png", "metrics.json")
N_TRAIN_DEFAULT = 10_000      # points drawn from a built-in generator for training
N_EVAL = 5_000                # samples and fresh data points compared by the energy distance
FINAL_LOSS_WINDOW = 200       # final_loss = mean L_simple over the last steps (one step is noisy)


@dataclass
class FitResult:
    model: Model
    samples: np.ndarray       # (n_eval, D) generated points, data coordinates
    metrics: dict
    out: str | None


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")


def resolve_data(data, seed: int = 0, n_train: int = N_TRAIN_DEFAULT, n_eval: int = N_EVAL):
    """Turn ``data`` (a built-in name, a .npy/.csv path, or an (N, D) array) into training and evaluation sets.

    Returns (train (N, D), held_out (M, D), reference (M, D), source): for a built-in name the
    held-out and reference sets are two fresh, independent draws of n_eval points; for a user's data
    a random 20% (at most n_eval points) is held out, and the reference for the sampling floor is a
    same-size random subset of the training part.
    """
    ss_data, _, ss_eval = np.random.SeedSequence(seed).spawn(3)
    if isinstance(data, str) and data in toy_data.NAMES:
        rng = np.random.default_rng(ss_data)
        train = toy_data.draw(data, n_train, rng)
        held = toy_data.draw(data, n_eval, np.random.default_rng(ss_eval.spawn(2)[0]))
        ref = toy_data.draw(data, n_eval, np.random.default_rng(ss_eval.spawn(2)[1]))
        return train, held, ref, data
    if isinstance(data, (str, os.PathLike)):
        if not os.path.exists(os.fspath(data)) and not os.path.splitext(os.fspath(data))[1]:
            raise ValueError(f"unknown dataset {os.fspath(data)!r}: not a built-in name "
                             f"({', '.join(toy_data.NAMES)}) nor an existing .npy/.csv file")
        x = toy_data.load(data)
        source = os.fspath(data)
    else:
        x = toy_data._validate(np.asarray(data), "data array")
        source = "array"
    if x.shape[0] < 10:
        raise ValueError(f"{source}: need at least 10 points to fit and hold out some, got {x.shape[0]}")
    perm = np.random.default_rng(ss_data).permutation(x.shape[0])
    m = min(n_eval, max(2, x.shape[0] // 5))
    held, train = x[perm[:m]], x[perm[m:]]
    ref = train[np.random.default_rng(ss_eval).permutation(train.shape[0])[:m]]
    return train, held, ref, source


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc="training", unit="step", dynamic_ncols=True)


def fit(data="swiss_roll", out=None, *, steps: int | None = None, T: int = 1000, schedule: str = "linear",
        seed: int = 0, backend: str = "numpy", model: MLPConfig | None = None, train: TrainConfig | None = None,
        n_train: int = N_TRAIN_DEFAULT, n_eval: int = N_EVAL, var_type: str = "beta", progress: bool = True,
        overwrite: bool = False, resume=None, checkpoint_every: int = 2000, callback=None) -> FitResult:
    """Fit ε_θ to ``data`` with Algorithm 1, then draw ``n_eval`` samples with Algorithm 2 and measure them.

    ``data``: a built-in name (``toy_data.NAMES``), a path to .npy/.csv, or an (N, D) array. With
    ``out`` set, writes model.npz, samples.npy, samples.png, loss.png and metrics.json into it (and
    model.npz every ``checkpoint_every`` steps while training); an existing fit there is never
    replaced unless ``overwrite=True`` or it is the ``resume`` source. ``resume``: path to a
    checkpoint of an interrupted fit of the same data; training continues exactly as the
    uninterrupted run would have. Returns a :class:`FitResult`.
    """
    _check_backend(backend)
    if var_type not in ddpm_ref.VAR_TYPES:
        raise ValueError(f"unknown variance choice {var_type!r}; choose one of {', '.join(ddpm_ref.VAR_TYPES)}")
    if out is not None:
        out = os.fspath(out)
        existing = [f for f in OUTPUT_FILES if os.path.exists(os.path.join(out, f))]
        same_as_resume = resume is not None and os.path.abspath(os.fspath(resume)) == os.path.abspath(
            os.path.join(out, "model.npz"))
        if existing and not overwrite and not same_as_resume:
            raise FileExistsError(f"{out} already holds {', '.join(existing)}; choose another --out, "
                                  f"pass overwrite=True (--overwrite) to replace them, or resume from {out}/model.npz")
    train_x, held, ref, source = resolve_data(data, seed, n_train, n_eval)
    _, ss_train, ss_eval = np.random.SeedSequence(seed).spawn(3)

    if resume is not None:
        m = Model.load(resume)
        if m.info.get("data_sha256") != data_fingerprint(train_x):
            raise ValueError(f"{resume}: it was trained on other data ({m.info.get('data_source')!r}, seed "
                             f"{m.info.get('seed')}); resume with the same data and seed")
        if steps is not None and steps != m.tcfg.steps:
            raise ValueError(f"{resume}: the run was planned for {m.tcfg.steps} steps (its learning-rate "
                             f"schedule depends on it); resume without changing steps")
        rng = np.random.default_rng()
        rng.bit_generator.state = m.rng_state
    else:
        cfg = model or MLPConfig(dim=train_x.shape[1])
        if cfg.dim != train_x.shape[1]:
            raise ValueError(f"model dim {cfg.dim} does not match the data's {train_x.shape[1]} columns")
        tcfg = train or TrainConfig()
        if steps is not None:
            tcfg = replace(tcfg, steps=steps)
        sched = ddpm_ref.make_schedule(schedule, T)
        rng = np.random.default_rng(ss_train)
        m = Model(cfg, tcfg, sched, ddpm_ref.init_state(cfg, rng), Normalizer.fit(train_x), rng.bit_generator.state,
                  np.empty(0), {"data_source": source, "data_sha256": data_fingerprint(train_x), "seed": seed,
                                "n_train": int(train_x.shape[0]), "backend": backend, "var_type": var_type})

    u = m.norm.to_model(train_x)
    bar = _progress(m.tcfg.steps, m.step, progress)
    t0 = time.perf_counter()

    def cb(step, loss):
        if bar is not None:
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")
        if callback is not None:
            callback(step, loss)

    try:
        while m.step < m.tcfg.steps:
            n = min(checkpoint_every, m.tcfg.steps - m.step) if out is not None else m.tcfg.steps - m.step
            m.state, chunk = ddpm_ref.train(m.state, u, m.sched, m.cfg, m.tcfg, rng, n, callback=cb)
            m.losses = np.concatenate([m.losses, chunk])
            m.rng_state = rng.bit_generator.state
            if out is not None:
                m.save(os.path.join(out, "model.npz"))
    finally:
        if bar is not None:
            bar.close()
    train_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    samples = sample(m, held.shape[0], seed=int(ss_eval.generate_state(1)[0]), var_type=var_type)
    sample_seconds = time.perf_counter() - t0
    metrics = {
        "dataset": source, "n_train": int(train_x.shape[0]), "dim": int(train_x.shape[1]),
        "steps": m.step, "T": m.sched.T, "schedule": m.sched.name, "backend": backend, "var_type": var_type,
        "final_loss": float(np.mean(m.losses[-FINAL_LOSS_WINDOW:])) if m.losses.size else None,
        "final_loss_window": FINAL_LOSS_WINDOW,
        "n_eval": int(held.shape[0]),
        "energy_distance": energy_distance(samples, held),
        "energy_distance_floor": energy_distance(ref, held),
        "train_seconds": round(train_seconds, 3), "sample_seconds": round(sample_seconds, 3),
    }
    metrics["energy_ratio"] = metrics["energy_distance"] / metrics["energy_distance_floor"]
    if out is not None:
        from .plots import save_loss_plot, save_samples_plot
        np.save(os.path.join(out, "samples.npy"), samples)
        save_samples_plot(os.path.join(out, "samples.png"), held, samples, title=source)
        save_loss_plot(os.path.join(out, "loss.png"), m.losses)
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
    return FitResult(m, samples, metrics, out)


def load_model(path) -> Model:
    """Load a fitted model from a checkpoint file (see :class:`ddpm.model.Model`)."""
    return Model.load(path)


def sample(model, n: int, *, seed: int = 0, var_type: str | None = None, use_ema: bool = True,
           backend: str = "numpy", return_trajectory: bool = False):
    """Draw n points with Algorithm 2 from a fitted model (a :class:`Model` or a checkpoint path).

    Returns points (n, D) in the data's own coordinates (and the trajectory (T+1, n, D), also in data
    coordinates, if ``return_trajectory``). Uses the EMA weights unless ``use_ema=False``.
    """
    _check_backend(backend)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer number of samples, got {n!r}")
    m = model if isinstance(model, Model) else Model.load(model)
    var_type = var_type or m.info.get("var_type", "beta")
    rng = np.random.default_rng(seed)
    weights = m.state["ema"] if use_ema else m.state["params"]
    x_T = rng.standard_normal((int(n), m.cfg.dim))                         # Alg. 2 line 1
    res = ddpm_ref.p_sample_loop(weights, m.cfg, m.sched, x_T, rng=rng, var_type=var_type,
                                 return_trajectory=return_trajectory)
    if return_trajectory:
        x0, traj = res
        return m.norm.to_data(x0), m.norm.to_data(traj)
    return m.norm.to_data(res)
