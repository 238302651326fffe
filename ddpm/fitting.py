"""``fit``: Algorithm 1 on a data set, from its plan (``ddpm.fit_plan``: the arguments checked, the data and
the model) through training (chunk by chunk, with checkpoints and the divergence guard) to the measured
samples (``ddpm.measure``) and the files of the output folder (``ddpm.outdir``).

    result = ddpm.fit("swiss_roll", out="runs/sr")       # or fit(data=array) / fit("points.csv")
"""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass

import numpy as np

import ddpm_fast
from ddpm_ref import MLPConfig, TrainConfig

from .data import N_EVAL, dequantize
from .fit_plan import FitPlan, check_fit_arguments, plan_fit
from .guards import check_finite
from .measure import sample_and_measure, save_reverse_grid
from .model import Model
from .outdir import atomic, output_lock, refuse_existing, write_json
from .plot_samples import save_samples_plot
from .plots import save_loss_plot, save_profile_plot
from .runtime import choose_backend, progress_bar

__all__ = ["FitResult", "fit", "train_model", "write_outputs"]


@dataclass
class FitResult:
    model: Model
    samples: np.ndarray       # (n_eval, D) generated points, data coordinates
    metrics: dict
    out: str | None


def fit(data="swiss_roll", out=None, *, steps: int | None = None, T: int | None = None, schedule: str | None = None,
        seed: int | None = None, backend: str | None = None, model: MLPConfig | None = None,
        train: TrainConfig | dict | None = None, n_train: int | None = None, n_eval: int = N_EVAL, progress: bool = True,
        overwrite: bool = False, resume=None, checkpoint_every: int = 2000, callback=None,
        normalize: str | None = None, schedule_params: dict | None = None, bin_width="auto",
        image_shape: tuple | None = None, eval: str = "fast", label=None, y=None,
        p_uncond: float | None = None) -> FitResult:
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
    FAST_BOUND_POINTS points (``ddpm.likelihood.bound_stratified``) — each floor, ratio and the bound with its standard
    error; "none": samples only, no statistics, no bound (metrics.json says ``"eval": "none"``).
    ``label`` / ``y``: labels make the model class-conditional, ε_θ(x_t, t, y) (``ddpm_ref.guidance``), trained
    with label dropout ``p_uncond`` (default 0.1) so that it is also the unconditional model: ``label`` names the
    label of a labelled built-in (``toy_data.LABELS``: "mode" of 8gaussians, "moon" of moons, "digit" of digits) or
    a file's label column (header name or 0-based index); ``y`` gives one label per row of an array. The class
    names are saved in the checkpoint (``model.info["classes"]``); ``sample(..., y=CLASS, guidance=w)`` draws
    from a class. The measured samples are the whole data's (each point's class drawn with its training
    frequency, ``ddpm.sampling.whole_data_classes``); the likelihood bound is the ∅ (unconditional) model's.
    Returns a :class:`FitResult`.
    """
    given_train = check_fit_arguments(eval, train, resume, backend, normalize, checkpoint_every)
    out = None if out is None else os.fspath(out)
    with output_lock(out):
        refuse_existing(out, resume, overwrite)          # under the lock: two fits cannot both pass it
        plan = plan_fit(data, seed=seed, n_train=n_train, n_eval=n_eval, resume=resume, train=train,
                        given_train=given_train, steps=steps, T=T, schedule=schedule,
                        schedule_params=schedule_params, model=model, normalize=normalize, bin_width=bin_width,
                        image_shape=image_shape, backend=backend, label=label, y=y, p_uncond=p_uncond)
        m = plan.model
        backend = choose_backend(backend, m.tcfg)
        m.info["backend"] = backend
        train_seconds = train_model(plan, backend, out, checkpoint_every, progress, callback)
        grid = m.info.get("grid")
        bound_kw = dict(seed=int(plan.ss_eval.generate_state(2)[1]), bin_width=None if not grid else grid["bin_width"])
        samples, metrics, lb = sample_and_measure(m, n_eval, plan.ss_eval, backend, plan.source, plan.seed,
                                                  plan.train_x, plan.held, plan.refs, train_seconds, eval, bound_kw)
        if out is not None:
            write_outputs(out, plan, samples, metrics, lb)
        return FitResult(m, samples, metrics, out)


def train_model(plan: FitPlan, backend: str, out, checkpoint_every: int, progress: bool, callback) -> float:
    """Algorithm 1 from the plan's model at its current step to its last, in place, on the training data
    (dequantised for quantised data); one compiled chunk of ``ddpm_fast.train`` at a time, each checked for
    divergence (``check_finite``), with model.npz in ``out`` every ``checkpoint_every`` steps and at the end.
    Returns the seconds it took."""
    m, rng, train_x, ss_train = plan.model, plan.rng, plan.train_x, plan.ss_train
    u = m.norm.to_model(dequantize(train_x, m.info.get("grid"), np.random.default_rng(ss_train.spawn(1)[0]))
                        if m.info.get("grid") else train_x)
    cond = {}
    if plan.train_y is not None:                       # dequantisation repeats each row: so do its labels
        cond = dict(labels=np.repeat(plan.train_y, u.shape[0] // train_x.shape[0]), p_uncond=m.info["p_uncond"])
    bar = progress_bar(m.tcfg.steps, m.step, progress)
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
            state, chunk = ddpm_fast.train(m.state, u, m.sched, m.cfg, m.tcfg, rng, n, callback=cb, backend=backend,
                                           **cond)
            check_finite(m, state, chunk, out)
            m.state = state
            m.losses = np.concatenate([m.losses, chunk])
            m.rng_state = rng.bit_generator.state
            if out is not None and (m.step % checkpoint_every == 0 or m.step == m.tcfg.steps):
                m.save(os.path.join(out, "model.npz"))
    finally:
        if bar is not None:
            bar.close()
    train_seconds = time.perf_counter() - t0
    return train_seconds


def write_outputs(out: str, plan: FitPlan, samples: np.ndarray, metrics: dict, lb: dict | None) -> None:
    """The files of a fit in ``out``, each written atomically: samples.npy, samples.png, loss.png,
    bound_profile.png (with a bound), reverse.png (2-D data) and metrics.json, last."""
    m, held, source, ss_eval = plan.model, plan.held, plan.source, plan.ss_eval
    atomic(os.path.join(out, "samples.npy"), lambda p: np.save(p, samples))
    atomic(os.path.join(out, "samples.png"),
           lambda p: save_samples_plot(p, held, samples, title=source, **image_kw(m)))
    atomic(os.path.join(out, "loss.png"), lambda p: save_loss_plot(p, m.losses))
    if lb is not None:
        atomic(os.path.join(out, "bound_profile.png"), lambda p: save_profile_plot(p, lb))
    if m.cfg.dim == 2:                            # cheap in 2-D: one more chain of N_REVERSE_GRID points
        t0 = time.perf_counter()
        atomic(os.path.join(out, "reverse.png"),
               lambda p: save_reverse_grid(p, m, held, int(ss_eval.generate_state(3)[2]), source))
        metrics["reverse_png_seconds"] = round(time.perf_counter() - t0, 3)
    atomic(os.path.join(out, "metrics.json"), lambda p: write_json(p, metrics))


def image_kw(m: Model) -> dict:
    """save_samples_plot's image_shape argument, when the fit has one and the plot function takes it."""
    if m.info.get("image_shape") and "image_shape" in inspect.signature(save_samples_plot).parameters:
        return {"image_shape": tuple(m.info["image_shape"])}
    return {}
