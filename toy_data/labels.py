"""Labelled data for class-conditional diffusion (issue 31): the built-in sets that carry a label, and a
user's file with one column of labels.

    LABELS                          -> the label each labelled built-in carries ({"8gaussians": "mode", ...})
    class_names(name)               -> the class names of a labelled built-in, index = label value
    draw_labelled(name, n, rng)     -> (x, y): draw(name, n, rng)'s points, bit for bit, and their classes
    load_fixed_labelled(name)       -> (x, y): load_fixed(name) and scikit-learn's targets
    load_labelled(path, column)     -> (x, raw_labels): a .csv/.npy file's other columns and its label column as str
    encode_labels(raw)              -> (y, classes): raw labels -> int64 indices into a tuple of class names

A label y is an int64 class index 0..C−1; ``classes[y]`` (or ``class_names(name)[y]``) is its name.
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np

from toy_data import (FIXED, FIXED_INFO, DataError, _8gaussians_labelled, _check_n_rng, _csv_cells, _csv_errors,
                      _csv_numbers, _data_file, _is_number, _load_npy, _moons_labelled, load_fixed, validate)

LABELS = {"8gaussians": "mode", "moons": "moon", "digits": "digit"}   # labelled built-in -> what its label is

# Mode k of 8gaussians sits at angle 2πk/8 (_eight_centers): k = 0 is east, counter-clockwise from there.
_CLASS_NAMES = {
    "8gaussians": ("E", "NE", "N", "NW", "W", "SW", "S", "SE"),
    "moons": ("upper", "lower"),                           # _moons_labelled: upper = the first n // 2
    "digits": tuple(str(d) for d in range(10)),
}
_LABELLED_GENERATORS = {"8gaussians": _8gaussians_labelled, "moons": _moons_labelled}


def class_names(name: str) -> tuple[str, ...]:
    """The class names of the labelled built-in ``name`` (one of ``LABELS``); index = label value.

    8gaussians: the compass direction of each mode ("E", "NE", ..., "SE" for k = 0..7); moons: "upper",
    "lower"; digits: "0".."9". Raises ValueError for any other name."""
    if name not in _CLASS_NAMES:
        raise ValueError(f"{name!r} has no labels; the labelled data sets are: {', '.join(LABELS)}")
    return _CLASS_NAMES[name]


def draw_labelled(name: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points of the labelled generator ``name`` and their classes: x (n, 2) float64, identical bit for bit
    to ``draw(name, n, rng)`` from the same generator state, and y (n,) int64 (8gaussians: the mode k
    drawn; moons: 0 upper, 1 lower). Raises as ``draw`` does, and ValueError for a name without labels."""
    if name in FIXED and name in LABELS:
        raise ValueError(f"{name!r} is a fixed data set, not a generator: its labelled points come from "
                         f"load_fixed_labelled({name!r})")
    if name not in _LABELLED_GENERATORS:
        fixed = [k for k in LABELS if k in FIXED]
        raise ValueError(f"{name!r} cannot be drawn with labels; the labelled generators are: "
                         f"{', '.join(_LABELLED_GENERATORS)} (fixed, with load_fixed_labelled: {', '.join(fixed)})")
    _check_n_rng(n, rng)
    x, y = _LABELLED_GENERATORS[name](int(n), rng)
    return np.ascontiguousarray(x, dtype=np.float64), np.ascontiguousarray(y, dtype=np.int64)


