"""Why the knight outline fitted from a CSV misses its floor (issue 21): the training-set size, and what more training buys.

The quality panel's CSV row fits 8,000 knight points through ``ddpm fit --data`` (20% held out: 6,400 training
points) and reads MMD² 6.43× its floor, where the built-in fit (100,000 fresh training points) reads 1.28×. This
script separates the two: the built-in knight fitted with ``n_train`` 6,400 and 100,000 (held-out points and floors
the built-in's: 5,000 fresh points, cached floors), and the CSV row's array under a few recipe changes (one at a
time: Fourier octaves, width, learning rate, steps, batch). Each row is one default-seed fit with fast evaluation:
W2, MMD² and energy over their floors, the memorisation ratio (median distance of samples to their nearest
training point over the held-out points'), and the wall time of the whole fit.

    python3 benchmarks/knight_small_data.py

Writes benchmarks/results/knight_small_data.{json,md} after every row, with the machine's sgemm.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cpu_bench import sgemm_gflops  # noqa: E402

import ddpm  # noqa: E402
import toy_data  # noqa: E402

ROWS = [("built-in, n_train 100,000", "builtin", {"n_train": 100_000}),
        ("built-in, n_train 6,400", "builtin", {"n_train": 6_400}),
        ("CSV array (6,400 train), default", "csv", {}),
        ("CSV, fourier 8", "csv", {"model": {"fourier": 8}}),
        ("CSV, hidden 192", "csv", {"model": {"hidden": 192}}),
        ("CSV, lr 2e-3", "csv", {"train": {"lr": 2e-3}}),
        ("CSV, steps 24,000", "csv", {"steps": 24_000}),
        ("CSV, batch 1,024", "csv", {"train": {"batch_size": 1024}})]


def main() -> None:
    csv_points = toy_data.draw("knight", 8000, np.random.default_rng(0 + 101))   # quality_panel.py's CSV row, seed 0
    meta = {"sgemm_before": sgemm_gflops(), "sgemm_after": None}
    rows = []
    for label, data, kw in ROWS:
        t0 = time.perf_counter()
        res = ddpm.fit("knight" if data == "builtin" else csv_points, None, seed=0, progress=False, **kw)
        m = res.metrics
        rows.append({"row": label, "w2": m["w2_ratio"], "mmd2": m["mmd2_ratio"], "energy": m["energy_ratio"],
                     "nn_train_ratio": m.get("nn_train_ratio"), "n_train": m["n_train"], "steps": m["steps"],
                     "wall": time.perf_counter() - t0})
        print(json.dumps(rows[-1]), flush=True)
        write(rows, meta)
    meta["sgemm_after"] = sgemm_gflops()
    write(rows, meta)


def write(rows: list, meta: dict) -> None:
    out = os.path.join(HERE, "results")
    with open(os.path.join(out, "knight_small_data.json"), "w") as f:
        json.dump({**meta, "rows": rows}, f, indent=1)
    after = f", {meta['sgemm_after']:.0f} after" if meta.get("sgemm_after") else " (run in progress)"
    lines = [f"`python3 benchmarks/knight_small_data.py` ({os.cpu_count()} CPUs, {platform.platform()}; sgemm "
             f"{meta['sgemm_before']:.0f} GFLOP/s before{after}; seed 0, fast evaluation). Ratios to the floors.", "",
             "| fit | training points | steps | W2 | MMD² | energy | NN to train: samples / held-out | wall (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['row']} | {r['n_train']:,} | {r['steps']:,} | {r['w2']:.2f} | {r['mmd2']:.2f} | "
                     f"{r['energy']:.2f} | {r['nn_train_ratio']:.2f} | {r['wall']:.0f} |")
    with open(os.path.join(out, "knight_small_data.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
