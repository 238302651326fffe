"""ddpm_fast (numba) against ddpm_ref: same inputs and noise, same results (registry-driven), element by
element within registry.TOLERANCES; the tolerances are small enough to see one step's noise; what the
kernels are handed is checked before they run."""

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

import ddpm_fast  # noqa: E402
import ddpm_fast.cpu  # noqa: E402,F401  (monkeypatched below)
from strategies import assert_each_step_adds_sigma2, zero_model_sample_variance  # noqa: E402
import ddpm_ref  # noqa: E402
from ddpm_fast.layout import check_train_arrays, layout, model_widths  # noqa: E402
from ddpm_fast.registry import REGISTRY, TOLERANCES, sampling_schedule  # noqa: E402

ENTRIES = {e.name: e for e in REGISTRY}

sizes = st.fixed_dictionaries({
    "hidden": st.integers(1, 24), "depth": st.integers(1, 3), "activation": st.sampled_from(sorted(ddpm_ref.ACTIVATIONS)),
    "batch": st.integers(1, 9), "T": st.integers(21, 60), "schedule": st.sampled_from(["linear", "cosine"]),
    "dim": st.integers(1, 3), "emb_dim": st.sampled_from([2, 8, 32]), "steps": st.integers(1, 6),
    "n_points": st.integers(1, 70), "var_type": st.sampled_from(["beta", "beta_tilde"]),
    "K": st.integers(1, 60), "respaced": st.booleans(),
    "eta": st.sampled_from([0.0, 0.3, 1.0]), "spacing": st.sampled_from(["even", "leading", "trailing", "quad"]),
    "fourier": st.sampled_from([0, 1, 3, 6, 8]),
    "solver": st.sampled_from(ddpm_ref.SOLVERS), "solver_spacing": st.sampled_from(ddpm_ref.SOLVER_SPACINGS),
    "solver_sigma_max": st.sampled_from([None, 0.5]),   # σ_T = 1.1 here: 0.5 starts the grid inside, as σ_max = 3 does
})


def _check(entry, size, dtype, seed):
    make_args, kw = entry.make_inputs(size, np.random.default_rng(seed))
    ref = entry.reference(*make_args(), **kw)
    fast = entry.fast(*make_args(), **kw, backend="numba", dtype=dtype)
    for a, b in zip(entry.outputs(ref), entry.outputs(fast)):
        np.testing.assert_allclose(b, a, **TOLERANCES[np.dtype(dtype).name])


@pytest.mark.parametrize("name", sorted(ENTRIES))
@given(size=sizes, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=15)
def test_fast_equals_reference_in_float64(name, size, seed):
    _check(ENTRIES[name], size, np.float64, seed)


@pytest.mark.parametrize("name", sorted(ENTRIES))
@given(size=sizes, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=15)
def test_fast_equals_reference_in_float32_within_documented_tolerance(name, size, seed):
    _check(ENTRIES[name], {**size, "steps": min(size["steps"], 3)}, np.float32, seed)


