"""Hypothesis strategies shared by the tests (random valid schedules and model configs), and one exact
result the sampler tests compare against."""

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
)


def zero_model_sample_variance(sched, var_type: str = "beta") -> float:
    """Var of each coordinate of x_0 from Algorithm 2 with ε_θ ≡ 0 and x_T = 0: x_{t−1} = x_t/√α_t + σ_t z_t
    for t ≥ 2 and x_0 = x_1/√α_1, so v ← v/α_t + σ_t² from t = T down (σ_t² = β_t or β̃_t)."""
    sigma2 = sched.beta if var_type == "beta" else sched.beta_tilde
    v = 0.0
    for t in range(sched.T, 0, -1):
        v = v / sched.alpha[t] + (sigma2[t] if t > 1 else 0.0)
    return float(v)
