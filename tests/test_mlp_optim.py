import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ddpm_ref
from ddpm_ref import MLPConfig, adam_init, adam_update, backward, backward_with_dx, clip_grad_norm, ema_update, forward

from strategies import central_differences, mlp_configs


_fd = central_differences


@pytest.mark.parametrize("activation", sorted(ddpm_ref.ACTIVATIONS))
def test_each_layers_backward_equals_finite_differences_of_its_forward(activation):
    """The layer pairs one at a time (llm.c style): linear_backward's ∂h, ∂W, ∂b and act_backward's ∂a,
    each against central differences of the loss Σ R·forward(...)."""
    from ddpm_ref.mlp import act_backward, act_forward, linear_backward, linear_forward
    rng = np.random.default_rng(7)
    h, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    R = rng.standard_normal((4, 5))
    dh, dW, db = linear_backward(R, h, W)
    lin = lambda: float(np.sum(linear_forward(h, W, b) * R))
    for got, arr in ((dh, h), (dW, W), (db, b)):
        np.testing.assert_allclose(got, _fd(lin, arr), rtol=1e-6, atol=1e-8)
    a = rng.standard_normal((4, 5)) + 0.05          # away from relu's kink at 0 for its difference quotient
    a[np.abs(a) < 0.05] = 0.3
    act = lambda: float(np.sum(act_forward(a, activation) * R))
    np.testing.assert_allclose(act_backward(R, a, act_forward(a, activation), activation), _fd(act, a),
                               rtol=1e-6, atol=1e-8)


def test_input_features_backward_equals_finite_differences_of_gamma():
    from ddpm_ref.mlp import input_features_backward
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 2))
    R = rng.standard_normal((3, 2 * (1 + 2 * 4)))
    gamma = lambda: float(np.sum(ddpm_ref.input_features(x, 4) * R))
    np.testing.assert_allclose(input_features_backward(R, x, 4), _fd(gamma, x), rtol=1e-6, atol=1e-7)


@given(mlp_configs, st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_backward_equals_central_finite_differences(cfg, B, seed):
    rng = np.random.default_rng(seed)
    params = ddpm_ref.init_params(cfg, rng)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}  # nonzero biases too
    x = rng.standard_normal((B, cfg.dim))
    t = rng.integers(1, 100, size=B)
    R = rng.standard_normal((B, cfg.dim))                 # loss = Σ R·out: dout = R

    def loss():
        return float(np.sum(forward(params, x, t, cfg)[0] * R))

    _, cache = forward(params, x, t, cfg)
    grads, dx = backward_with_dx(params, cache, R, cfg)
    assert set(grads) == set(params)
    for k, g in backward(params, cache, R, cfg).items():              # the grads-only entry point
        np.testing.assert_array_equal(g, grads[k])
    for k in params:
        np.testing.assert_allclose(grads[k], _fd(loss, params[k]), rtol=1e-5, atol=1e-7, err_msg=k)
    np.testing.assert_allclose(dx, _fd(loss, x), rtol=1e-5, atol=1e-7)


def test_loss_simple_gradient_equals_finite_differences(rng):
    eps = rng.standard_normal((4, 3))
    eps_theta = rng.standard_normal((4, 3))
    loss, d = ddpm_ref.loss_simple(eps, eps_theta)
    assert loss == pytest.approx(np.mean((eps - eps_theta) ** 2))
    np.testing.assert_allclose(d, _fd(lambda: ddpm_ref.loss_simple(eps, eps_theta)[0], eps_theta), rtol=1e-6)


# The documented formula, written out by hand: [sin(t·ω_0), …, sin(t·ω_{E/2−1}), cos(t·ω_0), …],
# ω_k = max_period^(−k/(E/2)).  E = 4, max_period = 10⁴: ω = (1, 10⁴^(−1/2)) = (1, 0.01);
# E = 6: ω = (1, 10⁴^(−1/3), 10⁴^(−2/3)); E = 4, max_period = 100: ω = (1, 0.1).
_W6 = (1.0, 10.0 ** (-4 / 3), 10.0 ** (-8 / 3))


@pytest.mark.parametrize("t, dim, max_period, expected", [
    (0, 4, 10000.0, [0.0, 0.0, 1.0, 1.0]),
    (3, 4, 10000.0, [np.sin(3.0), np.sin(0.03), np.cos(3.0), np.cos(0.03)]),
    (500, 4, 10000.0, [np.sin(500.0), np.sin(5.0), np.cos(500.0), np.cos(5.0)]),
    (7, 4, 100.0, [np.sin(7.0), np.sin(0.7), np.cos(7.0), np.cos(0.7)]),
    (250, 6, 10000.0, [np.sin(250 * _W6[0]), np.sin(250 * _W6[1]), np.sin(250 * _W6[2]),
                       np.cos(250 * _W6[0]), np.cos(250 * _W6[1]), np.cos(250 * _W6[2])]),
])
def test_timestep_embedding_equals_its_formula_written_out(t, dim, max_period, expected):
    e = ddpm_ref.timestep_embedding(t, dim, max_period=max_period)
    assert e.shape == (1, dim)
    np.testing.assert_allclose(e[0], expected, rtol=1e-12, atol=1e-12)


