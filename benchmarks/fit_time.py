"""A default ``ddpm fit``'s wall time, phase by phase, next to this machine's sgemm in the same run.

Runs ``python -m ddpm fit NAME --out DIR`` as a user would (a fresh process: imports, Numba's cached
kernels, data, training, sampling, statistics, held-out bound, pictures), measures its wall time and
splits it with the phase timings that ``fit`` writes to metrics.json:

    training    train_seconds        (Algorithm 1, the compiled chunks)
    sampling    sample_seconds       (Algorithm 2 for the evaluation samples)
    statistics  statistics_seconds   (energy, W2, MMD², sliced and marginal statistics)
    bound       bound_seconds        (the held-out bound; in the fast mode it runs beside the statistics,
                                      so statistics + bound can exceed the evaluation's wall time)
    evaluation  eval_seconds         (statistics and bound together, wall clock)
    pictures    reverse_png_seconds  (the 2-D reverse grid)
    start-up    the rest: interpreter, imports, kernel loading, data, samples/loss pictures, files

sgemm (float32, 2048², NumPy's BLAS) is measured before and after the fits; the time target of
issue 21 is ≤ 12 s at sgemm ≥ 180 GFLOP/s, or ≤ 12 × 180/sgemm s below that (``budget_s``).

    python3 benchmarks/fit_time.py [NAME ...] [--eval fast|full|none] [--repeat R]

Writes benchmarks/results/fit_time.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cpu_bench import machine, sgemm_gflops  # noqa: E402

DEFAULT_SETS = ("moons", "8gaussians", "checkerboard", "swiss_roll", "word", "grid", "clusters")
PHASES = (("training", "train_seconds"), ("sampling", "sample_seconds"), ("statistics", "statistics_seconds"),
          ("bound", "bound_seconds"), ("pictures", "reverse_png_seconds"))
TARGET_S, TARGET_SGEMM = 12.0, 180.0


def budget(sgemm: float) -> float:
    """The wall-time target at this sgemm: 12 s at ≥ 180 GFLOP/s, scaled by 180/sgemm below."""
    return TARGET_S * max(1.0, TARGET_SGEMM / sgemm)


def time_fit(name: str, eval_mode: str, extra: list) -> dict:
    """One default fit in a fresh process: its wall time, the phases from metrics.json and its ratios."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "run")
        cmd = [sys.executable, "-m", "ddpm", "fit", name, "--out", out, "--eval", eval_mode, *extra]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
        with open(os.path.join(out, "metrics.json")) as f:
            m = json.load(f)
    row = {"dataset": name, "wall_s": round(wall, 2), "steps": m["steps"], "backend": m["backend"],
           "eval": m["eval"]}
    for label, key in PHASES:
        row[label + "_s"] = m.get(key)
    row["evaluation_s"] = m.get("eval_seconds")
    known = sum(v for v in (row["training_s"], row["sampling_s"], row["evaluation_s"], row["pictures_s"]) if v)
    row["startup_s"] = round(wall - known, 2)
    for k in ("w2_ratio", "mmd2_ratio", "energy_ratio", "bound_bits_per_dim"):
        row[k] = m.get(k)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(DEFAULT_SETS))
    ap.add_argument("--eval", default="fast", choices=("fast", "full", "none"))
    ap.add_argument("--repeat", type=int, default=1, help="fits per data set (the median wall time is kept)")
    ap.add_argument("--tag", default="", help="suffix of the result files (default: none)")
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []          # after --: more `ddpm fit` options
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    subprocess.run([sys.executable, "-m", "ddpm", "fit", "moons", "--out", tempfile.mkdtemp(), "--steps", "500",
                    "--eval", "none"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # compile once
    s0 = sgemm_gflops()
    rows = []
    for name in a.names:
        runs = sorted((time_fit(name, a.eval, extra) for _ in range(a.repeat)), key=lambda r: r["wall_s"])
        rows.append(runs[len(runs) // 2])
        print(json.dumps(rows[-1]), flush=True)
    s1 = sgemm_gflops()
    sgemm = min(s0, s1)
    res = {"machine": machine(), "sgemm_gflops_before": round(s0, 1), "sgemm_gflops_after": round(s1, 1),
           "budget_s": round(budget(sgemm), 2), "eval": a.eval, "extra": extra, "rows": rows}
    tag = f"_{a.tag}" if a.tag else ""
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"fit_time{tag}.json"), "w") as f:
        json.dump(res, f, indent=1)
    fmt = lambda v, p=2: "–" if v is None else f"{v:.{p}f}"
    lines = [f"# A default `ddpm fit`, phase by phase (`python3 benchmarks/fit_time.py {' '.join(sys.argv[1:])}`)", "",
             f"sgemm {s0:.0f} GFLOP/s before, {s1:.0f} after; target ≤ {res['budget_s']:.1f} s wall "
             f"(12 s at sgemm ≥ 180); eval mode {a.eval}; {res['machine']['cpus']} CPUs. Seconds; the bound runs beside "
             "the statistics in the fast mode, so evaluation (their wall clock) can be less than their sum.", "",
             "| data | wall | training | sampling | statistics | bound | evaluation | pictures | start-up | "
             "W2 / floor | MMD² / floor | steps |", "|---" * 12 + "|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | **{fmt(r['wall_s'], 1)}** | {fmt(r['training_s'])} | {fmt(r['sampling_s'])} | "
                     f"{fmt(r['statistics_s'])} | {fmt(r['bound_s'])} | {fmt(r['evaluation_s'])} | "
                     f"{fmt(r['pictures_s'])} | {fmt(r['startup_s'])} | {fmt(r['w2_ratio'])} | {fmt(r['mmd2_ratio'])} | "
                     f"{r['steps']} |")
    with open(os.path.join(HERE, "results", f"fit_time{tag}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
