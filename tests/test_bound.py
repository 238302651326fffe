import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from scipy.stats import norm

import ddpm_ref
from ddpm_ref import (discretized_gaussian_nll, gaussian_nll, make_schedule, normal_kl, normal_kl_grad, terms_and_grads_at,
                      terms_at)

from strategies import schedule_and_t

finite = dict(allow_nan=False, allow_infinity=False)


def _fd(f, x, h=1e-6):
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


@given(st.floats(-3, 3, **finite), st.floats(-2, 2, **finite), st.floats(-3, 3, **finite), st.floats(-2, 2, **finite),
       st.integers(0, 2**32 - 1))
@example(-1.9215600940229904, -1.9215600940229904, -1.9215600940229904, -1.9215600940229904, 0)
def test_gaussian_kl_closed_form_equals_monte_carlo(m1, lv1, m2, lv2, seed):
    x = m1 + np.exp(0.5 * lv1) * np.random.default_rng(seed).standard_normal(400_000)
    log_ratio = norm.logpdf(x, m1, np.exp(0.5 * lv1)) - norm.logpdf(x, m2, np.exp(0.5 * lv2))
    kl = normal_kl(m1, lv1, m2, lv2)
    assert kl >= 0
    assert kl == pytest.approx(log_ratio.mean(), abs=5 * log_ratio.std() / np.sqrt(x.size) + 1e-9)


@given(st.floats(-5, 5, **finite), st.floats(-3, 3, **finite))
def test_gaussian_kl_is_zero_for_equal_gaussians(m, lv):
    assert normal_kl(m, lv, m, lv) == pytest.approx(0.0, abs=1e-12)


@given(st.floats(-3, 3, **finite), st.floats(-2, 2, **finite), st.floats(-3, 3, **finite), st.floats(-2, 2, **finite))
def test_kl_and_nll_gradients_equal_finite_differences(m1, lv1, m2, lv2):
    dm, dlv = normal_kl_grad(m1, lv1, m2, lv2)
    assert dm == pytest.approx(_fd(lambda v: normal_kl(m1, lv1, v[0], lv2), [m2])[0], rel=1e-5, abs=1e-6)
    assert dlv == pytest.approx(_fd(lambda v: normal_kl(m1, lv1, m2, v[0]), [lv2])[0], rel=1e-5, abs=1e-6)
    _, dm, dlv = gaussian_nll(m1, m2, lv2)
    assert dm == pytest.approx(_fd(lambda v: gaussian_nll(m1, v[0], lv2)[0], [m2])[0], rel=1e-5, abs=1e-6)
    assert dlv == pytest.approx(_fd(lambda v: gaussian_nll(m1, m2, v[0])[0], [lv2])[0], rel=1e-5, abs=1e-6)
    assert gaussian_nll(m1, m2, lv2)[0] == pytest.approx(-norm.logpdf(m1, m2, np.exp(0.5 * lv2)))


def test_discretized_decoder_is_the_bin_probability_and_stays_finite_in_the_tails():
    x, mu, lv, w = np.array([0.3, 2.0, -40.0]), np.array([0.0, 0.0, 0.0]), np.zeros(3), 0.1
    p = norm.cdf(x + w / 2) - norm.cdf(x - w / 2)
    nll = discretized_gaussian_nll(x, mu, lv, w)
    np.testing.assert_allclose(nll[:2], -np.log(p[:2]), rtol=1e-10)
    assert np.isfinite(nll[2]) and nll[2] > 700                     # Φ difference underflows; log space does not
    # small bins: probability ≈ density × width
    small = discretized_gaussian_nll(np.array([0.3]), np.zeros(1), np.zeros(1), 1e-4)
    assert small[0] == pytest.approx(gaussian_nll(0.3, 0.0, 0.0)[0] - math.log(1e-4), rel=1e-6)


