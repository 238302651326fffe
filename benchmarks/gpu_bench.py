"""GPU benchmark: the cupy backend's fused kernels vs a plain CuPy/cuBLAS path and PyTorch (eager and
CUDA graphs) on the same model (the default MLP: 2-D, 3 × 128 SiLU, 32-dim time embedding), T = 1000.

    python3 benchmarks/gpu_bench.py [--quick] [--out benchmarks/results/gpu_bench]

Training: steps/s at batch 256, 4,096 and 65,536 (fused: K steps in one CUDA graph, draws in-kernel,
"tc" = hidden-layer products on tensor cores in 3×TF32, "simt" = float32 FMAs;
baseline: CuPy array ops with device draws; PyTorch: the same step with torch.optim.Adam, clipping and
an EMA, eager and captured in a CUDA graph). Sampling: 10^4 and 10^6 points × 1,000 ancestral steps
(fused: one launch, "tc" = hidden layers on tensor cores in 3×TF32, "simt" = plain float32 FMAs;
PyTorch eager and one CUDA graph of the whole chain). Achieved GFLOP/s (forward = 2 × multiply-adds of
the MLP per point, training = 3 × forward) against the device's fp32 peak (SMs × 128 lanes × 2 × clock).
PyTorch runs in its default float32 (TF32 matrix products off), the accuracy our 3×TF32 and SIMT
kernels keep. Medians of several timed runs after a warm-up (compilation and capture excluded). The device is named
in the results. Needs CuPy and a GPU; PyTorch is optional (skipped with a note if absent).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import ddpm_ref  # noqa: E402
from ddpm_fast import ancestral_coefficients, gpu  # noqa: E402

CFG = ddpm_ref.MLPConfig(dim=2, hidden=128, depth=3, activation="silu", emb_dim=32)
T = 1000


def device_info():
    import cupy as cp
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    sms = int(props.get("multiProcessorCount") or cp.cuda.runtime.deviceGetAttribute(16, 0))
    clock_khz = props.get("clockRate")                     # removed from cudaDeviceProp in CUDA 13
    if not clock_khz:
        try:
            clock_khz = cp.cuda.runtime.deviceGetAttribute(13, 0)   # cudaDevAttrClockRate (kHz)
        except Exception:                                  # noqa: BLE001
            clock_khz = 1_980_000 if ("H100" in name or "H200" in name) else 0   # their boost clock
    clock_khz = int(clock_khz)
    peak = sms * 128 * 2 * clock_khz * 1e3 / 1e9          # GFLOP/s, fp32 FMA lanes (sm_80/sm_90: 128 per SM)
    return {"name": name, "sms": sms, "clock_mhz": clock_khz / 1e3, "fp32_peak_gflops": peak,
            "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(), "cupy": cp.__version__}


def timed(fn, reps, sync):
    fn()
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


# --- ours ---------------------------------------------------------------------------------------------

def fused_train(batch, K, kernel):
    """A callable running K fused steps (one CUDA graph replay, in-kernel draws)."""
    lau = gpu._cupy_launcher(CFG.hidden)
    xp = lau.xp
    sched = ddpm_ref.make_schedule("linear", T)
    tcfg = ddpm_ref.TrainConfig(batch_size=batch)
    rng = np.random.default_rng(0)
    state = ddpm_ref.init_state(CFG, rng, T)
    data = rng.standard_normal((100_000, 2))
    eng = gpu.TrainEngine(CFG, batch, data, sched, lau, kernel)
    eng.set_chunk(K, seed=12345)
    eng.lrs[...] = 1e-3
    theta, m, v, ema = (xp.asarray(gpu.pack(d, eng.widths, np.float32))
                        for d in (state["params"], state["opt"]["m"], state["opt"]["v"], state["ema"]))
    thetaT = eng.transposed(theta)
    replay = lau.graph(lambda: eng.enqueue(theta, thetaT, m, v, ema, tcfg))
    return lambda: (replay(), eng, theta, thetaT, m, v, ema)[0]   # the graph uses these buffers: keep them alive


def baseline_train(batch, K):
    import cupy as cp
    sched = ddpm_ref.make_schedule("linear", T)
    tcfg = ddpm_ref.TrainConfig(batch_size=batch)
    rng = np.random.default_rng(0)
    state = ddpm_ref.init_state(CFG, rng, T)
    data = rng.standard_normal((100_000, 2))
    return lambda: gpu.train_baseline(state, data, sched, CFG, tcfg, rng, K, xp=cp, draws="device")


def fused_sample(n, kernel):
    import cupy as cp
    sched = ddpm_ref.make_schedule("linear", T)
    params = ddpm_ref.init_params(CFG, np.random.default_rng(0))
    x = cp.asarray(np.random.default_rng(1).standard_normal((n, 2)))
    t_steps, c_x, c_eps, sigma = ancestral_coefficients(sched, "beta")
    return lambda: gpu.run_sampler(params, CFG, x, t_steps, c_x, c_eps, sigma, None, 7, device_out=True,
                                   kernel=kernel)


# --- PyTorch ----------------------------------------------------------------------------------------------

def torch_peer():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    dev = torch.device("cuda")
    sched = ddpm_ref.make_schedule("linear", T)
    tt = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32, device=dev)
    emb = tt(ddpm_ref.timestep_embedding(np.arange(T + 1), CFG.emb_dim))
    sab, s1m = tt(sched.sqrt_alpha_bar), tt(sched.sqrt_one_minus_alpha_bar)
    coef = tt(sched.beta / np.maximum(sched.sqrt_one_minus_alpha_bar, 1e-300))
    inv_sa, sig = tt(1 / np.sqrt(sched.alpha)), tt(np.sqrt(sched.beta))

    def net():
        layers, w = [], CFG.dim + CFG.emb_dim
        for _ in range(CFG.depth):
            layers += [torch.nn.Linear(w, CFG.hidden), torch.nn.SiLU()]
            w = CFG.hidden
        layers.append(torch.nn.Linear(w, CFG.dim))
        return torch.nn.Sequential(*layers).to(dev)

    def trainer(batch, K, graph):
        model = net()
        ema = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graph)
        data = torch.randn(100_000, CFG.dim, device=dev)

        def step():
            idx = torch.randint(0, data.shape[0], (batch,), device=dev)
            t = torch.randint(1, T + 1, (batch,), device=dev)
            eps = torch.randn(batch, CFG.dim, device=dev)
            xt = sab[t, None] * data[idx] + s1m[t, None] * eps
            loss = torch.mean((model(torch.cat([xt, emb[t]], dim=1)) - eps) ** 2)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
            opt.step()
            opt.zero_grad(set_to_none=not graph)
            with torch.no_grad():
                torch._foreach_lerp_(ema, list(model.parameters()), 1 - 0.995)

        if not graph:
            return lambda: [step() for _ in range(K)]
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step()
        return lambda: [g.replay() for _ in range(K)]

    def sampler(n, graph):
        model = net()
        x = torch.randn(n, CFG.dim, device=dev)

        @torch.no_grad()
        def chain():
            y = x.clone()
            for t in range(T, 0, -1):
                e = model(torch.cat([y, emb[t].expand(n, -1)], dim=1))
                y = (y - coef[t] * e) * inv_sa[t]
                if t > 1:
                    y = y + sig[t] * torch.randn_like(y)
            return y

        if not graph:
            return chain
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            chain()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            chain()
        return g.replay

    return {"train": trainer, "sample": sampler, "sync": torch.cuda.synchronize, "version": torch.__version__}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer and shorter runs (a smoke run)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "gpu_bench"))
    args = p.parse_args()
    if gpu.gpu_status():
        sys.exit(f"gpu_bench: {gpu.gpu_status()}; nothing measured")
    import cupy as cp

    sync = cp.cuda.Device().synchronize
    dev = device_info()
    flops_pt = ddpm_ref.mlp.flops_per_point(CFG)
    peer = torch_peer()
    rows = []
    reps = 2 if args.quick else 3

    errors = []

    def add(task, backend, measure, units, unit, flops_per_unit):
        """Run ``measure()`` (seconds for ``units`` units); a failure is recorded, not fatal: one run
        on a lent GPU must bring back every number it can."""
        try:
            sec_per_unit = measure() / units
        except Exception as e:                                        # noqa: BLE001 — reported below
            errors.append(f"{task} / {backend}: {type(e).__name__}: {e}")
            print("FAILED", errors[-1], flush=True)
            return
        gf = flops_per_unit / sec_per_unit / 1e9
        rows.append({"task": task, "backend": backend, "per_second": 1 / sec_per_unit, "unit": unit,
                     "gflops": gf, "frac_peak": gf / dev["fp32_peak_gflops"]})
        print(f"{task:28s} {backend:16s} {1 / sec_per_unit:12.4g} {unit:14s} {gf:9.1f} GFLOP/s", flush=True)
        write()

    def write():
        info = {"device": dev, "pytorch": peer["version"] if peer else "not available: skipped",
                "model": CFG.to_dict(), "T": T, "rows": rows, "errors": errors}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".json", "w") as f:
            json.dump(info, f, indent=2)

    for batch in (256, 4096, 65536):
        K = {256: 200, 4096: 200, 65536: 50}[batch] // (4 if args.quick else 1)
        task = f"train batch {batch:,}"
        for kernel in gpu.TRAIN_KERNELS:
            add(task, f"cupy fused {kernel}", lambda: timed(fused_train(batch, K, kernel), reps, sync), K,
                "steps/s", 3 * flops_pt * batch)
        Kb = max(K // 4, 5)
        add(task, "cupy baseline", lambda: timed(baseline_train(batch, Kb), reps, sync), Kb, "steps/s",
            3 * flops_pt * batch)
        if peer:
            for graph in (False, True):
                add(task, "pytorch graph" if graph else "pytorch eager",
                    lambda: timed(peer["train"](batch, K, graph), reps, peer["sync"]), K, "steps/s",
                    3 * flops_pt * batch)

    for n in (10_000, 1_000_000):
        task = f"sample {n:,} x {T} steps"
        r = 1 if n > 10_000 else reps                       # 10^6 × 1,000: one warm-up and one timed run
        for kernel in sorted(gpu.SAMPLER_KERNELS):
            add(task, f"cupy fused {kernel}", lambda: timed(fused_sample(n, kernel), r, sync), n * T,
                "point-steps/s", flops_pt)
        if peer:
            for graph in (False, True):
                add(task, "pytorch graph" if graph else "pytorch eager",
                    lambda: timed(peer["sample"](n, graph), r, peer["sync"]), n * T, "point-steps/s", flops_pt)

    write()
    info = {"pytorch": peer["version"] if peer else "not available: skipped"}
    by_task = {}
    for r in rows:
        by_task.setdefault(r["task"], {})[r["backend"]] = r
    lines = [f"Device: {dev['name']} ({dev['sms']} SMs, {dev['clock_mhz']:.0f} MHz; fp32 peak "
             f"{dev['fp32_peak_gflops'] / 1e3:.1f} TFLOP/s); CuPy {dev['cupy']}; PyTorch: {info['pytorch']}.", "",
             "| task | backend | rate | GFLOP/s | % of fp32 peak | × PyTorch eager |", "|---|---|---|---|---|---|"]
    for task, d in by_task.items():
        for name, r in d.items():
            ratio = r["per_second"] / d["pytorch eager"]["per_second"] if "pytorch eager" in d else float("nan")
            lines.append(f"| {task} | {name} | {r['per_second']:.4g} {r['unit']} | {r['gflops']:.0f} | "
                         f"{100 * r['frac_peak']:.1f}% | {ratio:.2f} |")
    table = "\n".join(lines)
    if errors:
        table += "\n\nFailed measurements:\n" + "\n".join(f"- {e}" for e in errors)
    with open(args.out + ".md", "w") as f:
        f.write("`python3 benchmarks/gpu_bench.py`\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
