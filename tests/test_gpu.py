"""The cupy backend: its CUDA kernels compiled (nvcc, NVRTC; with and without the tensor-core code), run on
the CPU emulator (tests/cuda_emu) against ddpm_ref (element by element within registry.TOLERANCES, small
enough to see one step's noise), its host code (the shapes it hands the kernels, the SIMT fallback, CUDA
graphs dropped with their buffers, the compile options that key CuPy's cache), its "no GPU" message; and,
on a machine with a GPU, the same checks on the device (marked ``gpu``: benchmarks/gpu_check.sh runs
``-m gpu`` and the NVRTC test)."""

import contextlib
import functools
import os
import shutil
import subprocess
import types
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ddpm_fast
import ddpm_ref
from ddpm_fast import gpu
from ddpm_fast.counter import counter_draws
from ddpm_fast.registry import ADAM_EPS, TOLERANCES, sampling_schedule

from cuda_emu import MAX_SMEM, EmuLauncher, compiler_status
from strategies import assert_each_step_adds_sigma2, zero_model_sample_variance

TOL = TOLERANCES["float32"]
needs_cxx = pytest.mark.skipif(compiler_status() is not None, reason=f"no emulator: {compiler_status()}")
needs_gpu = pytest.mark.skipif(gpu.gpu_status() is not None, reason=f"{gpu.gpu_status()}")


def _close(got, want):
    np.testing.assert_allclose(got, want, **TOL)


# --- compiled for the device ----------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not found")
@pytest.mark.parametrize("H,tc", [pytest.param(16, True, marks=pytest.mark.slow), (128, True),     # 10–21 s each:
                                  pytest.param(256, True, marks=pytest.mark.slow), (128, False)])  # default H in the suite
def test_every_cu_file_compiles_for_sm90_with_nvcc(tmp_path, H, tc):
    # tc False: the -DDDPM_NO_TC build gpu.compile_module falls back to
    cuda = os.path.dirname(gpu.KERNELS)
    for name in sorted(f for f in os.listdir(cuda) if f.endswith(".cu")):
        res = subprocess.run(["nvcc", "-std=c++17", "-arch=sm_90", f"-DDDPM_H={H}", *([] if tc else ["-DDDPM_NO_TC"]),
                              "-Werror", "all-warnings", "-c", os.path.join(cuda, name),
                              "-o", str(tmp_path / f"{name}.o")], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def test_kernels_compile_with_nvrtc_as_cupy_compiles_them(tmp_path):
    # CuPy's RawModule compiles with NVRTC (no C headers, CuPy's own options); that needs no GPU. The
    # program class is CuPy's private API: any change in it skips the test rather than failing it.
    compiler = pytest.importorskip("cupy.cuda.compiler")
    with open(gpu.KERNELS) as f:
        src = f.read()
    every = set(gpu.KERNEL_NAMES)
    for H, tc in ((16, True), (128, True), (256, True), (128, False)):
        try:
            prog = compiler._NVRTCProgram(src, str(tmp_path / "kern.cu"), (), (), name_expressions=None,
                                          method="ptx")
            ptx, _ = prog.compile(gpu.nvrtc_options(H, tc) + ("-arch=compute_90",
                                                              "--device-as-default-execution-space"))
        except compiler.CompileException:
            raise
        except Exception as e:                                     # NVRTC missing, or CuPy's private API changed
            pytest.skip(f"NVRTC not usable here through CuPy's _NVRTCProgram: {type(e).__name__}: {e}")
        entries = {line.split()[2].rstrip("(") for line in ptx.decode().splitlines()
                   if line.startswith(".visible .entry")}
        assert entries == (every if tc else every - set(gpu.TC_ONLY_KERNELS))


def test_without_mma_h_nvrtc_rejects_the_tensor_core_code_and_the_simt_fallback_compiles(monkeypatch):
    # gpu.compile_module against the real NVRTC (to PTX: no device needed), CUDA's include folder withheld
    compiler = pytest.importorskip("cupy.cuda.compiler")

    class NVRTCModule:
        """cupy.RawModule as far as compile_module uses it, compiled to PTX only."""
        def __init__(self, code, options):
            self.code, self.options = code, options

        def compile(self):
            try:
                prog = compiler._NVRTCProgram(self.code, "kern.cu", (), (), name_expressions=None, method="ptx")
            except Exception as e:                                  # CuPy's private API changed
                pytest.skip(f"CuPy's _NVRTCProgram not usable: {type(e).__name__}: {e}")
            try:
                prog.compile(self.options + ("-arch=compute_90", "--device-as-default-execution-space"))
            except compiler.CompileException:
                raise
            except Exception as e:                                  # NVRTC library missing
                pytest.skip(f"NVRTC not usable here: {type(e).__name__}: {e}")

    monkeypatch.setattr(gpu, "cuda_include_dirs", lambda: [])
    cp = types.SimpleNamespace(RawModule=NVRTCModule, cuda=types.SimpleNamespace(compiler=compiler))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        module, tc = gpu.compile_module(cp, 128)
    if tc:
        pytest.skip("this NVRTC finds mma.h without an include folder")
    assert "-DDDPM_NO_TC" in module.options and len(rec) == 1 and "mma.h" in str(rec[0].message)


def test_compile_options_change_when_an_included_header_changes(tmp_path, monkeypatch):
    # CuPy's kernel cache keys on the source string and the options: the header's bytes must be in the options
    cuda = tmp_path / "cuda"
    shutil.copytree(os.path.dirname(gpu.KERNELS), cuda)
    monkeypatch.setattr(gpu, "KERNELS", str(cuda / "kernels.cu"))
    assert [os.path.basename(f) for f in gpu.source_files()] == ["kernels.cu", "ddpm_common.cuh"]
    before = gpu.nvrtc_options(128)
    with open(cuda / "ddpm_common.cuh", "ab") as f:
        f.write(b"\n// one more line\n")
    after = gpu.nvrtc_options(128)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after) and len(changed) == 1 and changed[0][0].startswith("-DDDPM_SRC_HASH=")
    assert gpu.nvrtc_options(128, tc=False) != after and "-DDDPM_NO_TC" in gpu.nvrtc_options(128, tc=False)


