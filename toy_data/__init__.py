"""Toy data for diffusion models: seeded 2-D generators, fixed N-D data sets, and a loader for a
user's (N, D) file.

    draw(name, n, rng)  -> (n, 2) float64 points of a named toy distribution
    load_fixed(name)    -> (N, D) float64 array of a fixed data set (scikit-learn's bundled copies)
    load(path)          -> (N, D) float64 array from a .npy or .csv file (header optional)
    NAMES               -> the known generator names (an unlimited supply of fresh draws)
    FIXED, FIXED_INFO   -> the fixed data sets' loaders and their metadata (shape, image shape, bin width)
    ALL_NAMES           -> NAMES, then the fixed data sets: every name ``ddpm fit NAME`` accepts

Labelled data for class-conditional models (``toy_data.labels``): ``LABELS``, ``class_names``,
``draw_labelled``, ``load_fixed_labelled``, ``load_labelled`` (a user's file with a label column) and
``encode_labels`` (raw labels -> class indices and names).

A generator can be drawn from afresh for held-out data; a fixed data set cannot (a "fresh" draw would
resample the training points), so it is treated like a user's file: a random part of it is held out.

Every generator takes its randomness from the passed ``numpy.random.Generator`` and nothing else.
Noise levels are part of each distribution's definition and written next to it. The Gaussian
mixtures ``8gaussians``, ``grid`` and ``clusters`` also have an exact density (``LOG_DENSITIES``)
for likelihood checks.

Four data sets have fine structure that a sample quality panel can see a model miss: ``word``
(the outline of "DDPM", needs matplotlib), ``knight`` (the outline of a picture, the chess knight ♞,
needs matplotlib), ``grid`` (100 tight Gaussians) and ``clusters`` (120 tiny Gaussians along two spiral
arms and a circle).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import math
import os
import zipfile

import numpy as np

__all__ = ["draw", "load", "load_fixed", "NAMES", "ALL_NAMES", "FIXED", "FIXED_INFO", "DataError", "log_density_8gaussians", "EIGHT_GAUSSIANS", "LOG_DENSITIES", "validate",
           "WORD", "word_outline", "KNIGHT", "knight_outline", "GRID", "grid_centers", "log_density_grid",
           "CLUSTERS", "cluster_centers", "log_density_clusters",
           "LABELS", "class_names", "draw_labelled", "load_fixed_labelled", "load_labelled", "encode_labels"]


class DataError(ValueError):
    """A data file or array that cannot be used; the message names the file and the problem."""


def _swiss_roll(n, rng):
    # Sohl-Dickstein et al. 2015's toy (their Fig. 1): the 2-D swiss roll (x, z) of sklearn's
    # make_swiss_roll: angle u ~ U(1.5π, 4.5π), point u·(cos u, sin u), Gaussian noise sd 0.5, all / 10.
    u = 1.5 * math.pi * (1.0 + 2.0 * rng.random(n))
    x = np.stack([u * np.cos(u), u * np.sin(u)], axis=1)
    return (x + 0.5 * rng.standard_normal((n, 2))) / 10.0


def _moons_labelled(n, rng):
    # sklearn's make_moons: two interleaved half circles (radius 1), noise sd 0.1. Also returns the
    # moon of each point (0: upper, the first n // 2 before the shuffle; 1: lower).
    n1 = n // 2
    n2 = n - n1
    a1 = math.pi * rng.random(n1)
    a2 = math.pi * rng.random(n2)
    upper = np.stack([np.cos(a1), np.sin(a1)], axis=1)
    lower = np.stack([1.0 - np.cos(a2), 0.5 - np.sin(a2)], axis=1)
    perm = rng.permutation(n)
    x = np.concatenate([upper, lower])[perm]
    moon = np.repeat(np.array([0, 1], dtype=np.int64), [n1, n2])[perm]
    return x + 0.1 * rng.standard_normal((n, 2)), moon


def _moons(n, rng):
    return _moons_labelled(n, rng)[0]


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


def _8gaussians_labelled(n, rng):
    # Also returns the mode k of each point (its center is _eight_centers()[k]).
    centers = _eight_centers()
    k = rng.integers(0, len(centers), size=n)
    return centers[k] + EIGHT_GAUSSIANS["sd"] * rng.standard_normal((n, 2)), k.astype(np.int64)


def _8gaussians(n, rng):
    return _8gaussians_labelled(n, rng)[0]


def _log_density_isotropic_mixture(x, centers, sd):
    """log q(x) (nats) of the equal-weight mixture (1/K) Σ_k N(x; centers[k], sd² I) at points x (N, D)."""
    x = np.asarray(x, dtype=np.float64)
    s2 = sd ** 2
    d2 = ((x[:, None, :] - centers[None, :, :]) ** 2).sum(-1)           # (N, K)
    log_comp = -0.5 * d2 / s2 - 0.5 * x.shape[1] * math.log(2 * math.pi * s2)
    m = log_comp.max(axis=1, keepdims=True)
    return (m + np.log(np.mean(np.exp(log_comp - m), axis=1, keepdims=True)))[:, 0]


def log_density_8gaussians(x: np.ndarray) -> np.ndarray:
    """Exact log q(x) (nats) of the ``8gaussians`` mixture at points x (N, 2)."""
    return _log_density_isotropic_mixture(x, _eight_centers(), EIGHT_GAUSSIANS["sd"])


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


# word: the outline of a word, as matplotlib draws it, with a little Gaussian noise.
WORD = {"text": "DDPM", "font": "DejaVuSans-Bold.ttf", "width": 4.0, "sd": 0.01, "curve_steps": 32}


@functools.lru_cache(maxsize=None)
def _outline(text, font, width, curve_steps):
    try:
        import matplotlib
        from matplotlib.font_manager import FontProperties
        from matplotlib.path import Path
        from matplotlib.textpath import TextPath
    except ImportError as e:
        raise ImportError(f"the outline data sets (word, knight) render {text!r} with matplotlib, which is not installed: "
                          "pip install 'ddpm[plot]'") from e
    # The font file that ships inside matplotlib, not a font looked up by family name: a system
    # font of the same name (another version, other outlines) would change the data set.
    fname = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", font)
    path = TextPath((0, 0), text, size=1.0, prop=FontProperties(fname=fname))
    # Each glyph contour is a closed run of line and quadratic/cubic Bézier pieces; a piece of
    # degree ≥ 2 becomes curve_steps chords at equal steps of its parameter (32: chords within 1e-4,
    # 0.01 sd, of the curve at width 4). Path.to_polygons flattens curves with a tolerance in path
    # units, too coarse for a path 1 unit high (12 points for the counter of a D), and
    # Path.interpolated treats control points as points of the curve.
    polylines, current = [], []
    for bezier, code in path.iter_bezier():
        if code == Path.MOVETO:
            if len(current) > 1:
                polylines.append(np.array(current))
            current = [bezier.control_points[0]]
        elif bezier.degree == 1:
            current.append(bezier.control_points[-1])
        else:
            current.extend(bezier(np.arange(1, curve_steps + 1) / curve_steps))
    if len(current) > 1:
        polylines.append(np.array(current))
    lo = np.min([p.min(0) for p in polylines], axis=0)
    hi = np.max([p.max(0) for p in polylines], axis=0)
    scale = width / (hi[0] - lo[0])
    out = []
    for p in polylines:
        p = (p - (lo + hi) / 2) * scale                                    # bounding box centred on 0
        keep = np.concatenate([[True], np.linalg.norm(np.diff(p, axis=0), axis=1) > 0])  # no empty chords
        p = np.ascontiguousarray(p[keep])
        p.setflags(write=False)                                             # cached: shared by every call
        out.append(p)
    return tuple(out)


def word_outline() -> tuple:
    """The ``word`` data set's outline: one closed polyline (m_i, 2) per glyph contour (first point
    = last point), scaled as ``_word`` describes. Built once per process (needs matplotlib)."""
    return _outline(WORD["text"], WORD["font"], WORD["width"], WORD["curve_steps"])


def _word(n, rng):
    """Points on the outline of the word "DDPM" in DejaVu Sans Bold (the font file bundled with
    matplotlib), as ``matplotlib.textpath.TextPath`` draws it, with isotropic Gaussian noise.

    The outline (``word_outline()``): every glyph contour, its curved pieces flattened into 32 chords
    each, the whole bounding box centred on the origin and scaled to width 4 (x in [−2, 2]; the height
    is then 0.91). A point is uniform by arc length along all contours together (one U(0, L) draw
    for its position s along the total length L, then the point at s on the chord it falls in), plus
    N(0, sd² I) noise with sd = 0.01, i.e. 1/400 of the word's width (1/91 of its height; strokes
    are 0.18 to 0.27 wide, 18 to 27 sd, so both edges of every stroke stay apart).
    """
    return _on_outline(word_outline(), WORD["sd"], n, rng)


def _on_outline(outline, sd, n, rng):
    """n points uniform by arc length along the closed polylines ``outline`` (one U(0, L) draw for the
    position s along their total length L, then the point at s on the chord it falls in), plus N(0, sd² I)."""
    a = np.concatenate([p[:-1] for p in outline])                          # (S, 2) chord starts
    b = np.concatenate([p[1:] for p in outline])                           # (S, 2) chord ends
    length = np.linalg.norm(b - a, axis=1)                                  # (S,) all > 0
    cum = np.concatenate([[0.0], np.cumsum(length)])                        # (S + 1,)
    s = cum[-1] * rng.random(n)                                             # arc-length position
    seg = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(length) - 1)
    t = (s - cum[seg]) / length[seg]                                        # position within the chord
    x = a[seg] + t[:, None] * (b[seg] - a[seg])
    return x + sd * rng.standard_normal((n, 2))


# knight: the outline of a picture, the chess knight ♞ (U+265E) as the DejaVu Sans font bundled with
# matplotlib draws it: sharp corners (ears, jaw, base), a long thin band along the mane and two small
# closed contours (eye and nostril, 1.5 and 1.2 long at width 4).
KNIGHT = {"text": "\u265e", "font": "DejaVuSans.ttf", "width": 4.0, "sd": 0.01, "curve_steps": 32}


def knight_outline() -> tuple:
    """The ``knight`` data set's outline: 4 closed polylines (m_i, 2) (the body, the eye, the nostril, the
    mane's band), built as ``word_outline`` (bounding box centred on 0, width 4; the height is then 5.1)."""
    return _outline(KNIGHT["text"], KNIGHT["font"], KNIGHT["width"], KNIGHT["curve_steps"])


