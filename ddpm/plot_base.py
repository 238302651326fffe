"""What every picture shares: matplotlib loaded on first use (an optional dependency, ``pip install
ddpm[plot]``, with the non-interactive Agg backend so pictures are written on machines without a display),
atomic saving, the faint grey of background points, the shared ending of panel figures, and the bound's
per-t profile drawn on an axis."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["BACKGROUND", "pyplot", "savefig_atomic", "scatter", "finish_panels", "draw_bound_profile"]

BACKGROUND = "0.82"           # light grey of the data drawn faintly behind moving points


def pyplot():
    """matplotlib.pyplot with the Agg backend; ImportError naming the ``plot`` extra without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("pictures need matplotlib: pip install 'ddpm[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def savefig_atomic(fig, path, dpi) -> None:
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


def scatter(ax, pts, color, s=1.5, alpha=0.6):
    ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha, color=color, linewidths=0)


def finish_panels(plt, fig, axes, lims, title, fontsize, path, dpi) -> None:
    """The shared ending of the panel figures: common limits (the axes are shared), title, atomic save."""
    axes[0, 0].set_xlim(*lims)
    axes[0, 0].set_ylim(*lims)
    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=dpi)
    plt.close(fig)


def draw_bound_profile(ax, res: dict) -> None:
    """The bound's terms against t on ``ax`` (bits/dim, log-log): L_{t−1} for t = 2..T, |L_0| at t = 1, L_T as a line."""
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
