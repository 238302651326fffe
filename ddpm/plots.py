"""Pictures of a fit: data beside samples drawn by the data's shape (scatter, histogram, image grids,
pair plots of coordinates or principal components), and the training loss; and the study
pictures of ``ddpm show`` (``show.py`` computes their arrays): scatter grids over t, the reverse
chain as a GIF, the learned field beside the true one, per-t profiles, schedules.

matplotlib is an optional dependency (``pip install ddpm[plot]``); it is imported only here, with
the non-interactive Agg backend so pictures are written on machines without a display.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["save_samples_plot", "samples_layout", "save_loss_plot", "save_profile_plot", "save_schedule_plot", "save_scatter_grid",
           "save_chain_gif", "save_field_plot", "save_t_profiles_plot"]

BACKGROUND = "0.82"           # light grey of the data drawn faintly behind moving points


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("pictures need matplotlib: pip install 'ddpm[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


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
    plt = _plt()
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


def save_loss_plot(path, losses: np.ndarray) -> None:
    """L_simple per step (faint) and its moving average over 1% of the run (bold), log scale."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.5, alpha=0.3, color="C0", label="L_simple per step")
    w = max(1, len(losses) // 100)
    if len(losses) >= w:
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], smooth, lw=1.5, color="C0", label=f"moving average ({w} steps)")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("L_simple")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw_bound_profile(ax, res: dict) -> None:
    prof = np.asarray(res["profile_bits_per_dim"], dtype=np.float64)
    T = len(prof) - 1
    t = np.arange(2, T + 1)
    if T >= 2:
        ax.plot(t, np.maximum(prof[2:], 1e-12), lw=1.2, label="$L_{t-1}$ (t = 2..T)")
    ax.scatter([1], [max(abs(res["profile_L_0_bits_per_dim"]), 1e-12)], color="C3", zorder=3,
               label=f"|L_0| = {abs(res['profile_L_0_bits_per_dim']):.3g}")
    ax.axhline(max(res["L_T_bits_per_dim"], 1e-12), color="C2", ls="--", lw=1, label=f"L_T = {res['L_T_bits_per_dim']:.2g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("bits per dimension")
    ax.legend()


def save_profile_plot(path, res: dict) -> None:
    """The bound's terms against t (bits/dim): L_0 at t = 1, L_{t−1} for t = 2..T (Ho's labels), L_T as a line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    _draw_bound_profile(ax, res)
    ax.set_title(f"bound {res['bound_bits_per_dim']:.3f} ± {res['bound_bits_per_dim_se']:.3f} bits/dim")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_schedule_plot(path, schedules, highlight=None, title: str = "") -> None:
    """ᾱ_t (left) and log SNR = log(ᾱ_t/(1 − ᾱ_t)) (right) against t/T for several schedules;
    ``highlight`` (a Schedule, e.g. a model's own) is drawn on top, black and dashed. Written atomically."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    marked = [] if highlight is None else [(highlight, f"this model: {highlight.name} (T = {highlight.T})",
                                            dict(color="k", ls="--", lw=2.2, zorder=3))]
    for s, label, style in [(s, f"{s.name} (T = {s.T})", {}) for s in schedules] + marked:
        t = np.arange(1, s.T + 1) / s.T
        ab = np.asarray(s.alpha_bar[1:])
        a1.plot(t, ab, label=label, **style)
        with np.errstate(divide="ignore"):
            a2.plot(t, np.log(ab) - np.log1p(-ab), label=label, **style)
    a1.set_xlabel("t / T")
    a1.set_ylabel("ᾱ_t")
    a1.set_title("ᾱ_t against t")
    a2.set_xlabel("t / T")
    a2.set_ylabel("log SNR")
    a2.set_title("log SNR(t) = log ᾱ_t / (1 − ᾱ_t) against t")
    a1.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _savefig_atomic(fig, path, dpi=110)
    plt.close(fig)


# --- ddpm show ----------------------------------------------------------------------------------------

