"""Toy data for diffusion models: seeded 2-D generators and a loader for a user's (N, D) file.

    draw(name, n, rng)  -> (n, 2) float64 points of a named toy distribution
    load(path)          -> (N, D) float64 array from a .npy or .csv file (header optional)
    NAMES               -> the known generator names

Every generator takes its randomness from the passed ``numpy.random.Generator`` and nothing else.
Noise levels are part of each distribution's definition and written next to it; ``8gaussians`` also
has an exact density (``log_density_8gaussians``) for likelihood checks.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile

import numpy as np

__all__ = ["draw", "load", "NAMES", "DataError", "log_density_8gaussians", "EIGHT_GAUSSIANS", "LOG_DENSITIES", "validate"]


class DataError(ValueError):
    """A data file or array that cannot be used; the message names the file and the problem."""


def _swiss_roll(n, rng):
    # Sohl-Dickstein et al. 2015's toy (their Fig. 1): the 2-D swiss roll (x, z) of sklearn's
    # make_swiss_roll: angle u ~ U(1.5π, 4.5π), point u·(cos u, sin u), Gaussian noise sd 0.5, all / 10.
    u = 1.5 * math.pi * (1.0 + 2.0 * rng.random(n))
    x = np.stack([u * np.cos(u), u * np.sin(u)], axis=1)
    return (x + 0.5 * rng.standard_normal((n, 2))) / 10.0


def _moons(n, rng):
    # sklearn's make_moons: two interleaved half circles (radius 1), noise sd 0.1.
    n1 = n // 2
    n2 = n - n1
    a1 = math.pi * rng.random(n1)
    a2 = math.pi * rng.random(n2)
    upper = np.stack([np.cos(a1), np.sin(a1)], axis=1)
    lower = np.stack([1.0 - np.cos(a2), 0.5 - np.sin(a2)], axis=1)
    x = np.concatenate([upper, lower])[rng.permutation(n)]
    return x + 0.1 * rng.standard_normal((n, 2))


def _circles(n, rng):
    # sklearn's make_circles: radii 1 and 0.5, noise sd 0.05.
    r = np.where(rng.random(n) < 0.5, 1.0, 0.5)
    a = 2 * math.pi * rng.random(n)
    return r[:, None] * np.stack([np.cos(a), np.sin(a)], axis=1) + 0.05 * rng.standard_normal((n, 2))


def _rings(n, rng):
    # Four concentric rings (FFJORD's toy): radii 1, 2, 3, 4 with points ∝ radius, noise sd 0.08, / 2.
    radii = np.array([1.0, 2.0, 3.0, 4.0])
    r = rng.choice(radii, size=n, p=radii / radii.sum())
    a = 2 * math.pi * rng.random(n)
    x = r[:, None] * np.stack([np.cos(a), np.sin(a)], axis=1)
    return (x + 0.08 * rng.standard_normal((n, 2))) / 2.0


# 8gaussians: an equal-weight mixture of 8 isotropic Gaussians, centers on a circle of radius 2, sd 0.2.
EIGHT_GAUSSIANS = {"radius": 2.0, "sd": 0.2, "k": 8}


def _eight_centers():
    a = 2 * math.pi * np.arange(EIGHT_GAUSSIANS["k"]) / EIGHT_GAUSSIANS["k"]
    return EIGHT_GAUSSIANS["radius"] * np.stack([np.cos(a), np.sin(a)], axis=1)


def _8gaussians(n, rng):
    centers = _eight_centers()
    k = rng.integers(0, len(centers), size=n)
    return centers[k] + EIGHT_GAUSSIANS["sd"] * rng.standard_normal((n, 2))


def log_density_8gaussians(x: np.ndarray) -> np.ndarray:
    """Exact log q(x) (nats) of the ``8gaussians`` mixture at points x (N, 2)."""
    x = np.asarray(x, dtype=np.float64)
    centers = _eight_centers()
    s2 = EIGHT_GAUSSIANS["sd"] ** 2
    d2 = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(-1)           # (N, 8)
    log_comp = -0.5 * d2 / s2 - math.log(2 * math.pi * s2)                # 2-D isotropic Gaussian
    m = log_comp.max(axis=1, keepdims=True)
    return (m + np.log(np.mean(np.exp(log_comp - m), axis=1, keepdims=True)))[:, 0]


def _25gaussians(n, rng):
    # A 5 × 5 grid of isotropic Gaussians at −2..2, sd 0.05, equal weights.
    g = np.arange(-2, 3, dtype=np.float64)
    centers = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    k = rng.integers(0, len(centers), size=n)
    return centers[k] + 0.05 * rng.standard_normal((n, 2))


def _pinwheel(n, rng):
    # FFJORD's pinwheel: 5 arms, radial sd 0.3, tangential sd 0.1, rate 0.25.
    num_classes, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
    rads = np.linspace(0, 2 * math.pi, num_classes, endpoint=False)
    labels = rng.integers(0, num_classes, size=n)
    feats = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    feats[:, 0] += 1.0
    angles = rads[labels] + rate * np.exp(feats[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], axis=1)  # (n, 2, 2)
    return 2.0 * np.einsum("ti,tij->tj", feats, rot)


def _2spirals(n, rng):
    # FFJORD's 2spirals: two arms of a spiral (mirror images), uniform jitter 0.5, / 3.
    m = np.sqrt(rng.random(n)) * 540 * (2 * math.pi) / 360
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    x = np.stack([-np.cos(m) * m, np.sin(m) * m], axis=1) * sign[:, None]
    return (x + 0.5 * rng.random((n, 2))) / 3.0


def _checkerboard(n, rng):
    # FFJORD's checkerboard: uniform on 8 of the 16 unit squares of [−2, 2]², alternating, then × 2.
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, size=n) * 2
    x2 = x2 + (np.floor(x1) % 2)
    return 2.0 * np.stack([x1, x2], axis=1)


def _line(n, rng):
    # A line segment: x ~ U(−2, 2), y = x/2, each coordinate jittered with noise sd 0.03.
    x = rng.random(n) * 4 - 2
    return np.stack([x, 0.5 * x], axis=1) + 0.03 * rng.standard_normal((n, 2))


_GENERATORS = {
    "swiss_roll": _swiss_roll, "moons": _moons, "circles": _circles, "rings": _rings,
    "8gaussians": _8gaussians, "25gaussians": _25gaussians, "pinwheel": _pinwheel,
    "2spirals": _2spirals, "checkerboard": _checkerboard, "line": _line,
}
NAMES = tuple(_GENERATORS)
LOG_DENSITIES = {"8gaussians": log_density_8gaussians}   # datasets whose exact density is known


def draw(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points (n, 2) float64 of the toy distribution ``name``, drawn with ``rng``."""
    if name not in _GENERATORS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(NAMES)}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer number of points, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), got {type(rng).__name__}")
    return np.ascontiguousarray(_GENERATORS[name](int(n), rng), dtype=np.float64)