def test_input_features_equal_their_formula_written_out():
    # γ(x) for D = 2, K = 2: [x_0, x_1, sin(x_0), sin(x_1), sin(2x_0), sin(2x_1), cos(x_0), cos(x_1), cos(2x_0), cos(2x_1)]
    a, b = 0.3, -1.7
    want = [a, b, np.sin(a), np.sin(b), np.sin(2 * a), np.sin(2 * b), np.cos(a), np.cos(b), np.cos(2 * a), np.cos(2 * b)]
    np.testing.assert_allclose(ddpm_ref.input_features(np.array([[a, b]]), 2)[0], want, rtol=1e-15, atol=0)
    x = np.array([[a, b]])
    assert ddpm_ref.input_features(x, 0) is x
    # the network sees them: W_0's Fourier rows change ε_θ
    cfg = MLPConfig(dim=2, hidden=4, depth=1, fourier=2)
    params = ddpm_ref.init_params(cfg, np.random.default_rng(0))
    assert params["W0"].shape == (10 + cfg.emb_dim, 4)
    out0 = forward(params, x, 5, cfg)[0]
    params["W0"][9] += 1.0                                              # the cos(2 x_1) row
    assert not np.allclose(forward(params, x, 5, cfg)[0], out0)


def test_timestep_embedding_rows_follow_the_batch_of_steps():
    t = np.array([0, 3, 500])
    e = ddpm_ref.timestep_embedding(t, 4)
    assert e.shape == (3, 4)
    for i, ti in enumerate(t):
        np.testing.assert_array_equal(e[i], ddpm_ref.timestep_embedding(ti, 4)[0])


def test_adam_matches_hand_computed_steps():
    p = {"w": np.array([1.0])}
    s = adam_init(p)
    p, s = adam_update(p, {"w": np.array([0.5])}, s, lr=0.1)
    # step 1: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25: w = 1 − 0.1·0.5/(0.5 + 1e-8)
    w1 = 1 - 0.1 * 0.5 / (0.5 + 1e-8)
    assert p["w"][0] == pytest.approx(w1, rel=1e-14) and w1 == pytest.approx(0.9, abs=1e-8)
    p, s = adam_update(p, {"w": np.array([-1.0])}, s, lr=0.1)
    # step 2: m = 0.9·0.05 − 0.1 = −0.055, v = 0.999·0.00025 + 0.001 = 0.00124975,
    # m̂ = −0.055/0.19, v̂ = 0.00124975/0.001999
    m_hat, v_hat = -0.055 / 0.19, 0.00124975 / 0.001999
    assert s["step"] == 2
    assert s["m"]["w"][0] == pytest.approx(-0.055)
    assert s["s"]["w"][0] == pytest.approx(0.00124975)
    assert p["w"][0] == pytest.approx(w1 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8), rel=1e-12)


def test_adam_does_not_modify_its_inputs():
    p = {"w": np.array([1.0, 2.0])}
    s = adam_init(p)
    adam_update(p, {"w": np.array([1.0, 1.0])}, s, lr=0.1)
    assert p["w"].tolist() == [1.0, 2.0] and s["step"] == 0 and s["m"]["w"].tolist() == [0, 0]


def test_clip_grad_norm_scales_to_max_norm():
    g, norm = clip_grad_norm({"a": np.array([3.0]), "b": np.array([4.0])}, 1.0)
    assert norm == pytest.approx(5.0)
    assert g["a"][0] == pytest.approx(0.6) and g["b"][0] == pytest.approx(0.8)
    g, norm = clip_grad_norm({"a": np.array([0.3])}, 1.0)
    assert g["a"][0] == 0.3


def test_ema_matches_hand_computed_update():
    e = ema_update({"w": np.array([1.0])}, {"w": np.array([2.0])}, 0.9)
    assert e["w"][0] == pytest.approx(1.1)


@pytest.mark.parametrize("kw, match", [
    ({"hidden": 0}, "hidden must be a positive integer"), ({"emb_dim": 3}, "even"),
    ({"activation": "swish"}, "unknown activation 'swish'"), ({"depth": 1.5}, "depth"),
    ({"fourier": -1}, "fourier must be an integer in 0..8"), ({"fourier": 9}, "0..8"), ({"fourier": 2.0}, "fourier"),
])
def test_bad_model_config_is_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        MLPConfig(**kw)