def load_fixed_labelled(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The labelled fixed data set ``name`` ("digits"): x = ``load_fixed(name)`` (N, D) float64 and y (N,)
    int64, scikit-learn's ``target`` (the digit). Raises ValueError for another name, ImportError as
    ``load_fixed`` does."""
    if name not in FIXED or name not in LABELS:
        labelled = [k for k in LABELS if k in FIXED]
        raise ValueError(f"{name!r} is not a labelled fixed data set; the labelled ones are: {', '.join(labelled)}")
    x = load_fixed(name)
    from sklearn import datasets                          # present: load_fixed just used it
    y = np.asarray(getattr(datasets, FIXED_INFO[name]["source"].rsplit(".", 1)[1])().target, dtype=np.int64)
    if y.shape != (x.shape[0],):
        raise DataError(f"{name}: scikit-learn's targets have shape {y.shape}, expected ({x.shape[0]},)")
    return x, y


def _unquote(s: str) -> str:
    """``s`` stripped, without one pair of enclosing quotes (left by whitespace-separated files)."""
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        s = s[1:-1].strip()
    return s


def _number_text(v: float) -> str:
    """A numeric label as text: integers without ".0" (3.0 -> "3"), other numbers as Python prints them."""
    v = float(v)
    if math.isfinite(v) and v == int(v):
        return str(int(v))
    return repr(v)


def _column_index(path: str, column, header, width: int) -> int:
    """The 0-based index of the label column ``column`` (a header name, or an int or str of digits, negative
    counting from the end) in a file of ``width`` columns with ``header`` (None when it has none)."""
    names = None if header is None else [_unquote(c) for c in header]
    if isinstance(column, str) and names is not None and column.strip() in names:
        if names.count(column.strip()) > 1:
            raise DataError(f"{path}: the header names column {column.strip()!r} more than once; give its index")
        index = names.index(column.strip())
    else:
        if isinstance(column, str):
            if not re.fullmatch(r"-?[0-9]+", column.strip()):
                if names is None:
                    raise DataError(f"{path}: the file has no header row, so the label column must be a 0-based "
                                    f"index, not {column!r} ({width} columns)")
                shown = ", ".join(repr(c) for c in names[:20])
                if len(names) > 20:
                    shown += f", ... ({len(names)} columns)"
                raise DataError(f"{path}: no column {column!r} in the header; its columns are: {shown}")
            column = int(column)
        if not isinstance(column, (int, np.integer)) or isinstance(column, bool):
            raise TypeError(f"column must be a header name (str) or a 0-based index (int), got {type(column).__name__}")
        if not -width <= column < width:
            raise DataError(f"{path}: label column index {column} is out of range: the file has {width} columns "
                            f"(0..{width - 1}, or -{width}..-1)")
        index = int(column) % width
    if width < 2:
        raise DataError(f"{path}: the label column is the only column; no data column is left")
    return index


def _labelled_csv(path: str, column):
    """(x, raw_labels) from a CSV file as ``_load_csv`` reads it, the label column ``column`` taken out."""
    with _csv_errors(path):
        header, linenos, rows, width = _csv_cells(path)
    col = _column_index(path, column, header, width)
    x = _csv_numbers(path, linenos, rows, width, skip=col)
    labels = []
    for lineno, row in zip(linenos, rows):
        label = _unquote(row[col])
        if not label:
            raise DataError(f"{path}: line {lineno} has an empty label (column {col})")
        if _is_number(label) and math.isnan(float(label)):
            raise DataError(f"{path}: line {lineno} has a NaN label {label!r} (column {col})")
        labels.append(label)
    return x, np.array(labels, dtype=str), col


def _labelled_npy(path: str, column):
    """(x, raw_labels) from a 2-D numeric .npy array, the label column ``column`` taken out."""
    a = _load_npy(path)
    if a.ndim != 2 or a.dtype.kind not in "biuf" or a.dtype.fields is not None:
        validate(a, path)                                  # raises: names the wrong dtype or rank
    col = _column_index(path, column, None, a.shape[1])
    raw = a[:, col].astype(np.float64)
    nan = np.isnan(raw)
    if nan.any():
        first = int(np.argmax(nan))
        raise DataError(f"{path}: {int(nan.sum())} label(s) in column {col} are NaN, first at row {first}")
    x = np.delete(a, col, axis=1)
    return x, np.array([_number_text(v) for v in raw], dtype=str), col


def load_labelled(path, column) -> tuple[np.ndarray, np.ndarray]:
    """A user's labelled data set from ``.csv`` or ``.npy``: one column holds the labels, the others the data.

    ``column``: a header name (str; a CSV with a header row) or a 0-based index (int, negative counting from
    the end; a str of digits such as "2" is an index when the header has no column of that name).
    Returns x (N, D − 1) float64, the other columns, checked as ``load`` checks its data (read by the same
    rules: delimiter, optional header, '#' comments, quoted numbers), and raw_labels (N,) str: a CSV's cell
    text (stripped, quotes removed; strings or numbers), an .npy's numbers as text (3.0 -> "3"). Turn them
    into class indices with :func:`encode_labels`.

    Raises :class:`DataError` naming the file and the problem: those of ``load``, a column name not in the
    header, an index out of range, an empty or NaN label, no data column left.
    """
    path, ext = _data_file(path)
    x, raw, col = (_labelled_npy if ext == ".npy" else _labelled_csv)(path, column)
    return validate(x, f"{path} (data columns, label column {col} left out)"), raw


def encode_labels(raw) -> tuple[np.ndarray, tuple[str, ...]]:
    """Raw labels (N,) (str or numbers) -> y (N,) int64 indices into classes, a tuple of str.

    When every label is a number the classes are in numeric order and named by value ("2" before "10";
    "3.0" and "3" are one class "3"); otherwise they are the distinct strings (stripped) in lexicographic
    order. Raises :class:`DataError` for an empty or NaN label."""
    a = np.asarray(raw, dtype=object)
    if a.ndim != 1:
        raise DataError(f"labels: expected a 1-D array of labels, got shape {a.shape}")
    texts = []
    for i, v in enumerate(a):
        if isinstance(v, str):
            t = v.strip()
        elif isinstance(v, (numbers.Real, np.bool_)):
            t = _number_text(v)
        else:
            raise DataError(f"labels: label {i} is a {type(v).__name__}, not a string or a number")
        if not t:
            raise DataError(f"labels: label {i} is empty")
        if _is_number(t) and math.isnan(float(t)):
            raise DataError(f"labels: label {i} is NaN")
        texts.append(t)
    if all(_is_number(t) for t in texts):
        keys = [float(t) for t in texts]                  # numeric classes: 3.0 and "3" are one class
        values = sorted(set(keys))
        classes = tuple(_number_text(v) for v in values)
    else:
        keys = texts
        values = sorted(set(keys))
        classes = tuple(values)
    index = {v: i for i, v in enumerate(values)}
    return np.array([index[k] for k in keys], dtype=np.int64), classes