class _CompileError(Exception):
    pass


def _fake_cupy(fails):
    """A stand-in for the cupy module whose RawModule.compile raises for the options ``fails(options)`` names."""
    built = []

    class RawModule:
        def __init__(self, code, options):
            self.options = options
            built.append(options)

        def compile(self):
            if fails(self.options):
                raise _CompileError('kern.cu(19): catastrophic error: cannot open source file "mma.h"\n'
                                    '1 catastrophic error detected in the compilation of "kern.cu".')

    compiler = types.SimpleNamespace(CompileException=_CompileError)
    return types.SimpleNamespace(RawModule=RawModule, cuda=types.SimpleNamespace(compiler=compiler)), built


def test_a_module_whose_tensor_core_code_fails_to_compile_is_rebuilt_without_it_after_one_warning():
    cp, built = _fake_cupy(lambda opts: "-DDDPM_NO_TC" not in opts)
    with pytest.warns(RuntimeWarning) as rec:
        module, tc = gpu.compile_module(cp, 128)
    assert not tc and len(built) == 2 and "-DDDPM_NO_TC" in module.options
    assert len(rec) == 1 and "\n" not in str(rec[0].message)
    assert 'cannot open source file "mma.h"' in str(rec[0].message) and "SIMT" in str(rec[0].message)
    cp, built = _fake_cupy(lambda opts: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module, tc = gpu.compile_module(cp, 128)
    assert tc and len(built) == 1 and "-DDDPM_NO_TC" not in module.options
    cp, _ = _fake_cupy(lambda opts: True)                          # the SIMT code fails too: that error is raised
    with pytest.warns(RuntimeWarning), pytest.raises(_CompileError):
        gpu.compile_module(cp, 128)


def test_kernel_attributes_are_read_for_every_kernel_the_module_has():
    fn = types.SimpleNamespace(num_regs=126, local_size_bytes=0, shared_size_bytes=0, max_threads_per_block=512)
    lau = types.SimpleNamespace(kernels=("ddpm_sample", "ddpm_adam"),
                                module=types.SimpleNamespace(get_function=lambda name: fn))
    got = gpu.kernel_attributes(lau)
    assert [a["kernel"] for a in got] == ["ddpm_sample", "ddpm_adam"] and got[0]["num_regs"] == 126


# --- the kernels' logic on the CPU emulator ------------------------------------------------------------

def _model(hidden, depth, activation, dim, emb_dim, T, rng, fourier=0):
    """The samplers' test model (as the registry's): half-scale initial weights on a schedule with
    moderate ᾱ_T, so samples stay O(1) and the float32 tolerance is far below one step's noise."""
    cfg = ddpm_ref.MLPConfig(dim=dim, hidden=hidden, depth=depth, activation=activation, emb_dim=emb_dim,
                             fourier=fourier)
    params = {k: v * 0.5 for k, v in ddpm_ref.init_params(cfg, rng).items()}
    return cfg, params, sampling_schedule(T)


sizes = st.fixed_dictionaries({
    "hidden": st.sampled_from([16, 32]), "depth": st.integers(1, 3),
    "activation": st.sampled_from(sorted(ddpm_ref.ACTIVATIONS)), "dim": st.integers(1, 3),
    "emb_dim": st.sampled_from([2, 8]), "T": st.integers(21, 30), "n_points": st.integers(1, 260),
    "var_type": st.sampled_from(["beta", "beta_tilde"]), "trajectory": st.booleans(),
    "kernel": st.sampled_from(sorted(gpu.SAMPLER_KERNELS)), "fourier": st.sampled_from([0, 1, 3]),
})


@needs_cxx
@given(size=sizes, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=12)
def test_emulated_sampler_equals_reference_algorithm_2(size, seed):
    rng = np.random.default_rng(seed)
    cfg, params, sched = _model(size["hidden"], size["depth"], size["activation"], size["dim"], size["emb_dim"],
                                size["T"], rng, size["fourier"])
    x_T = rng.standard_normal((size["n_points"], cfg.dim))
    z = rng.standard_normal((sched.T + 1, size["n_points"], cfg.dim))
    chain = ddpm_ref.p_sample_trajectory if size["trajectory"] else ddpm_ref.p_sample_loop
    ref = chain(ddpm_ref.network(params, cfg), sched, x_T, z=z, var_type=size["var_type"])
    t_steps, c_x, c_eps, sigma = ddpm_fast.ancestral_coefficients(sched, size["var_type"])
    got = gpu.run_sampler(params, cfg, x_T, t_steps, c_x, c_eps, sigma, np.ascontiguousarray(z[:0:-1]), 0,
                          keep_traj=size["trajectory"], launcher=EmuLauncher(cfg.hidden), kernel=size["kernel"])
    for g, w in zip(got if size["trajectory"] else [got], ref if size["trajectory"] else [ref]):
        _close(g, w)


@needs_cxx
@pytest.mark.parametrize("kernel", sorted(gpu.SAMPLER_KERNELS))
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_emulated_ddim_equals_reference(eta, kernel):
    rng = np.random.default_rng(3)
    cfg, params, sched = _model(32, 2, "silu", 2, 8, 40, rng)
    ts = ddpm_ref.timesteps(sched.T, 7, "even")
    x_T = rng.standard_normal((140, 2))
    z = rng.standard_normal((len(ts), 140, 2))
    ref = ddpm_ref.ddim_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, ts=ts, eta=eta, z=z)
    c_x, c_eps, sigma = ddpm_fast.ddim_coefficients(sched, ts, eta)
    got = gpu.run_sampler(params, cfg, x_T, ts, c_x, c_eps, sigma, z, 0, launcher=EmuLauncher(32), kernel=kernel)
    _close(got, ref)


