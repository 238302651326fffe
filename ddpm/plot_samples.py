"""samples.png: a fit's data beside its samples, drawn by the data's shape: histograms (D = 1), scatter
panels (D = 2), image grids (pixel data), pair plots of the coordinates (D = 3, 4) or of the top principal
components (D > 4)."""

from __future__ import annotations

import numpy as np

from .plot_base import pyplot

__all__ = ["samples_layout", "save_samples_plot"]


def _limits(*arrays: np.ndarray, dim: int):
    v = np.concatenate([a[:, dim] for a in arrays])
    lo, hi = np.percentile(v, [0.5, 99.5])
    pad = 0.08 * (hi - lo + 1e-12)
    return lo - pad, hi + pad


def samples_layout(dim: int, image_shape=None) -> str:
    """The picture ``save_samples_plot`` draws for data of dimension D = ``dim``:

    "images" when ``image_shape`` (h, w) is given (h·w = D) or D is a perfect square ≥ 16 (then
    √D × √D); else "histogram" for D = 1, "scatter" for D = 2, "pairs" (a pair plot of all
    coordinates) for D = 3, 4, and "pca_pairs" (a pair plot of the top 4 principal components) for D > 4."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if image_shape is not None:
        shape = tuple(image_shape)
        if (len(shape) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                       for v in shape) or shape[0] * shape[1] != dim):
            raise ValueError(f"image_shape must be (h, w), positive integers with h·w = D = {dim}; got {image_shape!r}")
        return "images"
    if dim >= 16 and int(np.sqrt(dim)) ** 2 == dim:
        return "images"
    return {1: "histogram", 2: "scatter", 3: "pairs", 4: "pairs"}.get(int(dim), "pca_pairs")


PAIR_K = 4                    # coordinates or principal components in a pair plot
IMAGE_GRID = (8, 8)           # rows × columns of images shown per side
GAP = "#c6d9ec"               # light blue between images: no grey value can be mistaken for it
DATA_GREY = "0.6"             # the data behind the samples in a pair plot


def _marker_size(n: int) -> float:
    """Scatter marker area (pt²) for n points: 12 for a hundred, down to 1.5 from 2,000 on."""
    return float(np.clip(1500.0 / max(n, 1), 1.5, 12.0))


def save_samples_plot(path, data: np.ndarray, samples: np.ndarray, title: str = "", image_shape=None) -> str:
    """Data beside samples, drawn by the data's shape (``samples_layout``); returns the layout's name.

    D = 1: histograms on identical bins. D = 2: two scatter panels on identical equal-aspect axes.
    Images (``image_shape`` (h, w), or a square D ≥ 16): up to 8 × 8 data images beside as many samples,
    grey, on one colour scale (the data's range; samples beyond it saturate). Other D: a pair plot,
    samples over the data drawn in grey, of the coordinates (D ≤ 4) or of the top 4 principal
    components of the data standardised per coordinate, samples projected by the same map (D > 4)."""
    data = np.asarray(data, dtype=np.float64)
    samples = np.asarray(samples, dtype=np.float64)
    if data.ndim != 2 or samples.ndim != 2 or data.shape[1] != samples.shape[1]:
        raise ValueError(f"data and samples must be (N, D) and (M, D) with the same D; got {data.shape} and {samples.shape}")
    D = data.shape[1]
    layout = samples_layout(D, image_shape)
    plt = pyplot()
    if layout in ("histogram", "scatter"):
        fig = _data_beside_samples(plt, data, samples, title)
    elif layout == "images":
        side = int(round(np.sqrt(D)))
        fig = _image_grids(plt, data, samples, tuple(image_shape) if image_shape is not None else (side, side), title)
    elif layout == "pairs":
        fig = _pair_plot(plt, data, samples, [f"$x_{{{i + 1}}}$" for i in range(D)], equal=False,
                         title=f"{title}: all {D} coordinates\nsamples (orange) over data (grey)")
    else:
        pc_data, pc_samples, frac = _principal_components(data, samples, PAIR_K)
        labels = [f"PC{i + 1} ({f:.0%})" for i, f in enumerate(frac)]
        fig = _pair_plot(plt, pc_data, pc_samples, labels, equal=True,
                         title=f"{title}: top {len(frac)} principal components of the standardised data "
                               f"({frac.sum():.0%} of its variance over D = {D})\nsamples (orange) projected "
                               f"the same way, over data (grey)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return layout


def _data_beside_samples(plt, data, samples, title):
    """Two panels, data (left) and samples (right), identical axes: scatter (D = 2) or histograms (D = 1)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
    D = data.shape[1]
    for ax, x, name in ((axes[0], data, "data"), (axes[1], samples, "samples")):
        if D == 1:
            lo, hi = _limits(data, samples, dim=0)
            ax.hist(x[:, 0], bins=np.linspace(lo, hi, 80), density=True, color="C0" if name == "data" else "C1")
            ax.set_xlabel("$x$")
        else:
            ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.5, color="C0" if name == "data" else "C1", linewidths=0)
            ax.set_aspect("equal", adjustable="box")
            ax.set_xlabel("$x_1$")
        ax.set_title(f"{name} (n = {x.shape[0]})")
    axes[0].set_ylabel("density" if D == 1 else "$x_2$")
    if D == 2:
        axes[0].set_xlim(*_limits(data, samples, dim=0))
        axes[0].set_ylim(*_limits(data, samples, dim=1))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _mosaic(x: np.ndarray, shape: tuple, grid: tuple) -> np.ndarray:
    """The first rows·cols rows of x (n, h·w), each reshaped row-major to (h, w), tiled in a grid with
    1-pixel NaN gaps between images."""
    (h, w), (rows, cols) = shape, grid
    n = min(len(x), rows * cols)
    cols = min(cols, n)
    rows = -(-n // cols)
    m = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        m[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = x[i].reshape(h, w)
    return m


def _image_grids(plt, data, samples, shape, title):
    """Data images (left) beside sample images (right), grey on the data's value range."""
    lo, hi = float(data.min()), float(data.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    cmap = plt.get_cmap("gray_r").with_extremes(bad=GAP)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), layout="constrained")
    for ax, x, name in ((axes[0], data, "data"), (axes[1], samples, "samples")):
        im = ax.imshow(_mosaic(x, shape, IMAGE_GRID), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{name}: {min(len(x), IMAGE_GRID[0] * IMAGE_GRID[1])} of n = {x.shape[0]}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{shape[0]} × {shape[1]} pixels each")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="value (one scale for both sides)")
    fig.suptitle(f"{title}: data images beside sample images, grey from {lo:g} (white) to {hi:g} (black)")
    return fig


def _principal_components(data, samples, k):
    """Scores on the top k principal components of ``data`` standardised per coordinate (a constant
    coordinate keeps scale 1), for data and for samples by the same map; and each component's fraction of
    the standardised data's variance. Each component's sign makes its largest loading positive."""
    mean = data.mean(axis=0)
    sd = data.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = (data - mean) / sd                                                 # (N, D)
    _, sv, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)     # vt (min(N, D), D)
    k = min(k, vt.shape[0])
    v = vt[:k] * np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(axis=1)])[:, None]   # (k, D)
    var = sv ** 2
    frac = var[:k] / max(var.sum(), 1e-300)
    return z @ v.T, ((samples - mean) / sd) @ v.T, frac


