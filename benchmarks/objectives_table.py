"""The trend of Ho et al. 2020, Table 2, on 2-D data: parametrisation × objective × variance.

Each row fits the same data with the same network, steps and seed, then reports the variational
bound on 2,000 held-out points (bits/dim, data coordinates, ± standard error) and the sample
statistics of ``ddpm fit`` (W2, MMD² and energy distance, each over its sampling floor; 1 is as good as
the data's own noise).
Ho et al. found: μ̃ + true bound trains; μ̃ + MSE does not do better; ε + L_simple has the best samples
but a worse bound than training on the bound; Nichol & Dhariwal's learned Σ + L_hybrid recovers a
good bound with good samples. Writes benchmarks/results/objectives_table.{json,md}.

    python3 benchmarks/objectives_table.py [--dataset 8gaussians] [--steps 12000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

import ddpm
from ddpm_ref import GeneralTrainConfig, TrainConfig

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = [  # (label, parametrization, objective, var_type)
    ("μ̃ prediction, L_vlb, fixed σ²=β", "mu", "vlb", "beta"),
    ("μ̃ prediction, L_vlb, learned Σ", "mu", "vlb", "learned"),
    ("μ̃ prediction, ‖μ̃ − μ_θ‖² (L_simple)", "mu", "simple", "beta"),
    ("ε prediction, L_vlb, fixed σ²=β", "eps", "vlb", "beta"),
    ("ε prediction, L_simple, fixed σ²=β (Ho)", "eps", "simple", "beta"),
    ("ε prediction, L_hybrid, learned Σ (Nichol & Dhariwal)", "eps", "hybrid", "learned"),
]


def _ratio(r: float) -> str:
    # A sampler that leaves the region the network was trained on compounds its error over T steps.
    return f"{r:.2f}" if np.isfinite(r) else "diverged (samples blow up)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="8gaussians")
    p.add_argument("--steps", type=int, default=TrainConfig().steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(HERE, "results", "objectives_table"))
    p.add_argument("--render", metavar="FILE.json", help="only rewrite the markdown table of a saved result")
    args = p.parse_args()
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f), os.path.splitext(args.render)[0] + ".md"))
        return
    rows = []
    for label, param, objective, var_type in ROWS:
        t0 = time.perf_counter()
        try:
            res = ddpm.fit(args.dataset, steps=args.steps, seed=args.seed, progress=False,
                           train=GeneralTrainConfig(parametrization=param, objective=objective, var_type=var_type))
        except ddpm.guards.DivergenceError as e:             # recorded as a result, not a crash
            rows.append({"row": label, "parametrization": param, "objective": objective, "var_type": var_type,
                         "bound_bits_per_dim": float("nan"), "bound_se": float("nan"), "energy_ratio": float("inf"),
                         "w2_ratio": float("inf"), "mmd2_ratio": float("inf"),
                         "diverged": str(e), "wall_seconds": time.perf_counter() - t0})
            print(f"{label:55s} diverged: {e}", flush=True)
            continue
        ev = ddpm.evaluate(res.model, args.dataset, n=2000, seed=args.seed)
        row = {"row": label, "parametrization": param, "objective": objective, "var_type": var_type,
               "bound_bits_per_dim": ev["bound_bits_per_dim"], "bound_se": ev["bound_bits_per_dim_se"],
               "energy_ratio": res.metrics["energy_ratio"], "w2_ratio": res.metrics["w2_ratio"],
               "mmd2_ratio": res.metrics["mmd2_ratio"], "wall_seconds": time.perf_counter() - t0}
        if "true_nll_bits_per_dim" in ev:
            row["true_nll_bits_per_dim"] = ev["true_nll_bits_per_dim"]
        rows.append(row)
        print(f"{label:55s} bound {row['bound_bits_per_dim']:.3f} ± {row['bound_se']:.3f} bits/dim   "
              f"W2/floor {_ratio(row['w2_ratio'])}   MMD²/floor {_ratio(row['mmd2_ratio'])}   "
              f"energy/floor {_ratio(row['energy_ratio'])}   {row['wall_seconds']:.0f}s", flush=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    result = {"dataset": args.dataset, "steps": args.steps, "seed": args.seed, "machine": machine, "rows": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    print(render(result, args.out + ".md"))


def render(result: dict, md_path: str) -> str:
    """Write the markdown table of a result (also usable on a saved JSON: --render FILE.json)."""
    rows = result["rows"]
    truth = rows[0].get("true_nll_bits_per_dim")
    lines = [f"Dataset {result['dataset']}, {result['steps']} steps, seed {result['seed']}"
             + (f"; exact NLL of the data {truth:.3f} bits/dim" if truth is not None else "") + ".", "",
             "| model | bound (bits/dim) | W2 / floor | MMD² / floor | energy / floor |", "|---|---|---|---|---|"]
    lines += [f"| {r['row']} | {r['bound_bits_per_dim']:.3f} ± {r['bound_se']:.3f} | {_ratio(r['w2_ratio'])} | "
              f"{_ratio(r['mmd2_ratio'])} | {_ratio(r['energy_ratio'])} |" for r in rows]
    with open(md_path, "w") as f:
        f.write("`python3 benchmarks/objectives_table.py`\n\n" + "\n".join(lines) + "\n")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