@needs_cxx
@pytest.mark.parametrize("kernel", sorted(gpu.SAMPLER_KERNELS))
def test_emulated_sampler_with_weights_too_large_for_shared_memory(kernel):
    # H = 256, depth 3: the hidden weights (512 KiB) stay in global memory (w_in_smem = 0)
    rng = np.random.default_rng(6)
    cfg, params, sched = _model(256, 3, "gelu", 2, 8, 30, rng)
    assert not gpu.sampler_smem(256, 2, 4, EmuLauncher.max_smem, kernel)[1]
    ts = ddpm_ref.timesteps(sched.T, 4, "even")
    x_T = rng.standard_normal((130, 2))
    ref = ddpm_ref.ddim_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, ts=ts)
    c_x, c_eps, sigma = ddpm_fast.ddim_coefficients(sched, ts, 0.0)
    _close(gpu.run_sampler(params, cfg, x_T, ts, c_x, c_eps, sigma, None, 0, launcher=EmuLauncher(256),
                           kernel=kernel), ref)


@needs_cxx
@pytest.mark.parametrize("kernel", sorted(gpu.SAMPLER_KERNELS))
def test_emulated_in_kernel_noise_is_the_numba_backends_noise(kernel):
    # same seed → same counter-based normals on CPU (numba) and GPU kernels, so the same samples
    pytest.importorskip("numba")
    rng = np.random.default_rng(4)
    cfg, params, sched = _model(16, 2, "silu", 3, 8, 25, rng)     # D = 3: a Box–Muller pair and a half
    x_T = rng.standard_normal((200, 3))
    a = ddpm_fast.p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, rng=np.random.default_rng(9), backend="numba")
    seed = int(np.random.default_rng(9).integers(0, 2**63 - 1))    # what p_sample_loop draws from its rng
    t_steps, c_x, c_eps, sigma = ddpm_fast.ancestral_coefficients(sched, "beta")
    b = gpu.run_sampler(params, cfg, x_T, t_steps, c_x, c_eps, sigma, None, seed, launcher=EmuLauncher(16),
                        kernel=kernel)
    _close(b, a)


@needs_cxx
@pytest.mark.parametrize("kernel", sorted(gpu.SAMPLER_KERNELS))
def test_emulated_noise_of_the_step_before_last_moves_samples_beyond_the_tolerance(kernel):
    # so the parity tests above see a kernel that drops z at t = 2 (step k = K − 2 in kernel order)
    rng = np.random.default_rng(8)
    cfg, params, sched = _model(16, 2, "silu", 2, 8, 25, rng)
    x_T = rng.standard_normal((130, 2))                            # two blocks, the second one short
    z = rng.standard_normal((sched.T + 1, 130, 2))
    z2 = z.copy()
    z2[2] = rng.standard_normal(z[2].shape)                        # z[t] is used at step t = 2
    t_steps, c_x, c_eps, sigma = ddpm_fast.ancestral_coefficients(sched, "beta")
    run = lambda z_: gpu.run_sampler(params, cfg, x_T, t_steps, c_x, c_eps, sigma, np.ascontiguousarray(z_[:0:-1]),
                                     0, launcher=EmuLauncher(16), kernel=kernel)
    a, b = run(z), run(z2)
    moved = np.abs(b - a) > TOL["atol"] + TOL["rtol"] * np.abs(a)
    assert moved.mean() > 0.95, f"only {moved.mean():.0%} of the coordinates moved beyond the tolerance"
    _close(b, ddpm_ref.p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z2))