def validate(x: np.ndarray, where: str) -> np.ndarray:
    """Check an (N, D) data array (numeric, rank 2, ≥ 2 rows, finite) and return it as float64;
    raises :class:`DataError` naming ``where`` and the problem."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected numbers, got an array of dtype {x.dtype}")
    if x.ndim != 2:
        raise DataError(f"{where}: expected a 2-D array of shape (N, D), got shape {x.shape} (rank {x.ndim})")
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise DataError(f"{where}: need at least 2 rows and 1 column, got shape {x.shape}")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(f"{where}: {int(bad.sum())} value(s) are NaN or infinite, first at row {r}, column {c}")
    return np.ascontiguousarray(x)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _load_csv(path: str) -> np.ndarray:
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path}: the file is empty")
    start = 0
    if not all(_is_number(c) for c in rows[0]):
        start = 1                                                           # a header row
    width = len(rows[0])
    values = []
    for i, row in enumerate(rows[start:], start=start + 1):
        if len(row) != width:
            raise DataError(f"{path}: line {i} has {len(row)} columns, expected {width}")
        try:
            values.append([float(c) for c in row])
        except ValueError:
            bad = next(c for c in row if not _is_number(c))
            raise DataError(f"{path}: line {i} has a non-numeric cell {bad.strip()!r}") from None
    return np.array(values, dtype=np.float64).reshape(len(values), width)


def load(path) -> np.ndarray:
    """Load a user's data set of shape (N, D) from ``.npy`` or ``.csv`` (D numeric columns, header optional).

    Raises :class:`DataError` (a ValueError) naming the file and the problem: missing file, unknown
    extension, unreadable/corrupt file, non-numeric cells, NaN/inf, wrong rank, fewer than 2 rows.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{path}: not a readable .npy array file ({e})") from None
        if not isinstance(x, np.ndarray):
            raise DataError(f"{path}: expected one array in a .npy file")
    elif ext == ".csv":
        try:
            x = _load_csv(path)
        except UnicodeDecodeError:
            raise DataError(f"{path}: not a text CSV file") from None
    else:
        raise DataError(f"{path}: unknown file type {ext!r}; use .npy or .csv")
    return validate(x, path)
