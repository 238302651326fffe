"""One registry of (reference, fast, input maker) triples: it drives the parity tests and the benchmarks,
so nothing is benchmarked that is not also checked (STYLE.md, after llm.c's dev/cuda).

``make_inputs(size, rng)`` returns the positional and keyword arguments both functions take; ``size``
is a dict (hidden, depth, activation, batch, T, steps / n_points, dim). ``outputs(result)`` maps a
result to the arrays compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import ddpm_ref

from . import ddim_sample_loop, p_sample_loop, train

# Documented tolerances of the fast backends against the float64 reference.
TOLERANCES = {
    "float64": dict(rtol=1e-10, atol=1e-10),
    # float32: ~1e-7 relative per operation; over a few Adam steps (which divide by √v̂) and a
    # reverse chain of up to 60 steps the observed worst case stays under these.
    "float32": dict(rtol=2e-3, atol=2e-3),
}


@dataclass(frozen=True)
class Entry:
    name: str
    reference: Callable
    fast: Callable
    make_inputs: Callable
    outputs: Callable


def _model(size, rng):
    cfg = ddpm_ref.MLPConfig(dim=size.get("dim", 2), hidden=size["hidden"], depth=size["depth"],
                             activation=size.get("activation", "silu"), emb_dim=size.get("emb_dim", 32))
    sched = ddpm_ref.make_schedule(size.get("schedule", "linear"), size["T"])
    return cfg, sched


def make_train_inputs(size: dict, rng: np.random.Generator):
    cfg, sched = _model(size, rng)
    tcfg = ddpm_ref.TrainConfig(steps=max(size["steps"], 1), batch_size=size["batch"])
    state = ddpm_ref.init_state(cfg, rng, sched.T)
    data = rng.standard_normal((max(4 * size["batch"], 64), cfg.dim))
    seed = int(rng.integers(2**31))
    # a fresh Generator per call: both functions must see the same draws
    return (lambda: (state, data, sched, cfg, tcfg, np.random.default_rng(seed), size["steps"])), {}


def make_sample_inputs(size: dict, rng: np.random.Generator):
    """Algorithm 2 on the full schedule, or (size["respaced"]) on K = size["K"] respaced steps with the
    t_model map; size["trajectory"] asks for the trajectory too."""
    cfg, sched = _model(size, rng)
    params = {k: v * 0.5 for k, v in ddpm_ref.init_params(cfg, rng).items()}
    kw = {"var_type": size.get("var_type", "beta"), "return_trajectory": size.get("trajectory", False)}
    if size.get("respaced", False):
        sched, kw["t_model"] = ddpm_ref.respace(sched, ddpm_ref.timesteps(sched.T, min(size["K"], sched.T)))
    x_T = rng.standard_normal((size["n_points"], cfg.dim))
    kw["z"] = rng.standard_normal((sched.T, size["n_points"], cfg.dim))
    return (lambda: (params, cfg, sched, x_T)), kw


def make_ddim_inputs(size: dict, rng: np.random.Generator):
    """DDIM down K = size["K"] steps (spacing size["spacing"]) with η = size["eta"] and its noise z (K, N, D)."""
    cfg, sched = _model(size, rng)
    params = {k: v * 0.5 for k, v in ddpm_ref.init_params(cfg, rng).items()}
    ts = ddpm_ref.timesteps(sched.T, min(size["K"], sched.T), size.get("spacing", "even"))
    x_T = rng.standard_normal((size["n_points"], cfg.dim))
    z = rng.standard_normal((len(ts), size["n_points"], cfg.dim))
    return (lambda: (params, cfg, sched, x_T)), {"ts": ts, "eta": size.get("eta", 0.0), "z": z}


def _ddim_reference(params, cfg, sched, x_T, **kw):
    """The reference takes the network as a function; the fast version takes the MLP's parameters."""
    return ddpm_ref.ddim_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, **kw)


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
    Entry("p_sample_loop", ddpm_ref.p_sample_loop, p_sample_loop, make_sample_inputs, _sample_outputs),
    Entry("ddim_sample_loop", _ddim_reference, ddim_sample_loop, make_ddim_inputs, _sample_outputs),
]
