"""Write ddpm/floors.json: the sampling floors of every built-in data set, over many independent draws.

For each built-in generator (``toy_data.NAMES``) and each size compared by default (n samples vs m held-out
points: 5,000 × 5,000, ``fit``'s and ``ddpm eval``'s; 1,000 × 1,000 for the tests), energy distance, |MMD²|
and exact W2 between independent draws (``ddpm.floors.fresh_floors``), each with its standard error.
``fit``'s fast evaluation reads them instead of drawing its own (``ddpm.floors.cached_floors``).

    python3 benchmarks/floor_table.py [--names moons,8gaussians] [--jobs 2]

About 50 s per data set at 5,000 points on one core (12 exact W2 solves of ~2 s, 32 energy/MMD draws).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import toy_data                                                             # noqa: E402
from ddpm.floors import FLOOR_TABLE, fresh_floors, table_key               # noqa: E402

SIZES = ((5000, 5000, 32, 12), (1000, 1000, 64, 64))   # (n, m, draws for energy and MMD², draws for W2)
SEED = 20210                                           # independent of every fit's streams (SeedSequence([seed, n, m]))


def one(name: str) -> tuple[str, dict]:
    out = {}
    for n, m, draws, draws_w2 in SIZES:
        t0 = time.perf_counter()
        out[table_key(n, m)] = fresh_floors(name, n, m, draws, draws_w2, SEED)
        f = out[table_key(n, m)]
        print(f"{name:14s} {n}x{m}: " + "  ".join(f"{k} {v['mean']:.4g} ± {v['se']:.2g} ({v['draws']})"
                                                  for k, v in f.items()) + f"  [{time.perf_counter() - t0:.0f} s]",
              flush=True)
    return name, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--names", default=",".join(toy_data.NAMES))
    p.add_argument("--jobs", type=int, default=2)
    args = p.parse_args()
    names = [s for s in args.names.split(",") if s]
    unknown = [s for s in names if s not in toy_data.NAMES]
    if unknown:
        raise SystemExit(f"unknown data sets {unknown}; built-ins: {', '.join(toy_data.NAMES)}")
    try:
        with open(FLOOR_TABLE) as f:
            table = json.load(f)
    except FileNotFoundError:
        table = {"floors": {}}
    with ProcessPoolExecutor(args.jobs) as ex:
        for name, out in ex.map(one, names):
            table["floors"][name] = out
    table["about"] = ("E[statistic] between independent draws of a built-in data set, n samples × m held-out points: "
                      "mean, standard error sd/sqrt(draws), draws; written by benchmarks/floor_table.py "
                      f"(seed {SEED}, python {platform.python_version()})")
    table["floors"] = dict(sorted(table["floors"].items()))
    with open(FLOOR_TABLE + ".tmp", "w") as f:
        json.dump(table, f, indent=1)
    os.replace(FLOOR_TABLE + ".tmp", FLOOR_TABLE)
    print(f"wrote {FLOOR_TABLE}")


if __name__ == "__main__":
    main()