def _knight(n, rng):
    """Points on the outline of the chess knight ♞ (U+265E) in DejaVu Sans, the font file bundled with
    matplotlib: uniform by arc length along its 4 contours (length 32.4 at width 4), plus N(0, 0.01² I)
    noise, as ``_word`` draws its word. A picture's outline of the kind users draw and fit from a file."""
    return _on_outline(knight_outline(), KNIGHT["sd"], n, rng)


# grid: a 10 × 10 grid of tight Gaussians, centres at spacing 1 centred on 0, sd 0.05 = spacing/20.
GRID = {"side": 10, "spacing": 1.0, "sd": 0.05}


def grid_centers() -> np.ndarray:
    """The ``grid`` centres (100, 2): (i − 4.5, j − 4.5)·spacing for i, j = 0..9, row-major in (i, j)."""
    g = (np.arange(GRID["side"]) - (GRID["side"] - 1) / 2) * GRID["spacing"]
    return np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)


def _grid(n, rng):
    """An equal-weight mixture of 100 isotropic Gaussians N(c, 0.05² I), c on the 10 × 10 grid
    {−4.5, −3.5, …, 4.5}² (``grid_centers()``): spacing 1, so neighbours are 20 sd apart."""
    centers = grid_centers()
    k = rng.integers(0, len(centers), size=n)
    return centers[k] + GRID["sd"] * rng.standard_normal((n, 2))


