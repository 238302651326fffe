"""Why the ODE's exact NLL sat above the bound: the network's ε_θ at high noise, not the ODE code.

Fits the default model (``ddpm fit DATASET``, seed 0) of moons and 8gaussians and computes on the same
fresh points the variational bound, the probability-flow ODE's exact NLL with the network integrated up
to σ_T (``sigma_max=None``, before) and up to ``ddpm_ref.ode.SIGMA_MAX`` (after), and for 8gaussians
the mixture's exact NLL and the ODE NLL of the exact mixture ε (closed form: the diffused mixture is
again a mixture). Exact ε integrated to σ_T gives the exact NLL, so the ODE code, its t clamp on
[0, σ_1] and the σ ↔ t map are right; ε_θ integrated to σ_T does not. Paired differences carry their SE.

    python3 benchmarks/ode_nll.py [--n 2000] [--seed 0]

Writes benchmarks/results/ode_nll.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

import ddpm
import ddpm_ref
import toy_data

HERE = os.path.dirname(os.path.abspath(__file__))


class MixtureEps:
    """Exact E[ε | x_t] and its divergence for data Σ_k (1/K) N(μ_k, sd² I) seen through the model's
    normaliser u = (x − m)/s: q(x_t) = Σ_k (1/K) N(√ᾱ μ'_k, ᾱ v_0 + 1 − ᾱ), μ'_k = (μ_k − m)/s, v_0 = sd²/s²,
    ε = −√(1−ᾱ) ∇log q(x_t) = √(1−ᾱ) E_r[a],  div ε = √(1−ᾱ) Σ_d (1/v_d − E_r[a_d²] + E_r[a_d]²),
    a_k = (x_t − √ᾱ μ'_k)/v, r the components' posterior weights."""

    def __init__(self, model, centers, sd):
        self.sched = model.sched
        self.mu = (centers - model.norm.mean) / model.norm.scale            # (K, D)
        self.v0 = (sd / model.norm.scale) ** 2                              # (D,)

    def _parts(self, x, t):
        ab = 1.0 / (1.0 + float(ddpm_ref.sigma_of_t(self.sched, np.asarray(t).flat[0])) ** 2)
        v = ab * self.v0 + 1.0 - ab                                         # (D,)
        a = (x[:, None, :] - math.sqrt(ab) * self.mu[None]) / v             # (N, K, D)
        logw = -0.5 * np.sum(a * a * v, axis=-1)                            # (N, K)
        r = np.exp(logw - logw.max(axis=1, keepdims=True))
        return ab, v, a, r / r.sum(axis=1, keepdims=True)

    def __call__(self, x, t):
        ab, v, a, r = self._parts(x, t)
        return math.sqrt(1.0 - ab) * np.einsum("nk,nkd->nd", r, a)

    def divergence(self, x, t):
        ab, v, a, r = self._parts(x, t)
        ea, ea2 = np.einsum("nk,nkd->nd", r, a), np.einsum("nk,nkd->nd", r, a * a)
        return math.sqrt(1.0 - ab) * np.sum(1.0 / v - ea2 + ea * ea, axis=1)


def _stat(v):
    return {"mean": float(v.mean()), "se": float(v.std(ddof=1) / math.sqrt(v.size))}


def run(dataset, n, seed):
    t0 = time.perf_counter()
    model = ddpm.fit(dataset, seed=seed, progress=False).model
    x = toy_data.draw(dataset, n, np.random.default_rng([seed, 5]))
    bound = ddpm.likelihood_bound(model, x, seed=seed)["per_point_nats"] / (model.cfg.dim * ddpm_ref.LN2)
    rows = {"bound": bound}
    for label, smax in (("ode to sigma_T (before)", None), (f"ode to sigma_max = {ddpm_ref.ode.SIGMA_MAX:g} (after)",
                                                           ddpm_ref.ode.SIGMA_MAX)):
        rows[label] = ddpm.ode_nll(model, x, sigma_max=smax)["per_point_bpd"]
    rows["ode to sigma_max, 400 steps"] = ddpm.ode_nll(model, x, steps=400)["per_point_bpd"]
    truth = None
    if dataset == "8gaussians":
        truth = -toy_data.log_density_8gaussians(x) / (2 * ddpm_ref.LN2)
        exact_eps = MixtureEps(model, toy_data._eight_centers(), toy_data.EIGHT_GAUSSIANS["sd"])
        u, log_s = model.norm.to_model(x), float(np.sum(np.log(model.norm.scale)))
        for label, smax in (("exact-ε ode to sigma_T", None), ("exact-ε ode to sigma_max", ddpm_ref.ode.SIGMA_MAX)):
            ll, _ = ddpm_ref.ode_log_likelihood(exact_eps, model.sched, u, 100, sigma_max=smax)
            rows[label] = (-ll + log_s) / (2 * ddpm_ref.LN2)
        rows["exact NLL of the mixture"] = truth
    ref = truth if truth is not None else bound
    out = {"dataset": dataset, "n_points": n, "seed": seed, "schedule": model.sched.to_config(),
           "reference": "exact NLL" if truth is not None else "bound", "rows": []}
    for label, v in rows.items():
        out["rows"].append({"row": label, "bits_per_dim": _stat(v), "minus_reference": _stat(v - ref)})
    out["seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(HERE, "results", "ode_nll"))
    args = p.parse_args()
    res = [run(d, args.n, args.seed) for d in ("moons", "8gaussians")]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(res, f, indent=2)
    lines = []
    for r in res:
        lines += [f"{r['dataset']}, default model (seed {r['seed']}, {r['schedule']['name']} T = {r['schedule']['T']}), "
                  f"{r['n_points']} fresh points, bits/dim (paired differences on the same points):", "",
                  f"| | NLL | − {r['reference']} |", "|---|---|---|"]
        lines += [f"| {row['row']} | {row['bits_per_dim']['mean']:.4f} ± {row['bits_per_dim']['se']:.4f} | "
                  f"{row['minus_reference']['mean']:+.4f} ± {row['minus_reference']['se']:.4f} |" for row in r["rows"]]
        lines.append("")
    with open(args.out + ".md", "w") as f:
        f.write("`python3 benchmarks/ode_nll.py`\n\n" + "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
