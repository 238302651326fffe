"""ddpm_fast (numba) against ddpm_ref: same inputs and noise, same results (registry-driven)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("numba")

import ddpm_fast  # noqa: E402
from strategies import zero_model_sample_variance  # noqa: E402
import ddpm_ref  # noqa: E402
from ddpm_fast.registry import REGISTRY, TOLERANCES  # noqa: E402

ENTRIES = {e.name: e for e in REGISTRY}

sizes = st.fixed_dictionaries({
    "hidden": st.integers(1, 24), "depth": st.integers(1, 3), "activation": st.sampled_from(sorted(ddpm_ref.ACTIVATIONS)),
    "batch": st.integers(1, 9), "T": st.integers(21, 60), "schedule": st.sampled_from(["linear", "cosine"]),
    "dim": st.integers(1, 3), "emb_dim": st.sampled_from([2, 8, 32]), "steps": st.integers(1, 6),
    "n_points": st.integers(1, 70), "var_type": st.sampled_from(["beta", "beta_tilde"]),
    "K": st.integers(1, 60), "respaced": st.booleans(), "trajectory": st.booleans(),
    "eta": st.sampled_from([0.0, 0.3, 1.0]), "spacing": st.sampled_from(["even", "leading", "trailing", "quad"]),
})


def _check(entry, size, dtype, seed):
    make_args, kw = entry.make_inputs(size, np.random.default_rng(seed))
    ref = entry.reference(*make_args(), **kw)
    fast = entry.fast(*make_args(), **kw, backend="numba", dtype=dtype)
    tol = TOLERANCES[np.dtype(dtype).name]
    for a, b in zip(entry.outputs(ref), entry.outputs(fast)):
        scale = max(1.0, float(np.abs(a).max()))
        np.testing.assert_allclose(b, a, rtol=tol["rtol"], atol=tol["atol"] * scale)


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
    x = ddpm_fast.p_sample_loop(params, cfg, sched, np.zeros((40000, 2)), rng=np.random.default_rng(1),
                                backend="numba", dtype=np.float64)
    u = x.ravel() / np.sqrt(zero_model_sample_variance(sched, "beta"))
    assert abs(u.mean()) < 4 / np.sqrt(u.size) and abs(u.var() - 1) < 0.02
    assert stats.kstest(u, "norm").pvalue > 1e-3


_DETERMINISM = """
import numpy as np, ddpm_ref, ddpm_fast
cfg = ddpm_ref.MLPConfig(hidden=32, depth=2)
sched = ddpm_ref.make_schedule("linear", 50)
tcfg = ddpm_ref.TrainConfig(steps=40, batch_size=300)   # ≥ 256: the parallel, chunked path
rng = np.random.default_rng(0)
state = ddpm_ref.init_state(cfg, rng, sched.T)
state, losses = ddpm_fast.train(state, rng.standard_normal((500, 2)), sched, cfg, tcfg, rng, 40, backend="numba")
x = ddpm_fast.p_sample_loop(state["ema"], cfg, sched, rng.standard_normal((300, 2)), rng=rng, backend="numba")
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
