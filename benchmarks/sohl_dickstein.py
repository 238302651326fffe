"""Sohl-Dickstein et al. 2015's swiss-roll experiment as a preset; K and K − L_null beside their Table 1.

    python3 benchmarks/sohl_dickstein.py [--steps N] [--seed 0]

Fits ``ddpm fit swiss_roll --preset sohl_dickstein`` (see ddpm/presets.py for the setting and
how it differs from the paper), then computes on 5,000 fresh points K (bound on log-likelihood,
bits per point, unit-variance coordinates) and K − L_null. Writes benchmarks/results/sohl_dickstein.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import numpy as np

import ddpm
import toy_data
from ddpm.presets import preset_kwargs, sohl_dickstein_report

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="results prefix (default: results/sohl_dickstein, or a probe name)")
    p.add_argument("--parametrization", default=None, help="probe: override the preset's mu (eps, x0, v)")
    p.add_argument("--t-sampling", default=None, help="probe: importance instead of uniform")
    p.add_argument("--beta-1", type=float, default=None, help="probe: β_1 instead of 1/T")
    args = p.parse_args()
    kw = preset_kwargs("sohl_dickstein")
    probe = {k: v for k, v in (("parametrization", args.parametrization), ("t_sampling", args.t_sampling)) if v}
    if args.steps:
        kw["train"] = replace(kw["train"], steps=args.steps)
    if probe:
        kw["train"] = replace(kw["train"], **probe)
    if args.beta_1 is not None:
        kw["schedule_params"] = {"beta_1": args.beta_1}
    label = "".join(f", {k} = {v}" for k, v in {**probe, **({"beta_1": args.beta_1} if args.beta_1 else {})}.items())
    if args.out is None:
        tag = "_".join(f"{k}-{v}" for k, v in sorted({**probe, **({"beta_1": args.beta_1} if args.beta_1 else {})}.items()))
        args.out = os.path.join(HERE, "results", "sohl_dickstein" + (f"_probe_{tag}" if tag else ""))
    t0 = time.perf_counter()
    res = ddpm.fit("swiss_roll", seed=args.seed, progress=False, **kw)
    x = toy_data.draw("swiss_roll", 5000, np.random.default_rng(10_000 + args.seed))
    rep = sohl_dickstein_report(res.model, x, seed=args.seed)
    rep.update({"energy_ratio": res.metrics["energy_ratio"], "steps": res.model.step,
                "wall_seconds": time.perf_counter() - t0})
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(rep, f, indent=2)
    t1 = rep["table1"]
    table = ("| swiss roll | K (bits) | K − L_null (bits) |\n|---|---|---|\n"
             f"| Sohl-Dickstein et al. 2015, Table 1 | {t1['K_bits']:.2f} | {t1['K_minus_L_null_bits']:.2f} |\n"
             f"| ddpm preset sohl_dickstein{label} (T = {rep['T']}, {rep['steps']} steps) | {rep['K_bits']:.2f} ± "
             f"{rep['K_se_bits']:.2f} | {rep['K_minus_L_null_bits']:.2f} |\n")
    with open(args.out + ".md", "w") as f:
        f.write("`python3 benchmarks/sohl_dickstein.py`\n\n" + table)
    print(table)
    print(f"L_null = {rep['L_null_bits']:.2f} bits; sample energy/floor = {rep['energy_ratio']:.2f}; "
          f"wall {rep['wall_seconds']:.0f}s")


if __name__ == "__main__":
    main()
