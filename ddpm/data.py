"""The data a fit sees: a built-in name, a .npy/.csv file or an array turned into training, held-out and
reference sets (``resolve_data``), and the grid of quantised data (pixel values, counts): inferred from the
data or a fixed set's metadata, dequantised for training, and put back on the grid for samples.

Randomness: one ``seed`` is split (``numpy.random.SeedSequence.spawn``) into independent streams for
the training data, for training (Algorithm 1) and for evaluation, so changing the number of training
steps never changes the data or the evaluation draws.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

import toy_data

__all__ = ["N_TRAIN_DEFAULT", "N_EVAL", "N_FLOOR_DRAWS", "MIN_CLASS_POINTS", "LabelledData", "resolve_data",
           "resolve_labelled", "infer_grid", "fixed_default", "dequantize", "quantize"]

N_TRAIN_DEFAULT = 100_000     # points drawn from a built-in generator for training: enough that the
                              # training set's own sampling error is small next to the evaluation floor
N_EVAL = 5_000                # samples drawn after a fit, and fresh data points they are compared with
N_FLOOR_DRAWS = 4             # the floor is averaged over this many reference draws: one draw's value
                              # fluctuates by about ±50% around its expectation
MIN_CLASS_POINTS = 5          # training points a class needs: fewer cannot teach the network its class row


def resolve_data(data, seed: int = 0, n_train: int = N_TRAIN_DEFAULT, n_eval: int = N_EVAL):
    """Turn ``data`` (a built-in name, a .npy/.csv path, or an (N, D) array) into training and evaluation sets.

    Returns (train (N, D), held_out (M, D), references [(R, D)] * N_FLOOR_DRAWS, source). For a
    built-in name the held-out set and each reference are fresh, independent draws of n_eval points;
    for a user's data a random 20% (at most n_eval points) is held out and the references are random
    subsets of R = min(n_eval, N) training points: R is the number of samples compared with the
    held-out set, so that statistic and floor are measured at the same sizes.
    """
    d = _resolve(data, None, None, seed, n_train, n_eval)
    return d.train, d.held, d.refs, d.source


class LabelledData(NamedTuple):
    """``resolve_data``'s sets, with each point's class where the data carry labels (``resolve_labelled``)."""
    train: np.ndarray
    held: np.ndarray
    refs: list
    source: str
    train_y: np.ndarray | None    # (N,) class indices into ``classes``
    held_y: np.ndarray | None     # (M,)
    classes: tuple | None         # the class names (str), index = class


def resolve_labelled(data, label=None, y=None, seed: int = 0, n_train: int = N_TRAIN_DEFAULT,
                     n_eval: int = N_EVAL) -> LabelledData:
    """``resolve_data`` for labelled data: the same training, held-out and reference sets (the same points for
    the same seed), and each training and held-out point's class. The labels come from ``label``: the label of
    a labelled built-in (``toy_data.LABELS``: 8gaussians' mode, moons' moon, digits' digit), or a column of a
    .csv/.npy file (a header name or a 0-based index; strings or numbers); or from ``y`` (one label per row)
    for an array. Neither: unlabelled (train_y None). Every class needs ``MIN_CLASS_POINTS`` training points,
    and there must be two classes at least."""
    d = _resolve(data, label, y, seed, n_train, n_eval)
    if d.classes is not None:
        if len(d.classes) < 2:
            raise ValueError(f"{d.source}: the labels hold one class ({d.classes[0]!r}); conditioning needs two or more")
        counts = np.bincount(d.train_y, minlength=len(d.classes))
        if counts.min() < MIN_CLASS_POINTS:
            c = int(np.argmin(counts))
            raise ValueError(f"{d.source}: class {d.classes[c]!r} has {counts[c]} training point(s); each class "
                             f"needs at least {MIN_CLASS_POINTS}")
    return d


def _resolve(data, label, y, seed, n_train, n_eval) -> LabelledData:
    ss_data, _, ss_eval = np.random.SeedSequence(seed).spawn(3)
    ss_held, *ss_refs = ss_eval.spawn(1 + N_FLOOR_DRAWS)
    builtin = isinstance(data, str) and (data in toy_data.NAMES or data in toy_data.FIXED)
    if label is not None and y is not None:
        raise ValueError("give the labels one way: label (a built-in's label or a file's column) or y (an array)")
    if builtin and label is not None and toy_data.LABELS.get(data) != label:
        has = ", ".join(f"{k} ({v})" for k, v in toy_data.LABELS.items())
        raise ValueError(f"{data!r} carries no label {label!r}; the labelled built-ins are {has}")
    if y is not None and (builtin or isinstance(data, (str, os.PathLike))):
        raise ValueError("y labels an array of points; for a built-in or a file name its label (label=...)")
    if label is not None and not isinstance(data, (str, os.PathLike)):
        raise ValueError("label names a built-in's label or a file's column; for an array give one label per row (y=...)")
    classes = train_y = held_y = yi = None
    if isinstance(data, str) and data in toy_data.NAMES:
        def draw(n, ss):
            rng = np.random.default_rng(ss)
            return toy_data.draw_labelled(data, n, rng) if label is not None else (toy_data.draw(data, n, rng), None)
        (train, train_y), (held, held_y) = draw(n_train, ss_data), draw(n_eval, ss_held)
        refs = [toy_data.draw(data, n_eval, np.random.default_rng(ss)) for ss in ss_refs]
        classes = toy_data.class_names(data) if label is not None else None
        return LabelledData(train, held, refs, data, train_y, held_y, classes)
    if isinstance(data, str) and data in toy_data.FIXED:          # a fixed data set: held out like a user's file
        source = data
        if label is not None:
            x, yi = toy_data.load_fixed_labelled(data)
            classes = toy_data.class_names(data)
        else:
            x = toy_data.load_fixed(data)
    elif isinstance(data, (str, os.PathLike)):
        if not os.path.exists(os.fspath(data)) and not os.path.splitext(os.fspath(data))[1]:
            raise ValueError(f"unknown dataset {os.fspath(data)!r}: not a built-in name "
                             f"({', '.join(toy_data.ALL_NAMES)}) nor an existing .npy/.csv file")
        source = os.fspath(data)
        if label is not None:
            x, raw = toy_data.load_labelled(data, label)
            yi, classes = toy_data.encode_labels(raw)
        else:
            x = toy_data.load(data)
    else:
        x = toy_data.validate(np.asarray(data), "data array")
        source = "array"
        if y is not None:
            if np.shape(y) != (x.shape[0],):
                raise ValueError(f"y must hold one label per data row ({x.shape[0]}), got shape {np.shape(y)}")
            yi, classes = toy_data.encode_labels(y)
    if x.shape[0] < 10:
        raise ValueError(f"{source}: need at least 10 points to fit and hold out some, got {x.shape[0]}")
    perm = np.random.default_rng(ss_data).permutation(x.shape[0])
    m = min(n_eval, max(2, x.shape[0] // 5))
    held, train = x[perm[:m]], x[perm[m:]]
    if yi is not None:
        held_y, train_y = yi[perm[:m]], yi[perm[m:]]
    r = min(n_eval, train.shape[0])
    refs = [train[np.random.default_rng(ss).permutation(train.shape[0])[:r]] for ss in ss_refs]
    return LabelledData(train, held, refs, source, train_y, held_y, None if classes is None else tuple(classes))


def infer_grid(x: np.ndarray, bin_width, source: str) -> dict | None:
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


def fixed_default(source: str, key: str, given):
    """A fixed data set's own metadata (toy_data.FIXED_INFO: its grid's bin width, its image shape) where
    the caller left the setting at its default ("auto" / None)."""
    info = toy_data.FIXED_INFO.get(source) if isinstance(source, str) else None
    if info is None or not (given is None or (isinstance(given, str) and given == "auto")):
        return given
    return info.get(key) or given


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
