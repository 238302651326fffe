"""``ddpm eval``: a fitted model measured on data it was not trained on: the likelihood bound (and, asked for,
the exact ODE NLL and the gap to a built-in set's true density) on fresh or held-out points, and the
statistics of its samples against them, with their floors, as in ``metrics.json``."""

from __future__ import annotations

import os

import numpy as np

import ddpm_ref
import toy_data

from .data import N_EVAL, N_FLOOR_DRAWS
from .floors import cached_floors
from .guards import check_memory
from .likelihood import FAST_BOUND_POINTS, FAST_BOUND_T_DRAWS, likelihood_bound, ode_nll
from .metrics import EVAL_MODES, sample_statistics
from .model import Model
from .sampling import sample

__all__ = ["evaluation_streams", "evaluate"]


def evaluation_streams(seed: int) -> list:
    """The four seed sequences of ``evaluate`` (its points, its references, the bound's noise, the samples),
    independent of every stream of ``fit`` with the same seed."""
    return np.random.SeedSequence([seed, 7919]).spawn(4)


def evaluate(model, data, *, seed: int = 0, n: int = N_EVAL, bin_width: float | None = None,
             exact: bool = False, eval: str = "full") -> dict:
    """``ddpm eval``: the likelihood bound on ``data`` and the sample statistics of ``metrics.json``.

    ``data``: a built-in name (n fresh points, independent of the training draw) or a .npy/.csv file
    / array (half its points, at most n, for the bound and as the held-out side of the sample
    statistics; references for their floors from the other half). n samples are drawn; as many as a
    reference holds are compared (``sample_statistics``). ``eval``: "full" (default: the bound over all T
    steps on all n points, floors from fresh draws) or "fast" (as ``fit``'s: FAST_BOUND_T_DRAWS stratified t
    per point on at most FAST_BOUND_POINTS points, cached floors for built-in data).
    """
    if eval not in EVAL_MODES:
        raise ValueError(f"unknown eval {eval!r}; choose one of {', '.join(EVAL_MODES)}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2:
        raise ValueError(f"n must be an integer ≥ 2, got {n!r}")
    m = model if isinstance(model, Model) else Model.load(model)
    grid = m.info.get("grid")
    if bin_width == 0:                                   # as in fit: 0 means the continuous decoder
        bin_width, grid = None, None
    if bin_width is None and grid:
        bin_width = grid["bin_width"]                    # quantised data: the discretised decoder
    check_memory({f"{n} evaluation points and samples": 8 * (12 + N_FLOOR_DRAWS) * int(n) * m.cfg.dim
                  + 8 * 3 * 1024 * int(n)}, f"evaluating on {n} points")
    ss_x, ss_ref, ss_bound, ss_sample = evaluation_streams(seed)
    if isinstance(data, str) and data in toy_data.NAMES:
        x = toy_data.draw(data, n, np.random.default_rng(ss_x))
        refs = [toy_data.draw(data, n, np.random.default_rng(s_)) for s_ in ss_ref.spawn(N_FLOOR_DRAWS)]
        source = data
    else:
        if isinstance(data, str) and data in toy_data.FIXED:
            x_all = toy_data.load_fixed(data)
        elif isinstance(data, (str, os.PathLike)):
            x_all = toy_data.load(data)
        else:
            x_all = toy_data.validate(np.asarray(data), "data")
        perm = np.random.default_rng(ss_x).permutation(x_all.shape[0])
        half = max(1, min(n, x_all.shape[0] // 2))
        x, rest = x_all[perm[:half]], x_all[perm[half:]]
        r = min(n, rest.shape[0])
        refs = [rest[np.random.default_rng(s_).permutation(rest.shape[0])[:r]] for s_ in ss_ref.spawn(N_FLOOR_DRAWS)]
        source = os.fspath(data) if isinstance(data, (str, os.PathLike)) else "array"
    xb = x if eval == "full" else x[:FAST_BOUND_POINTS]                    # the points of the bound
    res = likelihood_bound(m, xb, seed=int(ss_bound.generate_state(1)[0]), bin_width=bin_width,
                           t_draws=None if eval == "full" else FAST_BOUND_T_DRAWS)
    per_point_bpd = res.pop("per_point_nats") / (m.cfg.dim * ddpm_ref.LN2)
    sample_seed = int(ss_sample.generate_state(1)[0])
    samples = sample(m, n, seed=sample_seed)
    res.update({"data": source, "seed": seed, "sample_seed": sample_seed})
    floors = cached_floors(source, refs[0].shape[0], x.shape[0]) if eval == "fast" and source in toy_data.NAMES else None
    res.update(sample_statistics(samples[:refs[0].shape[0]], x, refs, mode=eval, floors=floors))
    if exact:                     # with a bin width: the dequantised ODE bound on the bin's probability
        ode = ode_nll(m, xb, bin_width=bin_width, seed=int(ss_bound.generate_state(2)[1]))
        ode_pp = ode.pop("per_point_bpd")
        res.update(ode)
        diff = per_point_bpd - ode_pp                                           # bound − exact, same points
        res["bound_minus_ode_nll_bits_per_dim"] = float(diff.mean())
        res["bound_minus_ode_nll_bits_per_dim_se"] = float(diff.std(ddof=1) / np.sqrt(diff.size))
    if source in toy_data.LOG_DENSITIES and bin_width is None:
        nll = -toy_data.LOG_DENSITIES[source](xb) / (xb.shape[1] * ddpm_ref.LN2)   # exact, bits/dim
        gap = per_point_bpd - nll                                                # paired on the same points
        res["true_nll_bits_per_dim"] = float(nll.mean())
        res["bound_minus_true_nll_bits_per_dim"] = float(gap.mean())
        res["bound_minus_true_nll_bits_per_dim_se"] = float(gap.std(ddof=1) / np.sqrt(gap.size))
    return res
