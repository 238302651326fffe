import json
import os

import numpy as np
import pytest

import ddpm
import ddpm_ref
from ddpm.cli import main
from ddpm_ref import CheckpointError, MLPConfig, TrainConfig

SMALL = dict(T=30, model=MLPConfig(hidden=16, depth=2), n_eval=300, progress=False)


def _same_state(a, b):
    for group in ("params", "ema"):
        for k in a[group]:
            np.testing.assert_array_equal(a[group][k], b[group][k], err_msg=f"{group}.{k}")
    for mom in ("m", "v"):
        for k in a["opt"][mom]:
            np.testing.assert_array_equal(a["opt"][mom][k], b["opt"][mom][k])
    assert a["opt"]["step"] == b["opt"]["step"]


def test_fit_writes_every_output_and_sane_metrics(tmp_path):
    res = ddpm.fit("moons", tmp_path / "run", steps=50, **SMALL)
    for f in ddpm.api.OUTPUT_FILES:
        assert (tmp_path / "run" / f).is_file(), f
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("final_loss", "energy_distance", "energy_distance_floor", "steps", "T"):
        assert key in metrics
    assert metrics["steps"] == 50 and metrics["T"] == 30
    assert 0 < metrics["energy_distance_floor"] < metrics["energy_distance"]   # 50 steps is not a fit
    s = np.load(tmp_path / "run" / "samples.npy")
    assert s.shape == (300, 2)
    np.testing.assert_array_equal(s, res.samples)


def test_samples_are_returned_in_data_coordinates(tmp_path):
    # Data far from the origin with very different scales: an untransformed sampler would give ≈ N(0, I).
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(100.0, 5.0, 2000), rng.normal(-3.0, 0.01, 2000)])
    res = ddpm.fit(x, steps=1500, **SMALL)
    med = np.median(res.samples, axis=0)
    iqr = np.subtract(*np.percentile(res.samples, [75, 25], axis=0))    # 1.35 sd for a Gaussian
    assert abs(med[0] - 100.0) < 2.0 and 3.4 < iqr[0] < 10.0
    assert abs(med[1] + 3.0) < 0.004 and 0.007 < iqr[1] < 0.02
    u = ddpm.sample(res.model, 50, seed=3, backend="numpy")
    ref = ddpm_ref.p_sample_loop(res.model.state["ema"], res.model.cfg, res.model.sched,
                                 np.random.default_rng(3).standard_normal((50, 2)), rng=_rng_after_xT(3, 50, 2))
    np.testing.assert_allclose(u, res.model.norm.to_data(ref), rtol=1e-12)


def _rng_after_xT(seed, n, d):
    rng = np.random.default_rng(seed)
    rng.standard_normal((n, d))
    return rng


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    full = ddpm.fit("8gaussians", tmp_path / "full", steps=40, checkpoint_every=20, **SMALL)

    class Stop(Exception):
        pass

    def crash(step, loss):
        if step == 30:
            raise Stop

    with pytest.raises(Stop):
        ddpm.fit("8gaussians", tmp_path / "cut", steps=40, checkpoint_every=20, callback=crash, **SMALL)
    assert ddpm.load_model(tmp_path / "cut" / "model.npz").step == 20
    resumed = ddpm.fit("8gaussians", tmp_path / "cut", resume=tmp_path / "cut" / "model.npz", **SMALL)
    _same_state(full.model.state, resumed.model.state)
    np.testing.assert_array_equal(full.model.losses, resumed.model.losses)
    np.testing.assert_array_equal(full.samples, resumed.samples)


def test_resume_with_other_data_is_refused(tmp_path):
    ddpm.fit("moons", tmp_path / "a", steps=5, **SMALL)
    with pytest.raises(ValueError, match="trained on other data"):
        ddpm.fit("circles", tmp_path / "b", resume=tmp_path / "a" / "model.npz", **SMALL)


def test_existing_fit_is_never_overwritten_silently(tmp_path):
    ddpm.fit("moons", tmp_path / "a", steps=5, **SMALL)
    before = (tmp_path / "a" / "model.npz").read_bytes()
    with pytest.raises(FileExistsError, match="already holds model.npz.*overwrite"):
        ddpm.fit("moons", tmp_path / "a", steps=6, **SMALL)
    assert (tmp_path / "a" / "model.npz").read_bytes() == before
    ddpm.fit("moons", tmp_path / "a", steps=6, overwrite=True, **SMALL)
    assert ddpm.load_model(tmp_path / "a" / "model.npz").step == 6