def log_density_grid(x: np.ndarray) -> np.ndarray:
    """Exact log q(x) (nats) of the ``grid`` mixture at points x (N, 2)."""
    return _log_density_isotropic_mixture(x, grid_centers(), GRID["sd"])


# clusters: 120 tiny Gaussians along two interleaved Archimedean spiral arms and a circle around them.
CLUSTERS = {"arm_turns": (0.5, 3.0), "arm_a": 1 / (3 * math.pi), "circle_radius": 1.25,
            "counts": (33, 33, 54), "sd": 0.01}


def _spiral_arc_length(u, a):
    # r = a·u: |c'(u)| = a·√(1 + u²), so s(u) = ∫_0^u a√(1 + v²) dv = (a/2)(u√(1 + u²) + asinh u).
    return 0.5 * a * (u * np.sqrt(1 + u * u) + np.arcsinh(u))


def cluster_centers() -> np.ndarray:
    """The ``clusters`` centres (120, 2), deterministic; see ``_clusters``."""
    a = CLUSTERS["arm_a"]
    u_lo, u_hi = (math.pi * t for t in CLUSTERS["arm_turns"])
    n_arm1, n_arm2, n_circle = CLUSTERS["counts"]
    s_lo, s_hi = _spiral_arc_length(u_lo, a), _spiral_arc_length(u_hi, a)
    centers = []
    for phase, m in ((0.0, n_arm1), (math.pi, n_arm2)):
        s = s_lo + (np.arange(m) + 0.5) / m * (s_hi - s_lo)                 # midpoints of m equal arcs
        u = np.full(m, 0.5 * (u_lo + u_hi))
        for _ in range(50):                                                 # Newton on s(u) = s, s' = a√(1+u²)
            u = u - (_spiral_arc_length(u, a) - s) / (a * np.sqrt(1 + u * u))
        centers.append(a * u[:, None] * np.stack([np.cos(u + phase), np.sin(u + phase)], axis=1))
    phi = 2 * math.pi * np.arange(n_circle) / n_circle
    centers.append(CLUSTERS["circle_radius"] * np.stack([np.cos(phi), np.sin(phi)], axis=1))
    return np.concatenate(centers)


