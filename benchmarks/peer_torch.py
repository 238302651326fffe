"""A plain, competent PyTorch DDPM — the peer `ddpm fit` is measured against at equal wall time.

Written as one would from Ho et al. 2020: the network family of our default (MLP of 3 hidden SiLU
layers of 128 on [x_t, sinusoidal embedding of t (32)]), ε-prediction with L_simple, T = 1000 linear
β, Adam with global-norm clipping 1.0 and cosine lr decay to 5%, EMA 0.995, batch 512, data
z-scored per coordinate, ancestral sampling (Algorithm 2, σ_t² = β_t). Its lr was tuned once on moons
(1e-3, 2e-3, 4e-3 at a 30 s budget; the measured W2 ratios are in the README). It gets a wall-clock
budget: a short warm-up measures its sampling time, training runs until the rest of the budget is
spent, with the cosine decay spread over that training time.

    python3 benchmarks/peer_torch.py moons --budget 30      # one dataset, prints its statistics
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import ddpm_ref

PEER = {"hidden": 128, "depth": 3, "emb_dim": 32, "T": 1000, "batch": 512, "lr": 2e-3, "lr_final_frac": 0.05,
        "ema": 0.995, "clip": 1.0}


def fit_and_sample(train_x: np.ndarray, n: int, budget_s: float, seed: int = 0, threads: int = 2,
                   lr: float = PEER["lr"]) -> dict:
    """Train the peer on ``train_x`` (N, D) for as many steps as fit in ``budget_s`` seconds (sampling of
    n points included), then draw n samples. Returns samples in data coordinates and the timings."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t_start = time.perf_counter()
    mean, std = train_x.mean(axis=0), train_x.std(axis=0)
    data = torch.tensor((train_x - mean) / std, dtype=torch.float32)
    D = data.shape[1]
    sched = ddpm_ref.make_schedule("linear", PEER["T"])
    emb = torch.tensor(ddpm_ref.timestep_embedding(np.arange(PEER["T"] + 1), PEER["emb_dim"]), dtype=torch.float32)
    sab = torch.tensor(sched.sqrt_alpha_bar, dtype=torch.float32)
    s1m = torch.tensor(sched.sqrt_one_minus_alpha_bar, dtype=torch.float32)
    layers, w = [], D + PEER["emb_dim"]
    for _ in range(PEER["depth"]):
        layers += [torch.nn.Linear(w, PEER["hidden"]), torch.nn.SiLU()]
        w = PEER["hidden"]
    layers.append(torch.nn.Linear(w, D))
    net = torch.nn.Sequential(*layers)
    ema = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step(lr_now):
        for g in opt.param_groups:
            g["lr"] = lr_now
        idx = torch.randint(0, data.shape[0], (PEER["batch"],))
        t = torch.randint(1, PEER["T"] + 1, (PEER["batch"],))
        eps = torch.randn(PEER["batch"], D)
        xt = sab[t, None] * data[idx] + s1m[t, None] * eps
        loss = torch.mean((net(torch.cat([xt, emb[t]], dim=1)) - eps) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), PEER["clip"])
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, list(net.parameters()), 1 - PEER["ema"])
        return loss.item()

    coef = torch.tensor(sched.beta / np.maximum(sched.sqrt_one_minus_alpha_bar, 1e-300), dtype=torch.float32)
    inv_sa = torch.tensor(1 / np.sqrt(sched.alpha), dtype=torch.float32)
    sig = torch.tensor(np.sqrt(sched.beta), dtype=torch.float32)

    @torch.no_grad()
    def sample(m, weights):
        params = list(net.parameters())
        saved = [p.detach().clone() for p in params]
        for p, e in zip(params, weights):
            p.copy_(e)
        x = torch.randn(m, D)
        for t in range(PEER["T"], 0, -1):                           # Algorithm 2
            e = net(torch.cat([x, emb[t].expand(m, -1)], dim=1))
            x = inv_sa[t] * (x - coef[t] * e)
            if t > 1:
                x = x + sig[t] * torch.randn_like(x)
        for p, s in zip(params, saved):
            p.copy_(s)
        return x.numpy().astype(np.float64)

    # warm-up (discarded): a few steps, then the sampling time of n points estimated from 256
    for _ in range(10):
        step(lr)
    t0 = time.perf_counter()
    sample(256, [p.detach() for p in net.parameters()])
    sample_s = (time.perf_counter() - t0) * n / 256
    # restart from a fresh initialisation so the warm-up steps are not counted as training
    for mod in net:
        if isinstance(mod, torch.nn.Linear):
            mod.reset_parameters()
    ema = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    # the cosine decay runs over the training time left (not a step count fixed in advance: this machine's
    # speed drifts, and a fixed count overran its budget by 2× once), and training stops when it is spent
    train_budget = budget_s - (time.perf_counter() - t_start) - sample_s
    t0 = time.perf_counter()
    losses = []
    while True:
        frac = (time.perf_counter() - t0) / train_budget
        if frac >= 1.0 and losses:
            break
        lr_now = lr * (PEER["lr_final_frac"] + (1 - PEER["lr_final_frac"]) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        losses.append(step(lr_now))
    steps = len(losses)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    u = sample(n, ema)
    return {"samples": u * std + mean, "steps": steps, "train_seconds": train_s,
            "sample_seconds": time.perf_counter() - t0, "wall_seconds": time.perf_counter() - t_start,
            "final_loss": float(np.mean(losses[-200:])), "torch": torch.__version__, "threads": threads, "lr": lr}


def main() -> None:
    from ddpm.data import resolve_data
    from ddpm.metrics import sample_statistics

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--budget", type=float, required=True, help="wall seconds (training + sampling)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=PEER["lr"])
    args = p.parse_args()
    train_x, held, refs, _ = resolve_data(args.dataset, args.seed)
    res = fit_and_sample(train_x, refs[0].shape[0], args.budget, args.seed, lr=args.lr)
    st = sample_statistics(res["samples"], held, refs)
    print(f"{args.dataset}: {res['steps']} steps in {res['wall_seconds']:.1f}s  W2/floor {st['w2_ratio']:.2f}  "
          f"MMD²/floor {st['mmd2_ratio']:.2f}  energy/floor {st['energy_ratio']:.2f}")


if __name__ == "__main__":
    main()