@pytest.mark.parametrize("where", ["emulator", pytest.param("gpu", marks=[needs_gpu, pytest.mark.gpu])])
@pytest.mark.parametrize("kernel", sorted(gpu.SAMPLER_KERNELS))
@pytest.mark.parametrize("var_type", ["beta", "beta_tilde"])
def test_in_kernel_noise_adds_sigma_squared_at_every_step(var_type, kernel, where, monkeypatch):
    # the final variance alone cannot tell β from β̃ (dominated by the large t): check each step's increment
    if where == "emulator" and compiler_status():
        pytest.skip(f"no emulator: {compiler_status()}")
    monkeypatch.setattr(gpu, "SAMPLER_KERNEL", kernel)
    cfg = ddpm_ref.MLPConfig(dim=4, hidden=16, depth=1)          # 6000 × 4 coordinates in 47 emulated blocks
    params = {k: np.zeros_like(v) for k, v in ddpm_ref.init_params(cfg, np.random.default_rng(0)).items()}
    sched = sampling_schedule(5)
    with gpu.emulated(EmuLauncher) if where == "emulator" else contextlib.nullcontext():
        _, traj = ddpm_fast.p_sample_trajectory(ddpm_ref.network(params, cfg), sched, np.zeros((6000, 4)), rng=np.random.default_rng(2),
                                                var_type=var_type, backend="cupy")
    assert_each_step_adds_sigma2(traj, sched, var_type)


def _training_problem(dim, hidden, depth, activation, schedule, T, batch, n_data, emb_dim=8, seed=0, steps=5,
                      fourier=0):
    """A model, schedule, training config, fresh state and standard-normal data for the training tests."""
    cfg = ddpm_ref.MLPConfig(dim=dim, hidden=hidden, depth=depth, activation=activation, emb_dim=emb_dim,
                             fourier=fourier)
    sched = ddpm_ref.make_schedule(schedule, T)
    tcfg = ddpm_ref.TrainConfig(steps=steps, batch_size=batch, adam_eps=ADAM_EPS)   # well-conditioned Adam steps
    rng = np.random.default_rng(seed)
    state = ddpm_ref.init_state(cfg, rng)
    return cfg, sched, tcfg, state, rng.standard_normal((n_data, dim))


def _reference_on_counter_draws(state, data, sched, cfg, tcfg, rng_seed, n_steps):
    """ddpm_ref.train_step fed the draws the kernels make with draws="counter" from default_rng(rng_seed)."""
    seed = int(np.random.default_rng(rng_seed).integers(0, 2**63 - 1))
    ref, losses = state, []
    for k in range(n_steps):
        idx, t, eps = counter_draws(seed, k, tcfg.batch_size, data.shape[0], sched.T, cfg.dim)
        ref, l_ = ddpm_ref.train_step(ref, data[idx], t, eps.astype(np.float64), sched, cfg, tcfg)
        losses.append(l_)
    return ref, np.array(losses)


@needs_cxx
@pytest.mark.parametrize("kernel", gpu.TRAIN_KERNELS)
@pytest.mark.parametrize("activation,batch,depth,fourier", [("silu", 70, 2, 0), ("relu", 33, 1, 2), ("gelu", 5, 3, 0),
                                                            ("tanh", 100, 2, 3)])
def test_emulated_fused_training_equals_reference_steps(activation, batch, depth, fourier, kernel):
    # batch 70 with 32-row tiles: 3 tiles, the last one short (its products on the SIMT path even with
    # "tc"); weights, EMA, Adam moments and losses; with and without γ's Fourier columns
    cfg, sched, tcfg, state, data = _training_problem(2, 16, depth, activation, "linear", 30, batch, 200,
                                                      fourier=fourier)
    ref, ref_loss = ddpm_ref.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 5)
    got, loss = gpu.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 5, launcher=EmuLauncher(16),
                          chunk=3, kernel=kernel)                 # two chunks: 3 + 2 steps
    _close(loss, ref_loss)
    for group in ("params", "ema"):
        for k in ref[group]:
            _close(got[group][k], ref[group][k])
    for k in ref["opt"]["m"]:
        _close(got["opt"]["m"][k], ref["opt"]["m"][k])
    assert got["opt"]["step"] == ref["opt"]["step"] == 5


@needs_cxx
@pytest.mark.parametrize("kernel", gpu.TRAIN_KERNELS)
def test_emulated_training_with_several_tiles_per_block_equals_reference_steps(kernel, monkeypatch):
    # on a GPU from batch 8,193 on (256 blocks × 32 rows); here the grid is capped at 2 blocks, so batch 70
    # (tiles of 32, 32, 6 rows) gives block 0 tiles 0 and 2
    monkeypatch.setattr(gpu, "GRID_MAX", 2)
    cfg, sched, tcfg, state, data = _training_problem(2, 16, 2, "silu", "linear", 30, 70, 200, steps=3)
    ref, ref_loss = ddpm_ref.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 3)
    lau = EmuLauncher(16)
    got, loss = gpu.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 3, launcher=lau, kernel=kernel)
    assert {g for name, g in lau.launches if name == "ddpm_train_tiles"} == {2}
    _close(loss, ref_loss)
    for k in ref["params"]:
        _close(got["params"][k], ref["params"][k])