@given(schedule_and_t(), st.integers(0, 2**32 - 1))
def test_parametrisation_conversions_are_inverses(st_, seed):
    sched, t = st_
    rng = np.random.default_rng(seed)
    x0, eps = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    xt = ddpm_ref.q_sample(sched, x0, t, eps)
    tol = dict(rtol=1e-7, atol=1e-7 * (1 + 1 / np.sqrt(sched.alpha_bar[t])))
    np.testing.assert_allclose(ddpm_ref.x0_from_eps(sched, xt, t, eps), x0, **tol)
    np.testing.assert_allclose(ddpm_ref.eps_from_x0(sched, xt, t, x0), eps, rtol=1e-7,
                               atol=1e-7 * (1 + 1 / sched.sqrt_one_minus_alpha_bar[t]))
    v = ddpm_ref.v_target(sched, x0, t, eps)
    np.testing.assert_allclose(ddpm_ref.x0_from_v(sched, xt, t, v), x0, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ddpm_ref.eps_from_v(sched, xt, t, v), eps, rtol=1e-9, atol=1e-9)
    for p in ddpm_ref.PARAMETRIZATIONS:
        out = ddpm_ref.target(p, sched, x0, xt, t, eps)            # the ideal network output
        np.testing.assert_allclose(ddpm_ref.predict_x0(p, sched, xt, t, out), x0, **tol)
        mean, _ = ddpm_ref.mean_from_output(p, sched, xt, t, out)
        np.testing.assert_allclose(mean, ddpm_ref.q_posterior(sched, x0, xt, t)[0], rtol=1e-7,
                                   atol=1e-7 * (1 + np.abs(xt).max() / np.sqrt(sched.alpha[t])))


@pytest.mark.parametrize("parametrization", ddpm_ref.PARAMETRIZATIONS)
@pytest.mark.parametrize("var_type", ddpm_ref.VAR_TYPES)
@pytest.mark.parametrize("t", [np.array([1, 1, 1]), np.array([2, 5, 9]), np.array([1, 4, 10])])
def test_bound_term_gradients_equal_finite_differences(parametrization, var_type, t):
    sched = make_schedule("cosine", 10)
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    xt = ddpm_ref.q_sample(sched, x0, t, eps)
    width = 4 if var_type == "learned" else 2
    out = 0.5 * rng.standard_normal((3, width))
    R = rng.standard_normal(3)
    _, dout = terms_and_grads_at(sched, x0, xt, t, out, parametrization, var_type)
    f = lambda o: float(np.sum(R * terms_at(sched, x0, xt, t, o, parametrization, var_type)))
    _, dR = terms_and_grads_at(sched, x0, xt, t, out, parametrization, var_type)
    np.testing.assert_allclose(R[:, None] * dR, _fd(f, out), rtol=1e-5, atol=1e-6)


def _gaussian_optimal_eps(sched, m, s):
    """E[ε | x_t] for data N(m, s² I): Cov(ε, x_t)/Var(x_t) · (x_t − √ᾱ_t m)."""
    def predict(xt, t):
        ab = sched.alpha_bar[t]
        return np.sqrt(1 - ab) / (ab * s * s + 1 - ab) * (xt - np.sqrt(ab) * m)
    return predict


def _gaps(s, var_type, Ts, N=4000):
    m = np.array([0.5, -1.0])
    x0 = m + s * np.random.default_rng(1).standard_normal((N, 2))
    true_nll = -norm.logpdf(x0, m, s).sum(axis=1)                   # nats per point
    out = []
    for T in Ts:
        sched = make_schedule("linear", T)
        b = ddpm_ref.bound(_gaussian_optimal_eps(sched, m, s), sched, x0, np.random.default_rng(T), "eps", var_type)
        diff = b["total"] - true_nll
        out.append((diff.mean(), diff.std(ddof=1) / np.sqrt(N)))
    return out


