"""Class-conditional ε_θ(x_t, t, y) and classifier-free guidance (ddpm_ref.mlp's class table, ddpm_ref.guidance)."""

import numpy as np
import pytest

import ddpm_ref
from ddpm_ref import MLPConfig, backward, forward
from ddpm_ref.guidance import check_labels, draw_batch_conditional, guided_network, guided_output, train_conditional
from ddpm_ref.mlp import class_index
from strategies import central_differences


_fd = central_differences


def _net(n_classes=3, dim=2, fourier=1, seed=0):
    cfg = MLPConfig(dim=dim, hidden=6, depth=2, emb_dim=4, fourier=fourier, n_classes=n_classes)
    rng = np.random.default_rng(seed)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in ddpm_ref.init_params(cfg, rng).items()}
    return cfg, params


def test_class_table_gradient_equals_finite_differences():
    """∂loss/∂E_c for loss = Σ R·ε_θ(x, t, y): each row of the table against central differences; a row whose
    class is not in the batch (class 1 here) gets exactly zero, ∅ (row 3) gets its points' share."""
    cfg, params = _net()
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((5, 2)), rng.integers(1, 50, size=5)
    y = np.array([0, 2, 3, 0, 3])
    R = rng.standard_normal((5, 2))
    loss = lambda: float(np.sum(forward(params, x, t, cfg, y)[0] * R))
    _, cache = forward(params, x, t, cfg, y)
    grads = backward(params, cache, R, cfg)
    assert set(grads) == set(params)
    for k in params:
        np.testing.assert_allclose(grads[k], _fd(loss, params[k]), rtol=1e-5, atol=1e-8, err_msg=k)
    assert np.all(grads["C"][1] == 0) and np.all(grads["C"][3] != 0)