@needs_cxx
def test_without_tensor_core_code_the_host_runs_the_simt_kernels():
    # the module gpu.compile_module falls back to (-DDDPM_NO_TC): no ddpm_sample_tc; asking for "tc" still works
    lau = EmuLauncher(16, tc=False)
    assert not lau.tc and "ddpm_sample_tc" not in lau.kernels
    rng = np.random.default_rng(11)
    cfg, params, sched = _model(16, 2, "silu", 2, 8, 25, rng)
    x_T = rng.standard_normal((130, 2))
    z = rng.standard_normal((sched.T + 1, 130, 2))
    t_steps, c_x, c_eps, sigma = ddpm_fast.ancestral_coefficients(sched, "beta")
    got = gpu.run_sampler(params, cfg, x_T, t_steps, c_x, c_eps, sigma, np.ascontiguousarray(z[:0:-1]), 0,
                          launcher=lau, kernel="tc")
    _close(got, ddpm_ref.p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z))
    assert {name for name, _ in lau.launches} == {"ddpm_sample"}
    cfg, sched, tcfg, state, data = _training_problem(2, 16, 2, "silu", "linear", 30, 40, 100, steps=2)
    assert gpu.TrainEngine(cfg, 40, data, sched, lau, "tc").use_tc == 0
    assert gpu.TrainEngine(cfg, 40, data, sched, EmuLauncher(16), "tc").use_tc == 1
    ref, ref_loss = ddpm_ref.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 2)
    got, loss = gpu.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 2, launcher=lau, kernel="tc")
    _close(loss, ref_loss)
    for k in ref["params"]:
        _close(got["params"][k], ref["params"][k])


@needs_cxx
def test_a_training_graph_is_captured_again_when_its_buffers_are_replaced():
    # chunks of 3, 2, 3 steps: the K = 2 chunk reallocates the per-chunk buffers, so the K = 3 graph of the
    # first chunk points at freed ones. The emulator's graph records the launches with their arrays, as a
    # CUDA graph holds device pointers: replaying the stale graph would write the old losses buffer.
    cfg, sched, tcfg, state, data = _training_problem(2, 16, 1, "silu", "linear", 30, 20, 50, steps=8)
    seed = int(np.random.default_rng(3).integers(0, 2**63 - 1))
    ref, ref_loss = _reference_on_counter_draws(state, data, sched, cfg, tcfg, 3, 8)
    lau = EmuLauncher(16)
    eng = gpu.TrainEngine(cfg, 20, data, sched, lau)
    theta, m, s, ema = (gpu.pack(d, eng.widths, np.float32)
                        for d in (state["params"], state["opt"]["m"], state["opt"]["s"], state["ema"]))
    thetaT = eng.transposed(theta)
    step, losses, graphs = 0, [], []
    for K in (3, 2, 3):
        eng.set_chunk(K, seed)
        eng.lrs[...] = [ddpm_ref.learning_rate(tcfg, step + k) for k in range(K)]
        eng.base_step[...] = step
        eng.run(theta, thetaT, m, s, ema, tcfg, use_graph=True)
        graphs.append(eng.graph)
        losses += list(eng.losses)
        step += K
    _close(np.array(losses), ref_loss)
    got = gpu.unpack(theta, eng.widths)
    for k in ref["params"]:
        _close(got[k], ref["params"][k])
    assert graphs[0] is not graphs[2]
    n = sum(name == "ddpm_adam" for name, _ in lau.launches)
    eng.run(theta, thetaT, m, s, ema, tcfg, use_graph=True)       # nothing changed: the same graph replays
    assert eng.graph is graphs[2] and sum(name == "ddpm_adam" for name, _ in lau.launches) == n + 3


@needs_cxx
def test_emulated_training_with_in_kernel_draws_equals_reference_steps_on_those_draws():
    # draws="counter": the kernel draws x_0, t, ε itself; counter_draws mirrors them in NumPy
    cfg, sched, tcfg, state, data = _training_problem(3, 16, 2, "silu", "linear", 30, 50, 77, steps=4)
    got, loss = gpu.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 4, launcher=EmuLauncher(16),
                          draws="counter", chunk=3)
    ref, ref_loss = _reference_on_counter_draws(state, data, sched, cfg, tcfg, 3, 4)
    _close(loss, ref_loss)
    for k in ref["params"]:
        _close(got["params"][k], ref["params"][k])


@needs_cxx
def test_numba_and_cupy_training_with_counter_draws_take_the_same_steps():
    # draws="counter": both compiled backends draw x_0, t, ε from (seed, step, row) — the same run
    pytest.importorskip("numba")
    cfg, sched, tcfg, state, data = _training_problem(3, 16, 2, "silu", "linear", 30, 50, 77, steps=4)
    a, la = ddpm_fast.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 4, backend="numba",
                            draws="counter")
    with gpu.emulated(EmuLauncher):
        b, lb = ddpm_fast.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 4, backend="cupy",
                                draws="counter")
    _close(la, lb)
    for k in a["params"]:
        _close(a["params"][k], b["params"][k])


