import json
import os
import warnings

import numpy as np
import pytest

import ddpm
import ddpm.sampling
import ddpm_fast
import ddpm_ref
from ddpm.cli import main
from ddpm_ref import CheckpointError, GeneralTrainConfig, MLPConfig, TrainConfig

SMALL = dict(T=30, model=MLPConfig(hidden=16, depth=2), n_eval=300, progress=False)


def _same_state(a, b):
    for group in ("params", "ema"):
        for k in a[group]:
            np.testing.assert_array_equal(a[group][k], b[group][k], err_msg=f"{group}.{k}")
    for mom in ("m", "s"):
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
    for key in ("w2", "mmd2"):                  # exact W2 and small-bandwidth MMD², each next to its floor
        assert metrics[f"{key}_ratio"] == pytest.approx(metrics[key] / metrics[f"{key}_floor"]) and metrics[f"{key}_ratio"] > 1
    assert metrics["n_samples"] == metrics["n_heldout"] == metrics["n_w2"] == 300
    s = np.load(tmp_path / "run" / "samples.npy")
    assert s.shape == (300, 2)
    np.testing.assert_array_equal(s, res.samples)


def test_a_small_user_file_still_gets_n_eval_samples_and_statistics_at_matching_sizes(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 2))
    np.save(tmp_path / "pts.npy", x)
    res = ddpm.fit(str(tmp_path / "pts.npy"), steps=5, **SMALL)
    m = res.metrics
    assert res.samples.shape == (300, 2)                     # not sized by the 20 held-out points
    assert m["n_heldout"] == 20 and m["n_samples"] == 80 and m["n_w2"] == 20   # references: 80 training points


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
    ref = ddpm_ref.p_sample_loop(ddpm_ref.network(res.model.state["ema"], res.model.cfg), res.model.sched,
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
        ddpm.fit("moons", train=GeneralTrainConfig(var_type="big"), **SMALL)
    with pytest.raises(ValueError, match="unknown dataset 'moon'"):
        ddpm.fit("moon", **SMALL)
    with pytest.raises(ValueError, match="every one of the 2 data columns is constant"):
        ddpm.fit(np.column_stack([np.full(50, 2.0), np.ones(50)]), steps=2, **SMALL)


def test_constant_columns_are_modelled_as_constants_decided_on_the_whole_data(tmp_path):
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=400), np.full(400, 3.0), rng.normal(size=400) * 2, np.zeros(400)])
    x[:330, 2] = 7.0                   # constant on most rows: maybe on the training split, never on the whole
    np.save(tmp_path / "x.npy", x)
    res = ddpm.fit(str(tmp_path / "x.npy"), tmp_path / "m", steps=5, **SMALL)
    m = ddpm.load_model(tmp_path / "m" / "model.npz")
    assert res.metrics["dim"] == 4 and res.metrics["dim_modelled"] == 2 == m.cfg.dim
    assert res.metrics["constant_columns"] == {"1": 3.0, "3": 0.0}
    assert np.all(res.samples[:, 1] == 3.0) and np.all(res.samples[:, 3] == 0.0)
    assert np.all(np.isfinite(res.samples)) and np.all(m.norm.scale > 0)
    u = ddpm.sample(m, 7, seed=2)
    np.testing.assert_array_equal(u, ddpm.sample(res.model, 7, seed=2))           # the checkpoint keeps them
    np.testing.assert_array_equal(m.norm.to_data(m.norm.to_model(x))[:, [1, 3]], x[:, [1, 3]])
    np.testing.assert_allclose(m.norm.to_data(m.norm.to_model(x)), x, rtol=1e-12, atol=1e-12)
    ev = ddpm.evaluate(m, str(tmp_path / "x.npy"), n=100)
    assert np.isfinite(ev["bound_bits_per_dim"]) and ev["dim"] == 2


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


@pytest.mark.parametrize("argv, match, code", [
    (["fit", "spiral", "--out", "X"], "unknown dataset 'spiral'", 2),
    (["fit", "--out", "X"], "either a built-in DATASET name or --data FILE", 2),
    (["fit", "--data", "missing.csv", "--out", "X"], "missing.csv: no such file", 1),
    (["sample", "missing.npz", "-n", "5", "--out", "s.npy"], "missing.npz: no such checkpoint file", 1),
    (["sample", "m.npz", "-n", "5", "--out", "s.txt"], "--out must name a .npy file", 2),
])
def test_cli_errors_are_one_clear_line(tmp_path, monkeypatch, capsys, argv, match, code):
    monkeypatch.chdir(tmp_path)               # usage errors exit 2, data errors (files that cannot be used) 1
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("ddpm: error:") and match in err


