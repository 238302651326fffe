"""The command line under random argument lists built from its real options: usage errors exit 2 and
data errors 1, each with one line and no traceback; no value makes it allocate unboundedly or hang
(huge values are refused before any work)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import ddpm
import ddpm_fast
import ddpm_ref
from ddpm.cli import main


class Reached(BaseException):
    """The command passed every up-front check and began the real work (training / sampling / the bound).
    A BaseException, like KeyboardInterrupt, so the CLI's catch-all for bugs (exit 70) lets it through."""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    ddpm.fit("moons", d / "m", steps=3, T=25, schedule="cosine", model=ddpm_ref.MLPConfig(hidden=6, depth=1),
             n_train=200, n_eval=40, progress=False, backend="numpy")
    np.savetxt(d / "pts.csv", np.random.default_rng(0).normal(size=(50, 2)), delimiter=",")
    x = np.random.default_rng(1).normal(size=(60, 2))
    kinds = np.array(["a", "b", "c"])[np.arange(60) % 3]
    (d / "lab.csv").write_text("u,kind,v\n" + "".join(f"{p[0]},{k},{p[1]}\n" for p, k in zip(x, kinds)))
    ddpm.fit(x, d / "c", y=kinds, steps=3, T=25, model=ddpm_ref.MLPConfig(hidden=6, depth=1), n_eval=40,
             progress=False, backend="numpy")                  # a class-conditional model: classes a, b, c
    return d


def _stop(*a, **k):
    raise Reached


values = st.one_of(st.sampled_from(["0", "-1", "1", "2", "3", "1e3", "0.5", "nan", "inf", "-inf", "", "abc", "10",
                                    "1000", str(10**6), str(10**9), str(10**12), str(10**30), "moons", "linear",
                                    "cosine", "eps", "learned", "ddim", "ode", "trailing", "hybrid", "numba", "x.npy",
                                    "mode", "moon", "kind", "a", "u", "-2"]),
                   st.text(max_size=6))
FIT = ["--steps", "--T", "--schedule", "--backend", "--seed", "--batch-size", "--lr", "--hidden", "--depth",
       "--activation", "--var", "--objective", "--parametrization", "--t-sampling", "--n-train", "--preset",
       "--label", "--p-uncond"]
SAMPLE = ["-n", "--seed", "--var", "--backend", "--sampler", "--steps", "--eta", "--spacing", "--class", "--guidance"]
EVAL = ["-n", "--seed", "--bin-width", "--data"]
FLAGS = ["--quiet", "--overwrite", "--exact", "--no-ema", "--bogus", "--resume"]


@st.composite
def argv(draw, files):
    cmd = draw(st.sampled_from(["fit", "sample", "eval", "datasets", "frobnicate"]))
    opts = {"fit": FIT, "sample": SAMPLE, "eval": EVAL}.get(cmd, [])
    args = [cmd]
    if cmd == "fit":
        args += draw(st.sampled_from([["moons"], ["8gaussians"], ["--data", str(files / "pts.csv")],
                                      ["--data", str(files / "lab.csv")], [], ["nope"]]))
        args += ["--out", str(files / f"out{draw(st.integers(0, 3))}")]
    elif cmd in ("sample", "eval"):
        args += [draw(st.sampled_from([str(files / "m" / "model.npz"), str(files / "c" / "model.npz"),
                                       str(files / "missing.npz")]))]
        args += ["--out", str(files / ("s.npy" if cmd == "sample" else "e.json"))] if draw(st.booleans()) else []
        if cmd == "sample":
            args += ["-n", draw(values)] if draw(st.booleans()) else []
        else:
            args += ["--data", draw(st.sampled_from(["moons", str(files / "pts.csv"), "nowhere"]))]
    for _ in range(draw(st.integers(0, 4))):
        if opts and draw(st.booleans()):
            args.append(draw(st.sampled_from(opts)))
            if draw(st.integers(0, 9)) > 0:                       # sometimes the value is missing
                args.append(draw(values))
        else:
            args.append(draw(st.sampled_from(FLAGS)))
    return args


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
@example(data=None)
def test_random_command_lines_end_in_one_line_or_real_work(files, data, monkeypatch, capsys):
    for target, name in ((ddpm_fast, "train"), (ddpm_fast, "p_sample_loop"), (ddpm_fast, "ddim_sample_loop"),
                         (ddpm_ref, "ode_sample"), (ddpm.evaluation, "likelihood_bound")):
        monkeypatch.setattr(target, name, _stop)
    if data is None:                                              # the huge values, each alone
        cases = [["fit", "moons", "--out", str(files / "h"), "--hidden", str(10**6)],
                 ["fit", "moons", "--out", str(files / "h"), "--T", str(10**9)],
                 ["fit", "moons", "--out", str(files / "h"), "--steps", str(10**12)],
                 ["fit", "moons", "--out", str(files / "h"), "--n-train", str(10**12)],
                 ["fit", "moons", "--out", str(files / "h"), "--batch-size", str(10**12)],
                 ["fit", "moons", "--out", str(files / "h"), "--depth", str(10**6)],
                 ["sample", str(files / "m" / "model.npz"), "-n", str(10**12), "--out", str(files / "s.npy")],
                 ["eval", str(files / "m" / "model.npz"), "--data", "moons", "-n", str(10**12)]]
        for args in cases:
            assert main(args) == 2, args
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "GiB" in err[0], (args, err)
        return
    args = data.draw(argv(files))
    capsys.readouterr()                                           # drop what earlier examples printed
    try:
        rc = main(args)
    except Reached:
        return
    except SystemExit as e:                                       # argparse: usage errors and --help
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc in (0, 1, 2), (args, rc)                           # 70 would be a bug of ours
    if rc != 0:
        assert len(err.splitlines()) == 1 and err.startswith("ddpm: error:"), (args, err)
    assert "Traceback" not in err
