import numpy as np
import pytest
from hypothesis import given, example
from hypothesis import strategies as st

import ddpm_ref
from ddpm_ref import q_posterior, q_sample, q_step

from strategies import schedule_and_t


def _affine_coefs(f, shape=(1, 1)):
    """q_step and q_sample are affine in (x, noise): recover a, b of a·x + b·noise by probing."""
    one, zero = np.ones(shape), np.zeros(shape)
    return f(one, zero)[0, 0], f(zero, one)[0, 0]


@given(schedule_and_t())
def test_composing_q_step_gives_closed_form_coefficients(st_):
    sched, t = st_
    c, v = 1.0, 0.0                        # x_s = c·x_0 + (noise with variance v)
    for s in range(1, t + 1):
        a, b = _affine_coefs(lambda x, n: q_step(sched, x, s, n))
        c, v = a * c, a * a * v + b * b    # composition of independent Gaussian steps
    a_closed, b_closed = _affine_coefs(lambda x, n: q_sample(sched, x, t, n))
    assert c == pytest.approx(np.sqrt(sched.alpha_bar[t]), rel=1e-12)
    assert c == pytest.approx(a_closed, rel=1e-12)
    assert v == pytest.approx(1 - sched.alpha_bar[t], rel=1e-9, abs=1e-15)
    assert v == pytest.approx(b_closed ** 2, rel=1e-9, abs=1e-15)


@given(schedule_and_t(max_T=12), st.integers(0, 2**32 - 1))
def test_iterated_q_step_matches_q_sample_in_distribution(st_, seed):
    sched, t = st_
    rng = np.random.default_rng(seed)
    n = 20000
    x0 = np.array([[1.5, -0.7]])
    x = np.repeat(x0, n, axis=0)
    for s in range(1, t + 1):
        x = q_step(sched, x, s, rng.standard_normal(x.shape))
    mean, var = ddpm_ref.q_mean_variance(sched, x0, t)
    se_mean = np.sqrt(var / n)
    assert np.all(np.abs(x.mean(0) - mean[0]) < 5 * se_mean + 1e-12)
    cov = np.cov(x.T)
    se_var = var * np.sqrt(2.0 / n)
    np.testing.assert_allclose(np.diag(cov), [var, var], atol=5 * se_var)
    assert abs(cov[0, 1]) < 5 * var / np.sqrt(n)


def _posterior_by_conditioning(beta, t, x0, xt):
    """Gaussian conditioning of the joint (x_{t−1}, x_t) | x_0, computed from β alone."""
    ab_prev = np.prod(1 - beta[1:t])                      # ᾱ_{t−1} (empty product = 1 at t = 1)
    a_t = 1 - beta[t]
    mu1, s11 = np.sqrt(ab_prev) * x0, 1 - ab_prev         # x_{t−1} | x_0
    mu2 = np.sqrt(a_t) * mu1                              # x_t = √α_t x_{t−1} + √β_t n
    s12 = np.sqrt(a_t) * s11
    s22 = a_t * s11 + beta[t]
    return mu1 + s12 / s22 * (xt - mu2), s11 - s12 * s12 / s22


@given(schedule_and_t(), st.floats(-5, 5), st.floats(-5, 5))
@example((ddpm_ref.schedule_from_betas(np.array([0.3, 0.2]), warn=False), 1), 1.0, -2.0)
def test_q_posterior_equals_gaussian_conditioning(st_, x0v, xtv):
    sched, t = st_
    x0 = np.array([[x0v, -x0v]])
    xt = np.array([[xtv, 0.5 * xtv]])
    mean, var = q_posterior(sched, x0, xt, t)
    m_ref, v_ref = _posterior_by_conditioning(np.asarray(sched.beta), t, x0, xt)
    np.testing.assert_allclose(mean, m_ref, rtol=1e-9, atol=1e-9)
    assert float(var) == pytest.approx(float(v_ref), rel=1e-9, abs=1e-12)


def test_vector_t_uses_one_step_per_row():
    sched = ddpm_ref.make_schedule("linear", 100)
    x0 = np.ones((3, 2))
    noise = np.zeros((3, 2))
    t = np.array([1, 50, 100])
    out = q_sample(sched, x0, t, noise)
    np.testing.assert_allclose(out[:, 0], sched.sqrt_alpha_bar[t])
    for i, ti in enumerate(t):
        np.testing.assert_allclose(out[i], q_sample(sched, x0[i:i + 1], int(ti), noise[i:i + 1])[0])


@pytest.mark.parametrize("t, match", [
    (0, r"t must lie in 1\.\.T"), (11, r"t must lie in 1\.\.T"), (2.5, "integer"),
    (np.array([1, 2]), "one t per row"), (np.ones((3, 1), dtype=int), "1-D"),
])
def test_bad_t_is_rejected(t, match):
    sched = ddpm_ref.make_schedule("cosine", 10)
    with pytest.raises(ValueError, match=match):
        q_sample(sched, np.zeros((3, 2)), t, np.zeros((3, 2)))


def test_shape_mismatch_is_rejected():
    sched = ddpm_ref.make_schedule("cosine", 10)
    with pytest.raises(ValueError, match="same shape"):
        q_step(sched, np.zeros((3, 2)), 1, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="same shape"):
        q_posterior(sched, np.zeros((3, 2)), np.zeros((2, 2)), 1)
