"""Is the ODE likelihood's gap to the bound the integrator's? The exact NLL at 100 and 400 RK4 steps.

Fits the default model (``ddpm fit DATASET``, seed 0) and computes, on the same fresh points, the
variational bound and the probability-flow ODE's exact NLL (``ddpm.ode_nll``) with 100 and 400 steps.
If the ODE's NLL does not move with 4× the steps, its distance from the bound belongs to the model
(the ODE of an imperfect ε_θ), not to the integration.

    python3 benchmarks/ode_steps.py [--dataset moons] [--n 300] [--seed 0]

Writes benchmarks/results/ode_steps.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import ddpm
import toy_data

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="moons")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(HERE, "results", "ode_steps"))
    args = p.parse_args()
    model = ddpm.fit(args.dataset, seed=args.seed, progress=False).model
    x = toy_data.draw(args.dataset, args.n, np.random.default_rng([args.seed, 5]))
    bound = ddpm.likelihood_bound(model, x, seed=args.seed)
    res = {"dataset": args.dataset, "n_points": args.n, "seed": args.seed, "schedule": model.sched.to_config(),
           "bound_bits_per_dim": bound["bound_bits_per_dim"], "bound_se": bound["bound_bits_per_dim_se"], "ode": []}
    for steps in (100, 400):
        t0 = time.perf_counter()
        o = ddpm.ode_nll(model, x, steps=steps)
        res["ode"].append({"steps": steps, "nll_bits_per_dim": o["ode_nll_bits_per_dim"],
                           "se": o["ode_nll_bits_per_dim_se"], "seconds": time.perf_counter() - t0})
        print(f"ODE {steps} steps: {o['ode_nll_bits_per_dim']:.4f} ± {o['ode_nll_bits_per_dim_se']:.4f} bits/dim", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(res, f, indent=2)
    lines = [f"{args.dataset}, default model (seed {args.seed}), {args.n} fresh points: variational bound "
             f"{res['bound_bits_per_dim']:.3f} ± {res['bound_se']:.3f} bits/dim", "",
             "| ODE steps (RK4) | exact NLL (bits/dim) |", "|---|---|"]
    lines += [f"| {o['steps']} | {o['nll_bits_per_dim']:.4f} ± {o['se']:.4f} |" for o in res["ode"]]
    with open(args.out + ".md", "w") as f:
        f.write("`python3 benchmarks/ode_steps.py`\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
