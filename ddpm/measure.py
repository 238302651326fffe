"""After training: the fitted model measured as ``fit`` reports it: ``n_eval`` samples (Algorithm 2), their
statistics against the held-out data with their floors (``ddpm.metrics``, ``ddpm.floors``), the held-out
likelihood bound, the memorisation check, and the picture of the reverse process (reverse.png)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import toy_data
from ddpm_fast import one_blas_thread

from .floors import cached_floors
from .guards import DivergenceError, warn_if_memorised
from .likelihood import FAST_BOUND_POINTS, FAST_BOUND_T_DRAWS, likelihood_bound
from .metrics import sample_statistics
from .model import Model
from .plot_show import save_scatter_grid
from .sampling import sample, sample_trajectory
from .show import display_steps, square_limits

__all__ = ["N_REVERSE_GRID", "FINAL_LOSS_WINDOW", "N_BOUND", "sample_and_measure", "save_reverse_grid"]

N_REVERSE_GRID = 1_000        # points in fit's reverse.png (2-D data only; ~1 s with the trajectory)
FINAL_LOSS_WINDOW = 200       # final_loss = mean L_simple over the last steps (one step is noisy)
N_BOUND = 1_000               # held-out points on which fit reports the likelihood bound (SE ≈ 0.02 bits/dim)


def save_reverse_grid(path, m: Model, held: np.ndarray, seed: int, source) -> None:
    """Algorithm 2 for N_REVERSE_GRID points shown at t = T, …, 0 (``ddpm show``'s reverse.png), held-out data in grey."""
    _, traj = sample_trajectory(m, N_REVERSE_GRID, seed=seed)
    traj = m.norm.to_model(traj)                                            # (T+1, n, 2), indexed by t
    u0 = m.norm.to_model(held[:N_REVERSE_GRID])
    ts = display_steps(m.sched.T)[::-1]
    save_scatter_grid(path, ts, [("p_θ samples", traj[ts])], lims=square_limits(u0, traj[-1]), background=u0,
                      title=f"{source}: reverse process (Algorithm 2) from x_T ~ N(0, I) at t = {m.sched.T}, …, 0; "
                            f"grey: held-out data, standardised")


def sample_and_measure(m, n_eval, ss_eval, backend, source, seed, train_x, held, refs, train_seconds, mode, bound_kw):
    """After a fit: n_eval samples (Algorithm 2), the metrics dict with their statistics against the held-out
    data and the held-out bound (``likelihood_bound``'s result, None for mode "none"), as ``fit``'s ``eval`` says."""
    t0 = time.perf_counter()
    sample_seed = int(ss_eval.generate_state(1)[0])
    samples = sample(m, n_eval, seed=sample_seed, backend=backend if backend in ("numpy", "cupy") else None)
    sample_seconds = time.perf_counter() - t0
    if not np.all(np.isfinite(samples)):
        raise DivergenceError(f"the trained model's samples are not finite ({int(np.sum(~np.isfinite(samples).all(axis=1)))} "
                              f"of {samples.shape[0]}; final loss {np.mean(m.losses[-FINAL_LOSS_WINDOW:]):.4g}): the "
                              f"reverse chain ran away — the first reverse steps divide by √α_t (β_T = "
                              f"{m.sched.beta[-1]:.3g} here), so an ε_θ that is off there is amplified; lower the learning "
                              f"rate (--lr, now {m.tcfg.lr:g}) and fit again")
    metrics = {
        "dataset": source, "seed": m.info.get("seed", seed), "sample_seed": sample_seed,
        "n_train": int(train_x.shape[0]), "dim": int(train_x.shape[1]), "dim_modelled": m.cfg.dim,
        "constant_columns": {str(k): v for k, v in m.norm.constant_columns.items()}, "grid": m.info.get("grid"),
        "steps": m.step, "T": m.sched.T, "schedule": m.sched.name, "backend": backend, "objective": m.tcfg.objective,
        "parametrization": m.tcfg.parametrization, "var_type": m.tcfg.var_type, "fourier": m.cfg.fourier,
        "final_loss": float(np.mean(m.losses[-FINAL_LOSS_WINDOW:])) if m.losses.size else None,
        "final_loss_window": FINAL_LOSS_WINDOW,
        "n_eval": int(n_eval), "train_seconds": round(train_seconds, 3), "sample_seconds": round(sample_seconds, 3),
    }
    metrics["eval"] = mode
    if mode == "none":
        return samples, metrics, None
    t0 = time.perf_counter()
    n = refs[0].shape[0]
    floors = cached_floors(source, n, held.shape[0]) if mode == "fast" and source in toy_data.NAMES else None

    def bound():
        t1 = time.perf_counter()
        if mode == "full":
            lb = likelihood_bound(m, held[:N_BOUND], **bound_kw)
        else:
            lb = likelihood_bound(m, held[:FAST_BOUND_POINTS], t_draws=FAST_BOUND_T_DRAWS, **bound_kw)
        return lb, time.perf_counter() - t1

    # fast: the bound runs beside the statistics, whose one exact W2 solve holds a core by itself; BLAS keeps
    # one thread meanwhile (with its own two it oversubscribed 2 cores: statistics 7.4–10 s instead of 3.6–3.8)
    with one_blas_thread(), ThreadPoolExecutor(1) as pool:
        job = pool.submit(bound) if mode == "fast" else None
        t1 = time.perf_counter()
        metrics.update(sample_statistics(samples[:n], held, refs, train=train_x, mode=mode, floors=floors))
        metrics["statistics_seconds"] = round(time.perf_counter() - t1, 3)
        lb, bound_seconds = job.result() if job is not None else bound()
    lb.pop("per_point_nats")
    metrics["heldout_bound"] = {k: v for k, v in lb.items() if not k.startswith("profile")}
    metrics["bound_bits_per_dim"] = lb["bound_bits_per_dim"]
    metrics["bound_bits_per_dim_se"] = lb["bound_bits_per_dim_se"]
    metrics["bound_seconds"] = round(bound_seconds, 3)
    metrics["eval_seconds"] = round(time.perf_counter() - t0, 3)          # statistics + bound, wall clock
    warn_if_memorised(metrics)
    return samples, metrics, lb
