"""A hyper-parameter sweep of ``DiffusionDensity`` by held-out likelihood, serially and on a Dask cluster.

``GridSearchCV`` over a 2 × 3 grid (hidden ∈ {64, 128} × steps ∈ {1000, 2000, 4000}) with 3 shuffled folds on
3,000 moons points, run twice in one process: serially (``n_jobs=1``) and under joblib's Dask backend on a
2-worker ``LocalCluster`` (one thread each; every fit single-threaded, ``n_jobs=1`` in the estimator). The table
gives each setting's held-out log-likelihood in nats per dimension (mean over folds ± the standard error
over folds) from both runs, which must agree, and the two wall times with this machine's sgemm.

    python3 benchmarks/sweep.py [--scheduler ADDRESS]    # ADDRESS: an existing cluster's scheduler instead

Needs ``pip install ".[data]" "dask[distributed]"``. Writes benchmarks/results/sweep.{json,md}.
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

GRID = {"hidden": [64, 128], "steps": [1000, 2000, 4000]}
N, FOLDS, DATA = 3000, 3, "moons"


def search(X, n_jobs):
    from sklearn.model_selection import GridSearchCV, KFold
    est = DiffusionDensity(n_jobs=1, random_state=0, ode_steps=50)
    t0 = time.perf_counter()
    gs = GridSearchCV(est, GRID, cv=KFold(FOLDS, shuffle=True, random_state=0), n_jobs=n_jobs).fit(X)
    return gs, time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheduler", default=None, help="a running Dask scheduler's address (default: a LocalCluster)")
    args = ap.parse_args(argv)
    import distributed
    import joblib
    X = toy_data.draw(DATA, N, np.random.default_rng(0))
    sgemm_before = sgemm_gflops()
    serial, t_serial = search(X, 1)
    if args.scheduler:
        client, cluster = distributed.Client(args.scheduler), None
    else:
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    try:
        with joblib.parallel_config(backend="dask"):
            on_dask, t_dask = search(X, -1)
        n_workers = len(client.scheduler_info()["workers"])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    sgemm_after = sgemm_gflops()
    D = X.shape[1]
    rows = []
    for i, params in enumerate(serial.cv_results_["params"]):
        row = {"params": params}
        for name, gs in (("serial", serial), ("dask", on_dask)):
            folds = np.array([gs.cv_results_[f"split{k}_test_score"][i] for k in range(FOLDS)]) / D
            row[name] = {"mean": float(folds.mean()), "se": float(folds.std(ddof=1) / np.sqrt(FOLDS))}
        rows.append(row)
    same = all(abs(r["serial"]["mean"] - r["dask"]["mean"]) <= 1e-9 * abs(r["serial"]["mean"]) for r in rows)
    result = {"data": DATA, "n": N, "folds": FOLDS, "grid": GRID, "rows": rows, "serial_seconds": t_serial,
              "dask_seconds": t_dask, "dask_workers": n_workers, "scheduler": args.scheduler or "LocalCluster",
              "best_serial": serial.best_params_, "best_dask": on_dask.best_params_, "results_equal": same,
              "sgemm_before": sgemm_before, "sgemm_after": sgemm_after, "cpus": os.cpu_count(),
              "platform": platform.platform()}
    out = os.path.join(HERE, "results")
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump(result, f, indent=1)
    lines = [f"`python3 benchmarks/sweep.py` ({os.cpu_count()} CPUs, {platform.platform()}; sgemm {sgemm_before:.0f} "
             f"GFLOP/s before, {sgemm_after:.0f} after): GridSearchCV of DiffusionDensity on {N:,} {DATA} points, "
             f"{FOLDS} shuffled folds; held-out log-likelihood in nats per dimension (mean over folds ± SE over folds).",
             "", "| hidden | steps | serial | Dask | ", "|---|---|---|---|"]
    for r in rows:
        p = r["params"]
        lines.append(f"| {p['hidden']} | {p['steps']} | {r['serial']['mean']:.3f} ± {r['serial']['se']:.3f} | "
                     f"{r['dask']['mean']:.3f} ± {r['dask']['se']:.3f} |")
    lines += ["", f"Wall time: serial {t_serial:.0f} s; Dask ({n_workers} workers, {result['scheduler']}) {t_dask:.0f} s "
                  f"({t_serial / t_dask:.2f}×). Best setting: serial {serial.best_params_}, Dask {on_dask.best_params_}; "
                  f"the two runs' scores {'agree to 1e-9' if same else 'DIFFER'}."]
    with open(os.path.join(out, "sweep.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
