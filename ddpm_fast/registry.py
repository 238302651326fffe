"""One registry of (reference, fast, input maker) triples: it drives the parity tests and the benchmarks,
so nothing is benchmarked that is not also checked (STYLE.md, after llm.c's dev/cuda).

``make_inputs(size, rng)`` returns the positional and keyword arguments both functions take; ``size``
is a dict (hidden, depth, activation, batch, T, steps / n_points, dim; ``schedule``, a named schedule, for
training — the samplers run on ``sampling_schedule``, where their outputs stay O(1)). ``outputs(result)``
maps a result to the arrays compared, element by element within ``TOLERANCES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import ddpm_ref

from . import ddim_sample_loop, p_sample_loop, p_sample_trajectory, solver_sample, train

# Documented tolerances of the fast backends against the float64 reference, element by element:
# |fast − ref| ≤ atol + rtol·|ref| (never scaled by the largest output). They hold for the registry's
# inputs, whose outputs are O(1): samples |x| ≲ 10 (``sampling_schedule``), and weights, EMA, Adam
# moments and losses after a few steps (``ADAM_EPS``).
TOLERANCES = {
    # measured (numba float64, 100 random sizes per entry): samples 2e-13, training 4e-16
    "float64": dict(rtol=1e-10, atol=1e-10),
    # measured, numba float32 over random sizes in the parity tests' ranges: samples (Algorithm 2 and
    # DDIM, T ≤ 60; 1,800 sizes each) median 1.6e-6, 99.9th percentile 6.5e-6, largest 7.9e-6 at
    # |x| ≤ 11.5; training (≤ 3 steps, 1,000 sizes) largest 3.5e-7. The CUDA kernels on the emulator
    # (40 sizes per entry and kernel): 3.0e-6 and 1.8e-7. The bugs these must see are far larger: the
    # noise of the step before last moves samples by σ_2·|z| ≈ 0.04·|z|, and σ² = β̃ instead of β
    # changes σ_2 from 0.043 to 0.025 (T = 60).
    "float32": dict(rtol=1e-5, atol=5e-5),
}


@dataclass(frozen=True)
class Entry:
    name: str
    reference: Callable
    fast: Callable
    make_inputs: Callable
    outputs: Callable


def _config(size) -> ddpm_ref.MLPConfig:
    return ddpm_ref.MLPConfig(dim=size.get("dim", 2), hidden=size["hidden"], depth=size["depth"],
                              activation=size.get("activation", "silu"), emb_dim=size.get("emb_dim", 32),
                              fourier=size.get("fourier", 0))


def _model(size, rng):
    return _config(size), ddpm_ref.make_schedule(size.get("schedule", "linear"), size["T"])


def sampling_schedule(T: int):
    """β_t evenly from 1e-3 to 0.05: ᾱ_T = 0.58 at T = 21 and 0.21 at T = 60, so a reverse chain magnifies
    x and ε_θ by at most 1/√ᾱ_T ≈ 2 and the samples of an untrained model stay O(1). (The named schedules
    end at ᾱ_T ≈ 1e-8..1e-5 at these T: untrained models' samples reach |x| ≈ 10³, where float32 rounding
    alone is ~1e-3, more than the noise of the step before last, σ_2 ≈ 0.04 here.)"""
    return ddpm_ref.schedule_from_betas(np.linspace(1e-3, 0.05, T), name="moderate", warn=False)


def _sampling_model(size, rng):
    """The samplers' model: an untrained MLP at half its initial scale, on ``sampling_schedule``."""
    cfg = _config(size)
    params = {k: v * 0.5 for k, v in ddpm_ref.init_params(cfg, rng).items()}
    return cfg, sampling_schedule(size["T"]), params


# Adam's ε in the training inputs. With the default 1e-8 a gradient that cancels across the batch to
# ~1e-6 of its terms is divided by its own magnitude, so its float32 rounding becomes a change of a few
# percent of lr in the step (measured: 2.9e-5 in one of 500 random sizes, with a heavy tail); with 1e-4
# such a gradient enters the step linearly and the comparison is as well conditioned as the rest. The
# kernels run the same arithmetic for any ε.
ADAM_EPS = 1e-4