def test_fused_k_steps_equal_k_reference_steps_including_adam_and_ema():
    size = {"hidden": 32, "depth": 3, "activation": "gelu", "batch": 16, "T": 100, "steps": 25, "dim": 2}
    _check(ENTRIES["train"], size, np.float64, 7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_split_into_parallel_chunks_equals_the_reference(dtype):
    # batch ≥ 256 is split into 4 slices (the last one short here: 301 = 3·76 + 73)
    size = {"hidden": 24, "depth": 2, "activation": "silu", "batch": 301, "T": 50, "steps": 4, "dim": 2}
    assert ddpm_fast._n_chunks(301) == 4
    _check(ENTRIES["train"], size, dtype, 11)


def test_in_kernel_noise_is_standard_normal():
    from scipy import stats
    cfg = ddpm_ref.MLPConfig(hidden=4, depth=1)
    params = {k: np.zeros_like(v) for k, v in ddpm_ref.init_params(cfg, np.random.default_rng(0)).items()}
    # ε_θ ≡ 0 and T = 21 steps: x_0 is a known linear function of x_T and the z's, a Gaussian.
    sched = ddpm_ref.make_schedule("linear", 21)
    x = ddpm_fast.p_sample_loop(ddpm_ref.network(params, cfg), sched, np.zeros((40000, 2)), rng=np.random.default_rng(1),
                                backend="numba", dtype=np.float64)
    u = x.ravel() / np.sqrt(zero_model_sample_variance(sched, "beta"))
    assert abs(u.mean()) < 4 / np.sqrt(u.size) and abs(u.var() - 1) < 0.02
    assert stats.kstest(u, "norm").pvalue > 1e-3


@pytest.mark.parametrize("var_type", ["beta", "beta_tilde"])
def test_noise_of_the_step_before_last_moves_samples_beyond_the_float32_tolerance(var_type):
    # so the parity test above sees a kernel that drops z at t = 2 (or uses the other σ_t there)
    size = {"hidden": 16, "depth": 2, "activation": "silu", "T": 30, "dim": 2, "emb_dim": 8, "n_points": 200,
            "var_type": var_type}
    make_args, kw = ENTRIES["p_sample_loop"].make_inputs(size, np.random.default_rng(5))
    z2 = kw["z"].copy()
    z2[2] = np.random.default_rng(6).standard_normal(z2[2].shape)      # z[t] is used at step t = 2
    a = ddpm_fast.p_sample_loop(*make_args(), **kw, backend="numba")
    b = ddpm_fast.p_sample_loop(*make_args(), **{**kw, "z": z2}, backend="numba")
    tol = TOLERANCES["float32"]
    moved = np.abs(b - a) > tol["atol"] + tol["rtol"] * np.abs(a)
    assert moved.mean() > 0.95, f"only {moved.mean():.0%} of the coordinates moved beyond the tolerance"
    np.testing.assert_allclose(b, ddpm_ref.p_sample_loop(*make_args(), **{**kw, "z": z2}), **tol)


@pytest.mark.parametrize("var_type", ["beta", "beta_tilde"])
def test_in_kernel_noise_adds_sigma_squared_at_every_step(var_type):
    # the final variance alone cannot tell β from β̃ (dominated by the large t): check each step's increment
    cfg = ddpm_ref.MLPConfig(hidden=4, depth=1)
    params = {k: np.zeros_like(v) for k, v in ddpm_ref.init_params(cfg, np.random.default_rng(0)).items()}
    sched = sampling_schedule(5)
    _, traj = ddpm_fast.p_sample_trajectory(ddpm_ref.network(params, cfg), sched, np.zeros((20000, 2)), rng=np.random.default_rng(2),
                                            var_type=var_type, backend="numba")
    assert_each_step_adds_sigma2(traj, sched, var_type)


def test_the_solvers_differ_beyond_the_float32_tolerance_on_the_parity_inputs():
    # so the parity test (assert_allclose: one coordinate beyond the tolerance fails it) sees a kernel that
    # drops UniPC's corrector or runs another solver's steps
    size = {"hidden": 16, "depth": 2, "activation": "silu", "T": 40, "dim": 2, "emb_dim": 8, "n_points": 200,
            "K": 8, "fourier": 3}
    out = {}
    for solver in ddpm_ref.SOLVERS:
        make_args, kw = ENTRIES["solver_sample"].make_inputs({**size, "solver": solver}, np.random.default_rng(5))
        out[solver] = ddpm_fast.solver_sample(*make_args(), **kw, backend="numba")
    tol = TOLERANCES["float32"]
    for a, b in (("dpmpp2m", "unipc"), ("dpmpp2m", "dpmpp2s"), ("dpmpp2m", "heun")):
        moved = np.abs(out[a] - out[b]) > tol["atol"] + tol["rtol"] * np.abs(out[a])
        assert moved.mean() > 0.1, (a, b, moved.mean())    # measured: 16% (unipc), 89% (2s), 98% (heun)


def test_a_solver_on_the_numba_backend_makes_its_calls_in_one_tile_or_many():
    size = {"hidden": 8, "depth": 3, "activation": "gelu", "T": 30, "dim": 3, "emb_dim": 8, "n_points": 23,
            "K": 7, "fourier": 1, "solver": "unipc", "solver_spacing": "karras"}
    make_args, kw = ENTRIES["solver_sample"].make_inputs(size, np.random.default_rng(3))
    ref = ddpm_ref.solver_sample(*make_args(), **kw)
    for tile in (1, 5, 23, 256):
        np.testing.assert_allclose(ddpm_fast.solver_sample(*make_args(), **kw, backend="numba", dtype=np.float64,
                                                           tile=tile), ref, **TOLERANCES["float64"])
    # explicit call points, stopping at the last one (final="none")
    ts = np.array([30.0, 21.5, 9.0, 4.25, 2.0])
    ref = ddpm_ref.solver_sample(*make_args(), solver="heun", ts=ts, final="none")
    np.testing.assert_allclose(ddpm_fast.solver_sample(*make_args(), solver="heun", ts=ts, final="none",
                                                       backend="numba", dtype=np.float64), ref, **TOLERANCES["float64"])


def test_solver_coefficients_are_causal_and_count_the_calls():
    sched = sampling_schedule(30)
    for solver in ddpm_ref.SOLVERS:
        t_calls, A = ddpm_fast.solver_coefficients(sched, solver=solver, steps=6)
        assert A.shape == (7, 7) and A[0, 0] == 1.0 and np.all(A[0, 1:] == 0), solver   # call 0 sees x_T alone
        if solver == "heun":      # 4 points: an Euler step from the first (even K), then Heun steps: 2 calls each
            ts = ddpm_ref.solver_timesteps(sched, 4, "karras", ddpm_ref.SIGMA_MAX)
            np.testing.assert_array_equal(t_calls, [ts[0], ts[1], ts[2], ts[2], ts[3], ts[3]])
        else:                     # one call per point of the solver's own grid
            spacing = "karras" if solver == "dpmpp2s" else "logsnr"
            np.testing.assert_array_equal(t_calls, ddpm_ref.solver_timesteps(sched, 6, spacing, ddpm_ref.SIGMA_MAX))


def test_the_numba_solvers_refuse_more_calls_than_their_coefficients_allow():
    size = {"hidden": 4, "depth": 2, "activation": "silu", "T": 30, "dim": 2, "emb_dim": 8, "n_points": 3, "K": 1}
    make_args, _ = ENTRIES["solver_sample"].make_inputs(size, np.random.default_rng(0))
    with pytest.raises(ValueError, match="at most 2048 network calls.*backend 'numpy'"):
        ddpm_fast.solver_sample(*make_args(), solver="unipc", steps=ddpm_fast.SOLVER_MAX_CALLS + 1)


# --- what the kernels are handed ----------------------------------------------------------------------------

def _simple_learned_config():
    """objective 'simple' with var_type 'learned': a combination TrainConfig itself may refuse, built
    anyway (as an old checkpoint's config might be), so that unsupported() is seen to check it on its own."""
    tcfg = copy.copy(ddpm_ref.GeneralTrainConfig(steps=3, batch_size=8))
    object.__setattr__(tcfg, "var_type", "learned")
    return tcfg


def _no_kernel(*args, **kwargs):
    raise AssertionError("a kernel ran")


@pytest.mark.parametrize("tcfg", [ddpm_ref.GeneralTrainConfig(steps=3, batch_size=8, objective="hybrid", var_type="learned"),
                                  _simple_learned_config()], ids=["hybrid-learned", "simple-learned"])
def test_learned_variances_are_refused_by_the_fused_trainer_in_one_line(tcfg, monkeypatch):
    assert ddpm_fast.unsupported(tcfg) and "\n" not in ddpm_fast.unsupported(tcfg)
    assert ddpm_fast.unsupported(ddpm_ref.GeneralTrainConfig(var_type="beta_tilde")) is None
    monkeypatch.setattr(ddpm_fast.cpu, "train_steps_kernel", _no_kernel)
    cfg = ddpm_ref.MLPConfig(hidden=8, depth=1, out_dim=4)                  # 2D outputs: ε and the variance
    rng = np.random.default_rng(0)
    state = ddpm_ref.init_state(cfg, rng)
    with pytest.raises(ValueError, match="var_type 'beta' or 'beta_tilde'") as err:
        ddpm_fast.train(state, rng.standard_normal((30, 2)), ddpm_ref.make_schedule("linear", 30), cfg, tcfg, rng, 3,
                        backend="numba")
    assert "\n" not in str(err.value)


def test_a_network_with_more_outputs_than_eps_is_refused_before_the_training_kernel(monkeypatch):
    # var_type 'beta' but out_dim = 2D: the kernel would read ε past its row and divide the loss by B·2D
    monkeypatch.setattr(ddpm_fast.cpu, "train_steps_kernel", _no_kernel)
    cfg = ddpm_ref.MLPConfig(hidden=8, depth=1, out_dim=4)
    tcfg = ddpm_ref.TrainConfig(steps=3, batch_size=8)
    assert ddpm_fast.unsupported(tcfg) is None
    rng = np.random.default_rng(0)
    state = ddpm_ref.init_state(cfg, rng)
    for dtype in (np.float32, np.float64):
        with pytest.raises(ValueError, match="needs 2 outputs, this one has 4") as err:
            ddpm_fast.train(state, rng.standard_normal((30, 2)), ddpm_ref.make_schedule("linear", 30), cfg, tcfg,
                            rng, 3, backend="numba", dtype=dtype)
        assert "\n" not in str(err.value)


def _train_arrays(cfg, T=20, B=8, K=3, N=30):
    """Valid arguments of ``check_train_arrays`` for ``cfg`` (as ddpm_fast.train builds them)."""
    widths = model_widths(cfg)
    _, P = layout(widths)
    theta = np.zeros(P, np.float32)
    return dict(cfg=cfg, widths=widths, T=T, B=B, theta=theta, m=theta.copy(), s=theta.copy(), ema=theta.copy(),
                data=np.zeros((N, cfg.dim)), emb=np.zeros((T + 1, cfg.emb_dim)), sqrt_ab=np.ones(T + 1),
                sqrt_1mab=np.ones(T + 1), lrs=np.ones(K), idx=np.zeros((K, B), np.int64),
                tt=np.ones((K, B), np.int64), eps=np.zeros((K, B, cfg.dim), np.float32))


@pytest.mark.parametrize("name,bad,match", [
    ("theta", lambda a: a["theta"][:-1], r"theta must have shape"),
    ("s", lambda a: np.zeros(a["s"].size + 1, np.float32), r"s must have shape"),
    ("eps", lambda a: np.zeros(a["eps"].shape[:2] + (3,), np.float32), r"eps must have shape \(3, 8, 2\)"),
    ("idx", lambda a: np.full_like(a["idx"], 30), r"idx must index the 30 data rows"),
    ("tt", lambda a: np.zeros_like(a["tt"]), r"tt must lie in 1..T"),
    ("emb", lambda a: np.zeros((20, a["cfg"].emb_dim)), r"embedding table must have shape \(21, 8\)"),
    ("sqrt_ab", lambda a: np.ones(20), r"sqrt_alpha_bar must have shape"),
    ("data", lambda a: np.zeros((0, 2)), r"data must have shape \(N, 2\) with N >= 1"),
    ("widths", lambda a: np.array([10, 8, 8, 2]), r"do not match the model config"),
])
def test_training_arrays_of_the_wrong_shape_are_refused(name, bad, match):
    args = _train_arrays(ddpm_ref.MLPConfig(hidden=8, depth=1, emb_dim=8))
    check_train_arrays(**args)
    args[name] = bad(args)
    with pytest.raises(ValueError, match=match):
        check_train_arrays(**args)


def test_parameters_of_another_model_are_refused_before_the_kernels(monkeypatch):
    monkeypatch.setattr(ddpm_fast.cpu, "train_steps_kernel", _no_kernel)
    monkeypatch.setattr(ddpm_fast.cpu, "sample_kernel", _no_kernel)
    cfg = ddpm_ref.MLPConfig(hidden=8, depth=1)
    rng = np.random.default_rng(0)
    state = ddpm_ref.init_state(ddpm_ref.MLPConfig(hidden=6, depth=1), rng)     # H = 6, not 8
    sched = ddpm_ref.make_schedule("linear", 30)
    with pytest.raises(ValueError, match=r"W0, b0 must have shapes \(34, 8\), \(8,\)"):
        ddpm_fast.train(state, rng.standard_normal((30, 2)), sched, cfg, ddpm_ref.TrainConfig(steps=3, batch_size=8),
                        rng, 3, backend="numba")
    with pytest.raises(ValueError, match="W0, b0 must have shapes"):
        ddpm_fast.p_sample_loop(ddpm_ref.network(state["params"], cfg), sched, np.zeros((5, 2)), rng=rng, backend="numba")


@pytest.mark.parametrize("change,match", [
    (dict(z=np.zeros((4, 5, 2))), r"z must have shape \(3, 5, 2\)"),
    (dict(z=np.zeros((3, 6, 2))), r"z must have shape \(3, 5, 2\)"),
    (dict(c_x=np.ones(2)), r"c_x must have shape \(3,\)"),
    (dict(sigma=np.ones(4)), r"sigma must have shape \(3,\)"),
    (dict(x_T=np.zeros((5, 3))), r"x_T must have shape \(N, 2\)"),
])
def test_sampler_arrays_of_the_wrong_shape_are_refused_before_the_kernel(change, match, monkeypatch):
    monkeypatch.setattr(ddpm_fast.cpu, "sample_kernel", _no_kernel)
    cfg = ddpm_ref.MLPConfig(hidden=8, depth=1)
    args = dict(params=ddpm_ref.init_params(cfg, np.random.default_rng(0)), cfg=cfg, x_T=np.zeros((5, 2)),
                t_steps=np.array([3, 2, 1]), c_x=np.ones(3), c_eps=np.ones(3), sigma=np.ones(3),
                z=np.zeros((3, 5, 2)), seed=0, dtype=np.float32, tile=4, keep_traj=True)
    with pytest.raises(ValueError, match=match):
        ddpm_fast._run_sampler(**{**args, **change})


def test_sampler_reads_eps_from_the_first_d_outputs_of_a_wider_network():
    # a learned-variance network (2D outputs) sampled with a fixed σ²: the kernel reads ε̂ = out[:, :D],
    # as the reference does, and never the variance outputs
    cfg = ddpm_ref.MLPConfig(hidden=8, depth=2, out_dim=4)
    rng = np.random.default_rng(3)
    params = {k: v * 0.5 for k, v in ddpm_ref.init_params(cfg, rng).items()}
    sched, x_T = sampling_schedule(25), rng.standard_normal((40, 2))
    z = rng.standard_normal((26, 40, 2))
    np.testing.assert_allclose(ddpm_fast.p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z, backend="numba"),
                               ddpm_ref.p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z), **TOLERANCES["float32"])