def test_model_round_trips_through_its_checkpoint(tmp_path):
    res = ddpm.fit("rings", tmp_path / "r", steps=10, **SMALL)
    m = ddpm.load_model(tmp_path / "r" / "model.npz")
    _same_state(res.model.state, m.state)
    np.testing.assert_array_equal(m.sched.beta, res.model.sched.beta)
    assert m.cfg == res.model.cfg and m.tcfg == res.model.tcfg
    np.testing.assert_array_equal(ddpm.sample(m, 20, seed=1), ddpm.sample(res.model, 20, seed=1))


def test_api_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        ddpm.fit("moons", backend="cuda", **SMALL)
    with pytest.raises(ValueError, match="unknown var_type 'big'"):
        ddpm.fit("moons", train=TrainConfig(var_type="big"), **SMALL)
    with pytest.raises(ValueError, match="unknown dataset 'moon'"):
        ddpm.fit("moon", **SMALL)
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] are constant"):
        ddpm.fit(np.column_stack([np.arange(50.0), np.ones(50)]), steps=2, **SMALL)


# --- the command line ---------------------------------------------------------------------------

def test_cli_datasets_lists_names(capsys):
    assert main(["datasets"]) == 0
    assert "swiss_roll" in capsys.readouterr().out.split()


def test_cli_fit_and_sample(tmp_path, capsys):
    out = str(tmp_path / "sr")
    assert main(["fit", "swiss_roll", "--out", out, "--steps", "20", "--T", "25", "--hidden", "8", "--quiet"]) == 0
    assert set(ddpm.api.OUTPUT_FILES) <= set(os.listdir(out))
    f = str(tmp_path / "s.npy")
    assert main(["sample", f"{out}/model.npz", "-n", "1000", "--out", f]) == 0
    assert np.load(f).shape == (1000, 2)
    capsys.readouterr()
    assert main(["sample", f"{out}/model.npz", "-n", "10", "--out", f]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert np.load(f).shape == (1000, 2)


def test_cli_fits_a_csv_file(tmp_path):
    x = np.random.default_rng(0).normal(size=(400, 3)) * [1.0, 2.0, 3.0]
    np.savetxt(tmp_path / "pts.csv", x, delimiter=",", header="a,b,c", comments="")
    out = tmp_path / "fitcsv"
    assert main(["fit", "--data", str(tmp_path / "pts.csv"), "--out", str(out), "--steps", "10", "--T", "25",
                 "--hidden", "8", "--quiet"]) == 0
    assert np.load(out / "samples.npy").shape[1] == 3
    assert ddpm.load_model(out / "model.npz").cfg.dim == 3


@pytest.mark.parametrize("argv, match", [
    (["fit", "spiral", "--out", "X"], "unknown dataset 'spiral'"),
    (["fit", "--out", "X"], "either a built-in DATASET name or --data FILE"),
    (["fit", "--data", "missing.csv", "--out", "X"], "missing.csv: no such file"),
    (["sample", "missing.npz", "-n", "5", "--out", "s.npy"], "missing.npz: no such checkpoint file"),
    (["sample", "m.npz", "-n", "5", "--out", "s.txt"], "--out must name a .npy file"),
])
def test_cli_errors_are_one_clear_line(tmp_path, monkeypatch, capsys, argv, match):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ddpm: error:") and match in err


def test_cli_rejects_a_corrupt_model(tmp_path, capsys):
    (tmp_path / "m.npz").write_bytes(b"PK\x03\x04garbage")
    assert main(["sample", str(tmp_path / "m.npz"), "-n", "5", "--out", str(tmp_path / "s.npy")]) == 2
    assert "not a readable ddpm checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "s.npy").exists()


def test_cli_reports_a_bad_data_file(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n4,5\n")
    assert main(["fit", "--data", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "bad.csv: line 2 has a non-numeric cell 'x'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_fit_reports_a_heldout_bound_and_eval_writes_json(tmp_path, capsys):
    res = ddpm.fit("8gaussians", tmp_path / "g", steps=30, **SMALL)
    hb = res.metrics["heldout_bound"]
    for key in ("bound_bits_per_dim", "bound_bits_per_dim_se", "L_T_bits_per_dim", "L_t_sum_bits_per_dim",
                "L_0_bits_per_dim", "n_points"):
        assert key in hb, key
    total = hb["L_T_bits_per_dim"] + hb["L_t_sum_bits_per_dim"] + hb["L_0_bits_per_dim"]
    assert total == pytest.approx(hb["bound_bits_per_dim"], rel=1e-9)
    assert (tmp_path / "g" / "bound_profile.png").is_file()
    model = str(tmp_path / "g" / "model.npz")
    assert main(["eval", model, "--data", "8gaussians", "-n", "300"]) == 0
    ev = json.loads((tmp_path / "g" / "eval.json").read_text())
    assert ev["n_points"] == 300 and "energy_distance" in ev and "true_nll_bits_per_dim" in ev
    assert ev["bound_bits_per_dim"] > ev["true_nll_bits_per_dim"]             # 30 steps: a loose bound
    capsys.readouterr()
    assert main(["eval", model, "--data", "8gaussians", "-n", "300"]) == 2   # never overwrites silently
    assert "eval.json exists" in capsys.readouterr().err


def test_bound_is_reported_in_data_coordinates(tmp_path):
    # Scaling the data by c adds log2(c) bits/dim to the density bound of the same model.
    res = ddpm.fit("moons", steps=20, **SMALL)
    x = np.random.default_rng(0).normal(size=(200, 2))
    a = ddpm.likelihood_bound(res.model, x, seed=0)
    import copy  # the same model with its data normaliser scaled by 8
    scaled = copy.deepcopy(res.model)
    scaled.norm = type(scaled.norm)(scaled.norm.mean * 8, scaled.norm.scale * 8)
    b = ddpm.likelihood_bound(scaled, x * 8, seed=0)
    assert b["bound_bits_per_dim"] - a["bound_bits_per_dim"] == pytest.approx(3.0, rel=1e-9)
    assert b["L_t_sum_bits_per_dim"] == pytest.approx(a["L_t_sum_bits_per_dim"], rel=1e-9)


def test_learned_variance_and_other_parametrisations_fit_and_sample(tmp_path):
    for tc in (TrainConfig(objective="hybrid", var_type="learned"), TrainConfig(parametrization="v"),
               TrainConfig(objective="vlb", parametrization="mu", var_type="learned", t_sampling="importance")):
        res = ddpm.fit("moons", tmp_path / tc.objective / tc.parametrization, steps=40, train=tc, **SMALL)
        assert np.all(np.isfinite(res.samples))
        m = ddpm.load_model(tmp_path / tc.objective / tc.parametrization / "model.npz")
        assert m.tcfg == res.model.tcfg and m.cfg.n_out == (4 if tc.var_type == "learned" else 2)
        np.testing.assert_array_equal(m.state["lt_hist"], res.model.state["lt_hist"])


def test_preset_sohl_dickstein_runs_from_the_cli(tmp_path):
    out = tmp_path / "sd"
    assert main(["fit", "swiss_roll", "--preset", "sohl_dickstein", "--out", str(out), "--steps", "30",
                 "--hidden", "8", "--quiet"]) == 0
    m = ddpm.load_model(out / "model.npz")
    assert m.sched.T == 40 and m.sched.name == "sohl_dickstein"
    assert m.tcfg.objective == "vlb" and m.tcfg.parametrization == "mu" and m.tcfg.var_type == "learned"
    assert np.allclose(m.norm.scale, m.norm.scale[0])                          # one constant for all coordinates
    from ddpm.presets import sohl_dickstein_report
    rep = sohl_dickstein_report(m, np.random.default_rng(0).normal(size=(100, 2)))
    assert rep["K_minus_L_null_bits"] == pytest.approx(rep["K_bits"] - rep["L_null_bits"])


def test_cli_samples_with_ddim_and_respaced_ancestral(tmp_path):
    out = tmp_path / "m"
    assert main(["fit", "moons", "--out", str(out), "--steps", "20", "--T", "50", "--hidden", "8", "--quiet"]) == 0
    for extra in (["--sampler", "ddim", "--steps", "10", "--eta", "0"], ["--sampler", "ddim", "--eta", "1"],
                  ["--steps", "7", "--spacing", "trailing"]):
        f = tmp_path / f"s{len(extra)}{extra[-1]}.npy"
        assert main(["sample", str(out / "model.npz"), "-n", "30", "--out", str(f)] + extra) == 0
        assert np.load(f).shape == (30, 2) and np.all(np.isfinite(np.load(f)))
    with pytest.raises(ValueError, match="steps must be an integer in 1..T"):
        ddpm.sample(out / "model.npz", 5, steps=51)
    with pytest.raises(ValueError, match="eta must lie in"):
        ddpm.sample(out / "model.npz", 5, sampler="ddim", eta=2.0)


def test_cli_ode_sampler_and_exact_eval(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["fit", "8gaussians", "--out", str(out), "--steps", "20", "--T", "50", "--hidden", "8", "--quiet"]) == 0
    f = tmp_path / "ode.npy"
    assert main(["sample", str(out / "model.npz"), "-n", "30", "--out", str(f), "--sampler", "ode", "--steps", "20"]) == 0
    assert np.all(np.isfinite(np.load(f)))
    assert main(["eval", str(out / "model.npz"), "--data", "8gaussians", "-n", "50", "--exact"]) == 0
    ev = json.loads((out / "eval.json").read_text())
    assert np.isfinite(ev["ode_nll_bits_per_dim"]) and "bound_minus_ode_nll_bits_per_dim" in ev