def _clusters(n, rng):
    """An equal-weight mixture of 120 isotropic Gaussians N(c, 0.01² I) whose centres c
    (``cluster_centers()``) are spaced equally by arc length along three curves:

    * 33 on each of two spiral arms c(u) = a·u·(cos(u + φ), sin(u + φ)), a = 1/(3π), u in [π/2, 3π],
      φ = 0 and φ = π (so the arms interleave, 1/3 apart radially, and end at radius 1), at the
      midpoints of 33 equal arcs (spacing 0.1416);
    * 54 on the circle of radius 1.25 around them, at angles 2πk/54 (spacing 0.145).

    The counts follow the curves' lengths (4.674, 4.674, 7.854), so the spacing is about the same on
    all three; no two centres are closer than 0.139 (a chord at the arms' inner ends), i.e. 13.9 sd.
    """
    centers = cluster_centers()
    k = rng.integers(0, len(centers), size=n)
    return centers[k] + CLUSTERS["sd"] * rng.standard_normal((n, 2))


def log_density_clusters(x: np.ndarray) -> np.ndarray:
    """Exact log q(x) (nats) of the ``clusters`` mixture at points x (N, 2)."""
    return _log_density_isotropic_mixture(x, cluster_centers(), CLUSTERS["sd"])


_GENERATORS = {
    "swiss_roll": _swiss_roll, "moons": _moons, "circles": _circles, "rings": _rings,
    "8gaussians": _8gaussians, "25gaussians": _25gaussians, "pinwheel": _pinwheel,
    "2spirals": _2spirals, "checkerboard": _checkerboard, "line": _line,
    "word": _word, "grid": _grid, "clusters": _clusters, "knight": _knight,
}
NAMES = tuple(_GENERATORS)
LOG_DENSITIES = {"8gaussians": log_density_8gaussians, "grid": log_density_grid,
                 "clusters": log_density_clusters}   # datasets whose exact density is known