def _pair_plot(plt, data, samples, labels, *, equal, title):
    """A k × k grid: panel (i, j) plots coordinate j against coordinate i, samples over the data in grey;
    the diagonal holds both histograms on identical bins. ``equal``: all coordinates share one unit
    (principal components of standardised data), so every panel has the same limits and equal aspect."""
    k = data.shape[1]
    from matplotlib.lines import Line2D
    fig, axes = plt.subplots(k, k, figsize=(2.4 * k + 0.8, 2.4 * k + 1.2), squeeze=False)
    s_data, s_samples = _marker_size(data.shape[0]), _marker_size(samples.shape[0])
    lims = [_limits(data, samples, dim=i) for i in range(k)]
    if equal:
        both = np.concatenate([data.reshape(-1, 1), samples.reshape(-1, 1)])
        lims = [_limits(both, dim=0)] * k
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                bins = np.linspace(*lims[i], 50)
                ax.hist(data[:, i], bins=bins, density=True, color=DATA_GREY)
                ax.hist(samples[:, i], bins=bins, density=True, histtype="step", color="C1", lw=1.2)
                ax.set_yticks([])
            else:
                ax.scatter(data[:, j], data[:, i], s=s_data, color=DATA_GREY, linewidths=0)
                ax.scatter(samples[:, j], samples[:, i], s=s_samples, alpha=0.6, color="C1", linewidths=0)
                ax.set_ylim(*lims[i])
                if equal:
                    ax.set_aspect("equal", adjustable="box")
            ax.set_xlim(*lims[j])
            ax.tick_params(labelsize=7)
            if i == k - 1:
                ax.set_xlabel(labels[j], fontsize=9)
            if j == 0:
                ax.set_ylabel("density" if i == 0 else labels[i], fontsize=9)
    handles = [Line2D([], [], ls="", marker="o", color=DATA_GREY, label=f"data (n = {data.shape[0]})"),
               Line2D([], [], ls="", marker="o", color="C1", label=f"samples (n = {samples.shape[0]})")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig
