"""The ``ddpm`` command: ``ddpm datasets``, ``ddpm fit``, ``ddpm sample``, ``ddpm eval``.

Errors the user can fix print one line ``ddpm: error: ...``: usage errors (unknown names, impossible
settings, existing outputs) exit with status 2, data errors (a bad data file, a corrupt checkpoint, a
diverged fit, a full disk) with status 1; nothing is overwritten without ``--overwrite``. A usage error is
a ``ValueError`` (or ``FileExistsError``, ``ImportError``) that our own code raises on purpose, with its
message, at a ``raise`` statement in one of the project's packages. Anything else — an exception raised
inside NumPy or another library, a ``TypeError``, an ``IndexError``, a failed ``assert`` — is a bug in
``ddpm``: one line says so and names a file holding the traceback and the versions (status 70, sysexits'
EX_SOFTWARE); the traceback stays out of the terminal.
"""

from __future__ import annotations

import argparse
import json
import linecache
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import replace

import numpy as np

import ddpm_fast
import ddpm_ref
import toy_data
from ddpm_ref import OBJECTIVES, PARAMETRIZATIONS, SCHEDULES, VAR_TYPES, CheckpointError, GeneralTrainConfig, MLPConfig

from . import evaluation, fitting, sampling
from .data import N_EVAL, N_TRAIN_DEFAULT
from .guards import DivergenceError
from .metrics import EVAL_MODES, FIT_EVAL_MODES
from .model import load_model
from .outdir import OUTPUT_FILES, atomic, write_json
from .plots import save_profile_plot
from .presets import preset_kwargs
from .recipe import MIN_STEPS
from .runtime import BACKENDS
from .sampling import FEW_STEPS, SAMPLERS, SOLVER_STEPS, default_sampler
from .show import show


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line ``ddpm: error: ...`` (status 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"ddpm: error: {message} (see {self.prog} --help)\n")


def _image_shape(s: str) -> tuple:
    try:
        h, w = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 8x8, got {s!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"expected positive H and W, got {s!r}")
    return h, w


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ddpm", description="Denoising diffusion probabilistic models for 2-D/N-D points.")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("datasets", help="list the built-in toy datasets")

    d_model, d_train = MLPConfig(), GeneralTrainConfig()
    f = sub.add_parser("fit", help="fit a model to a dataset and write model, samples, pictures and metrics")
    f.add_argument("dataset", nargs="?", help=f"built-in dataset name ({', '.join(toy_data.ALL_NAMES)})")
    f.add_argument("--data", metavar="FILE", help="fit a .npy (N, D) or .csv (D numeric columns) file instead")
    f.add_argument("--out", required=True, metavar="DIR", help="output folder")
    # Settings default to None ("not given"): a fresh fit fills in the defaults shown, a resumed fit the
    # checkpoint's, and a given setting that contradicts the checkpoint is refused (ddpm.fit).
    f.add_argument("--steps", type=_positive_int, default=None, help=f"training steps (default: 16 per training point, "
                   f"{MIN_STEPS:,}..{d_train.steps:,}; {d_train.steps:,} for a built-in generator)")
    f.add_argument("--T", type=_positive_int, default=None, help="diffusion steps T (default 1000)")
    f.add_argument("--schedule", choices=sorted(SCHEDULES), default=None, help="β schedule (default: cosine for 2-D and 3-D data, else linear; see ddpm.default_recipe)")
    f.add_argument("--backend", choices=BACKENDS, default=None,
                   help="compute backend (default: numba when installed and it implements the settings, else numpy)")
    f.add_argument("--seed", type=int, default=None,
                   help="seed for data, training and evaluation (default 0; a resumed fit: its own)")
    f.add_argument("--batch-size", type=_positive_int, default=None, help=f"(default {d_train.batch_size})")
    f.add_argument("--lr", type=float, default=None, help=f"Adam step size at the start (default {d_train.lr})")
    f.add_argument("--hidden", type=_positive_int, default=None,
                   help=f"hidden width H (default {d_model.hidden}; 192 for data of more than 32 coordinates)")
    f.add_argument("--depth", type=_positive_int, default=None,
                   help=f"number of hidden layers (default {d_model.depth})")
    f.add_argument("--activation", default=None, help=f"relu, silu, gelu or tanh (default {d_model.activation})")
    f.add_argument("--fourier", type=int, default=None,
                   help="octaves K of input Fourier features sin/cos(2^k x), k < K; 0: the network sees x alone "
                        "(default: 6 for 2-D and 3-D data, else 0; see ddpm.default_recipe)")
    f.add_argument("--var", choices=VAR_TYPES, default=None,
                   help=f"reverse variance σ_t²: fixed beta or beta_tilde, or learned (needs --objective hybrid "
                        f"or vlb) (default {d_train.var_type})")
    f.add_argument("--objective", choices=OBJECTIVES, default=None,
                   help=f"training loss (default {d_train.objective}; hybrid goes with --var learned)")
    f.add_argument("--parametrization", choices=PARAMETRIZATIONS, default=None,
                   help=f"what the network predicts (default {d_train.parametrization})")
    f.add_argument("--t-sampling", choices=("uniform", "importance"), default=None,
                   help="how t is drawn in training; importance is for --objective vlb (default uniform)")
    f.add_argument("--n-train", type=_positive_int, default=None,
                   help=f"points drawn from a built-in dataset for training (default {N_TRAIN_DEFAULT}; "
                        f"a resumed fit: its own)")
    f.add_argument("--bin-width", type=float, default=None,
                   help="quantised data: the grid's width (default: 1 when every value is an integer, else "
                        "continuous; 0: continuous); training dequantises, samples are rounded to the grid")
    f.add_argument("--image-shape", type=_image_shape, default=None, metavar="HxW",
                   help="draw samples.png as HxW images (H·W = D)")
    f.add_argument("--preset", choices=("sohl_dickstein",), default=None,
                   help="a named experiment: sohl_dickstein = T 40, β_t = 1/(T−t+1), μ + learned variance, "
                        "trained on the bound; overrides --T/--schedule/--objective/--parametrization/--var")
    f.add_argument("--label", default=None, metavar="LABEL",
                   help="fit a class-conditional model: the label of a labelled built-in ("
                        + ", ".join(f"{k}: {v}" for k, v in toy_data.LABELS.items())
                        + ") or the label column of --data FILE (header name or 0-based index)")
    f.add_argument("--p-uncond", type=float, default=None,
                   help="with --label: share of labels dropped in training, for guidance (default 0.1)")
    f.add_argument("--resume", metavar="MODEL",
                   help="continue an interrupted fit from its model.npz (its stored settings are used)")
    f.add_argument("--overwrite", action="store_true", help="replace an existing fit in --out")
    f.add_argument("--eval", choices=FIT_EVAL_MODES, default="fast",
                   help="how the samples and the held-out bound are measured: fast (floors of built-in data cached, "
                        "the bound from 32 stratified t per point, each with its standard error), full (every floor "
                        "drawn afresh, the bound over all T steps) or none (default %(default)s)")
    f.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="draw points from a fitted model (data coordinates) into a .npy file")
    s.add_argument("model", help="model.npz written by ddpm fit")
    s.add_argument("-n", type=_positive_int, required=True, help="number of points")
    s.add_argument("--out", required=True, metavar="FILE.npy")
    s.add_argument("--seed", type=int, default=0, help="seed of the sampler's noise (default %(default)s; recorded in the output line)")
    s.add_argument("--var", choices=VAR_TYPES, default=None, help="sampling variance (default: the fit's)")

    s.add_argument("--no-ema", action="store_true", help="use the raw weights instead of their EMA")
    s.add_argument("--backend", choices=BACKENDS, default=None, help="compute backend (default: as fit)")
    s.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="Algorithm 2 (ancestral), DDIM, the probability-flow ODE (RK4), or a few-step solver of that "
                        "ODE: DPM-Solver++(2M) dpmpp2m, (2S) dpmpp2s, UniPC unipc, Heun (EDM) heun. Default: ancestral "
                        f"over all T steps; with --steps K ≤ {FEW_STEPS}, {default_sampler(FEW_STEPS)} "
                        "(the best of benchmarks/few_step.py)")
    s.add_argument("--steps", type=_positive_int, default=None,
                   help="reverse steps K ≤ T (ancestral, ddim: default T), network calls (solvers: default "
                        f"{SOLVER_STEPS}) or RK4 steps (ode: default 100)")
    s.add_argument("--eta", type=float, default=0.0, help="DDIM's η in [0, 1] (default %(default)s)")
    s.add_argument("--spacing", choices=ddpm_ref.SPACINGS + ddpm_ref.SOLVER_SPACINGS, default=None,
                   help="ancestral and ddim: which K of the T steps, even (default), leading, trailing or quad; "
                        "solvers: logsnr, time or karras (default: logsnr; dpmpp2s and heun: karras)")
    s.add_argument("--class", dest="klass", default=None, metavar="NAME",
                   help="a model fitted with --label: draw from this class (default: the whole data)")
    s.add_argument("--guidance", type=float, default=0.0, metavar="W",
                   help="classifier-free guidance weight w with --class (default %(default)s: the conditional model)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="likelihood bound (bits/dim) and sample statistics of a fitted model on data")
    e.add_argument("model", help="model.npz written by ddpm fit")
    e.add_argument("--data", required=True, help="built-in dataset name (fresh points) or a .npy/.csv file")
    e.add_argument("-n", type=_positive_int, default=N_EVAL, help="points to evaluate (default %(default)s)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--bin-width", type=float, default=None,
                   help="discretised decoder with this bin width (data units; Ho's Eq. 13 without ±∞ edge bins); default: continuous")
    e.add_argument("--exact", action="store_true",
                   help="also the exact NLL under the probability-flow ODE (D backward passes per step); with a "
                        "bin width (given, or a quantised model's grid) the dequantised ODE bound on the bin's probability")
    e.add_argument("--out", metavar="FILE.json", help="also write the JSON here (default: next to the model)")
    e.add_argument("--eval", choices=EVAL_MODES, default="full",
                   help="full: every floor drawn afresh, the bound over all T steps; fast: cached floors of built-in "
                        "data and 32 stratified t per point, each with its standard error (default %(default)s)")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    w = sub.add_parser("show", help="pictures of the diffusion: forward and reverse grids, the reverse chain as a GIF, "
                                    "the learned field, per-t profiles, schedules")
    w.add_argument("model", help="model.npz written by ddpm fit")
    w.add_argument("--out", required=True, metavar="DIR", help="output folder for the six pictures")
    w.add_argument("--data", default=None,
                   help="built-in dataset name or .npy/.csv file to push through q and draw behind the reverse "
                        "chain (default: the model's built-in training set, else its own samples)")
    w.add_argument("-n", type=_positive_int, default=2000, help="points in the grids (default %(default)s)")
    w.add_argument("--n-gif", type=_positive_int, default=500, help="points in the animation (default %(default)s)")
    w.add_argument("--n-bound", type=_positive_int, default=200,
                   help="points in the bound's per-t profile, the slowest picture (default %(default)s)")
    w.add_argument("--seed", type=int, default=0, help="seed of every draw in the pictures (default %(default)s)")
    w.add_argument("--class", dest="klass", default=None, metavar="NAME",
                   help="a model fitted with --label: draw this class's guided chain and field")
    w.add_argument("--guidance", type=float, default=0.0, metavar="W", help="guidance weight w (default %(default)s)")
    w.add_argument("--overwrite", action="store_true", help="replace existing pictures in --out")
    return p


def _cmd_datasets(args) -> int:
    for name in toy_data.NAMES:
        print(name)
    for name, info in toy_data.FIXED_INFO.items():
        n, d = info["shape"]
        print(f"{name}  (fixed, {n:,} × {d}, needs scikit-learn): {info['description']}")
    return 0


def _cmd_fit(args) -> int:
    if (args.dataset is None) == (args.data is None):
        raise ValueError("give either a built-in DATASET name or --data FILE (not both)")
    data = args.data if args.data is not None else args.dataset
    if args.data is None and data not in toy_data.ALL_NAMES:
        raise ValueError(f"unknown dataset {data!r}; known datasets: {', '.join(toy_data.ALL_NAMES)} "
                         f"(use --data FILE for your own .npy/.csv)")
    given_model = {k: v for k, v in (("hidden", args.hidden), ("depth", args.depth),
                                      ("activation", args.activation), ("fourier", args.fourier)) if v is not None}
    given_train = {k: v for k, v in (("batch_size", args.batch_size), ("lr", args.lr), ("objective", args.objective),
                                      ("parametrization", args.parametrization), ("var_type", args.var),
                                      ("t_sampling", args.t_sampling)) if v is not None}
    kw = dict(T=args.T, schedule=args.schedule)
    if args.preset is not None:
        kw.update(preset_kwargs(args.preset))
        given_train = {**{k: getattr(kw["train"], k) for k in ("objective", "parametrization", "var_type")},
                       **{k: v for k, v in given_train.items() if k in ("batch_size", "lr", "t_sampling")}}
    if args.resume is not None:
        # the checkpoint's settings, with the ones given on the command line laid over them
        stored = load_model(args.resume)
        model = replace(stored.cfg, **given_model) if given_model else None
        train = replace(stored.tcfg, **given_train) if given_train else None
    else:
        model = given_model or None                                   # fit lays them over its defaults
        train = given_train or None                                   # fit lays them over its defaults
    kw["train"] = train
    if args.bin_width is not None:
        kw["bin_width"] = args.bin_width
    if args.image_shape is not None:
        kw["image_shape"] = args.image_shape
    res = fitting.fit(data, args.out, steps=args.steps, seed=args.seed, backend=args.backend, model=model,
                      n_train=args.n_train, progress=not args.quiet, overwrite=args.overwrite, resume=args.resume,
                      eval=args.eval, label=args.label, p_uncond=args.p_uncond, **kw)
    m = res.metrics
    if res.model.info.get("classes"):
        print(f"classes ({args.label}): {', '.join(res.model.info['classes'])}  (ddpm sample --class NAME)")
    written = [f for f in OUTPUT_FILES if os.path.exists(os.path.join(args.out, f))]
    print(f"wrote {', '.join(written)} to {args.out}")
    if m.get("eval") == "none":
        print(f"final_loss {m['final_loss']:.4f}  (--eval none: no statistics, no bound)  "
              f"train {m['train_seconds']:.1f}s  sample {m['sample_seconds']:.1f}s")
        return 0
    print(f"final_loss {m['final_loss']:.4f}  ratios to the data's own floor (n = {m['n_samples']}): "
          f"energy {m['energy_ratio']:.2f}  W2 {m['w2_ratio']:.2f}  MMD² {m['mmd2_ratio']:.2f}  "
          f"held-out bound {m['bound_bits_per_dim']:.3f} bits/dim  "
          f"train {m['train_seconds']:.1f}s  sample {m['sample_seconds']:.1f}s")
    return 0


def _cmd_sample(args) -> int:
    if not args.out.endswith(".npy"):
        raise ValueError(f"--out must name a .npy file, got {args.out!r}")
    if os.path.exists(args.out) and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    summary = sampling.sample_to_file(args.model, args.n, args.out, seed=args.seed, progress=not args.quiet,
                                      var_type=args.var, use_ema=not args.no_ema, backend=args.backend,
                                      sampler=args.sampler, steps=args.steps, eta=args.eta, spacing=args.spacing,
                                      y=args.klass, guidance=args.guidance)
    print(json.dumps(summary))
    return 0


def _cmd_eval(args) -> int:
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.model)), "eval.json")
    if os.path.exists(out) and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it (or --out elsewhere)")
    data = args.data
    if data not in toy_data.ALL_NAMES and not os.path.exists(data):
        raise ValueError(f"--data {data!r} is neither a built-in dataset ({', '.join(toy_data.ALL_NAMES)}) nor a file")
    res = evaluation.evaluate(args.model, data, seed=args.seed, n=args.n, bin_width=args.bin_width, exact=args.exact,
                              eval=args.eval)
    atomic(out, lambda p: write_json(p, res))
    try:
        atomic(os.path.splitext(out)[0] + "_profile.png", lambda p: save_profile_plot(p, res))
    except ImportError:
        pass
    print(json.dumps({k: v for k, v in res.items() if k != "profile_bits_per_dim"}, indent=2))
    print(f"wrote {out}")
    return 0