def draw(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points (n, 2) float64 of the toy distribution ``name``, drawn with ``rng``."""
    if name in FIXED:
        raise ValueError(f"{name!r} is a fixed data set, not a generator: its points come from load_fixed({name!r})")
    if name not in _GENERATORS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(NAMES)}")
    _check_n_rng(n, rng)
    return np.ascontiguousarray(_GENERATORS[name](int(n), rng), dtype=np.float64)


def _check_n_rng(n, rng):
    """draw's checks of n (a positive int) and rng (a numpy Generator)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer number of points, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), got {type(rng).__name__}")


MAX_ABS = 1e150          # larger values would overflow the standardisation (x − mean)² in float64
MAX_NPY_BYTES = 4 << 30  # a .npy data file may declare at most this many bytes (checked before reading)


def validate(x: np.ndarray, where: str) -> np.ndarray:
    """Check an (N, D) data array (numeric, rank 2, ≥ 2 rows, finite, |x| ≤ 1e150) and return it as
    float64; raises :class:`DataError` naming ``where`` and the problem."""
    if x.dtype.kind not in "biuf" or x.dtype.fields is not None:
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
    big = np.abs(x) > MAX_ABS
    if big.any():
        r, c = np.argwhere(big)[0]
        raise DataError(f"{where}: value {x[r, c]:g} at row {r}, column {c} is too large to standardise "
                        f"(|x| ≤ {MAX_ABS:g}); rescale the data")
    return np.ascontiguousarray(x)


# --- fixed data sets ------------------------------------------------------------------------------------
#
# scikit-learn's bundled copies (files inside the sklearn package: nothing is downloaded). Each is the
# ``.data`` array as sklearn has it, rows in sklearn's order; labels are dropped (DDPM models p(x)).
# ``bin_width``: the data lie on a grid of this width (a value is k·bin_width), None where columns are
# recorded to different precisions. ``image_shape``: (h, w) with h·w = D when a row is an image.

FIXED_INFO = {
    "digits": {"shape": (1797, 64), "image_shape": (8, 8), "bin_width": 1.0, "values": "integers 0..16",
               "source": "sklearn.datasets.load_digits",
               "description": "8 × 8 grey images of handwritten digits, 17 grey levels (UCI optdigits test set)"},
    "iris": {"shape": (150, 4), "image_shape": None, "bin_width": 0.1, "values": "cm, to 0.1 cm",
             "source": "sklearn.datasets.load_iris",
             "description": "sepal and petal length and width of 150 irises, 3 species"},
    "wine": {"shape": (178, 13), "image_shape": None, "bin_width": None, "values": "13 chemical measurements",
             "source": "sklearn.datasets.load_wine",
             "description": "chemical analysis of 178 wines from 3 cultivars (scales from 0.1 to 1,680)"},
    "breast_cancer": {"shape": (569, 30), "image_shape": None, "bin_width": None, "values": "30 cell-nucleus features",
                      "source": "sklearn.datasets.load_breast_cancer",
                      "description": "features of cell nuclei in 569 breast masses (Wisconsin diagnostic)"},
}


def _sklearn_loader(name: str):
    def load_it() -> np.ndarray:
        try:
            from sklearn import datasets
        except ImportError:
            raise ImportError(f"the {name!r} data set is scikit-learn's bundled copy, and scikit-learn is not "
                              f"installed: pip install 'ddpm[data]' (or pip install scikit-learn)") from None
        return getattr(datasets, FIXED_INFO[name]["source"].rsplit(".", 1)[1])().data
    load_it.__name__ = f"load_{name}"
    return load_it


FIXED = {name: _sklearn_loader(name) for name in FIXED_INFO}      # name -> loader() returning sklearn's array
ALL_NAMES = NAMES + tuple(FIXED)


def load_fixed(name: str) -> np.ndarray:
    """The fixed data set ``name`` (one of ``FIXED``): (N, D) float64, a fresh copy on every call.

    Raises ValueError for an unknown name, ImportError (one line naming ``pip install 'ddpm[data]'``)
    when scikit-learn is missing, and :class:`DataError` when the array is not the shape recorded in
    ``FIXED_INFO`` (another scikit-learn whose bundled copy changed)."""
    if name not in FIXED:
        raise ValueError(f"unknown fixed data set {name!r}; known: {', '.join(FIXED)}")
    x = validate(np.array(FIXED[name](), dtype=np.float64), name)
    if x.shape != FIXED_INFO[name]["shape"]:
        raise DataError(f"{name}: scikit-learn's copy has shape {x.shape}, expected {FIXED_INFO[name]['shape']}")
    return x

def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _delimiter(lines: list) -> str | None:
    """The column separator: the most frequent of ',', ';' and tab over the first lines; None (split on
    whitespace) when none occurs."""
    head = "".join(lines[:20])
    counts = {d: head.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else None


def _csv_cells(path: str):
    """The cells of a CSV file, as ``_load_csv`` reads it: (header, linenos, rows, width) with header the
    first row's cells when it is a header row (no cell is a number) else None, rows the data rows' cells
    (stripped; quotes removed by the csv reader), linenos their lines in the file, width the first row's length."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        numbered = [(i, ln) for i, ln in enumerate(f, start=1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not numbered:
        raise DataError(f"{path}: the file is empty (no data lines; '#' lines are comments)")
    linenos, lines = zip(*numbered)
    delim = _delimiter(list(lines))
    if delim is None:
        rows = [ln.split() for ln in lines]
    else:
        rows = [[c.strip() for c in r] for r in csv.reader(lines, delimiter=delim)]
    width = len(rows[0])
    if not any(_is_number(c) for c in rows[0]):      # a header row: no cell of it is a number (a typo in data is an error)
        return rows[0], linenos[1:], rows[1:], width
    return None, linenos, rows, width


def _csv_numbers(path: str, linenos, rows, width: int, skip: int | None = None) -> np.ndarray:
    """The numbers in ``rows`` (every row ``width`` cells) as (N, width) float64, or (N, width − 1) without
    column ``skip`` (a label column, checked by the caller); errors give the file's line numbers."""
    keep = [j for j in range(width) if j != skip]
    values = np.empty((len(rows), len(keep)))
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{path}: line {linenos[i]} has {len(row)} columns, expected {width}")
        try:
            values[i] = [float(row[j]) for j in keep]
        except ValueError:
            bad = next(row[j] for j in keep if not _is_number(row[j]))
            raise DataError(f"{path}: line {linenos[i]} has a non-numeric cell {bad.strip()[:20]!r}") from None
    return values


def _load_csv(path: str) -> np.ndarray:
    """Numbers in columns separated by ',', ';', tabs or spaces (the most frequent in the first lines); an
    optional header row; blank lines and lines starting with '#' skipped; a UTF-8 byte-order mark and
    quoted numbers accepted. Errors give the file's own line numbers."""
    _, linenos, rows, width = _csv_cells(path)
    return _csv_numbers(path, linenos, rows, width)


@contextlib.contextmanager
def _csv_errors(path: str):
    """Turn a CSV file's decoding and parsing errors into one-line DataErrors naming ``path``."""
    try:
        yield
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file") from None
    except csv.Error as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None


def _npy_declared_bytes(path: str) -> int:
    """Bytes the .npy header of ``path`` declares (shape × itemsize), read without loading the data."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
        header_end = f.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: the array holds Python objects (dtype {dtype}); save numbers")
    nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
    if nbytes > os.path.getsize(path) - header_end:
        raise DataError(f"{path}: the header declares shape {shape} but the file is shorter (truncated or forged)")
    return nbytes


def _data_file(path) -> tuple[str, str]:
    """``path`` as a str and its extension (".npy" or ".csv"); DataError for a missing file or another type."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npy", ".csv"):
        raise DataError(f"{path}: unknown file type {ext!r}; use .npy or .csv")
    return path, ext


def _load_npy(path: str) -> np.ndarray:
    """The array in a .npy file, unchecked; DataError for an unreadable, object or over-large (declared) array."""
    try:
        if _npy_declared_bytes(path) > MAX_NPY_BYTES:
            raise DataError(f"{path}: the array declares more than {MAX_NPY_BYTES >> 30} GiB; refused")
        x = np.load(path, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, TypeError, SyntaxError) as e:
        raise DataError(f"{path}: not a readable .npy array file ({e})") from None
    if not isinstance(x, np.ndarray):
        raise DataError(f"{path}: expected one array in a .npy file")
    return x


def load(path) -> np.ndarray:
    """Load a user's data set of shape (N, D) from ``.npy`` or ``.csv`` (D numeric columns, header optional).

    Raises :class:`DataError` (a ValueError) naming the file and the problem: missing file, unknown
    extension, unreadable/corrupt file, non-numeric cells, NaN/inf, wrong rank, fewer than 2 rows.
    """
    path, ext = _data_file(path)
    if ext == ".npy":
        x = _load_npy(path)
    else:
        with _csv_errors(path):
            x = _load_csv(path)
    return validate(x, path)


from toy_data.labels import (LABELS, class_names, draw_labelled, encode_labels, load_fixed_labelled,  # noqa: E402
                             load_labelled)
