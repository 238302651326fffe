"""``ddpm show``: pictures of the diffusion itself for a fitted 2-D model, not only of its result.

    ddpm.show("runs/8g/model.npz", "runs/8g/show")     # or: ddpm show runs/8g/model.npz --out runs/8g/show

writes six files (``FILES``):

    forward.png    q pushes data to N(0, I): t = 0, T/10, …, T; q_step iterated (top) and q_sample in
                   closed form (bottom) from the same data points — the same picture twice (Eqs. 2, 4)
    reverse.png    Algorithm 2 at the same t, from x_T ~ N(0, I) down to the samples, data in grey
    reverse.gif    the reverse chain as an animation, frames evenly spaced in the angle
                   φ_t = arctan √((1−ᾱ_t)/ᾱ_t) (not in t: most of the change happens at small t),
                   with the frame's t in the title
    field.png      −ε_θ(x_t, t) = √(1−ᾱ_t)·(learned score) as arrows at 5 values of t, above the same
                   quantity for the true marginal q(x_t) where the data's density is known
    profiles.png   the ε-regression loss by t bucket, and the bound's L_{t−1} against t
    schedules.png  ᾱ_t and log SNR of every named schedule, the model's own marked

Everything is drawn in the model's standardised coordinates u = (x − mean)/scale (``Model.norm``),
where training and sampling happen and where x_T ~ N(0, I). For D > 2 the first two coordinates are
drawn (the field with the other coordinates at 0, the data's mean) and every title says so; D = 1 is
refused (``ddpm sample`` and a histogram show a 1-D fit).

The true field. For an equal-weight mixture of isotropic Gaussians N(μ_k, s² I) (the toy sets in
``MIXTURES``), in u the components are N(m_k, diag(v)) with m_k = (μ_k − mean)/scale and
v_d = s²/scale_d², and q(u_t|u_0) = N(√ᾱ_t u_0, (1−ᾱ_t) I) keeps it a mixture:

    q(u_t) = (1/K) Σ_k N(u_t; √ᾱ_t m_k, diag(ᾱ_t v + (1 − ᾱ_t)))
    ∇ log q(u_t) = −Σ_k r_k(u_t) (u_t − √ᾱ_t m_k) / (ᾱ_t v + 1 − ᾱ_t),   r_k the posterior weights.

Since ε_θ(x_t, t) ≈ −√(1−ᾱ_t) ∇ log q(x_t) at the optimum of L_simple, −ε_θ and √(1−ᾱ_t)·∇ log q are
drawn on the same arrow scale. matplotlib is needed (``pip install 'ddpm[plot]'``); the arrays are
computed here with numpy only and drawn by ``ddpm.plot_show``.

Timing for a default model (T = 1000, hidden 128, depth 3): ``show``'s docstring.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

import ddpm_ref
import toy_data
from ddpm_fast import one_blas_thread

from . import plots
from .likelihood import likelihood_bound
from .model import Model
from .plot_base import pyplot
from .sampling import check_guidance, class_indices, model_network, sample_trajectory

__all__ = ["show", "ShowResult", "FILES", "MIXTURES", "mixture_components", "marginal_mixture",
           "mixture_log_density", "mixture_score", "true_scaled_score", "eps_theta", "display_steps",
           "frame_steps", "forward_grids", "eps_mse_by_t"]

FILES = ("forward.png", "reverse.png", "reverse.gif", "field.png", "profiles.png", "schedules.png")
MIXTURES = ("8gaussians", "grid", "clusters")     # toy sets that are isotropic Gaussian mixtures (toy_data.LOG_DENSITIES)


@dataclass
class ShowResult:
    files: dict                                   # name in FILES -> path written
    seconds: dict = field(default_factory=dict)   # name -> wall seconds spent on it (computing and drawing)
    titles: dict = field(default_factory=dict)    # name -> the figure's title


# --- the true field of a Gaussian-mixture data set -----------------------------------------------------

def mixture_components(name: str):
    """(centres (K, 2), sd) of a toy set that is an equal-weight mixture of N(centre, sd² I), else None."""
    if name == "8gaussians":
        p = toy_data.EIGHT_GAUSSIANS
        a = 2 * math.pi * np.arange(p["k"]) / p["k"]
        return p["radius"] * np.stack([np.cos(a), np.sin(a)], axis=1), float(p["sd"])
    if name == "grid":
        return toy_data.grid_centers(), float(toy_data.GRID["sd"])
    if name == "clusters":
        return toy_data.cluster_centers(), float(toy_data.CLUSTERS["sd"])
    return None


def marginal_mixture(centers: np.ndarray, sd: float, mean: np.ndarray, scale: np.ndarray, alpha_bar_t: float):
    """Means (K, D) and per-coordinate variance (D,) of q(u_t) in the standardised coordinates u = (x − mean)/scale,
    for data x_0 ~ (1/K) Σ_k N(centres_k, sd² I): means √ᾱ_t m_k, variance ᾱ_t sd²/scale² + (1 − ᾱ_t)."""
    m = (np.asarray(centers, dtype=np.float64) - mean) / scale                # (K, D) components of u_0
    var = alpha_bar_t * sd ** 2 / np.asarray(scale, dtype=np.float64) ** 2 + (1.0 - alpha_bar_t)   # (D,)
    return math.sqrt(alpha_bar_t) * m, var


def _log_components(u: np.ndarray, means: np.ndarray, var: np.ndarray) -> np.ndarray:
    d2 = (((u[:, None, :] - means[None, :, :]) ** 2) / var).sum(-1)         # (N, K)
    return -0.5 * d2 - 0.5 * np.sum(np.log(2 * math.pi * var))


def mixture_log_density(u: np.ndarray, means: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log (1/K) Σ_k N(u; means_k, diag(var)) at points u (N, D)."""
    lc = _log_components(np.asarray(u, dtype=np.float64), means, var)
    top = lc.max(axis=1, keepdims=True)
    return (top + np.log(np.mean(np.exp(lc - top), axis=1, keepdims=True)))[:, 0]


