"""Held-out log-likelihood of a diffusion model beside the classical density estimators, on the same points.

For each data set: N_TRAIN training points and N_TEST fresh test points (wine: scikit-learn's table, a random
80% / 20% split), the same for every estimator:

    DiffusionDensity   ddpm.density, default recipe, exact log p(x) of its probability-flow ODE (RK4, 50 steps)
    GaussianMixture    full covariances, the number of components chosen by GridSearchCV (3 folds) over 1..64
    KernelDensity      Gaussian kernel, the bandwidth chosen by GridSearchCV (3 folds) over 16 values

Each column is the mean log-likelihood per dimension (nats) on the test points ± its standard error over them,
with the fit time (tuning included). Where the density is known (8gaussians, clusters) the exact value is a
column: no estimator can beat it on average. wine is standardised first (the same map for all three, a
constant Jacobian), so its figures are in standardised coordinates.

The diffusion model appears twice: one fit with the default recipe, and tuned by the same 3-fold GridSearchCV
as the classical ones (score: the held-out ODE log-likelihood), over the training steps (half or all of the
recipe's on the 2-D sets; 500..2,000 and the width on wine, whose 142 rows the default overfits). The search
runs two folds at a time, each fit on one thread (``n_jobs=1``), so its seconds are wall time on 2 cores.

    python3 benchmarks/density_table.py [--datasets moons ...]

Writes benchmarks/results/density_table.{json,md} after every data set, with the machine's sgemm.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cpu_bench import sgemm_gflops  # noqa: E402

import toy_data  # noqa: E402
from ddpm.density import DiffusionDensity  # noqa: E402

DIFFUSION_GRID = {"wine": {"steps": [500, 1000, 2000], "hidden": [64, None]}}
DIFFUSION_GRID_2D = {"steps": [8000, None]}       # None: the recipe's 16,000 for 5,000 rows
SETS = ("moons", "8gaussians", "checkerboard", "swiss_roll", "clusters", "wine")
EXACT = {"8gaussians": toy_data.log_density_8gaussians, "clusters": toy_data.log_density_clusters}
N_TRAIN, N_TEST = 5000, 2000


def data(name: str):
    rng = np.random.default_rng(0)
    if name == "wine":
        from sklearn.datasets import load_wine
        x = load_wine().data
        perm = rng.permutation(len(x))
        cut = int(0.8 * len(x))
        train, test = x[perm[:cut]], x[perm[cut:]]
        mean, sd = train.mean(0), train.std(0)
        return (train - mean) / sd, (test - mean) / sd
    return toy_data.draw(name, N_TRAIN, rng), toy_data.draw(name, N_TEST, rng)


def summary(ll: np.ndarray, D: int) -> dict:
    return {"mean": float(ll.mean() / D), "se": float(ll.std(ddof=1) / np.sqrt(ll.size) / D)}


def run(name: str) -> dict:
    from sklearn.mixture import GaussianMixture
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.neighbors import KernelDensity
    train, test = data(name)
    D = train.shape[1]
    cv = KFold(3, shuffle=True, random_state=0)
    row = {"dataset": name, "D": D, "n_train": len(train), "n_test": len(test)}
    t0 = time.perf_counter()
    diff = DiffusionDensity(random_state=0, ode_steps=50).fit(train)
    ll = diff.score_samples(test)
    row["diffusion"] = {**summary(ll, D), "seconds": time.perf_counter() - t0, "steps": diff.model_.step}
    t0 = time.perf_counter()
    grid = DIFFUSION_GRID.get(name, DIFFUSION_GRID_2D)
    search = GridSearchCV(DiffusionDensity(random_state=0, ode_steps=50, n_jobs=1), grid, cv=cv, n_jobs=2).fit(train)
    ll_tuned = search.best_estimator_.score_samples(test)
    row["diffusion_tuned"] = {**summary(ll_tuned, D), "seconds": time.perf_counter() - t0,
                              "params": search.best_params_, "grid": grid,
                              "cv": [{"params": p, "mean": float(m) / D} for p, m in
                                     zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])]}
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= len(train) // 3]
    t0 = time.perf_counter()
    gmm = GridSearchCV(GaussianMixture(covariance_type="full", random_state=0, max_iter=500),
                       {"n_components": ks}, cv=cv).fit(train)
    row["gmm"] = {**summary(gmm.best_estimator_.score_samples(test), D), "seconds": time.perf_counter() - t0,
                  "n_components": gmm.best_params_["n_components"]}
    t0 = time.perf_counter()
    scale = float(np.mean(train.std(0)))
    kde = GridSearchCV(KernelDensity(), {"bandwidth": scale * np.logspace(-2.5, 0, 16)}, cv=cv).fit(train)
    row["kde"] = {**summary(kde.best_estimator_.score_samples(test), D), "seconds": time.perf_counter() - t0,
                  "bandwidth": float(kde.best_params_["bandwidth"])}
    if name in EXACT:
        row["exact"] = summary(EXACT[name](test), D)
    best = max(("gmm", "kde"), key=lambda k: row[k]["mean"])
    d = (ll_tuned - (gmm if best == "gmm" else kde).best_estimator_.score_samples(test)) / D
    row["diffusion_minus_best_classical"] = {"vs": best, "mean": float(d.mean()),
                                             "se": float(d.std(ddof=1) / np.sqrt(d.size))}
    return row


def setting(row: dict) -> str:
    """The chosen diffusion setting, None written as the recipe's value."""
    p = row["diffusion_tuned"]["params"]
    return ", ".join(f"{k} {v if v is not None else 'recipe'}" for k, v in sorted(p.items()))


