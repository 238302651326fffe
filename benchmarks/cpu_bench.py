"""CPU speed, side by side in one run: NumPy reference vs Numba (ddpm_fast) vs PyTorch eager (optional peer).

Training steps/s at batch 32, 256, 2048 (and of the default 2-D network, with its 6 Fourier octaves, at
batch 128, 256, 512, 1024: numba only) and sampling point-steps/s for 10,000 and 100,000 points,
each with achieved GFLOP/s and its fraction of this machine's measured sgemm GFLOP/s. Every fast
function is first checked against the reference on the same inputs (the registry of
``ddpm_fast.registry``), then timed; compilation is excluded (warm-up); each figure is the median
of several runs. PyTorch uses the same architecture, batch, Adam, clipping and EMA; it is skipped,
with a note, when not installed (``pip install torch==2.13.0``).

    python3 benchmarks/cpu_bench.py [--quick]

Writes benchmarks/results/cpu_bench.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import ddpm_fast
import ddpm_ref
from ddpm_fast.registry import REGISTRY, TOLERANCES

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = ddpm_ref.MLPConfig()          # Ho et al.'s network at our sizes: 3 × 128 SiLU, embedding 32, D = 2, x alone
                                    # (the default 2-D fit adds 6 Fourier octaves: 26 inputs instead of 2)
T = 1000


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


def sgemm_gflops(n: int = 2048, reps: int = 5) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.copy()
    a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def median_time(fn, reps: int) -> float:
    fn()                                                                   # warm-up (compilation)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def validate(entry, size) -> None:
    """The fast function equals the reference on these inputs (float32 tolerance) before it is timed."""
    make, kw = entry.make_inputs(size, np.random.default_rng(0))
    ref = entry.reference(*make(), **kw)
    fast = entry.fast(*make(), **kw, backend="numba", dtype=np.float32)
    for a, b in zip(entry.outputs(ref), entry.outputs(fast)):
        np.testing.assert_allclose(b, a, **TOLERANCES["float32"])           # element-wise, as the parity tests


# --- the PyTorch peer -----------------------------------------------------------------------------------

def torch_peer(threads: int, cfg=None):
    cfg = cfg or CFG
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    sched = ddpm_ref.make_schedule("linear", T)
    emb = torch.tensor(ddpm_ref.timestep_embedding(np.arange(T + 1), cfg.emb_dim), dtype=torch.float32)
    sab = torch.tensor(sched.sqrt_alpha_bar, dtype=torch.float32)
    s1m = torch.tensor(sched.sqrt_one_minus_alpha_bar, dtype=torch.float32)
    layers = []
    w = cfg.dim + cfg.emb_dim
    for _ in range(cfg.depth):
        layers += [torch.nn.Linear(w, cfg.hidden), torch.nn.SiLU()]
        w = cfg.hidden
    layers.append(torch.nn.Linear(w, cfg.dim))
    net = torch.nn.Sequential(*layers)
    ema = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    data = torch.randn(10000, cfg.dim)

    def train(batch: int, steps: int):
        for _ in range(steps):
            idx = torch.randint(0, data.shape[0], (batch,))
            t = torch.randint(1, T + 1, (batch,))
            eps = torch.randn(batch, cfg.dim)
            xt = sab[t, None] * data[idx] + s1m[t, None] * eps
            out = net(torch.cat([xt, emb[t]], dim=1))
            loss = torch.mean((out - eps) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema, list(net.parameters()), 1 - 0.995)

    coef = torch.tensor(sched.beta / np.maximum(sched.sqrt_one_minus_alpha_bar, 1e-300), dtype=torch.float32)
    inv_sa = torch.tensor(1 / np.sqrt(sched.alpha), dtype=torch.float32)
    sig = torch.tensor(np.sqrt(sched.beta), dtype=torch.float32)

    @torch.no_grad()
    def sample(n: int, steps: int):
        x = torch.randn(n, cfg.dim)
        for t in range(steps, 0, -1):
            e = net(torch.cat([x, emb[t].expand(n, -1)], dim=1))
            x = (x - coef[t] * e) * inv_sa[t]
            if t > 1:
                x = x + sig[t] * torch.randn_like(x)
        return x

    return {"train": train, "sample": sample, "version": torch.__version__, "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "cpu_bench"))
    args = p.parse_args()
    reps = 2 if args.quick else 5
    threads = os.cpu_count() or 1
    gemm = sgemm_gflops()
    flops_pt = ddpm_ref.mlp.flops_per_point(CFG)                     # forward, per point
    entries = {e.name: e for e in REGISTRY}
    peer = torch_peer(threads)
    rows = []

    # training: forward + backward ≈ 3× the forward FLOPs
    for batch in (32, 256, 2048):
        steps = {32: 400, 256: 100, 2048: 15}[batch] // (4 if args.quick else 1)
        size = {"hidden": CFG.hidden, "depth": CFG.depth, "activation": CFG.activation, "batch": batch,
                "T": T, "steps": 3, "dim": CFG.dim, "emb_dim": CFG.emb_dim}
        validate(entries["train"], size)
        make, _ = entries["train"].make_inputs({**size, "steps": steps}, np.random.default_rng(1))
        res = {}
        res["numpy"] = median_time(lambda: ddpm_ref.train(*make()), max(1, reps // 2)) / steps
        res["numba"] = median_time(lambda: ddpm_fast.train(*make(), backend="numba"), reps) / steps
        if peer:
            res["pytorch"] = median_time(lambda: peer["train"](batch, steps), reps) / steps
        for name, sec in res.items():
            gf = 3 * flops_pt * batch / sec / 1e9
            rows.append({"task": f"train batch {batch}", "backend": name, "per_second": 1 / sec, "unit": "steps/s",
                         "gflops": gf, "frac_sgemm": gf / gemm})

    # training the default 2-D network (6 Fourier octaves: 26 inputs) at the batches around the default 512
    cfg2 = ddpm_ref.MLPConfig(fourier=6)
    flops2 = ddpm_ref.mlp.flops_per_point(cfg2)
    for batch in (128, 256, 512, 1024):
        steps = max(20, 100_000 // batch) // (4 if args.quick else 1)
        size = {"hidden": cfg2.hidden, "depth": cfg2.depth, "activation": cfg2.activation, "batch": batch,
                "T": T, "steps": 3, "dim": cfg2.dim, "emb_dim": cfg2.emb_dim, "fourier": cfg2.fourier}
        validate(entries["train"], size)
        make, _ = entries["train"].make_inputs({**size, "steps": steps}, np.random.default_rng(1))
        sec = median_time(lambda: ddpm_fast.train(*make(), backend="numba"), reps) / steps
        gf = 3 * flops2 * batch / sec / 1e9
        rows.append({"task": f"train batch {batch}, default 2-D network", "backend": "numba", "per_second": 1 / sec,
                     "unit": "steps/s", "gflops": gf, "frac_sgemm": gf / gemm})

    # sampling: point-steps/s over `steps` reverse steps
    for n in (10_000, 100_000):
        steps = (100 if n == 10_000 else 20) // (2 if args.quick else 1)
        validate(entries["p_sample_loop"], {"hidden": CFG.hidden, "depth": CFG.depth, "activation": CFG.activation,
                                            "T": 30, "n_points": 200, "dim": CFG.dim, "emb_dim": CFG.emb_dim})
        sched = ddpm_ref.make_schedule("linear", steps) if steps > 20 else ddpm_ref.make_schedule("cosine", steps)
        params = ddpm_ref.init_params(CFG, np.random.default_rng(0))
        x = np.random.default_rng(1).standard_normal((n, CFG.dim))
        res = {}
        res["numpy"] = median_time(lambda: ddpm_ref.p_sample_loop(ddpm_ref.network(params, CFG), sched, x, rng=np.random.default_rng(2)),
                                   1) / (n * steps)
        res["numba"] = median_time(lambda: ddpm_fast.p_sample_loop(ddpm_ref.network(params, CFG), sched, x, rng=np.random.default_rng(2),
                                                                   backend="numba"), reps) / (n * steps)
        if peer:
            res["pytorch"] = median_time(lambda: peer["sample"](n, steps), reps) / (n * steps)
        for name, sec in res.items():
            gf = flops_pt / sec / 1e9
            rows.append({"task": f"sample {n:,} points", "backend": name, "per_second": 1 / sec,
                         "unit": "point-steps/s", "gflops": gf, "frac_sgemm": gf / gemm})

    # D = 64 (8×8 images): training at the default batch and sampling 10,000 points
    cfg64 = ddpm_ref.MLPConfig(dim=64)
    peer64 = torch_peer(threads, cfg64)
    flops64 = ddpm_ref.mlp.flops_per_point(cfg64)
    size = {"hidden": cfg64.hidden, "depth": cfg64.depth, "activation": cfg64.activation, "batch": 512,
            "T": T, "steps": 3, "dim": 64, "emb_dim": cfg64.emb_dim}
    validate(entries["train"], size)
    steps = 60 // (4 if args.quick else 1)
    make, _ = entries["train"].make_inputs({**size, "steps": steps}, np.random.default_rng(1))
    res = {"numpy": median_time(lambda: ddpm_ref.train(*make()), 1) / steps,
           "numba": median_time(lambda: ddpm_fast.train(*make(), backend="numba"), reps) / steps}
    if peer64:
        res["pytorch"] = median_time(lambda: peer64["train"](512, steps), reps) / steps
    for name, sec in res.items():
        gf = 3 * flops64 * 512 / sec / 1e9
        rows.append({"task": "train batch 512, D = 64", "backend": name, "per_second": 1 / sec, "unit": "steps/s",
                     "gflops": gf, "frac_sgemm": gf / gemm})
    n, steps = 10_000, 50 // (2 if args.quick else 1)
    validate(entries["p_sample_loop"], {"hidden": cfg64.hidden, "depth": cfg64.depth, "activation": cfg64.activation,
                                        "T": 30, "n_points": 200, "dim": 64, "emb_dim": cfg64.emb_dim})
    sched = ddpm_ref.make_schedule("linear", steps)
    params = ddpm_ref.init_params(cfg64, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((n, 64))
    res = {"numpy": median_time(lambda: ddpm_ref.p_sample_loop(ddpm_ref.network(params, cfg64), sched, x, rng=np.random.default_rng(2)),
                                1) / (n * steps),
           "numba": median_time(lambda: ddpm_fast.p_sample_loop(ddpm_ref.network(params, cfg64), sched, x, rng=np.random.default_rng(2),
                                                                backend="numba"), reps) / (n * steps)}
    if peer64:
        res["pytorch"] = median_time(lambda: peer64["sample"](n, steps), reps) / (n * steps)
    for name, sec in res.items():
        gf = flops64 / sec / 1e9
        rows.append({"task": "sample 10,000 points, D = 64", "backend": name, "per_second": 1 / sec,
                     "unit": "point-steps/s", "gflops": gf, "frac_sgemm": gf / gemm})

    # sgemm again after the runs: the shared machine drifts; every fraction is taken of the higher of the two
    gemm_after = sgemm_gflops()
    if gemm_after > gemm:
        for r in rows:
            r["frac_sgemm"] = r["gflops"] / gemm_after
    gemm_before, gemm = gemm, max(gemm, gemm_after)
    info = {"machine": machine(), "sgemm_gflops": gemm, "sgemm_gflops_before": gemm_before,
            "sgemm_gflops_after": gemm_after, "threads": threads,
            "pytorch": peer["version"] if peer else "not installed (pip install torch==2.13.0): skipped",
            "model": CFG.to_dict(), "notes": "numba kernels run with one BLAS thread; the sampler uses "
                                              f"{threads} numba threads; PyTorch uses {threads} threads",
            "rows": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(info, f, indent=2)
    by_task = {}
    for r in rows:
        by_task.setdefault(r["task"], {})[r["backend"]] = r
    lines = [f"Machine: {info['machine'].get('cpu_model', info['machine']['processor'])}, {threads} cores; "
             f"measured sgemm {gemm_before:.0f} GFLOP/s before the runs and {gemm_after:.0f} after (fractions of the "
             f"higher); PyTorch: {info['pytorch']}.", "",
             "| task | backend | rate | GFLOP/s | % of sgemm | × PyTorch | × NumPy |", "|---|---|---|---|---|---|---|"]
    for task, d in by_task.items():
        for name, r in d.items():
            vs_torch = r["per_second"] / d["pytorch"]["per_second"] if "pytorch" in d else float("nan")
            vs_np = r["per_second"] / d["numpy"]["per_second"] if "numpy" in d else float("nan")
            lines.append(f"| {task} | {name} | {r['per_second']:.4g} {r['unit']} | {r['gflops']:.1f} | "
                         f"{100 * r['frac_sgemm']:.0f}% | {vs_torch:.2f} | {vs_np:.2f} |")
    table = "\n".join(lines)
    with open(args.out + ".md", "w") as f:
        f.write("`python3 benchmarks/cpu_bench.py`\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