def _savefig_atomic(fig, path, dpi) -> None:
    """Save to a temporary file next to ``path``, then rename: a reader never sees half a picture."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, dpi=dpi, format=ext)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _scatter(ax, pts, color, s=1.5, alpha=0.6):
    ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, color=color, linewidths=0)


def _finish_panels(plt, fig, axes, lims, title, fontsize, path, dpi) -> None:
    """The shared ending of the panel figures: common limits (the axes are shared), title, atomic save."""
    axes[0, 0].set_xlim(*lims)
    axes[0, 0].set_ylim(*lims)
    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    _savefig_atomic(fig, path, dpi=dpi)
    plt.close(fig)


def save_scatter_grid(path, ts, rows, *, lims, background=None, title: str = "", coords=("u_1", "u_2"),
                      dpi: int = 80) -> None:
    """Rows of scatter panels, one column per t in ``ts``, all on the same equal-aspect axes ``lims``.

    ``rows``: [(label, points (len(ts), N, 2))]; ``background`` (M, 2) is drawn in light grey behind
    every panel. Written atomically.
    """
    plt = _plt()
    nr, nc = len(rows), len(ts)
    fig, axes = plt.subplots(nr, nc, figsize=(1.5 * nc + 0.7, 1.6 * nr + 0.9), sharex=True, sharey=True,
                             squeeze=False)
    for r, (label, pts) in enumerate(rows):
        if len(pts) != nc:
            raise ValueError(f"row {label!r} has {len(pts)} panels for {nc} values of t")
        for c, t in enumerate(ts):
            ax = axes[r, c]
            if background is not None:
                _scatter(ax, background, BACKGROUND, s=1.0, alpha=1.0)
            _scatter(ax, pts[c], f"C{r}")
            ax.set_title(f"t = {int(t)}", fontsize=9)
            ax.set_aspect("equal", adjustable="box")
            ax.tick_params(labelsize=7)
        axes[r, 0].set_ylabel(f"{label}\n${coords[1]}$", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel(f"${coords[0]}$", fontsize=8)
    _finish_panels(plt, fig, axes, lims, title, 10, path, dpi)


def save_chain_gif(path, ts, frames, *, T: int, lims, background=None, title: str = "", coords=("u_1", "u_2"),
                   fps: int = 15, hold_s: float = 1.0, dpi: int = 60) -> None:
    """An animation of points moving through the steps ``ts`` (frames (len(ts), N, 2)), with a frame
    counter "t = … / T" in the title; the last frame is held ``hold_s`` seconds. GIF by Pillow through
    matplotlib's PillowWriter, written atomically.

    Frames are grabbed from the writer directly (FuncAnimation drew each frame three times) and the
    axes carry 5 ticks: tick labels were 60% of a frame's drawing (measured 94 → 46 ms a frame, 65 frames
    of 500 points over 1,000 grey ones, 2 loaded cores)."""
    plt = _plt()
    from matplotlib.animation import PillowWriter
    from matplotlib.ticker import MaxNLocator
    fig, ax = plt.subplots(figsize=(4.4, 4.6))
    if background is not None:
        _scatter(ax, background, BACKGROUND, s=2.0, alpha=1.0)
    sc = ax.scatter(frames[0][:, 0], frames[0][:, 1], s=3, color="C1", linewidths=0)
    head = ax.set_title("", fontsize=9)
    ax.set_xlim(*lims)
    ax.set_ylim(*lims)
    ax.set_aspect("equal", adjustable="box")
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel(f"${coords[0]}$")
    ax.set_ylabel(f"${coords[1]}$")
    fig.tight_layout()
    path = os.fspath(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.tmp.gif")
    writer = PillowWriter(fps=fps)
    try:
        with writer.saving(fig, tmp, dpi):
            for i in list(range(len(ts))) + [len(ts) - 1] * int(round(hold_s * fps)):
                sc.set_offsets(frames[i])
                head.set_text(f"{title}t = {int(ts[i]):>4d} / {T}")
                writer.grab_frame()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        plt.close(fig)


def _arrow_lengths(vecs: np.ndarray, unit: float, spacing: float) -> np.ndarray:
    """Arrows scaled so that a vector of length ``unit`` spans 0.45 grid steps, longer ones capped at
    one step (far from tight data the scaled score is huge; uncapped it would hide the rest)."""
    v = vecs * (0.45 * spacing / max(unit, 1e-300))
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v * np.minimum(1.0, spacing / np.maximum(n, 1e-300))


def save_field_plot(path, ts, grid, rows, *, lims, unit: float | None = 1.0, points=None, title: str = "",
                    coords=("u_1", "u_2"), dpi: int = 72) -> None:
    """Vector fields on the points ``grid`` (G, 2), one column per t in ``ts``.

    ``rows``: [(label, vectors (len(ts), G, 2))]. Every panel uses one arrow scale: a vector of length
    ``unit`` spans 0.45 grid steps (None: per column, the 90th percentile of that column's lengths),
    so fields compare arrow for arrow. ``points`` (len(ts), M, 2): drawn faintly behind each column
    (e.g. draws of x_t). Written atomically.
    """
    plt = _plt()
    nr, nc = len(rows), len(ts)
    fig, axes = plt.subplots(nr, nc, figsize=(2.3 * nc + 0.7, 2.4 * nr + 1.0), sharex=True, sharey=True,
                             squeeze=False)
    side = int(round(np.sqrt(len(grid))))
    spacing = (lims[1] - lims[0]) / max(side, 2)
    for c, t in enumerate(ts):
        col_unit = unit if unit is not None else \
            np.percentile(np.concatenate([np.linalg.norm(v[c], axis=-1) for _, v in rows]), 90)
        for r, (label, vecs) in enumerate(rows):
            ax = axes[r, c]
            if points is not None:
                _scatter(ax, points[c], BACKGROUND, s=1.0, alpha=1.0)
            a = _arrow_lengths(vecs[c], col_unit, spacing)
            ax.quiver(grid[:, 0], grid[:, 1], a[:, 0], a[:, 1], angles="xy", scale_units="xy", scale=1,
                      color=f"C{2 * r}", width=0.006)
            ax.set_title(f"{label}, t = {int(t)}", fontsize=8)
            ax.set_aspect("equal", adjustable="box")
            ax.tick_params(labelsize=7)
        axes[-1, c].set_xlabel(f"${coords[0]}$", fontsize=8)
    for r in range(nr):
        axes[r, 0].set_ylabel(f"${coords[1]}$", fontsize=8)
    _finish_panels(plt, fig, axes, lims, title, 9, path, dpi)


def save_t_profiles_plot(path, edges, mse, bound_res: dict, *, n_mse: int, title: str = "", dpi: int = 90) -> None:
    """Two panels against t: the ε-regression loss by t bucket (``mse`` per bucket between ``edges``),
    and the bound's L_{t−1} profile (``bound_res`` from ``ddpm.likelihood_bound``). Written atomically."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.stairs(np.maximum(mse, 1e-12), edges, baseline=None, lw=1.5, color="C0", label=f"{len(mse)} buckets, {n_mse} points each")
    a1.set_yscale("log")
    a1.set_xlabel("t")
    a1.set_ylabel("‖ε − ε_θ(x_t, t)‖² / D")
    a1.set_title("L_simple by t bucket (fresh data, EMA weights)", fontsize=10)
    a1.legend(fontsize=8)
    _draw_bound_profile(a2, bound_res)
    a2.set_title(f"bound's terms by t: {bound_res['bound_bits_per_dim']:.3f} ± "
                 f"{bound_res['bound_bits_per_dim_se']:.3f} bits/dim (n = {bound_res['n_points']})", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _savefig_atomic(fig, path, dpi=dpi)
    plt.close(fig)
