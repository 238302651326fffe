"""Is the variational bound a bound? Paired against the exact NLL of 8gaussians, with its Monte Carlo noise.

The bound on −log p_θ(x) is estimated with one draw of x_t per step and point; its mean over points
must not fall below the data's exact NLL except by that noise. This script fits the default model
(``ddpm fit 8gaussians``, seed 0), then reports bound − exact NLL (bits/dim, paired per point, ± standard
error) on ``ddpm eval``'s 5,000 points under three seeds of the bound's noise, and on 20,000 independent
points.

    python3 benchmarks/bound_noise.py [--seed 0]

Writes benchmarks/results/bound_noise.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

import ddpm
import toy_data
from ddpm.evaluation import evaluation_streams

HERE = os.path.dirname(os.path.abspath(__file__))


def paired(model, x: np.ndarray, bound_seed: int) -> dict:
    """Mean and standard error of bound − exact NLL (bits/dim) over the points x."""
    per = ddpm.likelihood_bound(model, x, seed=bound_seed)["per_point_nats"] / (x.shape[1] * np.log(2))
    d = per - (-toy_data.log_density_8gaussians(x) / (x.shape[1] * np.log(2)))
    return {"n_points": int(x.shape[0]), "bound_seed": int(bound_seed), "mean": float(d.mean()),
            "se": float(d.std(ddof=1) / np.sqrt(d.size)), "per_point_sd": float(d.std(ddof=1))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(HERE, "results", "bound_noise"))
    args = p.parse_args()
    model = ddpm.fit("8gaussians", seed=args.seed, progress=False).model
    ss_x, _, ss_bound, _ = evaluation_streams(args.seed)          # ddpm eval's points and bound seed
    x_eval = toy_data.draw("8gaussians", 5000, np.random.default_rng(ss_x))
    rows = [{"points": "ddpm eval's 5,000", **paired(model, x_eval, s)}
            for s in (int(ss_bound.generate_state(1)[0]), 1, 2)]
    x_new = toy_data.draw("8gaussians", 20000, np.random.default_rng([args.seed, 424242]))
    rows.append({"points": "20,000 independent", **paired(model, x_new, 5)})
    for r in rows:
        print(f"{r['points']:20s} bound seed {r['bound_seed']:>10d}: bound − exact NLL {r['mean']:+.4f} ± {r['se']:.4f} "
              f"bits/dim (per-point sd {r['per_point_sd']:.2f})", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"seed": args.seed, "rows": rows}, f, indent=2)
    lines = ["| points | bound's noise seed | bound − exact NLL (bits/dim) | per-point sd |", "|---|---|---|---|"]
    lines += [f"| {r['points']} | {r['bound_seed']} | {r['mean']:+.4f} ± {r['se']:.4f} | {r['per_point_sd']:.2f} |"
              for r in rows]
    with open(args.out + ".md", "w") as f:
        f.write(f"`python3 benchmarks/bound_noise.py` (default 8gaussians fit, seed {args.seed})\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
