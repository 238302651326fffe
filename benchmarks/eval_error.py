"""fit's evaluation, full against fast: time and the fast figures' error against the full ones, next to sgemm.

For moons, checkerboard, 8gaussians (built-ins: cached floors) and a 10-D Gaussian mixture fitted as an array
(a user's data: no cached floors, fast draws fewer), one default fit each (``eval="none"``), then fit's own
evaluation path (``ddpm.measure.sample_and_measure``: the same samples, held-out points and references) once
with ``eval="full"`` and once with ``eval="fast"``. Reported: the wall time of statistics + bound in each
mode, and for the energy, W2 and MMD² ratios and the held-out bound fast − full against the stated standard
errors (√(SE_fast² + SE_full²)). The samples' statistics are the same numbers in both modes (fast changes
only the floors' source), so each ratio's difference is its floor's.

    python3 benchmarks/eval_error.py [--names moons,checkerboard,8gaussians,gauss10] [--steps N]

Writes benchmarks/results/eval_error.{json,md}. Timings share the machine's cores with whatever else runs:
the load average is recorded next to sgemm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import ddpm                                                                 # noqa: E402
from ddpm.data import N_EVAL, N_TRAIN_DEFAULT, resolve_data                 # noqa: E402
from ddpm.measure import sample_and_measure                                  # noqa: E402
from cpu_bench import machine, sgemm_gflops                                 # noqa: E402

KEYS = (("energy_ratio", "energy_ratio_se"), ("w2_ratio", "w2_ratio_se"), ("mmd2_ratio", "mmd2_ratio_se"),
        ("bound_bits_per_dim", "bound_bits_per_dim_se"))


def gauss10(n: int = 25_000, seed: int = 7) -> np.ndarray:
    """A 10-D mixture of 4 anisotropic Gaussians: the N-D stand-in (a user's array: no cached floors)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=3.0, size=(4, 10))
    scales = rng.uniform(0.3, 1.0, size=(4, 10))
    k = rng.integers(0, 4, size=n)
    return means[k] + scales[k] * rng.standard_normal((n, 10))


def one(name: str, steps: int | None, seed: int = 0) -> dict:
    data = gauss10() if name == "gauss10" else name
    t0 = time.perf_counter()
    res = ddpm.fit(data, steps=steps, seed=seed, eval="none", progress=False)
    fit_seconds = time.perf_counter() - t0
    m = res.model
    train_x, held, refs, source = resolve_data(data, seed, m.info["n_train"] if name == "gauss10" else
                                              N_TRAIN_DEFAULT, N_EVAL)
    _, _, ss_eval = np.random.SeedSequence(seed).spawn(3)
    grid = m.info.get("grid")
    bound_kw = dict(seed=int(ss_eval.generate_state(2)[1]), bin_width=None if not grid else grid["bin_width"])
    out = {"name": name, "dim": int(held.shape[1]), "fit_seconds_eval_none": round(fit_seconds, 2)}
    for mode in ("full", "fast"):
        _, metrics, _ = sample_and_measure(m, N_EVAL, ss_eval, m.info["backend"], source, seed, train_x,
                                           held, refs, 0.0, mode, bound_kw)
        out[mode] = {k: metrics.get(k) for k in ("eval_seconds", "statistics_seconds", "bound_seconds", "floor_source",
                                                 "floor_draws_w2", "floor_draws_energy", "n_samples")
                     + tuple(a for pair in KEYS for a in pair)}
        out[mode]["bound_points"] = metrics["heldout_bound"]["n_points"]
        out[mode]["t_draws"] = metrics["heldout_bound"]["t_draws"]
        print(f"{name:12s} {mode}: eval {metrics['eval_seconds']:.2f} s (statistics {metrics['statistics_seconds']:.2f}, "
              f"bound {metrics['bound_seconds']:.2f})", flush=True)
    for key, se in KEYS:
        f, F = out["fast"][key], out["full"][key]
        s = [v for v in (out["fast"][se], out["full"][se]) if v is not None]
        out[f"{key}_diff"] = f - F
        out[f"{key}_diff_se"] = float(np.hypot(*s)) if len(s) == 2 else (s[0] if s else None)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", default="moons,checkerboard,8gaussians,gauss10")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: fit's)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "eval_error"))
    args = p.parse_args()
    gemm = sgemm_gflops()
    load0 = os.getloadavg()
    rows = [one(n, args.steps) for n in args.names.split(",") if n]
    gemm_after, load1 = sgemm_gflops(), os.getloadavg()
    info = {"machine": machine(), "sgemm_gflops_before": gemm, "sgemm_gflops_after": gemm_after,
            "loadavg_before": load0, "loadavg_after": load1, "steps": args.steps}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"info": info, "rows": rows}, f, indent=2)

    def pm(r, key):
        se = r[f"{key}_diff_se"]
        return f"{r[f'{key}_diff']:+.3f} ± {se:.3f}" if se is not None else f"{r[f'{key}_diff']:+.3f} (no SE: 1 draw)"

    lines = [f"`python3 benchmarks/eval_error.py` — {info['machine'].get('cpu_model', '?')}, {info['machine']['cpus']} "
             f"cores; sgemm {gemm:.0f} GFLOP/s before, {gemm_after:.0f} after; load average "
             f"{load0[0]:.1f} before, {load1[0]:.1f} after (other work on the cores makes the timings noisy).", "",
             "Statistics + held-out bound of a default fit (5,000 samples vs 5,000 held-out points), wall seconds, and "
             "fast − full ± √(SE_fast² + SE_full²). full: floors from 4 reference draws (W2: 2 exact solves), bound "
             "over all T on 1,000 points; fast: floors from ddpm/floors.json for built-ins (2 draws, W2 from 1, for "
             "an array), bound from 32 stratified t on 2,000 points.", "",
             "| data | D | full (s) | fast (s) | fast floors | energy ratio | W2 ratio | MMD² ratio | bound (bits/dim) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['dim']} | {r['full']['eval_seconds']:.2f} | {r['fast']['eval_seconds']:.2f} | "
                     f"{r['fast']['floor_source']} | {pm(r, 'energy_ratio')} | {pm(r, 'w2_ratio')} | "
                     f"{pm(r, 'mmd2_ratio')} | {pm(r, 'bound_bits_per_dim')} |")
    lines += ["", "| data | mode | statistics (s) | bound (s) | energy ratio | W2 ratio | MMD² ratio | bound |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for mode in ("full", "fast"):
            x = r[mode]
            se = lambda k: "—" if x[k] is None else f"{x[k]:.3f}"             # noqa: E731
            lines.append(f"| {r['name']} | {mode} | {x['statistics_seconds']:.2f} | {x['bound_seconds']:.2f} | "
                         f"{x['energy_ratio']:.3f} ± {se('energy_ratio_se')} | {x['w2_ratio']:.3f} ± {se('w2_ratio_se')} | "
                         f"{x['mmd2_ratio']:.3f} ± {se('mmd2_ratio_se')} | {x['bound_bits_per_dim']:.3f} ± "
                         f"{se('bound_bits_per_dim_se')} |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