def _cmd_show(args) -> int:
    res = show(args.model, args.out, data=args.data, n=args.n, n_gif=args.n_gif, n_bound=args.n_bound,
               seed=args.seed, overwrite=args.overwrite, y=args.klass, guidance=args.guidance)
    print(f"wrote {', '.join(res.files)} to {args.out} in {sum(res.seconds.values()):.1f}s")
    return 0


EXIT_BUG = 70                                  # sysexits.h EX_SOFTWARE: an internal error, not the user's
_OUR_PACKAGES = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                      for m in (sys.modules["ddpm"], ddpm_ref, ddpm_fast, toy_data))


def _raised_on_purpose(e: BaseException) -> bool:
    """True when ``e`` comes from a ``raise`` statement in one of our packages (a check that refuses the
    user's input, with its message), not from inside a library or from a line of ours that is not a raise
    (NumPy's "could not broadcast" out of an assignment is a bug of ours, even though it is a ValueError)."""
    tb = e.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = os.path.abspath(tb.tb_frame.f_code.co_filename)
    if not path.startswith(_OUR_PACKAGES):
        return False
    return linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).lstrip().startswith("raise")


def bug_report(e: BaseException, argv) -> str:
    """Write the traceback of an internal error, the command line and the versions to a new file in the
    temporary folder; return its path."""
    import numpy
    lines = [f"ddpm bug report, {time.strftime('%Y-%m-%d %H:%M:%S')}",
             f"command: ddpm {' '.join(argv)}",
             f"python {platform.python_version()} on {platform.platform()}; numpy {numpy.__version__}"]
    for name in ("scipy", "numba", "ot", "cupy"):
        mod = sys.modules.get(name)
        if mod is not None:
            lines.append(f"{name} {getattr(mod, '__version__', '?')}")
    lines.append("")
    lines.extend(traceback.format_exception(type(e), e, e.__traceback__))
    fd, path = tempfile.mkstemp(prefix="ddpm-bug-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
    return path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    handler = {"datasets": _cmd_datasets, "fit": _cmd_fit, "sample": _cmd_sample, "eval": _cmd_eval,
               "show": _cmd_show}[args.command]
    old_format = warnings.formatwarning
    warnings.formatwarning = lambda msg, cat, *a, **k: f"ddpm: warning: {msg}\n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return handler(args)
    except (toy_data.DataError, CheckpointError, DivergenceError) as e:
        print(f"ddpm: error: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileExistsError, ImportError) as e:
        if not _raised_on_purpose(e):
            return _report_bug(e, argv)
        print(f"ddpm: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:                          # unwritable folder, full disk, ...: nothing half-written is left
        print(f"ddpm: error: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ddpm: interrupted; the last checkpoint in --out can be resumed with --resume", file=sys.stderr)
        return 130
    except Exception as e:                        # anything else is a bug of ours
        return _report_bug(e, argv)
    finally:
        warnings.formatwarning = old_format


def _report_bug(e: BaseException, argv) -> int:
    try:
        where = f"the details are in {bug_report(e, argv)}; please attach that file to a bug report"
    except OSError:                               # no temporary folder: the one line must still come out
        where = "no report file could be written"
    first = (str(e).splitlines() or [""])[0]
    print(f"ddpm: internal error (a bug in ddpm, not in your input): {type(e).__name__}: {first}; {where}",
          file=sys.stderr)
    return EXIT_BUG