def test_bound_with_the_optimal_predictor_is_above_the_true_nll_and_tightens_with_T():
    # Data N(m, 0.3² I), the exact E[ε|x_t] plugged in, σ_t² = β_t. Measured gaps (nats/point):
    # T = 25: 0.29, 100: 0.06, 400 and 1600: 0.00 ± 0.02.
    gaps = _gaps(0.3, "beta", (25, 100, 400, 1600))
    for gap, se in gaps:
        assert gap > -3 * se, gaps                                    # a bound: never below the truth
    assert gaps[0][0] > gaps[1][0] + 3 * gaps[0][1], gaps             # tighter as T grows
    assert gaps[1][0] > gaps[3][0], gaps
    assert abs(gaps[3][0]) < 0.08, gaps                                # ≈ tight at T = 1600 (< 0.03 bits/dim)


def test_bound_with_beta_tilde_stays_loose_near_t_0():
    # σ_t² = β̃_t underestimates the reverse variance at small t by a factor ≈ (t − 1)/t, so the
    # bound stays valid but does not become tight as T grows (measured ≈ 1.07 nats at T = 1600).
    gaps = _gaps(0.8, "beta_tilde", (100, 1600), N=2000)
    for gap, se in gaps:
        assert gap > 0.5, gaps


@pytest.mark.parametrize("parametrization", ["x0", "v", "mu"])
def test_bound_does_not_depend_on_how_the_same_predictor_is_parametrised(parametrization):
    m, s = np.zeros(2), 1.3
    sched = make_schedule("linear", 50)
    x0 = s * np.random.default_rng(2).standard_normal((200, 2))
    eps_fn = _gaussian_optimal_eps(sched, m, s)

    def other(xt, t):
        x0_hat = ddpm_ref.x0_from_eps(sched, xt, t, eps_fn(xt, t))
        eps_hat = eps_fn(xt, t)
        return ddpm_ref.target(parametrization, sched, x0_hat, xt, t, eps_hat)

    a = ddpm_ref.bound(eps_fn, sched, x0, np.random.default_rng(0), "eps", "beta")["total"]
    b = ddpm_ref.bound(other, sched, x0, np.random.default_rng(0), parametrization, "beta")["total"]
    np.testing.assert_allclose(a, b, rtol=1e-8)


@pytest.mark.parametrize("objective, var_type, parametrization", [
    ("simple", "beta", "eps"), ("simple", "beta", "v"), ("vlb", "beta_tilde", "mu"), ("vlb", "learned", "eps"),
    ("hybrid", "learned", "eps"), ("hybrid", "learned", "x0"), ("vlb", "beta", "x0"),
])
def test_objective_gradients_equal_finite_differences(objective, var_type, parametrization):
    sched = make_schedule("cosine", 12)
    cfg = ddpm_ref.MLPConfig(dim=2, hidden=5, depth=2, activation="tanh", emb_dim=4,
                             out_dim=4 if var_type == "learned" else None)
    tcfg = ddpm_ref.GeneralTrainConfig(objective=objective, var_type=var_type, parametrization=parametrization)
    rng = np.random.default_rng(3)
    params = ddpm_ref.init_params(cfg, rng)
    x0, eps = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    t = np.array([1, 2, 3, 7, 12, 1])
    w = rng.uniform(0.5, 2.0, size=6)
    _, grads, _ = ddpm_ref.objective_and_grads(params, x0, t, eps, sched, cfg, tcfg, w)

    for k in params:
        def f(v, k=k):
            p = dict(params)
            p[k] = v
            if objective == "hybrid":
                # the stop-gradient on μ_θ: the vlb part sees the mean outputs as constants
                return _hybrid_with_stopgrad(p, params, x0, t, eps, sched, cfg, tcfg, w)
            return ddpm_ref.objective_and_grads(p, x0, t, eps, sched, cfg, tcfg, w)[0]
        np.testing.assert_allclose(grads[k], _fd(f, params[k]), rtol=1e-4, atol=1e-6, err_msg=k)