def test_numba_training_with_counter_draws_equals_reference_steps_on_those_draws():
    pytest.importorskip("numba")
    # batch ≥ 256 rows: the chunked path
    cfg, sched, tcfg, state, data = _training_problem(2, 12, 2, "tanh", "cosine", 40, 300, 90, seed=1)
    got, loss = ddpm_fast.train(state, data, sched, cfg, tcfg, np.random.default_rng(5), 5, backend="numba",
                                dtype=np.float64, draws="counter")
    ref, ref_loss = _reference_on_counter_draws(state, data, sched, cfg, tcfg, 5, 5)
    # the float64 kernel keeps ε in float64, the mirror returns it in float32: agreement to ~1e-7
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    for k in ref["params"]:
        np.testing.assert_allclose(got["params"][k], ref["params"][k], rtol=1e-5, atol=1e-7)


def test_counter_draws_are_uniform_and_standard_normal():
    from scipy import stats
    idx, t, eps = counter_draws(12345, 7, 200_000, 77, 1000, 3)
    assert idx.min() == 0 and idx.max() == 76 and t.min() == 1 and t.max() == 1000
    assert stats.chisquare(np.bincount(idx, minlength=77)).pvalue > 1e-4
    assert stats.chisquare(np.bincount(t - 1, minlength=1000)).pvalue > 1e-4
    assert stats.kstest(eps.ravel(), "norm").pvalue > 1e-4
    assert abs(np.corrcoef(eps[:, 0], eps[:, 1])[0, 1]) < 0.01          # the two halves of a Box–Muller pair
    again = counter_draws(12345, 7, 10, 77, 1000, 3)
    assert np.array_equal(again[0], idx[:10]) and np.array_equal(again[2], eps[:10])   # pure function of the row


def test_baseline_path_equals_reference_steps_on_numpy():
    cfg, sched, tcfg, state, data = _training_problem(2, 24, 2, "gelu", "cosine", 40, 40, 100, seed=1, steps=4)
    ref, ref_loss = ddpm_ref.train(state, data, sched, cfg, tcfg, np.random.default_rng(2), 4)
    got, loss = gpu.train_baseline(state, data, sched, cfg, tcfg, np.random.default_rng(2), 4, xp=np)
    _close(loss, ref_loss)
    for k in ref["params"]:
        _close(got["params"][k], ref["params"][k])


@pytest.mark.parametrize("where", ["emulator", pytest.param("gpu", marks=[needs_gpu, pytest.mark.gpu])])
@pytest.mark.parametrize("name", ["train", "p_sample_loop", "ddim_sample_loop"])
@given(size=st.fixed_dictionaries({
    "hidden": st.sampled_from([16, 32]), "depth": st.integers(1, 3),
    "activation": st.sampled_from(sorted(ddpm_ref.ACTIVATIONS)), "batch": st.integers(1, 40), "T": st.integers(21, 30),
    "schedule": st.sampled_from(["linear", "cosine"]), "dim": st.integers(1, 3), "emb_dim": st.sampled_from([2, 8]),
    "steps": st.integers(1, 3), "n_points": st.integers(1, 150), "var_type": st.sampled_from(["beta", "beta_tilde"]),
    "K": st.integers(1, 30), "respaced": st.booleans(), "trajectory": st.booleans(),
    "eta": st.sampled_from([0.0, 0.5, 1.0]), "spacing": st.sampled_from(["even", "trailing"])}),
    seed=st.integers(0, 2**32 - 1))
@settings(max_examples=6)
def test_registry_entries_on_the_cupy_backend_equal_the_reference(name, where, size, seed):
    # the parity registry of the CPU backend, run through ddpm_fast's public functions with backend="cupy",
    # on the CPU emulator of the kernels and, where there is one, on the GPU
    import contextlib
    from ddpm_fast.registry import REGISTRY
    if where == "emulator" and compiler_status():
        pytest.skip(f"no emulator: {compiler_status()}")
    entry = {e.name: e for e in REGISTRY}[name]
    make_args, kw = entry.make_inputs(size, np.random.default_rng(seed))
    ref = entry.reference(*make_args(), **kw)
    with gpu.emulated(EmuLauncher) if where == "emulator" else contextlib.nullcontext():
        got = entry.fast(*make_args(), **kw, backend="cupy", dtype=np.float32)
    for a, b in zip(entry.outputs(ref), entry.outputs(got)):
        _close(b, a)


# --- host-side checks ------------------------------------------------------------------------------------

class _NoLaunch:
    """A launcher that fails the test if any kernel is launched (the host checks must come first)."""
    xp = np
    max_smem = MAX_SMEM

    def __init__(self, H):
        self.H = H

    def launch(self, name, grid, smem_bytes, args):
        raise AssertionError(f"{name} was launched")