def write(rows: list, meta: dict) -> None:
    out = os.path.join(HERE, "results")
    with open(os.path.join(out, "density_table.json"), "w") as f:
        json.dump({**meta, "rows": rows}, f, indent=1)
    f_ = lambda c: f"{c['mean']:.3f} ± {c['se']:.3f}"
    lines = [f"`python3 benchmarks/density_table.py` ({os.cpu_count()} CPUs, {platform.platform()}; sgemm "
             f"{meta['sgemm_before']:.0f} GFLOP/s before" + (f", {meta['sgemm_after']:.0f} after" if meta.get("sgemm_after")
                                                             else " (run in progress)") + "). "
             "Held-out log-likelihood per dimension, nats (higher is better), ± SE over the test points; seconds of "
             "fitting (tuning included). Diffusion: one default fit, and tuned (steps; on wine also "
             "width) by the same 3-fold GridSearchCV that tunes GMM and KDE. Paired: tuned diffusion − the better "
             "classical estimator on the same points.", "",
             "| data | D | diffusion (ODE), default | diffusion, tuned (setting) | GMM (k) | KDE (bandwidth) | exact | tuned diffusion − best classical | seconds: default / tuned / GMM / KDE |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["diffusion_minus_best_classical"]
        lines.append(f"| {r['dataset']} | {r['D']} | {f_(r['diffusion'])} | {f_(r['diffusion_tuned'])} ({setting(r)}) | {f_(r['gmm'])} ({r['gmm']['n_components']}) | "
                     f"{f_(r['kde'])} ({r['kde']['bandwidth']:.3g}) | {f_(r['exact']) if 'exact' in r else ''} | "
                     f"{p['mean']:+.3f} ± {p['se']:.3f} vs {p['vs'].upper()} | "
                     f"{r['diffusion']['seconds']:.0f} / {r['diffusion_tuned']['seconds']:.0f} / {r['gmm']['seconds']:.0f} / {r['kde']['seconds']:.0f} |")
    with open(os.path.join(out, "density_table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(SETS))
    args = ap.parse_args(argv)
    meta = {"sgemm_before": sgemm_gflops(), "sgemm_after": None, "n_train": N_TRAIN, "n_test": N_TEST}
    rows = []
    for name in args.datasets:
        rows.append(run(name))
        print(json.dumps(rows[-1]), flush=True)
        write(rows, meta)
    meta["sgemm_after"] = sgemm_gflops()
    write(rows, meta)


if __name__ == "__main__":
    main()
