"""Classifier-free guidance's trade-off, measured: class agreement against fidelity and diversity per class.

For labelled 8gaussians (the mode), moons (the moon) and digits (the digit): one default class-conditional fit
(``ddpm.fit(name, label=...)``, label dropout 0.1), then for each guidance weight w in W and each class c,
samples of class c (``ddpm.sample(model, n, y=c, guidance=w)``, Algorithm 2 over all T steps) measured by
    agreement   the share that a 15-nearest-neighbour classifier, fitted on the real labelled training points,
                labels c (class consistency, the role of the Inception score in Ho & Salimans 2022);
    energy      energy distance to class c's held-out points over its floor (the same statistic between two
                independent draws of class c's points of the same sizes, averaged over 4 draws): fidelity;
    MMD²        the same for MMD² at small bandwidths (its floor: the mean |MMD²| of those draws);
    spread      the samples' root total variance over that of class c's held-out points (diversity: < 1 is
                narrower than the class).
Each figure is the mean over the classes. 8gaussians and moons: 2,000 samples per class against 2,000 fresh
points of the class; digits: as many samples as the class has held-out points (about 36; its 20% split), the
floors from as many training points of the class. Without a class, against the whole data: ``fit``'s own
samples (each point's class drawn with the training frequencies, ``ddpm.sampling.whole_data_classes``; fast
evaluation), and the ∅ model's samples (the unconditional model label dropout trains) against the same held-out
points and floors. 8gaussians also reports issue 31's check at w = 0: the smallest share of a class's samples
nearest to its own mode.

    python3 benchmarks/guidance.py [--datasets 8gaussians moons digits] [--seed 0]

Writes benchmarks/results/guidance.{json,md} after every data set and guidance.png at the end, with the
machine's sgemm.
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

import ddpm  # noqa: E402
import toy_data  # noqa: E402
from ddpm.data import resolve_labelled  # noqa: E402
from ddpm.metrics import data_scale, energy_distance, mmd2  # noqa: E402

SETS = ("8gaussians", "moons", "digits")
W = (0.0, 0.5, 1.0, 2.0, 4.0)
N_CLASS = 2000               # samples and held-out points per class for the generated sets
N_FLOOR = 4                  # reference draws averaged into each floor
K_NN = 15


def class_sets(name: str, d, c: int, rng: np.random.Generator):
    """(held-out points of class c, [reference draws of the same size]) for the floors."""
    if name in toy_data.NAMES:
        def draw_class(n):
            out = []
            while sum(len(o) for o in out) < n:
                x, y = toy_data.draw_labelled(name, 4 * n * len(d.classes) // 3, rng)
                out.append(x[y == c])
            return np.concatenate(out)[:n]
        return draw_class(N_CLASS), [draw_class(N_CLASS) for _ in range(N_FLOOR)]
    held = d.held[d.held_y == c]
    pool = d.train[d.train_y == c]
    return held, [pool[rng.permutation(len(pool))[:len(held)]] for _ in range(N_FLOOR)]


def spread(x: np.ndarray) -> float:
    return float(np.sqrt(np.sum(np.var(x, axis=0))))


def null_model_ratios(m, d, metrics: dict, seed: int) -> tuple:
    """Energy and MMD² of the ∅ model's own samples (ε_θ(x_t, t, ∅), Algorithm 2) against fit's held-out points,
    over fit's floors (the same sizes)."""
    import ddpm_fast
    import ddpm_ref
    n = metrics["n_samples"]
    rng = np.random.default_rng(seed + 2)
    u = ddpm_fast.p_sample_loop(ddpm_ref.network(m.state["ema"], m.cfg), m.sched, rng.standard_normal((n, m.cfg.dim)),
                                rng=rng)
    x = ddpm.data.quantize(m.norm.to_data(u), m.info.get("grid"))
    held = d.held
    return (energy_distance(x, held) / metrics["energy_distance_floor"],
            mmd2(x, held, data_scale(held)) / metrics["mmd2_floor"])


