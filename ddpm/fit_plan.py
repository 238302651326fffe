"""Planning a fit, before any training: ``fit``'s arguments checked, the data resolved (``ddpm.data``), and
the model to train built: restored from the checkpoint being resumed (every given setting checked
against it) or new, from the default recipe (``ddpm.recipe``) and the caller's settings, after an
estimate of its memory."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields, replace

import numpy as np

import ddpm_ref
import toy_data
from ddpm_ref import GeneralTrainConfig, MLPConfig, TrainConfig

from .data import N_TRAIN_DEFAULT, fixed_default, infer_grid, resolve_labelled
from .guards import check_memory, fit_memory
from .metrics import FIT_EVAL_MODES
from .model import Model, Normalizer, data_fingerprint
from .recipe import default_recipe, default_steps
from .runtime import choose_backend

__all__ = ["FitPlan", "check_fit_arguments", "plan_fit", "train_settings", "model_settings", "check_resume"]


@dataclass
class FitPlan:
    """What ``plan_fit`` decided: the model to train (at its current step), the generator of Algorithm 1's
    draws, the data sets of ``resolve_data``, the seed and its training and evaluation streams."""
    model: Model
    rng: np.random.Generator
    train_x: np.ndarray       # (N, D) training points, data coordinates
    held: np.ndarray          # (M, D) held-out points
    refs: list                # [(R, D)] reference draws for the floors
    source: str               # the data's name, path or "array"
    seed: int
    ss_train: np.random.SeedSequence
    ss_eval: np.random.SeedSequence
    train_y: np.ndarray | None = None    # (N,) the training points' classes (a conditional model), else None


def check_fit_arguments(eval, train, resume, backend, normalize, checkpoint_every) -> dict | None:
    """``fit``'s checks that need neither the data nor the output folder, made before either is touched.
    Returns ``train_settings(train)``."""
    if eval not in FIT_EVAL_MODES:
        raise ValueError(f"unknown eval {eval!r}; choose one of {', '.join(FIT_EVAL_MODES)}")
    given_train = train_settings(train)
    if given_train is not None and resume is None:
        GeneralTrainConfig(**given_train)        # an impossible combination is refused before the backend is sought
    if backend is not None:
        choose_backend(backend)                                           # fail early on unknown names
    if normalize not in (None, "per_dim", "isotropic"):
        raise ValueError(f"unknown normalize {normalize!r}; choose per_dim or isotropic")
    if not isinstance(checkpoint_every, (int, np.integer)) or isinstance(checkpoint_every, bool) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    return given_train


def plan_fit(data, *, seed, n_train, n_eval, resume, train, given_train, steps, T, schedule, schedule_params, model,
             normalize, bin_width, image_shape, backend, label=None, y=None, p_uncond=None) -> FitPlan:
    """The data and the model of a fit (``fit``'s arguments of the same names; ``given_train`` is
    ``check_fit_arguments``'s result): a resumed checkpoint keeps its seed and training-set size unless they
    are given, and is checked against the data and every given setting; a new model is built. Labels
    (``label`` or ``y``, ``ddpm.data.resolve_labelled``) make it class-conditional, with label dropout
    ``p_uncond`` (default ``ddpm_ref.P_UNCOND``)."""
    if p_uncond is not None and (isinstance(p_uncond, bool) or not isinstance(p_uncond, numbers.Real)
                                 or not 0 < p_uncond < 1):
        raise ValueError(f"p_uncond must lie strictly between 0 and 1 (the share of training labels dropped so the "
                         f"network also learns the unconditional model), got {p_uncond!r}")
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
    d = resolve_labelled(data, label, y, seed, n_train, n_eval)
    train_x, held, refs, source = d.train, d.held, d.refs, d.source
    _, ss_train, ss_eval = np.random.SeedSequence(seed).spawn(3)
    if resume is not None:
        if stored.info.get("classes") and label is None and y is None:
            raise ValueError(f"{resume}: it was fitted with labels ({stored.info.get('label')!r}, classes "
                             f"{', '.join(stored.info['classes'])}); resume with the same labels (--label / y=...)")
        m, rng = _resumed_model(stored, resume, train_x, steps=steps, T=T, schedule=schedule,
                                schedule_params=schedule_params, model=model, train=train, normalize=normalize,
                                bin_width=bin_width, image_shape=image_shape)
        _check_resumed_classes(resume, m, d.classes, d.train_y, p_uncond)
    else:
        if d.classes is not None:
            model = {**model_settings(model), "n_classes": len(d.classes)}
        m, rng = _new_model(train_x, held, source, seed, ss_train, given_train, steps=steps, T=T, schedule=schedule,
                            schedule_params=schedule_params, model=model, normalize=normalize, bin_width=bin_width,
                            image_shape=image_shape, backend=backend, n_eval=n_eval)
        if d.classes is not None:
            m.info.update(classes=list(d.classes), label=label if y is None else "y",
                          class_counts=np.bincount(d.train_y, minlength=len(d.classes)).tolist(),
                          labels_sha256=data_fingerprint(d.train_y),
                          p_uncond=float(ddpm_ref.P_UNCOND if p_uncond is None else p_uncond))
        elif p_uncond is not None:
            raise ValueError("p_uncond is label dropout: it needs labels (label=... / --label, or y=...)")
    return FitPlan(m, rng, train_x, held, refs, source, seed, ss_train, ss_eval, d.train_y)


def _check_resumed_classes(path, m: Model, classes, train_y, p_uncond) -> None:
    """A conditional checkpoint resumes with the same labels (the same classes, each point's the same), an
    unconditional one without."""
    stored = m.info.get("classes")
    same = (stored is None) == (classes is None) and (stored is None or (
        list(classes) == list(stored) and m.info.get("labels_sha256") in (None, data_fingerprint(train_y))))
    if not same:
        raise ValueError(f"{path}: resume with the labels it was fitted with (classes {stored!r}, the same class for "
                         f"each point); got {None if classes is None else list(classes)!r}")
    if p_uncond is not None and float(p_uncond) != m.info.get("p_uncond"):
        raise ValueError(f"{path}: resume with p_uncond = {p_uncond!r}, but the checkpoint has "
                         f"p_uncond = {m.info.get('p_uncond')!r}; drop the setting or start a new fit")


def _resumed_model(m: Model, resume, train_x, *, steps, T, schedule, schedule_params, model, train, normalize,
                   bin_width, image_shape):
    """The checkpoint ``m`` read from ``resume``, refused if it was trained on other data or a given setting
    contradicts it, its run extended to more ``steps`` if asked; and its generator, restored."""
    if m.info.get("data_sha256") != data_fingerprint(train_x):
        raise ValueError(f"{resume}: it was trained on other data ({m.info.get('data_source')!r}, seed "
                         f"{m.info.get('seed')}); resume with the same data and seed")
    check_resume(resume, m, steps=steps, T=T, schedule=schedule, schedule_params=schedule_params,
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
    return m, rng


def _new_model(train_x, held, source, seed, ss_train, given_train, *, steps, T, schedule, schedule_params, model,
               normalize, bin_width, image_shape, backend, n_eval):
    """A new model at step 0 (its configuration from the recipe and the given settings, the standardisation
    fitted to the data, the grid inferred) and the generator of its training draws."""
    tcfg = GeneralTrainConfig(**{"steps": default_steps(int(train_x.shape[0])), **(given_train or {}),
                          **({} if steps is None else {"steps": steps})})
    normalize = normalize or "per_dim"
    whole = train_x if source in toy_data.NAMES else np.concatenate([train_x, held])
    norm = Normalizer.fit(train_x, isotropic=normalize == "isotropic", whole=whole)
    D = int(norm.mean.shape[0])                                        # the data's modelled columns
    n_out = ddpm_ref.param.out_dim(D, tcfg.var_type)
    recipe = default_recipe(D)
    given = model_settings(model)
    if not isinstance(model, MLPConfig):
        model = MLPConfig(**{"fourier": recipe["fourier"], "hidden": recipe["hidden"], **given})
    cfg = replace(model, dim=D, out_dim=None if n_out == D else n_out)
    n_steps_T = 1000 if T is None else T
    check_memory(fit_memory(cfg, tcfg, n_steps_T, train_x.shape[0], n_eval), "this fit")
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
    m = Model(cfg, tcfg, sched, ddpm_ref.with_history(ddpm_ref.init_state(cfg, rng), sched.T),
              norm,
              rng.bit_generator.state, np.empty(0),
              {"data_source": source, "data_sha256": data_fingerprint(train_x), "seed": seed,
               "n_train": int(train_x.shape[0]), "backend": backend, "normalize": normalize,
               "grid": infer_grid(np.concatenate([train_x, held]) if source not in toy_data.NAMES else train_x,
                                   fixed_default(source, "bin_width", bin_width), source),
               "image_shape": (None if fixed_default(source, "image_shape", image_shape) is None
                               else [int(v) for v in fixed_default(source, "image_shape", image_shape)])})
    if image_shape is not None and int(np.prod(image_shape)) != train_x.shape[1]:
        raise ValueError(f"image_shape {tuple(image_shape)} has {int(np.prod(image_shape))} pixels; the data "
                         f"has {train_x.shape[1]} columns")
    return m, rng


def train_settings(train) -> dict | None:
    """``fit``'s ``train`` as {field: value} (checked against GeneralTrainConfig's fields), None for None. A
    TrainConfig gives Algorithm 1's fields, a GeneralTrainConfig also its variant's."""
    if train is None or isinstance(train, TrainConfig):
        return None if train is None else {f.name: getattr(train, f.name) for f in fields(train)}
    if not isinstance(train, dict):
        raise TypeError(f"train must be a TrainConfig, a dict of its fields or None, got {type(train).__name__}")
    names = [f.name for f in fields(GeneralTrainConfig)]
    unknown = sorted(set(train) - set(names))
    if unknown:
        raise ValueError(f"unknown train settings {unknown}; TrainConfig has {sorted(names)}")
    return dict(train)


def model_settings(model) -> dict:
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


def check_resume(path, m: Model, *, steps, T, schedule, schedule_params, model, train, normalize) -> None:
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
        for name, value in model_settings(model).items():
            if name not in ("dim", "out_dim") and value != getattr(m.cfg, name):
                refuse(f"model.{name}", value, getattr(m.cfg, name))
    if train is not None:
        for f in fields(GeneralTrainConfig):
            if f.name != "steps" and getattr(train, f.name) != getattr(m.tcfg, f.name):
                refuse(f"train.{f.name}", getattr(train, f.name), getattr(m.tcfg, f.name))
