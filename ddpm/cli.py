"""The ``ddpm`` command: ``ddpm datasets``, ``ddpm fit``, ``ddpm sample``.

Errors the user can fix (bad data, unknown names, existing outputs, corrupt checkpoints) print one
line ``ddpm: error: ...`` and exit with status 2; nothing is overwritten without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np

import toy_data
from ddpm_ref import SCHEDULES, VAR_TYPES, CheckpointError, MLPConfig, TrainConfig

from . import api


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ddpm", description="Denoising diffusion probabilistic models for 2-D/N-D points.")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("datasets", help="list the built-in toy datasets")

    d_model, d_train = MLPConfig(), TrainConfig()
    f = sub.add_parser("fit", help="fit a model to a dataset and write model, samples, pictures and metrics")
    f.add_argument("dataset", nargs="?", help=f"built-in dataset name ({', '.join(toy_data.NAMES)})")
    f.add_argument("--data", metavar="FILE", help="fit a .npy (N, D) or .csv (D numeric columns) file instead")
    f.add_argument("--out", required=True, metavar="DIR", help="output folder")
    f.add_argument("--steps", type=_positive_int, default=d_train.steps, help="training steps (default %(default)s)")
    f.add_argument("--T", type=_positive_int, default=1000, help="diffusion steps T (default %(default)s)")
    f.add_argument("--schedule", choices=sorted(SCHEDULES), default="linear", help="β schedule (default %(default)s)")
    f.add_argument("--backend", choices=api.BACKENDS, default="numpy", help="compute backend (default %(default)s)")
    f.add_argument("--seed", type=int, default=0, help="seed for data, training and evaluation (default %(default)s)")
    f.add_argument("--batch-size", type=_positive_int, default=d_train.batch_size)
    f.add_argument("--lr", type=float, default=d_train.lr)
    f.add_argument("--hidden", type=_positive_int, default=d_model.hidden, help="hidden width H")
    f.add_argument("--depth", type=_positive_int, default=d_model.depth, help="number of hidden layers")
    f.add_argument("--activation", default=d_model.activation, help="relu, silu, gelu or tanh")
    f.add_argument("--var", choices=VAR_TYPES, default="beta", help="sampling variance σ_t² (default %(default)s)")
    f.add_argument("--n-train", type=_positive_int, default=api.N_TRAIN_DEFAULT,
                   help="points drawn from a built-in dataset for training (default %(default)s)")
    f.add_argument("--resume", metavar="MODEL", help="continue an interrupted fit from its model.npz")
    f.add_argument("--overwrite", action="store_true", help="replace an existing fit in --out")
    f.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="draw points from a fitted model (data coordinates) into a .npy file")
    s.add_argument("model", help="model.npz written by ddpm fit")
    s.add_argument("-n", type=_positive_int, required=True, help="number of points")
    s.add_argument("--out", required=True, metavar="FILE.npy")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--var", choices=VAR_TYPES, default=None, help="sampling variance (default: the fit's)")
    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def _cmd_datasets(args) -> int:
    for name in toy_data.NAMES:
        print(name)
    return 0


def _cmd_fit(args) -> int:
    if (args.dataset is None) == (args.data is None):
        raise ValueError("give either a built-in DATASET name or --data FILE (not both)")
    data = args.data if args.data is not None else args.dataset
    if args.data is None and data not in toy_data.NAMES:
        raise ValueError(f"unknown dataset {data!r}; known datasets: {', '.join(toy_data.NAMES)} "
                         f"(use --data FILE for your own .npy/.csv)")
    model = MLPConfig(dim=1, hidden=args.hidden, depth=args.depth, activation=args.activation)
    train = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr)
    if args.resume is None:
        x_dim = api.resolve_data(data, args.seed, args.n_train)[0].shape[1]
        model = MLPConfig(**{**model.to_dict(), "dim": x_dim})
    res = api.fit(data, args.out, steps=args.steps, T=args.T, schedule=args.schedule, seed=args.seed,
                  backend=args.backend, model=model, train=train, n_train=args.n_train, var_type=args.var,
                  progress=not args.quiet, overwrite=args.overwrite, resume=args.resume)
    m = res.metrics
    print(f"wrote {', '.join(api.OUTPUT_FILES)} to {args.out}")
    print(f"final_loss {m['final_loss']:.4f}  energy_distance {m['energy_distance']:.5f}  "
          f"floor {m['energy_distance_floor']:.5f}  ratio {m['energy_ratio']:.2f}  "
          f"train {m['train_seconds']:.1f}s  sample {m['sample_seconds']:.1f}s")
    return 0


def _cmd_sample(args) -> int:
    if not args.out.endswith(".npy"):
        raise ValueError(f"--out must name a .npy file, got {args.out!r}")
    if os.path.exists(args.out) and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    x = api.sample(args.model, args.n, seed=args.seed, var_type=args.var, use_ema=not args.no_ema)
    folder = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(folder, exist_ok=True)
    tmp = args.out + ".tmp.npy"
    np.save(tmp, x)
    os.replace(tmp, args.out)
    print(json.dumps({"out": args.out, "n": int(x.shape[0]), "dim": int(x.shape[1]),
                      "mean": x.mean(axis=0).round(4).tolist(), "std": x.std(axis=0).round(4).tolist()}))
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    handler = {"datasets": _cmd_datasets, "fit": _cmd_fit, "sample": _cmd_sample}[args.command]
    old_format = warnings.formatwarning
    warnings.formatwarning = lambda msg, cat, *a, **k: f"ddpm: warning: {msg}\n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return handler(args)
    except (ValueError, FileExistsError, CheckpointError, ImportError) as e:
        print(f"ddpm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ddpm: interrupted; the last checkpoint in --out can be resumed with --resume", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = old_format