def run(name: str, seed: int) -> dict:
    from sklearn.neighbors import KNeighborsClassifier
    label = toy_data.LABELS[name]
    t0 = time.perf_counter()
    res = ddpm.fit(name, label=label, seed=seed, progress=False)
    fit_seconds = time.perf_counter() - t0
    m = res.model
    d = resolve_labelled(name, label, seed=seed, n_train=m.info["n_train"])
    knn = KNeighborsClassifier(n_neighbors=K_NN).fit(d.train, d.train_y)
    rng = np.random.default_rng(seed + 1)
    sets = [class_sets(name, d, c, rng) for c in range(len(d.classes))]
    floors = []
    for held, refs in sets:
        s = data_scale(held)
        floors.append((float(np.mean([energy_distance(r, held) for r in refs])),
                       float(np.mean([abs(mmd2(r, held, s)) for r in refs]))))
    modes = np.array([d.train[d.train_y == k].mean(0) for k in range(len(d.classes))])    # the classes' means
    rows = []
    t0 = time.perf_counter()
    for w in W:
        per = []
        for c, ((held, _), (f_e, f_m)) in enumerate(zip(sets, floors)):
            x = ddpm.sample(m, len(held), seed=seed * 1000 + c, y=c, guidance=w)
            per.append({"agreement": float(np.mean(knn.predict(x) == c)),
                        "energy_ratio": energy_distance(x, held) / f_e,
                        "mmd2_ratio": mmd2(x, held, data_scale(held)) / f_m,
                        "spread_ratio": spread(x) / spread(held)})
            if name == "8gaussians":
                per[-1]["nearest_own_mode"] = float(np.mean(np.argmin(((x[:, None] - modes[None]) ** 2).sum(-1), 1) == c))
        row = {"w": w, **{k: float(np.mean([p[k] for p in per])) for k in per[0]},
               "worst_energy_ratio": float(max(p["energy_ratio"] for p in per)),
               "min_agreement": float(min(p["agreement"] for p in per)), "per_class": per}
        if name == "8gaussians":
            row["min_nearest_own_mode"] = float(min(p["nearest_own_mode"] for p in per))
        rows.append(row)
    whole = {k: res.metrics[k] for k in ("energy_ratio", "w2_ratio", "mmd2_ratio") if k in res.metrics}
    whole["null_energy_ratio"], whole["null_mmd2_ratio"] = null_model_ratios(m, d, res.metrics, seed)
    return {"dataset": name, "label": label, "classes": list(d.classes), "fit_seconds": fit_seconds,
            "sample_seconds": time.perf_counter() - t0, "steps": m.step, "unconditional": whole, "rows": rows}


def write(results: list, meta: dict) -> None:
    out = os.path.join(HERE, "results")
    with open(os.path.join(out, "guidance.json"), "w") as f:
        json.dump({**meta, "results": results}, f, indent=1)
    lines = [f"`python3 benchmarks/guidance.py` ({os.cpu_count()} CPUs, {platform.platform()}; sgemm "
             f"{meta['sgemm_before']:.0f} GFLOP/s before" + (f", {meta['sgemm_after']:.0f} after" if meta.get("sgemm_after")
                                                             else " (run in progress)")
             + f"; seed {meta['seed']}). One default class-conditional fit per set; per class, samples guided with "
             "weight w against that class's held-out points; means over the classes (worst class in brackets). "
             "Agreement: share a 15-NN classifier on the real labelled points gives the class; energy and MMD²: "
             "over the class's floor; spread: root total variance over the class's.", ""]
    for r in results:
        u = r["unconditional"]
        lines += [f"**{r['dataset']}** ({len(r['classes'])} classes by {r['label']}; fit {r['fit_seconds']:.0f} s, "
                  f"sampling {r['sample_seconds']:.0f} s; without a class, against the whole data: energy "
                  f"{u['energy_ratio']:.2f}, W2 {u['w2_ratio']:.2f}, MMD² {u['mmd2_ratio']:.2f} × floor, each "
                  f"point's class drawn by frequency; the ∅ model's own samples: energy {u['null_energy_ratio']:.2f}, "
                  f"MMD² {u['null_mmd2_ratio']:.2f})", "",
                  "| w | agreement (worst) | energy / floor (worst) | MMD² / floor | spread |"
                  + (" nearest own mode (worst) |" if r["dataset"] == "8gaussians" else ""),
                  "|---|---|---|---|---|" + ("---|" if r["dataset"] == "8gaussians" else "")]
        for row in r["rows"]:
            lines.append(f"| {row['w']:g} | {row['agreement']:.3f} ({row['min_agreement']:.3f}) | "
                         f"{row['energy_ratio']:.2f} ({row['worst_energy_ratio']:.2f}) | {row['mmd2_ratio']:.2f} | "
                         f"{row['spread_ratio']:.2f} |"
                         + (f" {row['nearest_own_mode']:.3f} ({row['min_nearest_own_mode']:.3f}) |"
                            if r["dataset"] == "8gaussians" else ""))
        lines.append("")
    with open(os.path.join(out, "guidance.md"), "w") as f:
        f.write("\n".join(lines))


def plot(results: list) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for r in results:
        ws = [row["w"] for row in r["rows"]]
        axes[0].plot(ws, [row["agreement"] for row in r["rows"]], "o-", label=r["dataset"])
        axes[1].plot(ws, [row["energy_ratio"] for row in r["rows"]], "o-", label=r["dataset"])
        axes[2].plot([row["spread_ratio"] for row in r["rows"]], [row["agreement"] for row in r["rows"]], "o-",
                     label=r["dataset"])
    axes[0].set(xlabel="guidance weight w", ylabel="class agreement (15-NN)", title="class consistency")
    axes[1].set(xlabel="guidance weight w", ylabel="energy / class floor", yscale="log", title="fidelity to the class")
    axes[2].set(xlabel="spread / class spread", ylabel="class agreement", title="diversity against consistency")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, "results", "guidance.png"), dpi=110)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    meta = {"sgemm_before": sgemm_gflops(), "sgemm_after": None, "seed": args.seed, "w": list(W)}
    results = []
    for name in args.datasets:
        results.append(run(name, args.seed))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "rows"}), flush=True)
        write(results, meta)
    meta["sgemm_after"] = sgemm_gflops()
    write(results, meta)
    plot(results)


if __name__ == "__main__":
    main()
