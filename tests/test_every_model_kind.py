"""Every command on every kind of model that ``ddpm fit`` writes, end to end through the CLI.

Kinds: 2-D, N-D, N-D with a constant column, quantised (integers, with a constant column), and images
(``--image-shape``, integer pixels with constant corners, as the digits). For each: ``ddpm sample`` with
every sampler, streamed in several chunks and with ``--steps``; ``ddpm eval`` with and without
``--exact``; ``ddpm show``; and ``ddpm fit --resume`` after an interruption. The checks are on values:
the data's columns with the constants restored exactly, the grid for quantised data, the same points as
``ddpm.sample`` with the same seed, the same numbers as ``ddpm.evaluate``, the same weights as the
uninterrupted fit. (``ddpm sample`` once streamed chunks sized by the modelled columns and crashed on
every model with a constant column, while ``fit``'s own samples were right.)
"""

import json
import shutil

import numpy as np
import pytest

import ddpm
import ddpm_fast
from ddpm import api, sampling
from ddpm.cli import main

T, STEPS = 30, 200
CONST = {"const": {1: 2.5}, "quant": {3: 7.0}, "image": {0: 0.0, 3: 0.0, 12: 0.0, 15: 0.0}}
KINDS = ("2d", "nd", "const", "quant", "image")


def _data(kind: str) -> np.ndarray:
    rng = np.random.default_rng(KINDS.index(kind))
    if kind == "2d":
        return rng.standard_normal((400, 2)) * [1.0, 0.3] + [5.0, -2.0]
    if kind == "nd":
        return rng.standard_normal((400, 5)) @ rng.standard_normal((5, 5))
    if kind == "const":
        x = rng.standard_normal((400, 4))
    elif kind == "quant":
        x = np.round(rng.standard_normal((400, 5)) * 3)
    else:
        x = np.round(rng.random((400, 16)) * 16)
    for j, v in CONST[kind].items():
        x[:, j] = v
    return x


def _extra(kind: str) -> list:
    return ["--image-shape", "4x4"] if kind == "image" else []


def _fit_argv(kind, data, out, steps=STEPS):
    return ["fit", "--data", str(data), "--out", str(out), "--T", str(T), "--steps", str(steps), "--quiet",
            *_extra(kind)]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """{kind: (data file, model.npz)}: each fitted through the CLI."""
    root = tmp_path_factory.mktemp("kinds")
    out = {}
    for kind in KINDS:
        f = root / f"{kind}.npy"
        np.save(f, _data(kind))
        assert main(_fit_argv(kind, f, root / kind)) == 0, kind
        out[kind] = (f, root / kind / "model.npz")
    return out


def test_fit_records_the_kind_it_was_given(fitted):
    for kind, (_, path) in fitted.items():
        m = ddpm.load_model(path)
        x = _data(kind)
        assert m.norm.data_dim == x.shape[1]
        assert m.norm.constant_columns == CONST.get(kind, {}), kind
        assert m.cfg.dim == x.shape[1] - len(CONST.get(kind, {}))
        assert (m.info["grid"] is not None) == (kind in ("quant", "image")), kind
        assert m.info["image_shape"] == ([4, 4] if kind == "image" else None)


SAMPLERS = {
    "ancestral": ([], {}),
    "ancestral-respaced": (["--sampler", "ancestral", "--steps", "7", "--spacing", "trailing"],
                           {"sampler": "ancestral", "steps": 7, "spacing": "trailing"}),
    "default-few-step": (["--steps", "6"], {"steps": 6}),
    "dpmpp2m": (["--sampler", "dpmpp2m", "--steps", "5", "--spacing", "time"],
                {"sampler": "dpmpp2m", "steps": 5, "spacing": "time"}),
    "heun": (["--sampler", "heun", "--steps", "5"], {"sampler": "heun", "steps": 5}),
    "ancestral-beta_tilde": (["--var", "beta_tilde"], {"var_type": "beta_tilde"}),
    "ddim": (["--sampler", "ddim", "--steps", "7"], {"sampler": "ddim", "steps": 7}),
    "ddim-eta1": (["--sampler", "ddim", "--steps", "7", "--eta", "1"], {"sampler": "ddim", "steps": 7, "eta": 1.0}),
    "ode": (["--sampler", "ode", "--steps", "5"], {"sampler": "ode", "steps": 5}),
}


@pytest.mark.parametrize("kind", KINDS)
def test_sample_streams_the_data_columns_on_the_grid_and_equals_ddpm_sample(fitted, kind, tmp_path, monkeypatch,
                                                                              capsys):
    data, path = fitted[kind]
    monkeypatch.setattr(sampling, "SAMPLE_CHUNK", 40)              # 100 points in three chunks: 40, 40, 20
    x = _data(kind)
    m = ddpm.load_model(path)
    for name, (argv, kw) in SAMPLERS.items():
        f = tmp_path / f"{name}.npy"
        assert main(["sample", str(path), "-n", "100", "--out", str(f), "--seed", "3", "--quiet", *argv]) == 0, name
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        s = np.load(f)
        assert s.shape == (100, x.shape[1]) and summary["dim"] == x.shape[1], name
        for j, v in CONST.get(kind, {}).items():                 # constants restored exactly
            assert np.all(s[:, j] == v), (name, j)
        modelled = [j for j in range(x.shape[1]) if j not in CONST.get(kind, {})]
        assert np.all(s[:, modelled].std(axis=0) > 0), name
        if kind in ("quant", "image"):                            # on the grid, inside the data's range
            np.testing.assert_array_equal(s, np.round(s), err_msg=name)
            assert np.all(s >= x.min(axis=0)) and np.all(s <= x.max(axis=0)), name
        for k, (lo, hi) in enumerate([(0, 40), (40, 80), (80, 100)]):
            seed_k = 3 if k == 0 else np.random.SeedSequence([3, k])
            np.testing.assert_array_equal(s[lo:hi], ddpm.sample(m, hi - lo, seed=seed_k, **kw), err_msg=f"{name} {k}")
        np.testing.assert_allclose(summary["mean"], s.mean(axis=0).round(4), atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_eval_with_and_without_exact_gives_the_api_numbers(fitted, kind, tmp_path, capsys):
    data, path = fitted[kind]
    for exact in (False, True):
        out = tmp_path / f"eval-{exact}.json"
        assert main(["eval", str(path), "--data", str(data), "-n", "60", "--out", str(out),
                     *(["--exact"] if exact else [])]) == 0, exact
        got = json.loads(out.read_text())
        want = ddpm.evaluate(path, str(data), n=60, exact=exact)
        for key in ("bound_bits_per_dim", "energy_distance", "energy_distance_floor", "w2", "mmd2"):
            assert got[key] == pytest.approx(want[key], rel=1e-12), (key, exact)
        assert got["dim"] == ddpm.load_model(path).cfg.dim                          # bits per modelled dimension
        assert got["decoder"] == ("discretized" if kind in ("quant", "image") else "gaussian")
        if exact:
            assert got["ode_nll_bits_per_dim"] == pytest.approx(want["ode_nll_bits_per_dim"], rel=1e-12)
            assert got["ode_decoder"] == ("dequantized" if kind in ("quant", "image") else "gaussian")
        else:
            assert "ode_nll_bits_per_dim" not in got


@pytest.mark.parametrize("kind", KINDS)
def test_show_draws_every_picture(fitted, kind, tmp_path, capsys):
    _, path = fitted[kind]
    out = tmp_path / "show"
    assert main(["show", str(path), "--out", str(out), "-n", "100", "--n-gif", "20", "--n-bound", "20"]) == 0
    for name in ("forward.png", "reverse.png", "field.png", "profiles.png", "schedules.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (out / "reverse.gif").read_bytes()[:6] in (b"GIF87a", b"GIF89a")


@pytest.mark.parametrize("kind", KINDS)
def test_an_interrupted_fit_resumes_to_the_uninterrupted_weights(fitted, kind, tmp_path, monkeypatch, capsys):
    data, path = fitted[kind]
    monkeypatch.setitem(api.fit.__kwdefaults__, "checkpoint_every", 100)       # a checkpoint at step 100
    real_train, calls = ddpm_fast.train, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*a, **k)
    monkeypatch.setattr(ddpm_fast, "train", interrupted)
    out = tmp_path / "run"
    assert main(_fit_argv(kind, data, out)) == 130
    assert ddpm.load_model(out / "model.npz").step == 100
    monkeypatch.setattr(ddpm_fast, "train", real_train)
    assert main(_fit_argv(kind, data, out) + ["--resume", str(out / "model.npz")]) == 0
    a, b = ddpm.load_model(out / "model.npz"), ddpm.load_model(path)
    assert a.step == b.step == STEPS
    for group in ("params", "ema"):
        for k in b.state[group]:
            np.testing.assert_array_equal(a.state[group][k], b.state[group][k], err_msg=f"{kind} {group}.{k}")
    np.testing.assert_array_equal(np.load(out / "samples.npy"), np.load(path.parent / "samples.npy"))
    shutil.rmtree(out)


def _broadcast_bug(*a, **k):
    view = np.zeros((10, 3))
    view[:] = np.ones((10, 4))                        # the old sample_to_file's mistake: numpy's ValueError


def _type_bug(*a, **k):
    return None + 1


@pytest.mark.parametrize("bug, name", [(_broadcast_bug, "ValueError"), (_type_bug, "TypeError")])
def test_an_internal_error_is_one_line_naming_a_report_file_and_never_a_usage_error(fitted, bug, name, tmp_path,
                                                                                   monkeypatch, capsys):
    _, path = fitted["const"]
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(sampling, "sample_to_file", bug)
    code = main(["sample", str(path), "-n", "10", "--out", str(tmp_path / "s.npy")])
    err = capsys.readouterr().err
    assert code == 70 != 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"ddpm: internal error (a bug in ddpm, not in your input): {name}")
    report, = tmp_path.glob("ddpm-bug-*.txt")
    assert str(report) in err
    text = report.read_text()
    assert "Traceback" in text and bug.__name__ in text and f"command: ddpm sample {path}" in text


def test_a_refusal_of_ours_stays_a_usage_error_and_a_data_error_stays_1(fitted, tmp_path, capsys):
    _, path = fitted["const"]
    assert main(["sample", str(path), "-n", "10", "--out", str(tmp_path / "s.npy"), "--steps", "999"]) == 2
    assert capsys.readouterr().err.startswith("ddpm: error: steps must be an integer in 1..T")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a checkpoint")
    assert main(["sample", str(bad), "-n", "10", "--out", str(tmp_path / "t.npy")]) == 1
    assert list(tmp_path.glob("ddpm-bug-*")) == []
