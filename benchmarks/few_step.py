"""Few-step sampling: every sampler at K = 5, 10, 20, 50, 1000 network calls, against the data's floors.

One default model per data set (``ddpm fit NAME``, seed 0; cached in ``--cache`` so that a rerun does not
refit). For each sampler row and each K, 5,000 samples from the same x_T (seed 0: the rows are paired)
against 5,000 fresh held-out points: energy distance, exact W2 and small-bandwidth MMD², each over its
floor (``ddpm.floors``' cached floors of the built-in sets, 5,000 × 5,000), and its network calls (K for
every row: ``tests/test_solvers.py::test_steps_is_the_number_of_network_calls`` for the solvers). Default
backend (numba, float32).

Rows: the ODE solvers of ``ddpm_ref.solvers`` (DPM-Solver++(2M), (2S), UniPC, Heun) on each spacing
(log-SNR uniform, time uniform, Karras ρ = 7), DDIM with η = 0 and η = 1 (``--spacing even``), and
ancestral sampling on the respaced schedule (Algorithm 2 with K steps). A solver's K is its number of
network calls (``ddpm sample --steps K``), as for DDIM and ancestral sampling.

    python3 benchmarks/few_step.py [--datasets moons clusters] [--ks 5 10 20 50 1000] [--cache DIR]
    python3 benchmarks/few_step.py --sigma-max-sweep      # where the solvers' grid starts (moons)

Writes benchmarks/results/few_step.{json,md}, rewritten after every row; the sweep writes
few_step_sigma_max.{json,md}: UniPC with 10 calls and DPM-Solver++(2M) with 200 (the converged ODE) started
at σ_max ∈ {σ_T, 10, 3, 2, 1} (``ddpm_ref.solver_sample``'s ``sigma_max``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import ddpm
import ddpm_ref
import toy_data
from ddpm.floors import cached_floors
from ddpm.metrics import sample_statistics

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cpu_bench import machine  # noqa: E402

N = 5000
KS = (5, 10, 20, 50, 1000)
FEW_STEPS = ddpm.sampling.FEW_STEPS
ROWS = ([(s, sp) for s in ddpm_ref.SOLVERS for sp in ddpm_ref.SOLVER_SPACINGS]
        + [("ddim0", "even"), ("ddim1", "even"), ("ancestral", "even")])


def row_kwargs(name: str, spacing: str) -> dict:
    if name.startswith("ddim"):
        return {"sampler": "ddim", "eta": float(name[4:]), "spacing": spacing}
    return {"sampler": name, "spacing": spacing}


def label(name: str, spacing: str) -> str:
    if name.startswith("ddim"):
        return f"DDIM η = {name[4:]}"
    return {"ancestral": "ancestral (respaced)"}.get(name, f"{name}, {spacing}")


def default_model(dataset: str, cache: str, seed: int):
    path = os.path.join(cache, f"{dataset}_seed{seed}", "model.npz")
    if os.path.exists(path):
        return ddpm.load_model(path)
    res = ddpm.fit(dataset, os.path.dirname(path), seed=seed, progress=False, eval="none", overwrite=True)
    return res.model


def write(out: str, result: dict) -> None:
    with open(out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    lines = ["`python3 benchmarks/few_step.py`", "",
             f"{result['machine']}. One default model per data set (seed {result['seed']}); {N:,} samples from the "
             f"same x_T per row against {N:,} fresh points; each statistic over its floor (cached floors, "
             f"`ddpm/floors.json`); calls = network evaluations.", ""]
    for ds, rows in result["tables"].items():
        lines += [f"### {ds}", "", "| sampler | " + " | ".join(f"K = {k}" for k in result["ks"]) + " |",
                  "|---|" + "---|" * len(result["ks"])]
        for r in rows:
            cells = []
            for k in result["ks"]:
                c = r["cells"].get(str(k))
                cells.append("" if c is None else
                             f"{c['energy_ratio']:.2f} / {c['w2_ratio']:.2f} / {c['mmd2_ratio']:.2f} ({c['calls']})")
            lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
        lines += ["", "Cells: energy / W2 / MMD² over their floors (network calls).", ""]
    best = best_rows(result)
    if best:
        lines += ["Best row at each K (lowest energy ratio on the worse of the data sets): "
                  + "; ".join(f"K = {k}: {lab} ({v:.2f})" for k, (lab, v) in best.items()) + ".", ""]
    few = [k for k in result["ks"] if k <= FEW_STEPS]
    one = best_rows(result, few)
    if one:
        (lab, v), = one.values()
        lines += [f"Best single row for K ≤ {FEW_STEPS} (lowest energy ratio on the worst of the data sets and of "
                  f"K = {', '.join(map(str, few))}): {lab} ({v:.2f}); `ddpm sample --steps K` uses it for K ≤ "
                  f"{FEW_STEPS} (`ddpm.sampling.default_sampler`).", ""]
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines))


def best_rows(result: dict, together: list | None = None) -> dict:
    """{K: (label, worst energy ratio over the data sets)} of the row that minimises it, for each K; with
    ``together`` (a list of K), one entry: the row whose worst ratio over the data sets and those K is lowest."""
    best = {}
    tables = list(result["tables"].values())
    if not tables:
        return best
    for ks in ([[k] for k in result["ks"]] if together is None else [together]):
        scores = {}
        for i, r in enumerate(tables[0]):
            cells = [t[i]["cells"].get(str(k)) for t in tables if i < len(t) for k in ks]
            if len(cells) == len(tables) * len(ks) and all(c is not None for c in cells):
                scores[r["label"]] = max(c["energy_ratio"] for c in cells)
        if scores:
            lab = min(scores, key=scores.get)
            best[ks[0] if together is None else "few"] = (lab, scores[lab])
    return best


SWEEP = (None, 10.0, 3.0, 2.0, 1.0)


def sigma_max_sweep(args) -> None:
    import ddpm_fast
    ds = args.datasets[0]
    model = default_model(ds, args.cache, args.seed)
    rng = np.random.default_rng([12_345, args.seed])
    held, ref = toy_data.draw(ds, N, rng), toy_data.draw(ds, N, rng)
    floors = cached_floors(ds, N, N)
    net = ddpm_ref.network(model.state["ema"], model.cfg)
    x_T = np.random.default_rng(args.seed).standard_normal((N, model.cfg.dim))     # ddpm.sample's x_T for the seed
    rows = []
    for sigma_max in SWEEP:
        for solver, K in (("unipc", 10), ("dpmpp2m", 200)):
            x = ddpm_fast.solver_sample(net, model.sched, x_T, solver=solver, steps=K, sigma_max=sigma_max)
            st = sample_statistics(model.norm.to_data(x), held, [ref], mode="fast", floors=floors)
            rows.append({"sigma_max": sigma_max, "solver": solver, "K": K,
                         **{k: float(st[k]) for k in ("energy_ratio", "w2_ratio", "mmd2_ratio")}})
            print(json.dumps(rows[-1]), flush=True)
    out = args.out + "_sigma_max"
    with open(out + ".json", "w") as f:
        json.dump({"machine": machine(), "dataset": ds, "seed": args.seed, "rows": rows}, f, indent=1)
    lines = ["`python3 benchmarks/few_step.py --sigma-max-sweep`", "",
             f"{ds}, default model (seed {args.seed}), {N:,} samples vs {N:,} fresh points; energy / W2 / MMD² over "
             "their floors. The solvers' grid starts at t(σ_max) with x = x_T there (σ_T: the papers' grid from T).", "",
             "| σ_max | UniPC, 10 calls | DPM-Solver++(2M), 200 calls |", "|---|---|---|"]
    for sm in SWEEP:
        cells = [next(r for r in rows if r["sigma_max"] == sm and r["solver"] == s_) for s_ in ("unipc", "dpmpp2m")]
        lines.append(f"| {'σ_T = %.1f' % ddpm_ref.sigmas(model.sched)[-1] if sm is None else sm} | "
                     + " | ".join(f"{c['energy_ratio']:.2f} / {c['w2_ratio']:.2f} / {c['mmd2_ratio']:.2f}" for c in cells)
                     + " |")
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["moons", "clusters"])
    p.add_argument("--ks", nargs="+", type=int, default=list(KS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "ddpm_few_step"))
    p.add_argument("--rows", nargs="+", default=None, help="only these samplers (e.g. dpmpp2m ddim0)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "few_step"))
    p.add_argument("--sigma-max-sweep", action="store_true", help="only the sweep over where the grid starts")
    args = p.parse_args()
    if args.sigma_max_sweep:
        return sigma_max_sweep(args)
    rows = [r for r in ROWS if args.rows is None or r[0] in args.rows]
    result = {"machine": machine(), "seed": args.seed, "n": N, "ks": args.ks, "tables": {}}
    for ds in args.datasets:
        t0 = time.perf_counter()
        model = default_model(ds, args.cache, args.seed)
        print(f"{ds}: model ready in {time.perf_counter() - t0:.0f} s ({model.sched!r})", flush=True)
        rng = np.random.default_rng([12_345, args.seed])
        held, ref = toy_data.draw(ds, N, rng), toy_data.draw(ds, N, rng)
        floors = cached_floors(ds, N, N)
        table = result["tables"].setdefault(ds, [])
        for name, spacing in rows:
            entry = {"sampler": name, "spacing": spacing, "label": label(name, spacing), "cells": {}}
            table.append(entry)
            for K in args.ks:
                if name == "ancestral" and K > model.sched.T:
                    continue
                t1 = time.perf_counter()
                x = ddpm.sample(model, N, seed=args.seed, steps=K, **row_kwargs(name, spacing))
                secs = time.perf_counter() - t1
                st = sample_statistics(x, held, [ref], mode="fast", floors=floors)
                calls = K        # every row makes K network calls (tests/test_solvers.py checks the solvers')
                entry["cells"][str(K)] = {"calls": int(calls), "seconds": round(secs, 2),
                                          **{k: float(st[k]) for k in ("energy_ratio", "w2_ratio", "mmd2_ratio")}}
                c = entry["cells"][str(K)]
                print(f"{ds:9s} {entry['label']:24s} K {K:5d}  energy {c['energy_ratio']:7.2f}  W2 {c['w2_ratio']:6.2f}"
                      f"  MMD² {c['mmd2_ratio']:7.2f}  calls {calls}  {secs:.1f} s", flush=True)
                write(args.out, result)
    write(args.out, result)


if __name__ == "__main__":
    main()
