"""The Numba backend's class-conditional training and guided samplers against the reference (ddpm_ref.guidance),
element by element on O(1) outputs within ddpm_fast.registry.TOLERANCES."""

import numpy as np
import pytest

import ddpm_ref
from ddpm_fast.registry import ADAM_EPS, TOLERANCES, sampling_schedule

ddpm_fast = pytest.importorskip("ddpm_fast")
pytest.importorskip("numba")

C = 3


def _model(fourier=2, depth=3, seed=0):
    cfg = ddpm_ref.MLPConfig(dim=2, hidden=12, depth=depth, fourier=fourier, n_classes=C)
    rng = np.random.default_rng(seed)
    params = {k: v * 0.5 for k, v in ddpm_ref.init_params(cfg, rng).items()}    # outputs O(1), as the registry's
    params["C"] = params["C"] * 8                   # class rows N(0, 16): the class moves the samples by ~0.01
    return cfg, params


def _nets(cfg, params, N):
    """The network as each sampler sees it: ∅ for every point, one class, guided per-point classes (all
    classes and ∅ present), guided with a negative weight."""
    y = np.arange(N) % (C + 1)
    return {"null": ddpm_ref.network(params, cfg), "class 1": ddpm_ref.network(params, cfg, 1),
            "guided w=2": ddpm_ref.guided_network(params, cfg, y, 2.0),
            "guided w=-0.5": ddpm_ref.guided_network(params, cfg, 2, -0.5)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_guided_samplers_match_the_reference(dtype):
    """Algorithm 2 (and its trajectory), DDIM and DPM-Solver++(2M) with the guided ε̃ of Eq. 6 on numba equal the
    reference's: a kernel that ignored the class, swapped ∅ for y or flipped w would be off by the difference of
    the two predictions, 0.012 and 0.032 here (200× float32's atol; checked below)."""
    cfg, params = _model()
    sched = sampling_schedule(30)
    rng = np.random.default_rng(1)
    N = 23
    x_T, z = rng.standard_normal((N, 2)), rng.standard_normal((31, N, 2))
    tol = TOLERANCES[dtype]
    dt = np.dtype(dtype).type
    nets = _nets(cfg, params, N)
    ref = {}
    for name, net in nets.items():
        ref[name] = a = ddpm_ref.p_sample_loop_general(net, sched, x_T, z=z)
        assert np.abs(a).max() < 20
        np.testing.assert_allclose(ddpm_fast.p_sample_loop(net, sched, x_T, z=z, dtype=dt, tile=8), a, **tol,
                                   err_msg=name)
        ts = np.array([30, 21, 12, 5, 1])
        np.testing.assert_allclose(ddpm_fast.ddim_sample_loop(net, sched, x_T, ts=ts, dtype=dt, tile=8),
                                   ddpm_ref.ddim_sample_loop(net, sched, x_T, ts=ts), **tol, err_msg=name)
        np.testing.assert_allclose(ddpm_fast.solver_sample(net, sched, x_T, solver="dpmpp2m", steps=5, dtype=dt, tile=8),
                                   ddpm_ref.solver_sample(net, sched, x_T, solver="dpmpp2m", steps=5), **tol, err_msg=name)
    _, traj = ddpm_ref.p_sample_trajectory_general(nets["guided w=2"], sched, x_T, z=z)
    np.testing.assert_allclose(ddpm_fast.p_sample_trajectory(nets["guided w=2"], sched, x_T, z=z, dtype=dt, tile=8)[1],
                               traj, **tol)
    # what the tolerance must see: the class, and the guidance, move the samples far more than it allows
    assert np.abs(ref["null"] - ddpm_ref.p_sample_loop_general(nets["class 1"], sched, x_T, z=z)).max() > 0.01
    y = np.arange(N) % (C + 1)
    assert np.abs(ref["guided w=2"] - ddpm_ref.p_sample_loop_general(ddpm_ref.network(params, cfg, y), sched, x_T,
                                                                     z=z)).max() > 0.02


def test_guided_sampling_from_the_counter_generator_is_seeded_and_draws_each_class_apart():
    """With rng the kernel draws its own noise: the same seed gives the same samples, and points of different
    classes in one call get independent noise (not one stream restarted per class)."""
    cfg, params = _model()
    cfg0 = ddpm_ref.MLPConfig(dim=2, hidden=12, depth=3, fourier=2, n_classes=C)
    zero = {k: np.zeros_like(v) for k, v in params.items()}              # ε_θ ≡ 0: x_0 is the noise alone
    sched = sampling_schedule(30)
    x_T = np.zeros((400, 2))
    y = np.repeat([0, 1], 200)
    net = ddpm_ref.guided_network(zero, cfg0, y, 1.0)
    a = ddpm_fast.p_sample_loop(net, sched, x_T, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a, ddpm_fast.p_sample_loop(net, sched, x_T, rng=np.random.default_rng(4)))
    r = np.corrcoef(a[:200, 0], a[200:, 0])[0, 1]
    assert abs(r) < 0.25, r                                              # the same stream would give r = 1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_conditional_training_steps_match_the_reference(dtype):
    """Three steps of train_conditional (label dropout 0.3, Fourier features, batch in 4 slices) on numba equal the
    reference's draws and updates: weights, the class table, EMA, Adam moments and losses."""
    cfg, _ = _model(depth=2)
    sched = ddpm_ref.make_schedule("cosine", 40)
    tcfg = ddpm_ref.TrainConfig(steps=50, batch_size=300, lr=1e-2, adam_eps=ADAM_EPS)
    rng = np.random.default_rng(3)
    data, labels = rng.standard_normal((90, 2)), rng.integers(0, C, size=90)
    state = ddpm_ref.init_state(cfg, np.random.default_rng(5))
    a, la = ddpm_ref.train_conditional(state, data, labels, sched, cfg, tcfg, np.random.default_rng(6), 3, 0.3)
    b, lb = ddpm_fast.train(state, data, sched, cfg, tcfg, np.random.default_rng(6), 3, backend="numba",
                            dtype=np.dtype(dtype).type, labels=labels, p_uncond=0.3)
    tol = TOLERANCES[dtype]
    np.testing.assert_allclose(lb, la, **tol)
    for part in ("params", "ema"):
        for k in a[part]:
            np.testing.assert_allclose(b[part][k], a[part][k], **tol, err_msg=f"{part} {k}")
    for k in a["opt"]["m"]:
        np.testing.assert_allclose(b["opt"]["m"][k], a["opt"]["m"][k], **tol, err_msg=f"m {k}")
    assert np.abs(a["params"]["C"] - state["params"]["C"]).min() > 0     # every row of the table was trained


def test_conditional_training_refuses_what_it_cannot_do():
    cfg, _ = _model(depth=2)
    sched = ddpm_ref.make_schedule("cosine", 40)
    tcfg = ddpm_ref.TrainConfig(steps=5, batch_size=8)
    state = ddpm_ref.init_state(cfg, np.random.default_rng(0))
    data = np.zeros((10, 2))
    with pytest.raises(ValueError, match="trains on labels"):
        ddpm_fast.train(state, data, sched, cfg, tcfg, np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="counter draws"):
        ddpm_fast.train(state, data, sched, cfg, tcfg, np.random.default_rng(0), 1, labels=np.zeros(10, int),
                        draws="counter")
    for p in (1.5, float("nan")):
        with pytest.raises(ValueError, match="p_uncond must lie"):
            ddpm_fast.train(state, data, sched, cfg, tcfg, np.random.default_rng(0), 1, labels=np.zeros(10, int),
                            p_uncond=p)
    with pytest.raises(ValueError, match="labels must"):
        ddpm_fast.train(state, data, sched, cfg, tcfg, np.random.default_rng(0), 1, labels=np.full(10, C))
