"""Ablation of the default 2-D recipe: one row per change, each a whole default `ddpm.fit` on the panel's
hardest sets, every statistic a ratio to its floor (as in quality_panel.py).

    python3 benchmarks/ablation.py [--datasets clusters swiss_roll] [--seed 0]

Rows, in order: Ho et al.'s recipe as this library's default was before (x alone, linear schedule,
lr 2e-3, 12,000 steps), then the changes that were kept, added one at a time, ending at today's
default (``ddpm.default_recipe`` for 2-D data with ``TrainConfig()``'s lr and steps); then single
changes to the default that were tried and not kept. Writes benchmarks/results/ablation.{json,md}.
Run it alone: the two cores are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import ddpm
import ddpm.guards
import ddpm.recipe
from ddpm_ref import GeneralTrainConfig, MLPConfig, TrainConfig

HERE = os.path.dirname(os.path.abspath(__file__))
OLD = {"fourier": 0, "schedule": "linear", "lr": 2e-3, "steps": 12000}
NEW = {"fourier": 6, "schedule": "cosine", "max_beta": ddpm.recipe.cosine_cap(1000), "lr": 4e-3, "steps": 16000}
ROWS = [
    ("Ho et al. as before: x alone, linear, lr 2e-3, 12k steps", OLD),
    ("+ Fourier features, 6 octaves", {**OLD, "fourier": 6}),
    ("+ cosine schedule (β_t ≤ 0.999, the paper's cap)", {**OLD, "fourier": 6, "schedule": "cosine"}),
    ("+ lr 4e-3", {**OLD, "fourier": 6, "schedule": "cosine", "lr": 4e-3}),
    ("+ 16k steps", {**NEW, "max_beta": 0.999}),
    ("+ β_t ≤ 0.99", {**NEW, "max_beta": 0.99}),
    (f"+ β_t ≤ {NEW['max_beta']:g}: ᾱ_T = 1e-4, DDIM and the ODE stay sane (today's default)", NEW),
    ("default, linear schedule instead of cosine", {**NEW, "schedule": "linear"}),
    ("default, 4 octaves", {**NEW, "fourier": 4}),
    ("default, 8 octaves", {**NEW, "fourier": 8}),
    ("default, lr 8e-3", {**NEW, "lr": 8e-3}),
    ("default, lr 8e-3, β_t ≤ 0.999", {**NEW, "lr": 8e-3, "max_beta": 0.999}),
    ("default, σ² = β̃ (var beta_tilde)", {**NEW, "var_type": "beta_tilde"}),
    ("default, EMA decay 0.999", {**NEW, "ema_decay": 0.999}),
    ("default, batch 256 (×2 steps, same work)", {**NEW, "batch_size": 256, "steps": 32000}),
    ("default, depth 4", {**NEW, "depth": 4}),
]


def run(name: str, setting: dict, seed: int) -> dict:
    model = MLPConfig(fourier=setting["fourier"], depth=setting.get("depth", MLPConfig().depth))
    train = GeneralTrainConfig(**{k: setting[k] for k in ("steps", "lr", "batch_size", "ema_decay", "var_type") if k in setting})
    t0 = time.perf_counter()
    try:
        sp = {"max_beta": setting["max_beta"]} if setting["schedule"] == "cosine" and "max_beta" in setting else None
        res = ddpm.fit(name, seed=seed, progress=False, model=model, train=train, schedule=setting["schedule"],
                       schedule_params=sp)
    except ddpm.guards.DivergenceError as e:                  # a result too: this change is not stable
        return {"diverged": str(e), "wall": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    m = res.metrics
    return {"w2_ratio": m["w2_ratio"], "mmd2_ratio": m["mmd2_ratio"], "energy_ratio": m["energy_ratio"],
            "train_seconds": m["train_seconds"], "wall": wall}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["clusters", "swiss_roll"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    results = []
    for label, setting in ROWS:
        row = {"change": label, "setting": setting}
        for name in args.datasets:
            row[name] = run(name, setting, args.seed)
            print(f"{label} | {name}: " + "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in row[name].items()), flush=True)
        results.append(row)
    out = os.path.join(HERE, "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "ablation.json"), "w") as f:
        json.dump({"seed": args.seed, "datasets": args.datasets, "rows": results}, f, indent=1)
    head = " | ".join(f"{n} W2 / MMD² / energy" for n in args.datasets)
    lines = [f"`python3 benchmarks/ablation.py` (seed {args.seed}, {os.cpu_count()} CPUs, {platform.platform()}); "
             "ratios to the floor; train = training seconds of the fit", "",
             f"| change | {head} | train (s) |", "|---" * (len(args.datasets) + 2) + "|"]
    for row in results:
        cells = [("diverged (non-finite samples)" if "diverged" in row[n] else
                  f"{row[n]['w2_ratio']:.2f} / {row[n]['mmd2_ratio']:.2f} / {row[n]['energy_ratio']:.2f}")
                 for n in args.datasets]
        secs = [row[n]["train_seconds"] for n in args.datasets if "train_seconds" in row[n]]
        lines.append(f"| {row['change']} | " + " | ".join(cells) + f" | {secs[0] if secs else float('nan'):.1f} |")
    with open(os.path.join(out, "ablation.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