def test_forward_rejects_wrong_input_width():
    cfg = MLPConfig(dim=2)
    params = ddpm_ref.init_params(cfg, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        forward(params, np.zeros((4, 3)), 1, cfg)


@pytest.mark.parametrize("kw, match", [
    ({"steps": 0}, "steps"), ({"lr": -1.0}, "lr"), ({"ema_decay": 1.0}, "ema_decay"), ({"batch_size": 2.0}, "batch_size"),
])
def test_bad_train_config_is_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        ddpm_ref.TrainConfig(**kw)


def test_draw_batch_draws_t_uniformly_in_1_to_T(rng):
    data = rng.standard_normal((50, 2))
    _, t, eps = ddpm_ref.draw_batch(rng, data, 40000, 4)
    counts = np.bincount(t, minlength=5)
    assert counts[0] == 0 and t.max() == 4
    np.testing.assert_allclose(counts[1:] / 40000, 0.25, atol=0.01)
    assert eps.shape == (40000, 2)


def test_training_lowers_the_loss(rng):
    sched = ddpm_ref.make_schedule("linear", 50)
    cfg = MLPConfig(hidden=32, depth=2)
    tcfg = ddpm_ref.TrainConfig(steps=300, batch_size=128, lr=3e-3)
    state = ddpm_ref.init_state(cfg, rng)
    data = np.concatenate([rng.normal(-1, 0.1, (500, 2)), rng.normal(1, 0.1, (500, 2))])
    state, losses = ddpm_ref.train(state, data, sched, cfg, tcfg, rng, 300)
    assert state["opt"]["step"] == 300
    assert losses[-50:].mean() < 0.7 * losses[:10].mean()


def test_learning_rate_is_the_cosine_decay_from_lr_to_lr_final_frac():
    tcfg = ddpm_ref.TrainConfig(steps=1000, lr=2e-3, lr_final_frac=0.05)
    lr, lo = 2e-3, 2e-3 * 0.05
    assert ddpm_ref.learning_rate(tcfg, 0) == pytest.approx(lr, rel=1e-14)
    assert ddpm_ref.learning_rate(tcfg, 1000) == pytest.approx(lo, rel=1e-12)
    assert ddpm_ref.learning_rate(tcfg, 500) == pytest.approx((lr + lo) / 2, rel=1e-12)
    # a quarter of the way: lo + ½(lr − lo)(1 + cos(π/4)), cos(π/4) = √2/2
    assert ddpm_ref.learning_rate(tcfg, 250) == pytest.approx(lo + 0.5 * (lr - lo) * (1 + np.sqrt(2) / 2), rel=1e-12)
    assert ddpm_ref.learning_rate(tcfg, 750) == pytest.approx(lo + 0.5 * (lr - lo) * (1 - np.sqrt(2) / 2), rel=1e-12)
    steps = np.arange(0, 1001)
    lrs = np.array([ddpm_ref.learning_rate(tcfg, int(k)) for k in steps])
    assert np.all(np.diff(lrs) < 0)                                        # strictly decreasing on [0, steps]


@pytest.mark.parametrize("past", [1001, 1500, 2000, 10**6])
def test_learning_rate_stays_at_its_final_value_past_steps(past):
    tcfg = ddpm_ref.TrainConfig(steps=1000, lr=2e-3, lr_final_frac=0.05)
    assert ddpm_ref.learning_rate(tcfg, past) == pytest.approx(2e-3 * 0.05, rel=1e-12)


def test_algorithm_1_core_and_general_loops_give_the_same_run_and_the_core_refuses_variants():
    cfg = MLPConfig(hidden=8, depth=1)
    sched = ddpm_ref.make_schedule("linear", 30)
    tcfg = ddpm_ref.TrainConfig(steps=5, batch_size=16)
    data = np.random.default_rng(0).normal(size=(100, 2))
    state = ddpm_ref.init_state(cfg, np.random.default_rng(1))
    a, la = ddpm_ref.train(state, data, sched, cfg, tcfg, np.random.default_rng(2), 5)
    b, lb = ddpm_ref.train_general(state, data, sched, cfg, tcfg, np.random.default_rng(2), 5)
    np.testing.assert_array_equal(la, lb)
    for k in a["params"]:
        np.testing.assert_array_equal(a["params"][k], b["params"][k])
    with pytest.raises(ValueError, match="train_general"):
        ddpm_ref.train(state, data, sched, cfg, ddpm_ref.GeneralTrainConfig(objective="vlb"), np.random.default_rng(2), 1)
