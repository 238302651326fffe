"""Quality panel: default `ddpm fit` on the built-ins and on fine-structure sets, next to a PyTorch peer
given the same wall time. Every statistic is a ratio to its floor (the same statistic between an
independent draw of the data and the held-out set, at the same sizes): exact W2, MMD² summed over
bandwidths {0.05, 0.1, 0.2, 0.5, 1}× the data's scale, and the energy distance.

    python3 benchmarks/quality_panel.py [--datasets moons grid ...] [--no-peer] [--seed 0]

One row per dataset: our default fit (wall time of the whole `ddpm.fit`), then the peer
(`benchmarks/peer_torch.py`) with a budget equal to that whole wall time (it spends it all on training
and sampling, while ours also computes its statistics and held-out bound), scored against the same
held-out points and references. The last row fits a CSV through `ddpm fit --data`, as a user
would. Writes benchmarks/results/quality_panel.{json,md}. Run it alone: the two cores are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

import ddpm
import toy_data
from ddpm.data import resolve_data
from ddpm.metrics import sample_statistics

HERE = os.path.dirname(os.path.abspath(__file__))
BUILTINS = ["moons", "8gaussians", "checkerboard", "swiss_roll"]
FINE = [n for n in ("word", "knight", "grid", "clusters") if n in toy_data.NAMES]
CSV_SET = "clusters" if "clusters" in toy_data.NAMES else "8gaussians"


def _ours(name, seed):
    t0 = time.perf_counter()
    res = ddpm.fit(name, seed=seed, progress=False)
    return res.metrics, time.perf_counter() - t0


def _ours_csv(seed, tmp, csv_set=CSV_SET):
    """The CSV route: 8,000 points of ``csv_set`` written to a .csv and fitted by the command line."""
    x = toy_data.draw(csv_set, 8000, np.random.default_rng(seed + 101))
    path = os.path.join(tmp, f"{csv_set}.csv")
    np.savetxt(path, x, delimiter=",", header="x,y", comments="")
    out = os.path.join(tmp, "csv_fit")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ddpm", "fit", "--data", path, "--out", out, "--quiet", "--seed", str(seed)],
                   check=True, capture_output=True)
    wall = time.perf_counter() - t0
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f), wall, path


def _peer(data, seed, budget):
    from peer_torch import fit_and_sample
    train_x, held, refs, _ = resolve_data(data, seed)
    res = fit_and_sample(train_x, refs[0].shape[0], budget, seed)
    st = sample_statistics(res["samples"], held, refs)
    return {**{k: st[k] for k in ("w2_ratio", "mmd2_ratio", "energy_ratio")},
            "steps": res["steps"], "wall_seconds": res["wall_seconds"], "torch": res["torch"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=BUILTINS + FINE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--no-csv", action="store_true", help="skip the CSV row")
    p.add_argument("--csv-set", default=CSV_SET, help="the built-in written to the CSV row's file (default %(default)s)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "quality_panel"))
    args = p.parse_args()
    sys.path.insert(0, HERE)
    peer_ok = not args.no_peer
    if peer_ok:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed (pip install torch==2.13.0): the peer columns are left out")
            peer_ok = False

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(name, name) for name in args.datasets] + ([("csv", None)] if not args.no_csv else [])
        for label, name in jobs:
            if name is None:
                m, wall, path = _ours_csv(args.seed, tmp, args.csv_set)
                label, data = f"{args.csv_set}.csv (--data)", path
            else:
                m, wall = _ours(name, args.seed)
                data = name
            row = {"dataset": label, "w2_ratio": m["w2_ratio"], "mmd2_ratio": m["mmd2_ratio"],
                   "energy_ratio": m["energy_ratio"], "wall_seconds": wall, "n_samples": m["n_samples"],
                   "n_heldout": m["n_heldout"], "backend": m["backend"], "steps": m["steps"]}
            if peer_ok:
                budget = wall                  # our whole `ddpm fit`, evaluation included: the peer's budget
                row["peer"] = {**_peer(data, args.seed, budget), "budget_seconds": budget}
            rows.append(row)
            peer = row.get("peer")
            print(f"{label:24s} W2 {row['w2_ratio']:.2f}  MMD² {row['mmd2_ratio']:.2f}  energy {row['energy_ratio']:.2f}"
                  f"  wall {wall:.0f}s" + (f"   peer W2 {peer['w2_ratio']:.2f}  MMD² {peer['mmd2_ratio']:.2f} "
                                           f"({peer['steps']} steps)" if peer else ""), flush=True)

    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"seed": args.seed, "machine": machine, "rows": rows}, f, indent=2)
    head = "| dataset | W2 / floor | MMD² / floor | energy / floor | wall (s) |"
    sep = "|---|---|---|---|---|"
    if peer_ok:
        head += " peer W2 / floor | peer MMD² / floor | peer steps | our W2 vs peer |"
        sep += "---|---|---|---|"
    lines = [head, sep]
    for r in rows:
        line = (f"| {r['dataset']} | {r['w2_ratio']:.2f} | {r['mmd2_ratio']:.2f} | {r['energy_ratio']:.2f} | "
                f"{r['wall_seconds']:.0f} |")
        if "peer" in r:
            pr = r["peer"]
            line += (f" {pr['w2_ratio']:.2f} | {pr['mmd2_ratio']:.2f} | {pr['steps']} | "
                     f"{100 * (r['w2_ratio'] / pr['w2_ratio'] - 1):+.0f}% |")
        lines.append(line)
    table = "\n".join(lines)
    with open(args.out + ".md", "w") as f:
        f.write(f"`python3 benchmarks/quality_panel.py {' '.join(sys.argv[1:])}`".replace(" `", "`")
                + f" (seed {args.seed}, {machine['cpus']} CPUs, "
                f"{machine['platform']})\n\n{table}\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