def _hybrid_with_stopgrad(p, p_frozen, x0, t, eps, sched, cfg, tcfg, w):
    D = x0.shape[1]
    xt = ddpm_ref.q_sample(sched, x0, t, eps)
    out = ddpm_ref.forward(p, xt, t, cfg)[0]
    out_frozen = ddpm_ref.forward(p_frozen, xt, t, cfg)[0]
    l_s = np.mean((out[:, :D] - ddpm_ref.target(tcfg.parametrization, sched, x0, xt, t, eps)) ** 2)
    mixed = np.concatenate([out_frozen[:, :D], out[:, D:]], axis=1)
    term = terms_at(sched, x0, xt, t, mixed, tcfg.parametrization, tcfg.var_type)
    return l_s + tcfg.hybrid_lambda * np.mean(w * term) * sched.T / (D * math.log(2))


def test_importance_sampled_bound_is_unbiased():
    T = 20
    rng = np.random.default_rng(0)
    L = rng.gamma(2.0, size=T + 1) * np.linspace(3, 0.1, T + 1)     # per-t terms, index t
    L[0] = 0
    state = {"lt_hist": np.repeat(L[:, None], ddpm_ref.HISTORY, axis=1)
             * rng.uniform(0.5, 1.5, (T + 1, ddpm_ref.HISTORY)),
             "lt_count": np.full(T + 1, ddpm_ref.HISTORY)}
    p = ddpm_ref.importance_probs(state, T)
    assert p.shape == (T,) and p.sum() == pytest.approx(1.0) and p.std() > 0
    t = rng.choice(T, size=400_000, p=p) + 1
    est = L[t] * ddpm_ref.importance_weights(p, t, T) * T              # train's weights, times T
    assert est.mean() == pytest.approx(L[1:].sum(), abs=4 * est.std() / np.sqrt(t.size))


def test_importance_weights_are_one_for_uniform_probabilities_and_none_for_uniform_sampling():
    T = 7
    t = np.arange(1, T + 1)
    np.testing.assert_allclose(ddpm_ref.importance_weights(np.full(T, 1.0 / T), t, T), 1.0, rtol=1e-14)
    p = np.arange(1, T + 1) / np.arange(1, T + 1).sum()
    np.testing.assert_allclose(ddpm_ref.importance_weights(p, t, T) * p, 1.0 / T, rtol=1e-14)
    assert ddpm_ref.importance_weights(None, t, T) is None


def test_importance_sampling_stays_uniform_until_history_is_full():
    state = {"lt_hist": np.ones((6, ddpm_ref.HISTORY)), "lt_count": np.array([0, 10, 10, 9, 10, 10])}
    assert ddpm_ref.importance_probs(state, 5) is None


def test_bound_terms_are_stored_by_the_papers_subscript():
    """bound()["L"][k] is L_k of Eq. 5: row 0 the decoder (step 1), row k the KL of step k + 1, row T the prior;
    an off-by-one in the storage (the KL of step t at row t) fails here."""
    sched = make_schedule("linear", 30)
    cfg = ddpm_ref.MLPConfig(hidden=8, depth=1)
    net = ddpm_ref.network(ddpm_ref.init_params(cfg, np.random.default_rng(0)), cfg)
    x0 = np.random.default_rng(1).standard_normal((5, 2))
    b = ddpm_ref.bound(net, sched, x0, np.random.default_rng(2))
    assert b["L"].shape == (31, 5)
    np.testing.assert_array_equal(b["L"][30], ddpm_ref.prior_kl(sched, x0))
    rng = np.random.default_rng(2)
    for t in range(1, 31):                                   # the draws bound() makes, in its order
        xt = ddpm_ref.q_sample(sched, x0, t, rng.standard_normal(x0.shape))
        np.testing.assert_array_equal(b["L"][t - 1], ddpm_ref.terms_at(sched, x0, xt, t, net(xt, t)))
    np.testing.assert_allclose(b["total"], b["L"].sum(axis=0), rtol=1e-15)