def test_gpu_training_refuses_learned_variances_and_foreign_weights_before_any_launch():
    cfg, sched, tcfg, state, data = _training_problem(2, 16, 1, "silu", "linear", 30, 8, 20)
    wide = ddpm_ref.MLPConfig(dim=2, hidden=16, depth=1, emb_dim=8, out_dim=4)     # learned-variance shape
    wide_state = ddpm_ref.init_state(wide, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs 2 outputs, this one has 4"):
        gpu.train(wide_state, data, sched, wide, tcfg, np.random.default_rng(1), 2, launcher=_NoLaunch(16))
    with pytest.raises(ValueError, match="W1, b1 must have shapes"):                 # another model's weights
        gpu.train(wide_state, data, sched, cfg, tcfg, np.random.default_rng(1), 2, launcher=_NoLaunch(16))
    learned = ddpm_ref.GeneralTrainConfig(steps=2, batch_size=8, objective="hybrid", var_type="learned")
    with gpu.emulated(_NoLaunch), pytest.raises(ValueError, match="var_type 'beta' or 'beta_tilde'"):
        ddpm_fast.train(wide_state, data, sched, wide, learned, np.random.default_rng(1), 2, backend="cupy")


@pytest.mark.parametrize("change,match", [
    (dict(z=np.zeros((4, 5, 2))), r"z must have shape \(3, 5, 2\)"),
    (dict(z=np.zeros((3, 5, 1))), r"z must have shape \(3, 5, 2\)"),
    (dict(c_eps=np.ones(2)), r"c_eps must have shape \(3,\)"),
    (dict(sigma=np.ones(4)), r"sigma must have shape \(3,\)"),
    (dict(x_T=np.zeros((5, 3))), r"x_T must have shape \(N, 2\)"),
    (dict(launcher=_NoLaunch(32)), r"compiled for H = 32, the model has hidden = 16"),
])
def test_gpu_sampler_arrays_of_the_wrong_shape_are_refused_before_the_launch(change, match):
    cfg = ddpm_ref.MLPConfig(hidden=16, depth=1)
    args = dict(params=ddpm_ref.init_params(cfg, np.random.default_rng(0)), cfg=cfg, x_T=np.zeros((5, 2)),
                t_steps=np.array([3, 2, 1]), c_x=np.ones(3), c_eps=np.ones(3), sigma=np.ones(3),
                z=np.zeros((3, 5, 2)), seed=0, keep_traj=True, launcher=_NoLaunch(16))
    with pytest.raises(ValueError, match=match):
        gpu.run_sampler(**{**args, **change})


def test_shared_memory_plan_keeps_weights_in_smem_when_they_fit():
    # row strides padded against bank conflicts: activations H + 1 (SIMT) or H + 4 (tc), tc weights H + 8
    smem, w_in = gpu.sampler_smem(128, 2, 4, 232448, "simt")      # the default model on sm_90
    assert w_in and smem == 4 * (128 * 129 + 128 * 2 + 256 * 2 + 2 * 128 * 128)
    smem, w_in = gpu.sampler_smem(128, 2, 4, 232448, "tc")
    assert w_in and smem == 4 * (128 * 132 + 128 * 2 + 256 * 2 + 2 * 128 * 136)
    for kernel in gpu.SAMPLER_KERNELS:                            # 2 × 256² weights do not fit
        smem, w_in = gpu.sampler_smem(256, 2, 4, 232448, kernel)
        assert not w_in and smem == 4 * (128 * (256 + gpu.ACT_PAD[kernel]) + 128 * 2 + 256 * 2)
    assert gpu.train_rows(np.array([34, 128, 128, 128, 2]), 232448) == 32
    assert gpu.train_rows(np.array([34, 256, 256, 256, 256, 256, 2]), 100_000) < 32


def test_model_limits_of_the_gpu_kernels_are_named():
    with pytest.raises(ValueError, match="multiple of 16"):
        gpu.check_model(ddpm_ref.MLPConfig(hidden=100))
    with pytest.raises(ValueError, match="multiple of 16"):
        gpu.check_model(ddpm_ref.MLPConfig(hidden=512))


@pytest.mark.skipif(gpu.gpu_status() is None, reason="a GPU is present")
def test_without_a_gpu_the_backend_says_so():
    cfg = ddpm_ref.MLPConfig(hidden=16, depth=1)
    params = ddpm_ref.init_params(cfg, np.random.default_rng(0))
    sched = ddpm_ref.make_schedule("linear", 25)
    assert "cupy" not in ddpm_fast.available_backends()
    with pytest.raises(gpu.GPUUnavailable, match="backend 'cupy' cannot run here: (no GPU|CuPy is not installed)"):
        ddpm_fast.p_sample_loop(ddpm_ref.network(params, cfg), sched, np.zeros((4, 2)), rng=np.random.default_rng(0), backend="cupy")


# --- on a GPU ----------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _gpu_sampler_reference(n_points):
    """The GPU sampler test's model and inputs, with the reference's Algorithm 2 (trajectory too) and DDIM
    (η = 0.5, 10 steps) on them: computed once for both kernels."""
    rng = np.random.default_rng(n_points)
    cfg, params, sched = _model(128, 3, "silu", 2, 32, 40, rng)
    x_T = rng.standard_normal((n_points, 2))
    z = rng.standard_normal((sched.T + 1, n_points, 2))
    ts = ddpm_ref.timesteps(sched.T, 10, "trailing")
    zk = rng.standard_normal((10, n_points, 2))
    refs = (ddpm_ref.p_sample_trajectory(ddpm_ref.network(params, cfg), sched, x_T, z=z),
            ddpm_ref.ddim_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, ts=ts, eta=0.5, z=zk))
    return (cfg, params, sched, x_T, z, ts, zk), refs


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("kernel", sorted(gpu.SAMPLER_KERNELS))
@pytest.mark.parametrize("n_points", [1, 300, 5000])
def test_gpu_sampler_equals_reference_with_the_same_noise(n_points, kernel):
    (cfg, params, sched, x_T, z, ts, zk), ((ref, ref_traj), ref_ddim) = _gpu_sampler_reference(n_points)
    t_steps, c_x, c_eps, sigma = ddpm_fast.ancestral_coefficients(sched, "beta")
    got, traj = gpu.run_sampler(params, cfg, x_T, t_steps, c_x, c_eps, sigma, np.ascontiguousarray(z[:0:-1]), 0,
                                keep_traj=True, kernel=kernel)
    _close(got, ref)
    _close(traj, ref_traj)
    c_x, c_eps, sigma = ddpm_fast.ddim_coefficients(sched, ts, 0.5)
    _close(gpu.run_sampler(params, cfg, x_T, ts, c_x, c_eps, sigma, zk, 0, kernel=kernel), ref_ddim)


