"""Pictures: this module draws a fit's training loss (loss.png), the bound's per-t profile (bound_profile.png)
and noise schedules, and re-exports the other pictures so that ``ddpm.plots`` names them all: samples.png
(data beside samples, ``ddpm.plot_samples``) and the study pictures of ``ddpm show`` (``ddpm.plot_show``), all
drawn on ``ddpm.plot_base`` (matplotlib, an optional dependency, ``pip install ddpm[plot]``, is imported only
when a picture is drawn, with the non-interactive Agg backend)."""

from __future__ import annotations

import numpy as np

from .plot_base import draw_bound_profile, pyplot, savefig_atomic
from .plot_samples import samples_layout, save_samples_plot
from .plot_show import save_chain_gif, save_field_plot, save_scatter_grid, save_t_profiles_plot

__all__ = ["save_samples_plot", "samples_layout", "save_loss_plot", "save_profile_plot", "save_schedule_plot", "save_scatter_grid",
           "save_chain_gif", "save_field_plot", "save_t_profiles_plot"]


def save_loss_plot(path, losses: np.ndarray) -> None:
    """L_simple per step (faint) and its moving average over 1% of the run (bold), log scale."""
    plt = pyplot()
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
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    draw_bound_profile(ax, res)
    ax.set_title(f"bound {res['bound_bits_per_dim']:.3f} ± {res['bound_bits_per_dim_se']:.3f} bits/dim")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_schedule_plot(path, schedules, highlight=None, title: str = "") -> None:
    """ᾱ_t (left) and log SNR = log(ᾱ_t/(1 − ᾱ_t)) (right) against t/T for several schedules;
    ``highlight`` (a Schedule, e.g. a model's own) is drawn on top, black and dashed. Written atomically."""
    plt = pyplot()
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
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)
