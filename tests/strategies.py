"""Hypothesis strategies shared by the tests (random valid schedules and model configs), and the exact
variances of Algorithm 2 with a zero model that the samplers' noise tests compare against."""

import numpy as np
from hypothesis import strategies as st

import ddpm_ref


@st.composite
def schedules(draw, max_T=30):
    """A random valid schedule: T in 1..max_T, every β_t in [1e-4, 0.6]."""
    T = draw(st.integers(1, max_T))
    betas = draw(st.lists(st.floats(1e-4, 0.6, allow_nan=False), min_size=T, max_size=T))
    return ddpm_ref.schedule_from_betas(np.array(betas), warn=False)


@st.composite
def schedule_and_t(draw, max_T=30):
    sched = draw(schedules(max_T))
    t = draw(st.integers(1, sched.T))
    return sched, t


mlp_configs = st.builds(
    ddpm_ref.MLPConfig,
    dim=st.integers(1, 3),
    hidden=st.integers(1, 7),
    depth=st.integers(1, 3),
    activation=st.sampled_from(sorted(ddpm_ref.ACTIVATIONS)),
    emb_dim=st.sampled_from([2, 4, 6]),
    fourier=st.sampled_from([0, 1, 3]),
)


def zero_model_variances(sched, var_type: str = "beta") -> np.ndarray:
    """v_t = Var of each coordinate of x_t (t = 0..T) in Algorithm 2 with ε_θ ≡ 0 and x_T = 0: x_{t−1} =
    x_t/√α_t + σ_t z_t for t ≥ 2 and x_0 = x_1/√α_1, so v_{t−1} = v_t/α_t + σ_t² from v_T = 0
    (σ_t² = β_t or β̃_t, and 0 at t = 1)."""
    sigma2 = sched.beta if var_type == "beta" else sched.beta_tilde
    v = np.zeros(sched.T + 1)
    for t in range(sched.T, 0, -1):
        v[t - 1] = v[t] / sched.alpha[t] + (sigma2[t] if t > 1 else 0.0)
    return v


def zero_model_sample_variance(sched, var_type: str = "beta") -> float:
    """v_0 of ``zero_model_variances``: the variance of each coordinate of the samples x_0."""
    return float(zero_model_variances(sched, var_type)[0])


def assert_each_step_adds_sigma2(traj: np.ndarray, sched, var_type: str, n_se: float = 5.0) -> None:
    """``traj`` (T+1, N, D): Algorithm 2 with ε_θ ≡ 0 from x_T = 0, x_t at row t. Step t ≥ 2 is
    x_{t−1} = x_t/√α_t + σ_t z_t with z_t independent of x_t, so m_t = mean(x_{t−1}² − x_t²/α_t) over the
    n = N·D coordinates estimates σ_t² with variance (4 v_t σ_t²/α_t + 2 σ_t⁴)/n (v_t from
    ``zero_model_variances``); each m_t must lie within ``n_se`` standard errors of σ_t². Step 1 adds no
    noise (Alg. 2 line 3): x_0 = x_1/√α_1 to float32 rounding."""
    traj = np.asarray(traj, dtype=np.float64)
    sigma2 = sched.beta if var_type == "beta" else sched.beta_tilde
    v = zero_model_variances(sched, var_type)
    n = traj[0].size
    for t in range(sched.T, 1, -1):
        m_t = float(np.mean(traj[t - 1] ** 2 - traj[t] ** 2 / sched.alpha[t]))
        se = np.sqrt((4 * v[t] * sigma2[t] / sched.alpha[t] + 2 * sigma2[t] ** 2) / n)
        assert abs(m_t - sigma2[t]) < n_se * se, (f"step t = {t} added variance {m_t:.5g}; σ_t² ({var_type}) is "
                                                  f"{sigma2[t]:.5g}, standard error {se:.2g}")
    np.testing.assert_allclose(traj[0], traj[1] / np.sqrt(sched.alpha[1]), rtol=1e-5, atol=1e-7)


def central_differences(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """∂f/∂x by central differences, entry by entry: x is changed in place and restored; f() reads it."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g
