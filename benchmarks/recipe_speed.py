"""Quality per second: shorter training recipes than the default, on every 2-D set of issue 21's panel.

Each row changes the default 2-D recipe's training length or batch (``TrainConfig`` steps, batch_size, lr)
and fits every set with ``ddpm.fit`` (defaults otherwise, Numba backend, ``eval="fast"``: the samples'
statistics are exact, the floors come from ``benchmarks/results/floors.json``). A row is kept only if every
set stays at W2 ≤ 1.2× and MMD² ≤ 1.5× its floor (issue 21's bar); its training seconds say what it saves.

    python3 benchmarks/recipe_speed.py [--datasets moons ...] [--rows NAME ...] [--seed 0]

Writes benchmarks/results/recipe_speed.{json,md} (another seed S: recipe_speed_seedS.{json,md}) after every fit (a long run leaves what it has measured),
with the machine's sgemm before and after. Run it alone: the two cores are shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import ddpm
import ddpm.api
from ddpm_ref import MLPConfig

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cpu_bench import sgemm_gflops  # noqa: E402

SETS = ("moons", "8gaussians", "checkerboard", "swiss_roll", "word", "grid", "clusters")
ROWS = {
    "default (16k steps, batch 512)": {},
    "8k steps, batch 512": {"steps": 8000},
    "16k steps, batch 256": {"steps": 16000, "batch_size": 256},
    "16k steps, batch 128": {"steps": 16000, "batch_size": 128},
    "8k steps, batch 256, lr 6e-3": {"steps": 8000, "batch_size": 256, "lr": 6e-3},
    "4k steps, batch 1024, lr 6e-3": {"steps": 4000, "batch_size": 1024, "lr": 6e-3},
    "hidden 96": {"hidden": 96},
    "depth 2": {"depth": 2},
    "12k steps, lr 5e-3": {"steps": 12000, "lr": 5e-3},
    "10k steps, EMA 0.99": {"steps": 10000, "ema_decay": 0.99},
}
MODEL_KEYS = ("hidden", "depth")                   # MLPConfig fields; the rest are TrainConfig's
W2_BAR, MMD_BAR = 1.2, 1.5


def run(name: str, setting: dict, seed: int) -> dict:
    t0 = time.perf_counter()
    train = {k: v for k, v in setting.items() if k not in MODEL_KEYS}
    model = {k: v for k, v in setting.items() if k in MODEL_KEYS}
    try:
        res = ddpm.fit(name, seed=seed, progress=False, train=train or None, backend="numba",
                       model=dataclasses.replace(MLPConfig(fourier=6), **model) if model else None)
    except ddpm.api.DivergenceError as e:
        return {"diverged": str(e)}
    m = res.metrics
    return {k: m[k] for k in ("w2_ratio", "mmd2_ratio", "energy_ratio", "train_seconds")} | \
        {"wall": round(time.perf_counter() - t0, 2)}


def write(results: dict, meta: dict) -> None:
    out = os.path.join(HERE, "results")
    stem = "recipe_speed" if meta["seed"] == 0 else f"recipe_speed_seed{meta['seed']}"
    with open(os.path.join(out, f"{stem}.json"), "w") as f:
        json.dump({**meta, "rows": results}, f, indent=1)
    sets = meta["datasets"]
    lines = [f"`python3 benchmarks/recipe_speed.py` (seed {meta['seed']}, {os.cpu_count()} CPUs, {platform.platform()}). "
             f"Cells: W2 / MMD² / energy over their floors (fast evaluation: cached floors); a row passes when every "
             f"set is at W2 ≤ {W2_BAR} and MMD² ≤ {MMD_BAR}. Training seconds summed over the sets, with the sgemm "
             f"(GFLOP/s) before and after the row's run; other work shared the two cores during some rows, so "
             f"compare the seconds only as a rough guide and the ratios as they stand.", "",
             "| recipe | " + " | ".join(sets) + " | training (s) | sgemm | passes |", "|---" * (len(sets) + 4) + "|"]
    for label, row in results.items():
        cells, ok, secs = [], True, 0.0
        for n in sets:
            r = row.get(n)
            if r is None:
                cells.append("…")
                ok = None if ok else ok
            elif "diverged" in r:
                cells.append("diverged")
                ok = False
            else:
                cells.append(f"{r['w2_ratio']:.2f} / {r['mmd2_ratio']:.2f} / {r['energy_ratio']:.2f}")
                secs += r["train_seconds"]
                if not (r["w2_ratio"] <= W2_BAR and abs(r["mmd2_ratio"]) <= MMD_BAR):
                    ok = False
        sg = row.get("_sgemm", {})
        sg_txt = f"{sg.get('before', float('nan')):.0f} / " + (f"{sg['after']:.0f}" if sg.get("after") else "…")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {secs:.1f} | {sg_txt} | "
                     f"{'…' if ok is None else 'yes' if ok else 'no'} |")
    with open(os.path.join(out, f"{stem}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(SETS))
    ap.add_argument("--rows", nargs="+", default=list(ROWS), help="row labels (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; choose from {list(ROWS)}")
    meta = {"seed": args.seed, "datasets": args.datasets}
    results = {}
    path = os.path.join(HERE, "results", "recipe_speed.json" if args.seed == 0 else f"recipe_speed_seed{args.seed}.json")
    if os.path.exists(path):                    # keep the rows of earlier runs that this run does not redo
        with open(path) as f:
            old = json.load(f)
        if old.get("seed") == args.seed and old.get("datasets") == args.datasets:
            results = {k: v for k, v in old["rows"].items() if k not in args.rows}
            for row in results.values():           # a run of the first version: one sgemm pair for all its rows
                row.setdefault("_sgemm", {"before": old.get("sgemm_before"), "after": old.get("sgemm_after")})
    for label in args.rows:
        results[label] = {"_sgemm": {"before": sgemm_gflops(), "after": None}}
        for name in args.datasets:
            results[label][name] = run(name, ROWS[label], args.seed)
            print(label, name, results[label][name], flush=True)
            write(results, meta)
        results[label]["_sgemm"]["after"] = sgemm_gflops()
        write(results, meta)


if __name__ == "__main__":
    main()
