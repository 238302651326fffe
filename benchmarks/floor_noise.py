"""How far a *perfect* model's ratios scatter: the resolution of every "statistic / floor" we report.

A perfect model's samples are fresh draws of the data. Each is scored exactly as `ddpm fit` scores its
samples (the same held-out set and the same reference draws for the floors, ``ddpm.data.resolve_data``
with the given seed, ``ddpm.metrics.sample_statistics``), so the spread of its ratios over repeats is
the noise of one measurement: two fits whose ratios differ by less than that spread cannot be ranked.

    python3 benchmarks/floor_noise.py [--datasets moons 8gaussians ...] [--repeats 6] [--seed 0]

Writes benchmarks/results/floor_noise.{json,md}: per dataset, the mean, the lowest and the highest ratio
(W2, MMD², energy) over the repeats, and the W2's relative spread (standard deviation / mean).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np

import toy_data
from ddpm.data import resolve_data
from ddpm.metrics import sample_statistics

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = ("w2_ratio", "mmd2_ratio", "energy_ratio")


def scatter(name: str, repeats: int, seed: int) -> dict:
    """Ratios of ``repeats`` fresh draws of ``name`` against fit's held-out set and floors for ``seed``."""
    _, held, refs, _ = resolve_data(name, seed)
    rng = np.random.default_rng([seed, 7919])                    # draws independent of fit's own streams
    runs = [sample_statistics(toy_data.draw(name, refs[0].shape[0], rng), held, refs) for _ in range(repeats)]
    row = {"dataset": name, "repeats": repeats, "n_samples": runs[0]["n_samples"], "n_heldout": runs[0]["n_heldout"]}
    for k in KEYS:
        v = np.array([r[k] for r in runs])
        row[k] = {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()), "values": v.tolist()}
    w2 = np.array([r["w2"] for r in runs])
    row["w2_relative_sd"] = float(w2.std(ddof=1) / w2.mean())
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+",
                   default=["moons", "8gaussians", "checkerboard", "swiss_roll", "word", "grid", "clusters"])
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(HERE, "results", "floor_noise"))
    args = p.parse_args()
    if args.repeats < 2:
        sys.exit("--repeats must be at least 2 (a spread needs two values)")
    rows = []
    for name in args.datasets:
        rows.append(scatter(name, args.repeats, args.seed))
        r = rows[-1]
        print(f"{name:14s} " + "  ".join(f"{k[:-6]} {r[k]['min']:.2f}..{r[k]['max']:.2f}" for k in KEYS)
              + f"  W2 sd/mean {r['w2_relative_sd']:.0%}", flush=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"seed": args.seed, "machine": machine, "rows": rows}, f, indent=2)
    lines = ["| dataset | W2 / floor: mean (min–max) | W2 sd / mean | MMD² / floor: mean (min–max) | "
             "energy / floor: mean (min–max) |", "|---|---|---|---|---|"]
    fmt = lambda s: f"{s['mean']:.2f} ({s['min']:.2f} – {s['max']:.2f})"
    for r in rows:
        lines.append(f"| {r['dataset']} | {fmt(r['w2_ratio'])} | {r['w2_relative_sd']:.0%} | {fmt(r['mmd2_ratio'])} | "
                     f"{fmt(r['energy_ratio'])} |")
    table = "\n".join(lines)
    with open(args.out + ".md", "w") as f:
        f.write(f"`python3 benchmarks/floor_noise.py --repeats {args.repeats}` (seed {args.seed}; a perfect model: "
                f"{args.repeats} fresh draws of the data, n = {rows[0]['n_samples']} each, scored like `ddpm fit`'s "
                f"samples; {machine['cpus']} CPUs)\n\n{table}\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