def mixture_score(u: np.ndarray, means: np.ndarray, var: np.ndarray) -> np.ndarray:
    """∇_u log (1/K) Σ_k N(u; means_k, diag(var)) = −Σ_k r_k(u) (u − means_k)/var, at points u (N, D)."""
    u = np.asarray(u, dtype=np.float64)
    lc = _log_components(u, means, var)
    r = np.exp(lc - lc.max(axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)                                        # (N, K) posterior weights
    return -(u - r @ means) / var                                            # Σ_k r_k = 1


def true_scaled_score(name: str, mean: np.ndarray, scale: np.ndarray, sched, u: np.ndarray, t: int,
                      component: int | None = None, w: float = 0.0):
    """√(1 − ᾱ_t)·∇ log q(u_t) of the toy set ``name`` at u (N, D) — the ε an ideal network predicts,
    negated; None when the set's density is not a known Gaussian mixture. With ``component`` k (a class of a
    labelled mixture, 8gaussians' mode k): the guided field of that class, (1 + w)·∇ log q(u_t|k) − w·∇ log q(u_t)
    scaled alike (Ho & Salimans 2022, Eq. 6 with the true scores)."""
    comp = mixture_components(name)
    if comp is None or u.shape[1] != 2:
        return None
    ab = float(sched.alpha_bar[t])
    means, var = marginal_mixture(*comp, mean, scale, ab)
    score = mixture_score(u, means, var)
    if component is not None:
        score = (1.0 + w) * mixture_score(u, means[component:component + 1], var) - w * score
    return math.sqrt(1.0 - ab) * score


# --- the model's side --------------------------------------------------------------------------------

def eps_theta(m: Model, u: np.ndarray, t, y=None, guidance: float = 0.0) -> np.ndarray:
    """ε_θ(u_t, t) (N, D) of the EMA weights, whatever the network predicts (converted by Eq. 4); of a conditional
    model, the guided ε̃ of class ``y`` with weight ``guidance`` (``ddpm.sampling.model_network``; y None: ∅)."""
    D = m.cfg.dim
    out = model_network(m, m.state["ema"], y, guidance, u.shape[0])(u, t)[:, :D]
    p = m.tcfg.parametrization
    if p == "eps":
        return out
    if p == "x0":
        return ddpm_ref.eps_from_x0(m.sched, u, t, out)
    if p == "v":
        return ddpm_ref.eps_from_v(m.sched, u, t, out)
    if p == "mu":
        return ddpm_ref.eps_from_x0(m.sched, u, t, ddpm_ref.x0_from_mean(m.sched, u, t, out))
    raise ValueError(f"unknown parametrization {p!r}; known: {', '.join(ddpm_ref.PARAMETRIZATIONS)}")


def display_steps(T: int, k: int = 10) -> np.ndarray:
    """t = 0, T/k, 2T/k, …, T rounded to steps (duplicates dropped when T < k)."""
    return np.unique(np.round(np.linspace(0, T, k + 1)).astype(int))


def frame_steps(sched, n_frames: int = 50) -> np.ndarray:
    """Decreasing steps T … 0 for an animation of the reverse chain, evenly spaced in the angle
    φ_t = arctan √((1 − ᾱ_t)/ᾱ_t) of x_t = cos φ_t·x_0 + sin φ_t·ε (Eq. 4): evenly in t, half the frames
    of a linear schedule would show noise that hardly changes, evenly in log SNR a third would show
    the finished samples."""
    ab = np.asarray(sched.alpha_bar, dtype=np.float64)                       # (T+1,), ᾱ_0 = 1
    phi = np.arctan2(np.sqrt(1.0 - ab), np.sqrt(ab))                         # 0 at t = 0, rising to ≤ π/2
    targets = np.linspace(phi[-1], 0.0, n_frames)
    t = np.abs(phi[None, :] - targets[:, None]).argmin(axis=1)
    return np.unique(np.concatenate([[sched.T], t, [0]]))[::-1]


def forward_grids(sched, u0: np.ndarray, ts, rng: np.random.Generator):
    """Data u0 (N, D) pushed through q to every step in ``ts`` two ways: q_step iterated step by step
    (Eq. 2) and q_sample in closed form (Eq. 4). Returns two arrays (len(ts), N, D)."""
    ts = [int(t) for t in ts]
    by_step, closed = np.empty((len(ts),) + u0.shape), np.empty((len(ts),) + u0.shape)
    x, t_now = np.array(u0, dtype=np.float64), 0
    for i, t in enumerate(ts):
        for s in range(t_now + 1, t + 1):
            x = ddpm_ref.q_step(sched, x, s, rng.standard_normal(x.shape))
        t_now = max(t_now, t)
        by_step[i] = x
        closed[i] = u0 if t == 0 else ddpm_ref.q_sample(sched, u0, t, rng.standard_normal(u0.shape))
    return by_step, closed


def eps_mse_by_t(m: Model, u0: np.ndarray, rng: np.random.Generator, n_buckets: int = 20):
    """L_simple's ε-regression error ‖ε − ε_θ(x_t, t)‖²/D by t bucket, on fresh draws: for each of
    n_buckets equal ranges of t, every point of u0 (N, D) gets a t uniform in the range and its own ε.
    Returns (edges (n_buckets + 1,), mse (n_buckets,)); bucket b holds t in (edges[b], edges[b+1]]."""
    T = m.sched.T
    edges = np.unique(np.round(np.linspace(0, T, min(n_buckets, T) + 1)).astype(int))
    mse = np.empty(len(edges) - 1)
    for b in range(len(edges) - 1):
        t = rng.integers(edges[b] + 1, edges[b + 1] + 1, size=u0.shape[0])   # (N,)
        eps = rng.standard_normal(u0.shape)
        xt = ddpm_ref.q_sample(m.sched, u0, t, eps)                          # Eq. 4
        mse[b] = np.mean((eps - eps_theta(m, xt, t)) ** 2)
    return edges, mse


# --- the pictures ----------------------------------------------------------------------------------

def _show_data(m: Model, data, n: int, rng: np.random.Generator):
    """(points (n', D) in data coordinates or None, description): ``data`` if given, else the model's
    built-in training source; None means "use the model's own samples"."""
    if data is None:
        source = m.info.get("data_source")
        if source in toy_data.NAMES and m.cfg.dim == 2:
            return toy_data.draw(source, n, rng), f"{source} (fresh draw)"
        if source in toy_data.FIXED:
            return toy_data.load_fixed(source)[:n], source
        return None, "model samples (the training data is not a built-in set; pass data= / --data)"
    if isinstance(data, str) and data in toy_data.NAMES:
        x, what = toy_data.draw(data, n, rng), f"{data} (fresh draw)"
    elif isinstance(data, str) and data in toy_data.FIXED:
        x, what = toy_data.load_fixed(data)[:n], data
    elif isinstance(data, (str, os.PathLike)):
        x, what = toy_data.load(data), os.path.basename(os.fspath(data))
    else:
        x, what = toy_data.validate(np.asarray(data), "data array"), "data array"
    if x.shape[1] != m.norm.data_dim:
        raise ValueError(f"data has {x.shape[1]} columns but the model was fitted to {m.norm.data_dim}")
    if x.shape[0] > n:
        x = x[rng.permutation(x.shape[0])[:n]]
    return x, what


def square_limits(*arrays) -> tuple:
    """A square box around the origin holding 99.5% of every array's first two coordinates and N(0, I)."""
    half = max([3.0] + [float(np.percentile(np.abs(a[..., :2]), 99.5)) for a in arrays])
    return -1.05 * half, 1.05 * half


def show(model, out, *, data=None, n: int = 2000, n_gif: int = 500, n_bound: int = 200, seed: int = 0,
         overwrite: bool = False, y=None, guidance: float = 0.0) -> ShowResult:
    """Draw the six study pictures (``FILES``) of a fitted model (a :class:`Model` or a checkpoint path) into ``out``.

    ``data``: points to push through q and to draw behind the reverse chain — a built-in name, a
    .npy/.csv path or an (N, D) array; by default a fresh draw of the model's built-in training set,
    else the model's own samples. ``n`` points in the grids (and samples in the reverse chain),
    ``n_gif`` of them in the animation, ``n_bound`` in the likelihood bound's profile (it runs the
    network T times over them: the slowest piece). Nothing in ``out`` is replaced unless ``overwrite``.
    A model fitted with labels: ``y`` names a class, whose guided chain (weight ``guidance``) the reverse
    pictures draw and whose guided field −ε̃ the field picture draws (beside the true guided field for a
    labelled Gaussian mixture); the forward pictures and the profiles are the whole data's.

    Measured for a default model (T = 1000, hidden 128, depth 3, 8gaussians) on 2 cores shared at a
    load average of about 50, numba sampler, defaults: whole ``ddpm show`` 6–11 s wall (Python call
    11–12 s): 2,000 trajectories 2.2–2.7 s, forward grid 1.0 s, reverse grid 0.6 s, GIF (50 + 15
    held frames, 500 points) 2.4–4.0 s, field 0.8–1.1 s, profiles 2.5–2.9 s (the bound of 200 points
    is most of it), schedules 0.4 s.
    """
    m = model if isinstance(model, Model) else Model.load(model)
    D, T = m.cfg.dim, m.sched.T
    if D < 2:
        raise ValueError(f"ddpm show draws 2-D pictures and this model has D = {D}; "
                         f"draw a histogram of 'ddpm sample' instead")
    for name, v in (("n", n), ("n_gif", n_gif), ("n_bound", n_bound)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 2:
            raise ValueError(f"{name} must be an integer ≥ 2, got {v!r}")
    cond = (class_indices(m, y, 1), check_guidance(guidance))
    model_network(m, m.state["ema"], y, guidance)                     # an unknown class, a bad w: refused now
    out = os.fspath(out)
    paths = {f: os.path.join(out, f) for f in FILES}
    existing = [f for f, p in paths.items() if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds {', '.join(existing)}; choose another --out or pass "
                              f"overwrite=True (--overwrite) to replace them")
    pyplot()                                              # without matplotlib: ImportError before any work
    os.makedirs(out, exist_ok=True)
    with one_blas_thread():
        return _draw_all(m, paths, plots, data=data, n=n, n_gif=n_gif, n_bound=n_bound, seed=seed, cond=cond)


def _draw_all(m: Model, paths: dict, plots, *, data, n, n_gif, n_bound, seed, cond=(None, 0.0)) -> ShowResult:
    D, T = m.cfg.dim, m.sched.T

    ss_data, ss_fwd, ss_sample, ss_field, ss_prof = np.random.SeedSequence(seed).spawn(5)
    dims = f"\nfirst 2 of {D} coordinates shown" if D > 2 else ""
    res = ShowResult(paths)
    clock = time.perf_counter()

    def done(name, title):
        nonlocal clock
        now = time.perf_counter()
        res.seconds[name] = round(now - clock, 3)
        if title:
            res.titles[name] = title
        clock = now

    x_data, what = _show_data(m, data, n, np.random.default_rng(ss_data))
    # Algorithm 2 once, for the grid, the animation and (without data) as the data; the trajectory is
    # (T+1, n, D) float64: capped at ≈ 256 MB for large D.
    n_traj = int(min(n, max(n_gif, 2 ** 28 // ((T + 1) * D * 8))))
    name = None if cond[0] is None else m.info["classes"][cond[0]]        # the class by its name: names map to rows
    samples, traj = sample_trajectory(m, n_traj, seed=int(ss_sample.generate_state(1)[0]), y=name,
                                      guidance=cond[1])
    klass = "" if cond[0] is None else f" of class {name} (guidance w = {cond[1]:g})"
    traj = m.norm.to_model(traj)[..., :2]                                     # (T+1, n, 2), indexed by t
    u0 = m.norm.to_model(samples if x_data is None else x_data)               # (n, D)
    done("sample", "")

    ts = display_steps(T)
    by_step, closed = forward_grids(m.sched, u0, ts, np.random.default_rng(ss_fwd))
    lims = square_limits(u0, closed[-1])
    title = (f"forward process q on {what}: t = 0, T/10, …, T = {T} ({m.sched.name} schedule), "
             f"standardised u = (x − mean)/scale{dims}")
    plots.save_scatter_grid(paths["forward.png"], ts, [("q_step iterated\n(Eq. 2)", by_step[..., :2]),
                                                       ("q_sample closed\nform (Eq. 4)", closed[..., :2])],
                            lims=lims, title=title)
    done("forward.png", title)

    title = (f"reverse process (Algorithm 2){klass} from x_T ~ N(0, I) at t = T = {T}, …, 0; "
             f"grey: {what}{dims}")
    plots.save_scatter_grid(paths["reverse.png"], ts[::-1], [("p_θ samples", traj[ts[::-1]])],
                            lims=lims, background=u0[:, :2], title=title)
    done("reverse.png", title)

    ft = frame_steps(m.sched)
    title = "reverse chain (Algorithm 2): " if D == 2 else f"reverse chain, first 2 of {D} coords: "
    plots.save_chain_gif(paths["reverse.gif"], ft, traj[ft, :n_gif], T=T, lims=lims,
                         background=u0[:max(n_gif, 1000), :2], title=title)
    done("reverse.gif", title + "t = … / T")

    rng = np.random.default_rng(ss_field)
    field_t = np.unique(np.maximum(1, np.round(T * np.array([0.02, 0.1, 0.25, 0.5, 1.0])).astype(int)))
    g = np.linspace(lims[0] * 0.95, lims[1] * 0.95, 17)
    grid2 = np.stack(np.meshgrid(g, g, indexing="xy"), axis=-1).reshape(-1, 2)           # (G, 2)
    grid = np.zeros((len(grid2), D))
    grid[:, :2] = grid2                                                       # other coordinates at 0 (the mean)
    learned = np.stack([-eps_theta(m, grid, int(t), name, cond[1])[:, :2] for t in field_t])
    x_t = np.stack([ddpm_ref.q_sample(m.sched, u0[:1000], int(t), rng.standard_normal(u0[:1000].shape))[:, :2]
                    for t in field_t])
    source = m.info.get("data_source")
    labelled_mixture = cond[0] is None or m.info.get("label") == toy_data.LABELS.get(source) == "mode"
    truth = [true_scaled_score(source, m.norm.mean, m.norm.scale, m.sched, grid, int(t), cond[0], cond[1])
             if labelled_mixture else None for t in field_t]
    rows = [("learned −ε_θ" if cond[0] is None else "learned −ε̃ (guided)", learned)]
    if truth[0] is not None:
        rows.append(("true √(1−ᾱ_t)∇log q", np.stack(truth)))
        line = (f"top: −ε_θ(x_t, t) = √(1−ᾱ_t)·learned score (EMA weights); bottom: √(1−ᾱ_t)·∇ log q(x_t), "
                f"exact for the {source} mixture")
        if cond[0] is not None:
            line = (f"top: guided −ε̃ = (1 + w)(−ε_θ(x_t, t, y)) − w(−ε_θ(x_t, t, ∅)){klass}; bottom: the same of the "
                    f"exact scores of the {source} mixture")
    else:
        why = "not a known Gaussian mixture" if source in toy_data.NAMES else "not a built-in set"
        line = (f"−ε_θ(x_t, t) = √(1−ᾱ_t)·learned score (EMA weights){klass}; no true field: the training data "
                f"({source}) is {why}")
        if D > 2:
            line = f"−ε_θ(x_t, t) = √(1−ᾱ_t)·learned score (EMA weights); no true field for D = {D}"
    title = (f"{line}\nat t = {', '.join(str(int(t)) for t in field_t)} of T = {T}; grey: x_t ~ q(x_t|x_0); "
             f"arrows: |ε| = 1 spans 0.45 grid steps, capped at 1 step{'; other coordinates at 0' if D > 2 else ''}{dims}")
    plots.save_field_plot(paths["field.png"], field_t, grid2, rows, lims=lims, points=x_t, title=title)
    done("field.png", title)

    rng = np.random.default_rng(ss_prof)
    edges, mse = eps_mse_by_t(m, u0, rng)
    bound_x = m.norm.to_data(u0[:n_bound])
    lb = likelihood_bound(m, bound_x, seed=int(ss_prof.generate_state(1)[0]))
    title = f"profiles against t = 1..T of the fit ({m.tcfg.parametrization}-model, {what}; T = {T}){dims}"
    plots.save_t_profiles_plot(paths["profiles.png"], edges, mse, lb, n_mse=u0.shape[0], title=title)
    done("profiles.png", title)

    scheds, undefined = [], []
    for name in sorted(ddpm_ref.SCHEDULES):
        try:
            scheds.append(ddpm_ref.make_schedule(name, T, warn=False))
        except ValueError:                                # e.g. the rescaled linear ends need T > 20
            undefined.append(name)
    title = f"every named schedule at T = {T}; dashed: this model's ({m.sched.name}); t = 1..T"
    if undefined:
        title += f"\n(not defined at T = {T}: {', '.join(undefined)})"
    plots.save_schedule_plot(paths["schedules.png"], scheds, highlight=m.sched, title=title)
    done("schedules.png", title)
    return res