@needs_gpu
@pytest.mark.gpu
def test_gpu_in_kernel_noise_is_standard_normal_and_equals_the_cpu_stream():
    from scipy import stats
    cfg = ddpm_ref.MLPConfig(hidden=16, depth=1)
    params = {k: np.zeros_like(v) for k, v in ddpm_ref.init_params(cfg, np.random.default_rng(0)).items()}
    sched = sampling_schedule(21)                  # samples O(1): compared element-wise with the CPU's below
    x = ddpm_fast.p_sample_loop(ddpm_ref.network(params, cfg), sched, np.zeros((200_000, 2)), rng=np.random.default_rng(1),
                                backend="cupy")
    u = x.ravel() / np.sqrt(zero_model_sample_variance(sched, "beta"))
    assert abs(u.mean()) < 4 / np.sqrt(u.size) and abs(u.var() - 1) < 0.01
    assert stats.kstest(u, "norm").pvalue > 1e-3
    if "numba" in ddpm_fast.available_backends():
        y = ddpm_fast.p_sample_loop(ddpm_ref.network(params, cfg), sched, np.zeros((200_000, 2)), rng=np.random.default_rng(1),
                                    backend="numba")
        _close(x, y)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("kernel", sorted(gpu.SAMPLER_KERNELS))
def test_gpu_sampler_with_weights_in_global_memory_equals_reference(kernel):
    # H = 256, depth 3: the hidden weights (512 KiB) do not fit in shared memory and are read from global
    (cfg, params, sched, x_T, z), ref = _gpu_h256_reference()
    assert not gpu.sampler_smem(256, 2, 4, gpu._cupy_launcher(256).max_smem, kernel)[1]
    t_steps, c_x, c_eps, sigma = ddpm_fast.ancestral_coefficients(sched, "beta")
    _close(gpu.run_sampler(params, cfg, x_T, t_steps, c_x, c_eps, sigma, np.ascontiguousarray(z[:0:-1]), 0,
                           kernel=kernel), ref)


@functools.lru_cache(maxsize=1)
def _gpu_h256_reference():
    rng = np.random.default_rng(6)
    cfg, params, sched = _model(256, 3, "gelu", 2, 8, 30, rng)
    x_T = rng.standard_normal((1000, 2))
    z = rng.standard_normal((sched.T + 1, 1000, 2))
    return (cfg, params, sched, x_T, z), ddpm_ref.p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z)


@functools.lru_cache(maxsize=4)
def _gpu_training_reference(draws, batch):
    """The default model's problem at ``batch`` and the reference's 6 steps on the draws ``draws`` makes."""
    problem = _training_problem(2, 128, 3, "silu", "linear", 1000, batch, 5000, emb_dim=32, steps=6)
    cfg, sched, tcfg, state, data = problem
    if draws == "rng":
        return problem, ddpm_ref.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 6)
    return problem, _reference_on_counter_draws(state, data, sched, cfg, tcfg, 3, 6)


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("batch", [70, 4096, 10_000])      # 10,000 > 256 blocks × 32 rows: several tiles a block
@pytest.mark.parametrize("draws", ["rng", "counter"])
@pytest.mark.parametrize("kernel", gpu.TRAIN_KERNELS)
def test_gpu_fused_training_equals_reference_steps(kernel, draws, batch):
    (cfg, sched, tcfg, state, data), (ref, ref_loss) = _gpu_training_reference(draws, batch)
    run = lambda: gpu.train(state, data, sched, cfg, tcfg, np.random.default_rng(3), 6, draws=draws, kernel=kernel)
    got, loss = run()
    _close(loss, ref_loss)
    for group in ("params", "ema"):
        for k in ref[group]:
            _close(got[group][k], ref[group][k])
    again, _ = run()
    for k in got["params"]:                                          # deterministic: same bytes twice
        assert np.array_equal(again["params"][k], got["params"][k])
