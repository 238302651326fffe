"""Pictures of a fit: data beside samples on identical axes, and the training loss.

matplotlib is an optional dependency (``pip install ddpm[plot]``); it is imported only here, with
the non-interactive Agg backend so pictures are written on machines without a display.
"""

from __future__ import annotations

import numpy as np

__all__ = ["save_samples_plot", "save_loss_plot", "save_profile_plot", "save_schedule_plot"]


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


def save_samples_plot(path, data: np.ndarray, samples: np.ndarray, title: str = "") -> None:
    """Two panels, data (left) and samples (right), with identical axes. For D > 2 the first two
    coordinates are shown; for D = 1, histograms on identical bins."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
    D = data.shape[1]
    for ax, x, name in ((axes[0], data, "data"), (axes[1], samples, "samples")):
        if D == 1:
            lo, hi = _limits(data, samples, dim=0)
            ax.hist(x[:, 0], bins=np.linspace(lo, hi, 80), density=True, color="C0" if name == "data" else "C1")
        else:
            ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.5, color="C0" if name == "data" else "C1", linewidths=0)
            ax.set_aspect("equal", adjustable="box")
        ax.set_title(f"{name} (n = {x.shape[0]})")
    if D >= 2:
        axes[0].set_xlim(*_limits(data, samples, dim=0))
        axes[0].set_ylim(*_limits(data, samples, dim=1))
    if D > 2:
        fig.text(0.5, 0.01, f"first 2 of {D} coordinates", ha="center")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


def save_profile_plot(path, res: dict) -> None:
    """The bound's terms against t (bits/dim): L_0 at t = 1, L_{t−1} for t = 2..T (Ho's labels), L_T as a line."""
    plt = _plt()
    prof = np.asarray(res["profile_bits_per_dim"], dtype=np.float64)
    T = len(prof) - 1
    fig, ax = plt.subplots(figsize=(7, 4))
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
    ax.set_title(f"bound {res['bound_bits_per_dim']:.3f} ± {res['bound_bits_per_dim_se']:.3f} bits/dim")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_schedule_plot(path, schedules) -> None:
    """ᾱ_t (left) and log SNR = log(ᾱ_t/(1 − ᾱ_t)) (right) against t/T for several schedules."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for s in schedules:
        t = np.arange(1, s.T + 1) / s.T
        ab = np.asarray(s.alpha_bar[1:])
        label = f"{s.name} (T = {s.T})"
        a1.plot(t, ab, label=label)
        with np.errstate(divide="ignore"):
            a2.plot(t, np.log(ab) - np.log1p(-ab), label=label)
    a1.set_xlabel("t / T")
    a1.set_ylabel("ᾱ_t")
    a2.set_xlabel("t / T")
    a2.set_ylabel("log SNR")
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