def test_cli_rejects_a_corrupt_model(tmp_path, capsys):
    (tmp_path / "m.npz").write_bytes(b"PK\x03\x04garbage")
    assert main(["sample", str(tmp_path / "m.npz"), "-n", "5", "--out", str(tmp_path / "s.npy")]) == 1   # a data error
    assert "not a readable ddpm checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "s.npy").exists()


def test_cli_reports_a_bad_data_file(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n4,5\n")
    assert main(["fit", "--data", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "bad.csv: line 2 has a non-numeric cell 'x'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_fit_reports_a_heldout_bound_and_eval_writes_json(tmp_path, capsys):
    res = ddpm.fit("8gaussians", tmp_path / "g", steps=30, **SMALL)
    hb = res.metrics["heldout_bound"]
    for key in ("bound_bits_per_dim", "bound_bits_per_dim_se", "L_T_bits_per_dim", "L_t_minus_1_sum_bits_per_dim",
                "L_0_bits_per_dim", "n_points"):
        assert key in hb, key
    total = hb["L_T_bits_per_dim"] + hb["L_t_minus_1_sum_bits_per_dim"] + hb["L_0_bits_per_dim"]
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
    assert b["L_t_minus_1_sum_bits_per_dim"] == pytest.approx(a["L_t_minus_1_sum_bits_per_dim"], rel=1e-9)


def test_learned_variance_and_other_parametrisations_fit_and_sample(tmp_path):
    for tc in (GeneralTrainConfig(objective="hybrid", var_type="learned"), GeneralTrainConfig(parametrization="v"),
               GeneralTrainConfig(objective="vlb", parametrization="mu", var_type="learned", t_sampling="importance")):
        res = ddpm.fit("moons", tmp_path / tc.objective / tc.parametrization, steps=40, train=tc, **SMALL)
        m = ddpm.load_model(tmp_path / tc.objective / tc.parametrization / "model.npz")
        assert m.tcfg == res.model.tcfg and m.cfg.n_out == (4 if tc.var_type == "learned" else 2)
        np.testing.assert_array_equal(m.state["lt_hist"], res.model.state["lt_hist"])
        # the API's samples are Algorithm 2 of the reference on the same noise, for every parametrization
        u = ddpm.sample(m, 40, seed=3)
        ref = ddpm_ref.p_sample_loop_general(ddpm_ref.network(m.state["ema"], m.cfg), m.sched, np.random.default_rng(3).standard_normal((40, 2)),
                                             rng=_rng_after_xT(3, 40, 2), var_type=tc.var_type,
                                             parametrization=tc.parametrization)
        np.testing.assert_allclose(u, m.norm.to_data(ref), rtol=1e-12)
        if tc.var_type == "learned":          # the variance head is trained: its output weights moved
            W_out = f"W{m.cfg.depth}"
            init = ddpm_ref.init_params(m.cfg, np.random.default_rng(np.random.SeedSequence(0).spawn(3)[1]))
            assert np.abs(m.state["params"][W_out][:, 2:] - init[W_out][:, 2:]).max() > 1e-3


def test_learned_variance_with_l_simple_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(ValueError, match="learned.*hybrid"):
        GeneralTrainConfig(var_type="learned")
    with pytest.raises(ValueError, match="hybrid.*learned"):
        GeneralTrainConfig(objective="hybrid", var_type="beta")
    assert main(["fit", "moons", "--out", str(tmp_path / "l"), "--var", "learned", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ddpm: error:") and "hybrid" in err and "\n" not in err
    assert not (tmp_path / "l").exists()


def test_exact_nll_with_a_bin_width_is_the_dequantised_ode_bound_on_the_bin(tmp_path, capsys):
    res = ddpm.fit("8gaussians", tmp_path / "m", steps=5, **SMALL)
    m = res.model
    pts = np.random.default_rng(6).normal(size=(20, 2))
    got = ddpm.ode_nll(m, pts, steps=10, bin_width=0.1, seed=3)
    u = pts + np.random.default_rng(3).uniform(-0.05, 0.05, size=pts.shape)      # x + U(−w/2, w/2)
    ll, _ = ddpm_ref.ode_log_likelihood(ddpm_ref.network(m.state["ema"], m.cfg), m.sched, m.norm.to_model(u), 10)
    expected = (-ll + np.log(m.norm.scale).sum()) / (2 * np.log(2)) - np.log2(0.1)  # − D log w, per dimension
    assert got["ode_decoder"] == "dequantized"
    np.testing.assert_allclose(got["per_point_bpd"], expected, rtol=1e-12)
    dense = ddpm.ode_nll(m, u, steps=10)                                            # the density at the same x + u
    np.testing.assert_allclose(got["per_point_bpd"], dense["per_point_bpd"] - np.log2(0.1), rtol=1e-12)
    assert main(["eval", str(tmp_path / "m" / "model.npz"), "--data", "8gaussians", "-n", "20", "--exact",
                 "--bin-width", "0.1"]) == 0
    out = json.loads((tmp_path / "m" / "eval.json").read_text())
    assert out["ode_decoder"] == "dequantized" and out["decoder"] == "discretized"
    assert np.isfinite(out["bound_minus_ode_nll_bits_per_dim"])


@pytest.mark.parametrize("parametrization", ["x0", "v"])
def test_ode_sampling_and_exact_nll_take_x0_and_v_models(tmp_path, parametrization):
    res = ddpm.fit("8gaussians", steps=30, train=GeneralTrainConfig(parametrization=parametrization), **SMALL)
    m = res.model
    x = ddpm.sample(m, 20, seed=4, sampler="ode", steps=10)
    net = ddpm_ref.network(m.state["ema"], m.cfg)
    ref = ddpm_ref.ode_sample(net, m.sched, np.random.default_rng(4).standard_normal((20, 2)), steps=10,
                              parametrization=parametrization)
    np.testing.assert_allclose(x, m.norm.to_data(ref), rtol=1e-12)
    pts = np.random.default_rng(5).normal(size=(20, 2))
    nll = ddpm.ode_nll(m, pts, steps=10)
    ll, _ = ddpm_ref.ode_log_likelihood(net, m.sched, m.norm.to_model(pts), 10, parametrization=parametrization)
    expected = (-ll + np.log(m.norm.scale).sum()) / (2 * np.log(2))
    assert nll["ode_nll_bits_per_dim"] == pytest.approx(expected.mean(), rel=1e-12)


def test_exact_nll_in_data_units_gains_log2_of_the_scale_per_dimension(tmp_path):
    # the change of variables x = s·u + m: scaling the data and the normaliser by 8 adds log2(8) = 3 bits/dim
    import copy
    res = ddpm.fit("8gaussians", steps=10, **SMALL)
    x = np.random.default_rng(0).normal(size=(30, 2))
    scaled = copy.deepcopy(res.model)
    scaled.norm = type(scaled.norm)(scaled.norm.mean * 8, scaled.norm.scale * 8)
    a = ddpm.ode_nll(res.model, x, steps=8)["ode_nll_bits_per_dim"]
    b = ddpm.ode_nll(scaled, x * 8, steps=8)["ode_nll_bits_per_dim"]
    assert b - a == pytest.approx(3.0, rel=1e-9)


@pytest.mark.parametrize("change, msg", [
    (dict(T=40), "T = 40"), (dict(schedule="linear"), "schedule = 'linear'"),  # 2-D default: cosine
    (dict(model=MLPConfig(hidden=17, depth=2)), "model.hidden = 17"),
    (dict(train=GeneralTrainConfig(steps=20, lr=1e-3)), "train.lr = 0.001"),
    (dict(train=GeneralTrainConfig(steps=20, parametrization="v")), "train.parametrization = 'v'"),
    (dict(steps=10), "steps = 10, fewer than the 20"), (dict(normalize="isotropic"), "normalize = 'isotropic'"),
    (dict(schedule_params={"beta_start": 1e-3}), "schedule_params"),
])
def test_resume_refuses_a_setting_that_contradicts_the_checkpoint(tmp_path, change, msg):
    kw = {**SMALL, "checkpoint_every": 10}
    ddpm.fit("moons", tmp_path / "a", steps=20, **kw)
    before = (tmp_path / "a" / "model.npz").read_bytes()
    kw.pop("model") if "model" in change else None
    with pytest.raises(ValueError, match=msg.replace("(", r"\(")):
        ddpm.fit("moons", tmp_path / "a", resume=tmp_path / "a" / "model.npz", **{**kw, **change})
    assert (tmp_path / "a" / "model.npz").read_bytes() == before


def test_resume_to_more_steps_extends_the_run_and_agreeing_settings_are_accepted(tmp_path, capsys):
    ddpm.fit("moons", tmp_path / "a", steps=20, **SMALL)
    res = ddpm.fit("moons", tmp_path / "a", resume=tmp_path / "a" / "model.npz", steps=30,
                   train=TrainConfig(steps=30), **SMALL)
    assert res.model.step == 30 and res.model.tcfg.steps == 30 and res.model.losses.shape == (30,)
    out = str(tmp_path / "c")
    assert main(["fit", "moons", "--out", out, "--steps", "10", "--T", "30", "--hidden", "8", "--quiet"]) == 0
    assert main(["fit", "moons", "--out", out, "--resume", out + "/model.npz", "--hidden", "8", "--quiet"]) == 0
    assert main(["fit", "moons", "--out", out, "--resume", out + "/model.npz", "--hidden", "9", "--quiet"]) == 2
    assert "model.hidden = 9" in capsys.readouterr().err
    assert main(["fit", "moons", "--out", out, "--resume", out + "/model.npz", "--T", "31", "--quiet"]) == 2


def test_sample_without_a_seed_draws_fresh_points_and_seeds_are_recorded(tmp_path, capsys):
    res = ddpm.fit("moons", tmp_path / "a", steps=5, **SMALL)
    a, b = ddpm.sample(res.model, 10), ddpm.sample(res.model, 10)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(ddpm.sample(res.model, 10, seed=7), ddpm.sample(res.model, 10, seed=7))
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["seed"] == 0 and isinstance(metrics["sample_seed"], int)
    assert main(["sample", str(tmp_path / "a" / "model.npz"), "-n", "5", "--out", str(tmp_path / "s.npy"),
                 "--seed", "11"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["seed"] == 11


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
    m = ddpm.load_model(out / "model.npz")
    x_T = np.random.default_rng(0).standard_normal((30, 2))               # the CLI's default --seed 0
    net = ddpm_ref.network(m.state["ema"], m.cfg)
    ts10 = ddpm_ref.timesteps(50, 10, "even")
    sched7, t_model7 = ddpm_ref.respace(m.sched, ddpm_ref.timesteps(50, 7, "trailing"))
    expected = {   # each CLI call against the reference run on the same x_T (and the same z for numpy)
        "ddim10": (["--sampler", "ddim", "--steps", "10", "--eta", "0"],
                   ddpm_ref.ddim_sample_loop(net, m.sched, x_T, ts=ts10), 2e-3),
        "resp7": (["--sampler", "ancestral", "--steps", "7", "--spacing", "trailing", "--backend", "numpy"],
                  ddpm_ref.p_sample_loop_general(ddpm_ref.network(m.state["ema"], m.cfg), sched7, x_T, rng=_rng_after_xT(0, 30, 2),
                                                 t_model=t_model7), 1e-10),
    }
    for name, (extra, ref, tol) in expected.items():
        f = tmp_path / f"{name}.npy"
        assert main(["sample", str(out / "model.npz"), "-n", "30", "--out", str(f)] + extra) == 0
        np.testing.assert_allclose(np.load(f), m.norm.to_data(ref), rtol=tol, atol=tol * m.norm.scale.max(), err_msg=name)
    f = tmp_path / "ddim_eta1.npy"
    assert main(["sample", str(out / "model.npz"), "-n", "30", "--out", str(f), "--sampler", "ddim", "--eta", "1"]) == 0
    assert np.load(f).shape == (30, 2) and not np.allclose(np.load(f), np.load(tmp_path / "ddim10.npy"), atol=1e-3)
    with pytest.raises(ValueError, match="steps must be an integer in 1..T"):
        ddpm.sample(out / "model.npz", 5, steps=51)
    with pytest.raises(ValueError, match="eta must lie in"):
        ddpm.sample(out / "model.npz", 5, sampler="ddim", eta=2.0)


def test_sample_with_each_ode_solver_is_the_reference_solver_and_few_steps_default_to_one(tmp_path):
    m = ddpm.fit("moons", steps=20, T=50, n_eval=50, n_train=200, progress=False, model={"hidden": 8}).model
    x_T = np.random.default_rng(0).standard_normal((30, 2))                 # seed 0's x_T
    net = ddpm_ref.network(m.state["ema"], m.cfg)
    for solver in ddpm_ref.SOLVERS:
        ref = m.norm.to_data(ddpm_ref.solver_sample(net, m.sched, x_T, solver=solver, steps=6))
        np.testing.assert_allclose(ddpm.sample(m, 30, seed=0, sampler=solver, steps=6, backend="numpy"), ref,
                                   rtol=1e-12, err_msg=solver)
        np.testing.assert_allclose(ddpm.sample(m, 30, seed=0, sampler=solver, steps=6), ref, rtol=0,   # numba, float32
                                   atol=1e-4 * m.norm.scale.max(), err_msg=solver)
    karras = m.norm.to_data(ddpm_ref.solver_sample(net, m.sched, x_T, solver="unipc", steps=6, spacing="karras"))
    np.testing.assert_allclose(ddpm.sample(m, 30, seed=0, sampler="unipc", steps=6, spacing="karras",
                                           backend="numpy"), karras, rtol=1e-12)
    np.testing.assert_array_equal(ddpm.sample(m, 30, seed=0, sampler="dpmpp2m"),
                                  ddpm.sample(m, 30, seed=0, sampler="dpmpp2m", steps=ddpm.api.SOLVER_STEPS))
    # no sampler named: K ≤ FEW_STEPS network calls go to the default solver, more to respaced Algorithm 2
    few = ddpm.api.default_sampler(6)
    assert few in ddpm_ref.SOLVERS and ddpm.api.default_sampler(ddpm.api.FEW_STEPS + 1) == "ancestral"
    np.testing.assert_array_equal(ddpm.sample(m, 30, seed=0, steps=6), ddpm.sample(m, 30, seed=0, sampler=few, steps=6))
    with pytest.raises(ValueError, match="steps must be an integer in 1..T"):
        ddpm.sample(m, 5, steps=ddpm.api.FEW_STEPS + 1)                    # ancestral, and T = 50
    # Algorithm 2's options keep Algorithm 2; a solver's spacing takes the default solver at any K
    for kw in ({"spacing": "trailing"}, {"var_type": "beta_tilde"}):
        np.testing.assert_array_equal(ddpm.sample(m, 30, seed=0, steps=6, **kw),
                                      ddpm.sample(m, 30, seed=0, steps=6, sampler="ancestral", **kw))
    np.testing.assert_array_equal(ddpm.sample(m, 30, seed=0, steps=60, spacing="karras"),
                                  ddpm.sample(m, 30, seed=0, steps=60, sampler=few, spacing="karras"))
    with pytest.raises(ValueError, match="logsnr, karras, time; got spacing 'trailing'.*sampler 'ancestral'"):
        ddpm.sample(m, 5, sampler="unipc", spacing="trailing")
    # isotropic normalisation leaves the coordinates' variances unequal: no Gaussian limit N(0, I) above σ_max
    iso = ddpm.fit("moons", steps=20, T=50, n_eval=50, n_train=200, progress=False, model={"hidden": 8},
                   normalize="isotropic").model
    assert ddpm.api.ode_sigma_max(iso) is None and ddpm.api.ode_sigma_max(m) == ddpm_ref.SIGMA_MAX
    net_iso = ddpm_ref.network(iso.state["ema"], iso.cfg)
    np.testing.assert_allclose(ddpm.sample(iso, 30, seed=0, sampler="dpmpp2m", steps=6, backend="numpy"),
                               iso.norm.to_data(ddpm_ref.solver_sample(net_iso, iso.sched, x_T, solver="dpmpp2m", steps=6,
                                                                       sigma_max=None)), rtol=1e-12)
    assert ddpm.ode_nll(iso, np.zeros((3, 2)), steps=4)["ode_sigma_max"] is None
    with pytest.raises(ValueError, match="unknown sampler 'euler'; choose one of .*dpmpp2m, dpmpp2s, unipc, heun"):
        ddpm.sample(m, 5, sampler="euler")
    with pytest.raises(ValueError, match="positive integer number of network calls"):
        ddpm.sample(m, 5, sampler="heun", steps=0)


def test_cli_ode_sampler_and_exact_eval(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["fit", "8gaussians", "--out", str(out), "--steps", "20", "--T", "50", "--hidden", "8", "--quiet"]) == 0
    f = tmp_path / "ode.npy"
    assert main(["sample", str(out / "model.npz"), "-n", "30", "--out", str(f), "--sampler", "ode", "--steps", "20"]) == 0
    m = ddpm.load_model(out / "model.npz")
    ref = ddpm_ref.ode_sample(ddpm_ref.network(m.state["ema"], m.cfg), m.sched,
                              np.random.default_rng(0).standard_normal((30, 2)), steps=20)
    np.testing.assert_allclose(np.load(f), m.norm.to_data(ref), rtol=1e-12)
    assert main(["eval", str(out / "model.npz"), "--data", "8gaussians", "-n", "50", "--exact"]) == 0
    ev = json.loads((out / "eval.json").read_text())
    assert np.isfinite(ev["ode_nll_bits_per_dim"]) and "bound_minus_ode_nll_bits_per_dim" in ev


def test_a_diverging_fit_stops_keeps_the_last_good_checkpoint_and_exits_1(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["fit", "moons", "--out", str(out), "--steps", "2000", "--T", "50", "--hidden", "16", "--lr", "10",
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged" in err[0] and "--lr" in err[0]
    m = ddpm.load_model(out / "model.npz")                       # the last good state, finite, resumable
    assert m.step < 500 and all(np.all(np.isfinite(v)) for v in m.state["params"].values())
    assert not (out / "metrics.json").exists() and not (out / "samples.npy").exists()


def test_an_injected_nan_stops_training_within_one_chunk(tmp_path, monkeypatch):
    real_train = ddpm_fast.train
    calls = []

    def nan_on_second_call(state, *args, **kw):
        state, losses = real_train(state, *args, **kw)
        calls.append(len(losses))
        if len(calls) == 2:
            state = {**state, "params": {**state["params"], "W1": state["params"]["W1"] * np.nan}}
        return state, losses

    monkeypatch.setattr(ddpm_fast, "train", nan_on_second_call)
    with pytest.raises(ddpm.api.DivergenceError, match=r"weights W1 are not finite after step 20.*step 10"):
        ddpm.fit("moons", tmp_path / "n", steps=40, checkpoint_every=10, **SMALL)
    assert calls == [10, 10]                                    # stopped at the chunk that went wrong
    m = ddpm.load_model(tmp_path / "n" / "model.npz")
    assert m.step == 10 and np.all(np.isfinite(m.state["params"]["W1"]))


def test_a_fit_writes_exactly_its_documented_files(tmp_path):
    ddpm.fit("moons", tmp_path / "a", steps=5, **SMALL)
    assert sorted(os.listdir(tmp_path / "a")) == sorted(ddpm.api.OUTPUT_FILES)     # no lock, no partial files


def test_a_second_fit_into_the_same_folder_refuses_while_the_first_runs(tmp_path, capsys):
    import subprocess
    import sys
    import time
    out = tmp_path / "a"
    first = subprocess.Popen([sys.executable, "-m", "ddpm", "fit", "moons", "--out", str(out), "--steps", "100000",
                              "--T", "50", "--hidden", "8", "--backend", "numpy", "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = out / ddpm.api.LOCK_FILE
        for _ in range(600):
            if lock.exists() and lock.read_text().strip():
                break
            time.sleep(0.1)
        assert lock.read_text().strip() == str(first.pid)
        assert main(["fit", "moons", "--out", str(out), "--steps", "5", "--overwrite", "--quiet"]) == 2
        assert f"being written by another fit (process {first.pid}" in capsys.readouterr().err
    finally:
        first.kill()                                              # SIGKILL: the lock file stays behind, stale
        first.wait()
    assert lock.exists()
    assert main(["fit", "moons", "--out", str(out), "--steps", "5", "--T", "30", "--hidden", "8", "--overwrite",
                 "--quiet"]) == 0                                 # a dead process's lock does not block forever
    assert not lock.exists()


def test_a_full_disk_leaves_no_half_written_file_and_one_line(tmp_path, monkeypatch, capsys):
    import errno

    def full(path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(np, "save", full)
    assert main(["fit", "moons", "--out", str(tmp_path / "a"), "--steps", "5", "--T", "30", "--hidden", "8",
                 "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0]
    left = sorted(os.listdir(tmp_path / "a"))
    assert "samples.npy" not in left and not any("partial" in f or f == ddpm.api.LOCK_FILE for f in left)


def test_sampling_to_a_file_streams_in_chunks_with_reproducible_seeds(tmp_path, monkeypatch):
    res = ddpm.fit("moons", steps=5, **SMALL)
    sizes = []
    real = ddpm.api.sample
    monkeypatch.setattr(ddpm.sampling, "sample", lambda m, n, **kw: sizes.append(n) or real(m, n, **kw))
    info = ddpm.api.sample_to_file(res.model, 250, tmp_path / "s.npy", seed=4, chunk=100, progress=False)
    x = np.load(tmp_path / "s.npy")
    assert sizes == [100, 100, 50] and x.shape == (250, 2) and os.listdir(tmp_path) == ["s.npy"]
    np.testing.assert_array_equal(x[:100], real(res.model, 100, seed=4))                   # chunk 0: the seed itself
    np.testing.assert_array_equal(x[100:200], real(res.model, 100, seed=np.random.SeedSequence([4, 1])))
    assert info["n"] == 250 and info["mean"] == x.mean(axis=0).round(4).tolist()
    with pytest.raises(ValueError, match="GiB on disk"):
        ddpm.api.sample_to_file(res.model, 10**15, tmp_path / "huge.npy", progress=False)
    assert os.listdir(tmp_path) == ["s.npy"]


def test_an_unwritable_output_folder_is_one_line_exit_1(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert main(["fit", "moons", "--out", str(tmp_path / "file" / "run"), "--steps", "5", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ddpm: error:") and "file" in err[0]
    assert (tmp_path / "file").read_text() == "not a folder"


def test_fixed_data_sets_fit_with_a_held_out_split_and_their_own_grid(tmp_path):
    pytest.importorskip("sklearn")
    import toy_data
    res = ddpm.fit("iris", tmp_path / "iris", steps=5, **SMALL)
    m = res.metrics
    assert m["n_train"] + m["n_heldout"] == 150 and m["dim"] == 4 and m["grid"]["bin_width"] == 0.1
    assert not m["grid"]["inferred"] and np.allclose(np.round(res.samples * 10), res.samples * 10)
    assert np.all(res.samples >= toy_data.load_fixed("iris").min(axis=0))
    assert main(["fit", "digits", "--out", str(tmp_path / "d"), "--steps", "3", "--T", "25", "--hidden", "8",
                 "--quiet"]) == 0
    d = ddpm.load_model(tmp_path / "d" / "model.npz")
    assert d.info["image_shape"] == [8, 8] and d.info["grid"]["bin_width"] == 1.0 and d.cfg.dim < 64
    assert np.load(tmp_path / "d" / "samples.npy").shape[1] == 64


def test_review_fixes_small_values_vary_resume_keeps_its_seed_and_bad_arguments_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    tiny = rng.normal(size=(200, 2)) * 1e-11                     # varies, at a small scale: not a constant
    assert ddpm.fit(tiny, steps=3, **SMALL).model.cfg.dim == 2
    ddpm.fit("moons", tmp_path / "a", steps=10, seed=5, n_train=3000, checkpoint_every=5, **SMALL)
    res = ddpm.fit("moons", tmp_path / "a", resume=tmp_path / "a" / "model.npz", steps=15, **SMALL)
    assert res.model.step == 15 and res.metrics["seed"] == 5 and res.metrics["n_train"] == 3000
    with pytest.raises(ValueError, match="checkpoint_every"):
        ddpm.fit("moons", steps=3, checkpoint_every=0, **SMALL)
    # the chain of sample_trajectory ends at sample's points (same seed, same draws); row T is x_T
    x, traj = ddpm.sample_trajectory(res.model, 5, seed=1)
    assert traj.shape == (res.model.sched.T + 1, 5, 2)
    np.testing.assert_array_equal(traj[0], x)
    np.testing.assert_array_equal(ddpm.sample(res.model, 5, seed=1), x)


def test_the_default_recipe_follows_the_data_dimension_and_yields_to_what_is_given():
    # 2-D: Fourier features and the capped cosine schedule; N-D: x alone and the linear schedule
    kw = dict(steps=2, T=30, n_eval=50, n_train=500, progress=False)
    m2 = ddpm.fit("moons", model={"hidden": 16, "depth": 1}, **kw).model           # a dict: laid over the recipe
    assert (m2.cfg.fourier, m2.cfg.hidden, m2.sched.name, m2.sched.params.get("max_beta")) == (6, 16, "cosine", ddpm.api.cosine_cap(30))
    assert m2.sched.beta.max() <= m2.sched.params["max_beta"]
    # the cap leaves ᾱ_T ≈ 1e-4 at every T (DDIM and the ODE divide by √ᾱ_T), not the paper cap's 2e-9
    for T in (30, 1000, 4000):
        a_T = ddpm_ref.make_schedule("cosine", T, max_beta=ddpm.default_recipe(2, T)["schedule_params"]["max_beta"]).alpha_bar[-1]
        assert a_T == pytest.approx(ddpm.api.RECIPE_ALPHA_BAR_T, rel=0.02), T
    assert ddpm.api.cosine_cap(1000) == 0.108
    m4 = ddpm.fit(np.random.default_rng(0).normal(size=(300, 4)), model={"hidden": 16, "depth": 1}, **kw).model
    assert (m4.cfg.fourier, m4.sched.name) == (0, "linear")
    # an MLPConfig is used as given; a schedule named by the caller keeps its own defaults
    given = ddpm.fit("moons", model=MLPConfig(hidden=16, depth=1), schedule="cosine", **kw).model
    assert given.cfg.fourier == 0 and "max_beta" not in given.sched.params
    assert ddpm.default_recipe(3)["fourier"] == 6 and ddpm.default_recipe(4)["fourier"] == 0
    assert ddpm.default_recipe(32)["hidden"] == 128 and ddpm.default_recipe(33)["hidden"] == 192
    # images (D > WIDE_DIM) take the capped cosine schedule, tables between LOW_DIM and WIDE_DIM the linear one
    assert ddpm.default_recipe(32)["schedule"] == "linear" and ddpm.default_recipe(33, 500)["schedule"] == "cosine"
    assert ddpm.default_recipe(33, 500)["schedule_params"] == {"max_beta": ddpm.api.cosine_cap(500)}
    with pytest.raises(TypeError, match="MLPConfig, a dict"):
        ddpm.fit("moons", model=[16], **kw)
    with pytest.raises(ValueError, match="unknown model settings \\['hiden'\\]"):
        ddpm.fit("moons", model={"hiden": 16}, **kw)
    # parameters of a schedule nobody named would go to the recipe's (cosine has no beta_start)
    with pytest.raises(ValueError, match="need the schedule they are for"):
        ddpm.fit("moons", schedule_params={"beta_start": 1e-3}, **kw)
    lin = ddpm.fit("moons", schedule="linear", schedule_params={"beta_start": 1e-3}, **kw).model
    assert lin.sched.beta[1] == pytest.approx(1e-3)


def test_the_compiled_samplers_refuse_a_function_they_cannot_compile():
    pytest.importorskip("numba")
    import ddpm_fast
    sched = ddpm_ref.make_schedule("linear", 30)
    with pytest.raises(TypeError, match="network\\(params, cfg\\)"):
        ddpm_fast.p_sample_loop(lambda x, t: x, sched, np.zeros((3, 2)), rng=np.random.default_rng(0))
    # the numpy backend takes any function
    x = ddpm_fast.p_sample_loop(lambda x, t: np.zeros_like(x), sched, np.zeros((3, 2)),
                                rng=np.random.default_rng(0), backend="numpy")
    assert x.shape == (3, 2)


def test_ddim_and_the_ode_to_sigma_T_warn_on_an_eps_model_whose_schedule_ends_at_a_tiny_alpha_bar():
    # the paper's cosine cap leaves ᾱ_T = 2e-7 at T = 100: x̂_0 = (x_T − √(1−ᾱ_T) ε_θ)/√ᾱ_T amplifies ε_θ's error 2,000×
    kw = dict(steps=2, T=100, n_eval=50, n_train=200, progress=False, model={"hidden": 8, "depth": 1})
    tiny = ddpm.fit("moons", schedule="cosine", schedule_params={"max_beta": 0.999}, **kw).model
    assert tiny.sched.alpha_bar[-1] < ddpm.api.DETERMINISTIC_MIN_ALPHA_BAR_T
    for call in (lambda m: ddpm.sample(m, 5, seed=0, sampler="ddim", steps=10),
                 lambda m: ddpm.ode_nll(m, np.zeros((3, 2)), steps=4, sigma_max=None)):
        with pytest.warns(ddpm.api.DeterministicSamplerWarning, match="alpha_bar_T = 2") as rec:
            call(tiny)
        assert rec[0].filename == __file__                         # blamed on the caller's line, not the library's
    recipe = ddpm.fit("moons", **kw).model                      # the recipe's cap: ᾱ_T ≈ 1e-4, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ddpm.api.DeterministicSamplerWarning)
        ddpm.sample(recipe, 5, seed=0, sampler="ddim", steps=10)
        ddpm.sample(tiny, 5, seed=0)                              # ancestral sampling's fresh noise damps it
        for sampler in ("ode", "unipc"):                          # the ODE starts at σ_max = 3 (ᾱ = 0.1), not at T
            ddpm.sample(tiny, 5, seed=0, sampler=sampler, steps=4)
        ddpm.ode_nll(tiny, np.zeros((3, 2)), steps=4)