def make_train_inputs(size: dict, rng: np.random.Generator):
    cfg, sched = _model(size, rng)
    tcfg = ddpm_ref.TrainConfig(steps=max(size["steps"], 1), batch_size=size["batch"], adam_eps=ADAM_EPS)
    state = ddpm_ref.init_state(cfg, rng)
    data = rng.standard_normal((max(4 * size["batch"], 64), cfg.dim))
    seed = int(rng.integers(2**31))
    # a fresh Generator per call: both functions must see the same draws
    return (lambda: (state, data, sched, cfg, tcfg, np.random.default_rng(seed), size["steps"])), {}


def make_sample_inputs(size: dict, rng: np.random.Generator):
    """Algorithm 2 on the full schedule, or (size["respaced"]) on K = size["K"] respaced steps with the
    t_model map (also the inputs of p_sample_trajectory)."""
    cfg, sched, params = _sampling_model(size, rng)
    kw = {"var_type": size.get("var_type", "beta")}
    if size.get("respaced", False):
        sched, kw["t_model"] = ddpm_ref.respace(sched, ddpm_ref.timesteps(sched.T, min(size["K"], sched.T)))
    x_T = rng.standard_normal((size["n_points"], cfg.dim))
    kw["z"] = rng.standard_normal((sched.T + 1, size["n_points"], cfg.dim))
    return (lambda: (ddpm_ref.network(params, cfg), sched, x_T)), kw


def make_ddim_inputs(size: dict, rng: np.random.Generator):
    """DDIM down K = size["K"] steps (spacing size["spacing"]) with η = size["eta"] and its noise z (K, N, D)."""
    cfg, sched, params = _sampling_model(size, rng)
    ts = ddpm_ref.timesteps(sched.T, min(size["K"], sched.T), size.get("spacing", "even"))
    x_T = rng.standard_normal((size["n_points"], cfg.dim))
    z = rng.standard_normal((len(ts), size["n_points"], cfg.dim))
    return (lambda: (ddpm_ref.network(params, cfg), sched, x_T)), {"ts": ts, "eta": size.get("eta", 0.0), "z": z}


def make_solver_inputs(size: dict, rng: np.random.Generator):
    """A probability-flow ODE solver (size["solver"]) with K = size["K"] network calls on spacing
    size["solver_spacing"], the grid from σ_T (size["solver_sigma_max"] None, the default here: this schedule's σ_T
    is 1.1, below ``ddpm_ref.SIGMA_MAX``) or from a σ_max inside it (no noise: the solvers are deterministic)."""
    cfg, sched, params = _sampling_model(size, rng)
    x_T = rng.standard_normal((size["n_points"], cfg.dim))
    return (lambda: (ddpm_ref.network(params, cfg), sched, x_T)), {
        "solver": size.get("solver", "dpmpp2m"), "steps": size["K"], "spacing": size.get("solver_spacing", "logsnr"),
        "sigma_max": size.get("solver_sigma_max")}


def _sample_outputs(res):
    return list(res) if isinstance(res, tuple) else [res]


def _train_outputs(res):
    state, losses = res
    arrays = [losses]
    for group in ("params", "ema"):
        arrays += [state[group][k] for k in sorted(state[group])]
    arrays += [state["opt"]["m"][k] for k in sorted(state["opt"]["m"])]
    return arrays


REGISTRY = [
    Entry("train", ddpm_ref.train, train, make_train_inputs, _train_outputs),
    Entry("p_sample_loop", ddpm_ref.p_sample_loop_general, p_sample_loop, make_sample_inputs, _sample_outputs),
    Entry("p_sample_trajectory", ddpm_ref.p_sample_trajectory_general, p_sample_trajectory, make_sample_inputs,
          _sample_outputs),
    Entry("ddim_sample_loop", ddpm_ref.ddim_sample_loop, ddim_sample_loop, make_ddim_inputs, _sample_outputs),
    Entry("solver_sample", ddpm_ref.solver_sample, solver_sample, make_solver_inputs, _sample_outputs),
]