def test_the_class_enters_as_its_table_row_added_to_the_time_embedding():
    """ε_θ(x, t, y) equals the unconditional layers run on [γ(x), emb(t) + C[y]]: the same network with the
    row folded into layer 0's bias, emb(t) + C[y] through W0's embedding rows."""
    cfg, params = _net()
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal((4, 2)), np.array([3, 7, 7, 40])
    uncond_cfg = MLPConfig(dim=2, hidden=6, depth=2, emb_dim=4, fourier=1)
    for c in range(4):
        plain = {k: v for k, v in params.items() if k != "C"}
        plain["b0"] = params["b0"] + params["C"][c] @ params["W0"][uncond_cfg.n_in:]
        np.testing.assert_allclose(forward(params, x, t, cfg, c)[0], forward(plain, x, t, uncond_cfg)[0],
                                   rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(forward(params, x, t, cfg)[0], forward(params, x, t, cfg, 3)[0])   # None = ∅


def test_unconditional_networks_are_unchanged_and_class_indices_are_checked():
    cfg = MLPConfig(dim=2, hidden=5, depth=2)
    p0 = ddpm_ref.init_params(cfg, np.random.default_rng(0))
    pc = ddpm_ref.init_params(MLPConfig(dim=2, hidden=5, depth=2, n_classes=2), np.random.default_rng(0))
    assert "C" not in p0 and pc["C"].shape == (3, cfg.emb_dim)
    for k in p0:                                  # the table is drawn after the layers: same weights
        np.testing.assert_array_equal(p0[k], pc[k])
    np.testing.assert_array_equal(class_index(None, 3, 4), [4, 4, 4])
    np.testing.assert_array_equal(class_index(1, 3, 4), [1, 1, 1])
    for bad in (5, -1, np.array([0, 1]), np.array([0.5, 1.0, 2.0])):
        with pytest.raises(ValueError, match="class|y must"):
            class_index(bad, 3, 4)
    with pytest.raises(ValueError, match="n_classes"):
        MLPConfig(n_classes=-1)
    with pytest.raises(ValueError, match="labels must"):
        check_labels(np.array([0, 1, 2]), 3, 2)


def test_label_dropout_draws_what_draw_batch_draws_and_drops_at_rate_p_uncond():
    data = np.random.default_rng(0).standard_normal((50, 2))
    labels = np.arange(50) % 3
    x0, t, eps = ddpm_ref.draw_batch(np.random.default_rng(5), data, 4000, 100)
    x0c, y, tc, epsc = draw_batch_conditional(np.random.default_rng(5), data, labels, 4000, 100, 0.1, 3)
    np.testing.assert_array_equal(x0, x0c)
    np.testing.assert_array_equal(t, tc)
    np.testing.assert_array_equal(eps, epsc)
    kept = y != 3
    rows = np.array([np.flatnonzero((data == r).all(1))[0] for r in x0c[kept]])
    np.testing.assert_array_equal(y[kept], labels[rows])                 # each kept label is its row's
    assert abs((~kept).mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 4000)     # ~ Binomial(4000, 0.1) / 4000
    assert np.all(draw_batch_conditional(np.random.default_rng(1), data, labels, 100, 10, 1.0, 3)[1] == 3)
    assert np.all(draw_batch_conditional(np.random.default_rng(1), data, labels, 100, 10, 0.0, 3)[1] != 3)


def test_guided_prediction_is_eq_6_of_ho_and_salimans():
    """ε̃ = (1 + w)·ε_θ(y) − w·ε_θ(∅), computed from two plain forward passes: the sign of w, ε_θ(∅) replaced
    by ε_θ(y), or the learned-variance columns mixed in, each fails."""
    cfg, params = _net(dim=2)
    x, t = np.random.default_rng(3).standard_normal((6, 2)), np.full(6, 9)
    e_y, e_0 = forward(params, x, t, cfg, 1)[0], forward(params, x, t, cfg, None)[0]
    assert np.abs(e_y - e_0).max() > 1e-3                                # the class matters
    for w in (0.0, 0.5, 3.0):
        np.testing.assert_allclose(guided_network(params, cfg, 1, w)(x, t), (1 + w) * e_y - w * e_0, rtol=1e-12,
                                   atol=1e-12)
    out_y, out_0 = np.arange(8.0).reshape(2, 4), -np.arange(8.0).reshape(2, 4)
    np.testing.assert_array_equal(guided_output(out_y, out_0, 2.0, 2)[:, :2], 3 * out_y[:, :2] + 2 * out_y[:, :2])
    np.testing.assert_array_equal(guided_output(out_y, out_0, 2.0, 2)[:, 2:], out_y[:, 2:])
    with pytest.raises(ValueError, match="conditional"):
        guided_network({}, MLPConfig(), 0, 1.0)


def test_guided_divergence_is_the_trace_of_the_guided_jacobian():
    cfg, params = _net(dim=2)
    net = guided_network(params, cfg, np.array([0, 2, 1]), 1.5)
    x, t = np.random.default_rng(4).standard_normal((3, 2)), np.array([5, 20, 30])
    fd = np.zeros(3)
    for d in range(2):
        e = np.zeros(2)
        e[d] = 1e-6
        fd += (net(x + e, t)[:, d] - net(x - e, t)[:, d]) / 2e-6
    np.testing.assert_allclose(net.divergence(x, t), fd, rtol=1e-6, atol=1e-8)


@pytest.fixture(scope="module")
def four_modes():
    """A conditional ε_θ trained by the reference on four labelled modes at (±2, ±2) (σ = 0.15)."""
    rng = np.random.default_rng(0)
    modes = np.array([[2.0, 2.0], [-2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])
    labels = np.arange(2000) % 4
    data = modes[labels] + 0.15 * rng.standard_normal((2000, 2))
    cfg = MLPConfig(dim=2, hidden=48, depth=2, n_classes=4)
    sched = ddpm_ref.make_schedule("cosine", 100)
    tcfg = ddpm_ref.TrainConfig(steps=1500, batch_size=128, lr=3e-3)
    state = ddpm_ref.init_state(cfg, rng)
    state, _ = train_conditional(state, data, labels, sched, cfg, tcfg, rng, tcfg.steps)
    return modes, cfg, sched, state["ema"]


def test_conditional_samples_land_at_their_class_and_guidance_sharpens_them(four_modes):
    """Guidance 0: ≥ 95% of each class's samples are nearest its mode. Over w ∈ {0, 1, 4}: the share nearest the
    class's mode does not fall and the spread around the mode shrinks (a sign error in w widens it)."""
    modes, cfg, sched, params = four_modes
    share, spread = {}, {}
    for w in (0.0, 1.0, 4.0):
        xs = ddpm_ref.p_sample_loop_general(guided_network(params, cfg, 2, w), sched,
                                            np.random.default_rng(9).standard_normal((400, 2)),
                                            rng=np.random.default_rng(10))
        nearest = np.argmin(((xs[:, None, :] - modes[None]) ** 2).sum(-1), axis=1)
        share[w] = float(np.mean(nearest == 2))
        spread[w] = float(np.median(np.linalg.norm(xs - modes[2], axis=1)))
    assert share[0.0] >= 0.95, share
    assert share[0.0] <= share[1.0] <= share[4.0], share
    assert spread[0.0] > spread[1.0] > spread[4.0], spread
    # without a class (∅): every mode is drawn
    xs = ddpm_ref.p_sample_loop_general(ddpm_ref.network(params, cfg), sched,
                                        np.random.default_rng(9).standard_normal((400, 2)),
                                        rng=np.random.default_rng(10))
    counts = np.bincount(np.argmin(((xs[:, None, :] - modes[None]) ** 2).sum(-1), axis=1), minlength=4)
    assert counts.min() >= 60, counts
