"""GPU benchmark: the cupy backend's fused kernels vs a plain CuPy/cuBLAS path and PyTorch (eager and
CUDA graphs) on the same model (the default MLP: 2-D, 3 × 128 SiLU, 32-dim time embedding), T = 1000.

    python3 benchmarks/gpu_bench.py [--quick] [--out benchmarks/results/gpu_bench]

Training: steps/s at batch 256, 4,096 and 65,536 (fused: K steps in one CUDA graph, draws in-kernel,
"tc" = hidden-layer products on tensor cores in 3×TF32, "simt" = float32 FMAs;
baseline: CuPy array ops with device draws; PyTorch: the same step with torch.optim.Adam, clipping and
an EMA, eager and captured in a CUDA graph). Sampling: 10^4 and 10^6 points × 1,000 ancestral steps
(fused: one launch, "tc" = hidden layers on tensor cores in 3×TF32, "simt" = plain float32 FMAs;
PyTorch eager and one CUDA graph of the whole chain). Achieved GFLOP/s against the device's fp32 peak
(SMs × 128 lanes × 2 × clock): training = 3 × the forward pass (2 × multiply-adds of the MLP per point);
sampling = the forward pass less layer 0's embedding product (2·E·H per point-step), which the fused
sampler replaces by a per-step table (``ddpm_fast.time_table``) — counting it (8,192 of 74,752 FLOP per
point-step for the default model) would inflate its GFLOP/s by 12% — and every sampler row is credited
with the same useful FLOPs.
Every row is checked after it is timed: its outputs are finite and, for our training paths, the loss
falls (the fused path: the mean loss of its last replay of the same K draws below that of its first;
the baseline: the last third of its steps below the first third). A failed check or measurement is
recorded in the results (``errors``, each row's ``check``), never fatal.
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


def host(a) -> np.ndarray:
    """A CuPy array's values on the host (NumPy arrays as they are: the emulator's launcher uses them)."""
    return a.get() if hasattr(a, "get") else np.asarray(a)


def train_check(first_losses, last_losses, *arrays) -> str | None:
    """None when the losses and ``arrays`` are finite and the mean loss fell from ``first_losses`` to
    ``last_losses``; else what is wrong."""
    first, last = np.asarray(first_losses, dtype=np.float64), np.asarray(last_losses, dtype=np.float64)
    if not (np.isfinite(first).all() and np.isfinite(last).all()):
        return "non-finite loss"
    if not all(bool(np.isfinite(np.asarray(a)).all()) for a in arrays):
        return "non-finite weights"
    if not last.mean() < first.mean():
        return f"loss did not fall: mean {first.mean():.4g} -> {last.mean():.4g}"
    return None


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
    """(run, check): run = K fused steps (one CUDA graph replay, in-kernel draws: the same K draws every
    replay, so the loss means of two replays are comparable); check = ``train_check`` of the first
    replay's losses against the latest's."""
    lau = gpu._cupy_launcher(CFG.hidden)
    xp = lau.xp
    sched = ddpm_ref.make_schedule("linear", T)
    tcfg = ddpm_ref.TrainConfig(batch_size=batch)
    rng = np.random.default_rng(0)
    state = ddpm_ref.init_state(CFG, rng)
    data = rng.standard_normal((100_000, 2))
    eng = gpu.TrainEngine(CFG, batch, data, sched, lau, kernel)
    eng.set_chunk(K, seed=12345)
    eng.lrs[...] = 1e-3
    theta, m, s, ema = (xp.asarray(gpu.pack(d, eng.widths, np.float32))
                        for d in (state["params"], state["opt"]["m"], state["opt"]["s"], state["ema"]))
    thetaT = eng.transposed(theta)
    first = []

    def run():
        eng.run(theta, thetaT, m, s, ema, tcfg, use_graph=True)
        if not first:
            first.append(host(eng.losses).copy())

    return run, lambda: train_check(first[0], host(eng.losses), host(theta), host(ema))


def baseline_train(batch, K):
    import cupy as cp
    sched = ddpm_ref.make_schedule("linear", T)
    tcfg = ddpm_ref.TrainConfig(batch_size=batch)
    rng = np.random.default_rng(0)
    state = ddpm_ref.init_state(CFG, rng)
    data = rng.standard_normal((100_000, 2))
    out = {}

    def run():
        out["last"] = gpu.train_baseline(state, data, sched, CFG, tcfg, rng, K, xp=cp, draws="device")

    def check():
        new, losses = out["last"]
        n = max(len(losses) // 3, 1)
        return train_check(losses[:n], losses[-n:], *new["params"].values())
    return run, check


def fused_sample(n, kernel):
    import cupy as cp
    sched = ddpm_ref.make_schedule("linear", T)
    params = ddpm_ref.init_params(CFG, np.random.default_rng(0))
    x = cp.asarray(np.random.default_rng(1).standard_normal((n, 2)))
    t_steps, c_x, c_eps, sigma = ancestral_coefficients(sched, "beta")
    out = {}

    def run():
        out["x"] = gpu.run_sampler(params, CFG, x, t_steps, c_x, c_eps, sigma, None, 7, device_out=True,
                                   kernel=kernel)
    return run, lambda: finite_check(out["x"], "sample coordinates")


def finite_check(x, what: str) -> str | None:
    """None when every entry of the CuPy array or torch tensor ``x`` is finite; else how many are not."""
    if hasattr(x, "isfinite"):                                  # a torch tensor
        bad = int((~x.isfinite()).sum())
    else:
        import cupy as cp
        bad = int((~cp.isfinite(cp.asarray(x))).sum())
    return None if bad == 0 else f"{bad} non-finite {what}"


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

        def check():
            return next(filter(None, (finite_check(p.detach(), "weights") for p in model.parameters())), None)

        if not graph:
            return (lambda: [step() for _ in range(K)]), check
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step()
        return (lambda: [g.replay() for _ in range(K)]), check

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
            out = {}

            def run():
                out["y"] = chain()
            return run, lambda: finite_check(out["y"], "sample coordinates")
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            chain()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            y = chain()                                    # the graph's output tensor, rewritten by each replay
        return g.replay, lambda: finite_check(y, "sample coordinates")

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
    flops_pt = ddpm_ref.mlp.flops_per_point(CFG)                       # one forward pass, per point
    flops_sample = flops_pt - 2 * CFG.emb_dim * CFG.hidden             # less layer 0's embedding product
    peer = torch_peer()
    rows = []
    reps = 2 if args.quick else 3

    errors = []

    def add(task, backend, make, n_reps, sync_, units, unit, flops_per_unit):
        """``make()`` -> (run, check); time ``run`` (``units`` units a call), then ``check()`` its outputs.
        A failure is recorded, not fatal: one run on a lent GPU must bring back every number it can."""
        try:
            run, check = make()
            sec_per_unit = timed(run, n_reps, sync_) / units
        except Exception as e:                                        # noqa: BLE001 — reported below
            errors.append(f"{task} / {backend}: {type(e).__name__}: {e}")
            print("FAILED", errors[-1], flush=True)
            write()
            return
        try:
            problem = check()
        except Exception as e:                                        # noqa: BLE001
            problem = f"check raised {type(e).__name__}: {e}"
        if problem:
            errors.append(f"{task} / {backend}: check failed: {problem}")
            print("CHECK FAILED", errors[-1], flush=True)
        gf = flops_per_unit / sec_per_unit / 1e9
        rows.append({"task": task, "backend": backend, "per_second": 1 / sec_per_unit, "unit": unit,
                     "gflops": gf, "frac_peak": gf / dev["fp32_peak_gflops"], "check": problem or "ok"})
        print(f"{task:28s} {backend:16s} {1 / sec_per_unit:12.4g} {unit:14s} {gf:9.1f} GFLOP/s"
              f"{'' if not problem else '  CHECK FAILED'}", flush=True)
        write()

    def write():
        info = {"device": dev, "pytorch": peer["version"] if peer else "not available: skipped",
                "model": CFG.to_dict(), "T": T, "flops_per_point": {"train_step": 3 * flops_pt,
                                                                    "sample_step": flops_sample},
                "rows": rows, "errors": errors}
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".json", "w") as f:
            json.dump(info, f, indent=2)

    for batch in (256, 4096, 65536):
        K = {256: 200, 4096: 200, 65536: 50}[batch] // (4 if args.quick else 1)
        task = f"train batch {batch:,}"
        for kernel in gpu.TRAIN_KERNELS:
            add(task, f"cupy fused {kernel}", lambda: fused_train(batch, K, kernel), reps, sync, K,
                "steps/s", 3 * flops_pt * batch)
        Kb = max(K // 4, 5)
        add(task, "cupy baseline", lambda: baseline_train(batch, Kb), reps, sync, Kb, "steps/s",
            3 * flops_pt * batch)
        if peer:
            for graph in (False, True):
                add(task, "pytorch graph" if graph else "pytorch eager", lambda: peer["train"](batch, K, graph),
                    reps, peer["sync"], K, "steps/s", 3 * flops_pt * batch)

    for n in (10_000, 1_000_000):
        task = f"sample {n:,} x {T} steps"
        r = 1 if n > 10_000 else reps                       # 10^6 × 1,000: one warm-up and one timed run
        for kernel in sorted(gpu.SAMPLER_KERNELS):
            add(task, f"cupy fused {kernel}", lambda: fused_sample(n, kernel), r, sync, n * T,
                "point-steps/s", flops_sample)
        if peer:
            for graph in (False, True):
                add(task, "pytorch graph" if graph else "pytorch eager", lambda: peer["sample"](n, graph),
                    r, peer["sync"], n * T, "point-steps/s", flops_sample)

    write()
    info = {"pytorch": peer["version"] if peer else "not available: skipped"}
    by_task = {}
    for r in rows:
        by_task.setdefault(r["task"], {})[r["backend"]] = r
    lines = [f"Device: {dev['name']} ({dev['sms']} SMs, {dev['clock_mhz']:.0f} MHz; fp32 peak "
             f"{dev['fp32_peak_gflops'] / 1e3:.1f} TFLOP/s); CuPy {dev['cupy']}; PyTorch: {info['pytorch']}.", "",
             f"GFLOP/s: training {3 * flops_pt:,} FLOP per point-step, sampling {flops_sample:,} (no embedding "
             "product: the fused sampler reads it from a table).", "",
             "| task | backend | rate | GFLOP/s | % of fp32 peak | × PyTorch eager | outputs |",
             "|---|---|---|---|---|---|---|"]
    for task, d in by_task.items():
        for name, r in d.items():
            ratio = r["per_second"] / d["pytorch eager"]["per_second"] if "pytorch eager" in d else float("nan")
            lines.append(f"| {task} | {name} | {r['per_second']:.4g} {r['unit']} | {r['gflops']:.0f} | "
                         f"{100 * r['frac_peak']:.1f}% | {ratio:.2f} | {r['check']} |")
    table = "\n".join(lines)
    if errors:
        table += "\n\nFailed measurements and checks:\n" + "\n".join(f"- {e}" for e in errors)
    with open(args.out + ".md", "w") as f:
        f.write("`python3 benchmarks/gpu_bench.py`\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
