"""Sample quality of `ddpm fit` with default settings: energy distance against its sampling floor.

For each dataset: fit with the defaults (seed 0), draw 5,000 samples, and compare
    energy_distance(samples, 5,000 fresh data points)   vs   energy_distance(two independent data draws)
The ratio is ≈ 1 for a model as good as the data's own sampling noise. Writes
benchmarks/results/quality_table.{json,md} and prints the table.

    python3 benchmarks/quality_table.py [--datasets moons 8gaussians ...] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import ddpm

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = ["moons", "8gaussians", "checkerboard", "swiss_roll"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=DEFAULT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default=None, help="numpy or numba (default: ddpm's default)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "quality_table"))
    args = p.parse_args()

    rows = []
    for name in args.datasets:
        t0 = time.perf_counter()
        m = ddpm.fit(name, seed=args.seed, backend=args.backend, progress=False).metrics
        args.backend_used = m["backend"]
        wall = time.perf_counter() - t0
        rows.append({"dataset": name, "energy_distance": m["energy_distance"],
                     "floor": m["energy_distance_floor"], "ratio": m["energy_ratio"],
                     "final_loss": m["final_loss"], "wall_seconds": wall, "steps": m["steps"], "T": m["T"]})
        print(f"{name:14s} energy {m['energy_distance']:.5f}  floor {m['energy_distance_floor']:.5f}  "
              f"ratio {m['energy_ratio']:.2f}  wall {wall:.0f}s", flush=True)

    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "python": platform.python_version()}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"backend": args.backend_used, "seed": args.seed, "machine": machine, "rows": rows}, f, indent=2)
    lines = ["| dataset | energy distance | floor | ratio | wall time (s) |", "|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['energy_distance']:.5f} | {r['floor']:.5f} | {r['ratio']:.2f} | "
              f"{r['wall_seconds']:.0f} |" for r in rows]
    table = "\n".join(lines)
    with open(args.out + ".md", "w") as f:
        f.write(f"`python3 benchmarks/quality_table.py` (backend {args.backend_used}, seed {args.seed}, "
                f"{machine['cpus']} CPUs, {machine['platform']})\n\n{table}\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