_DETERMINISM = """
import numpy as np, ddpm_ref, ddpm_fast
cfg = ddpm_ref.MLPConfig(hidden=32, depth=2)
sched = ddpm_ref.make_schedule("linear", 50)
tcfg = ddpm_ref.TrainConfig(steps=40, batch_size=300)   # ≥ 256: the parallel, chunked path
rng = np.random.default_rng(0)
state = ddpm_ref.init_state(cfg, rng)
state, losses = ddpm_fast.train(state, rng.standard_normal((500, 2)), sched, cfg, tcfg, rng, 40, backend="numba")
x = ddpm_fast.p_sample_loop(ddpm_ref.network(state["ema"], cfg), sched, rng.standard_normal((300, 2)), rng=rng, backend="numba")
print(np.concatenate([losses, x.ravel(), state["params"]["W1"].ravel()]).tobytes().hex())
"""


def _run_with_threads(n):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(n), OPENBLAS_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", _DETERMINISM], env=env, capture_output=True, text=True,
                          check=True).stdout


def test_same_seed_gives_identical_results_on_1_and_2_threads():
    assert _run_with_threads(1) == _run_with_threads(2)


def test_fast_tanh_of_the_float32_kernels_is_within_3e_7_of_tanh():
    from ddpm_fast.cpu import _tanh_fast
    import numba as nb

    f = nb.njit(lambda xs: np.array([_tanh_fast(x) for x in xs]))
    x = np.linspace(-30, 30, 200_001).astype(np.float32)
    y = f(x)
    assert y.dtype == np.float32                      # float32 in, float32 arithmetic out
    assert np.abs(y - np.tanh(x.astype(np.float64))).max() < 3e-7
