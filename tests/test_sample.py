import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ddpm_ref
from ddpm_ref import MLPConfig, p_mean_variance, p_sample_loop, p_sample_trajectory, q_posterior, x0_from_eps

from strategies import schedule_and_t


@pytest.fixture
def model(rng):
    cfg = MLPConfig(dim=2, hidden=16, depth=2)
    return cfg, ddpm_ref.init_params(cfg, rng), ddpm_ref.make_schedule("linear", 25)


@given(schedule_and_t(), st.integers(0, 2**32 - 1))
def test_eq11_mean_is_the_posterior_mean_at_the_predicted_x0(st_, seed):
    # μ_θ(x_t, t) of Eq. 11 is μ̃_t(x_t, x̂_0) with x̂_0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t (Ho et al., Eq. 10 → 11).
    sched, t = st_
    rng = np.random.default_rng(seed)
    cfg = MLPConfig(dim=2, hidden=8, depth=1)
    params = ddpm_ref.init_params(cfg, rng)
    xt = rng.standard_normal((5, 2))
    mean, var = p_mean_variance(ddpm_ref.network(params, cfg), sched, xt, t, "beta_tilde")
    eps_theta = ddpm_ref.forward(params, xt, t, cfg)[0]
    mean_ref, var_ref = q_posterior(sched, x0_from_eps(sched, xt, t, eps_theta), xt, t)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-8, atol=1e-8 * (1 + np.abs(mean_ref).max()))
    assert float(var) == pytest.approx(float(var_ref))
    assert float(p_mean_variance(ddpm_ref.network(params, cfg), sched, xt, t, "beta")[1]) == sched.beta[t]


def test_same_noise_gives_the_same_samples(model, rng):
    cfg, params, sched = model
    x_T = rng.standard_normal((30, 2))
    z = rng.standard_normal((sched.T + 1, 30, 2))
    a = p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z)
    b = p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z)
    np.testing.assert_array_equal(a, b)
    c = p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, rng=np.random.default_rng(5))
    d = p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("var_type", ["beta", "beta_tilde"])
def test_no_noise_is_added_at_the_last_step(model, rng, var_type):
    cfg, params, sched = model
    x_T = rng.standard_normal((10, 2))
    z = rng.standard_normal((sched.T + 1, 10, 2))
    z0 = z.copy()
    z0[1] = 0.0                                  # z used at t = 1
    np.testing.assert_array_equal(p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z, var_type=var_type),
                                  p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z0, var_type=var_type))
    z2 = z.copy()
    z2[2] += 1.0                                 # z used at t = 2 does matter
    assert not np.allclose(p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z, var_type=var_type),
                           p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=z2, var_type=var_type))


def test_last_step_is_the_mean_only(model, rng):
    cfg, params, sched = model
    x1 = rng.standard_normal((10, 2))
    out = ddpm_ref.p_sample(ddpm_ref.network(params, cfg), sched, x1, 1, z=rng.standard_normal((10, 2)))
    np.testing.assert_array_equal(out, p_mean_variance(ddpm_ref.network(params, cfg), sched, x1, 1)[0])


def test_trajectory_is_indexed_by_t(model, rng):
    cfg, params, sched = model
    x_T = rng.standard_normal((7, 2))
    x0, traj = p_sample_trajectory(ddpm_ref.network(params, cfg), sched, x_T, rng=rng)
    assert traj.shape == (sched.T + 1, 7, 2)
    np.testing.assert_array_equal(traj[sched.T], x_T)
    np.testing.assert_array_equal(traj[0], x0)
    step = ddpm_ref.p_sample(ddpm_ref.network(params, cfg), sched, traj[1], 1, z=None)
    np.testing.assert_array_equal(step, traj[0])


def test_sampler_validates_its_inputs(model, rng):
    cfg, params, sched = model
    x_T = rng.standard_normal((4, 2))
    with pytest.raises(ValueError, match="exactly one noise source"):
        p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T)
    with pytest.raises(ValueError, match="exactly one noise source"):
        p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, rng=rng, z=np.zeros((sched.T + 1, 4, 2)))
    with pytest.raises(ValueError, match=r"z must have shape \(T \+ 1, N, D\)"):
        p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, z=np.zeros((sched.T, 4, 2)))
    with pytest.raises(ValueError, match="unknown variance choice 'big'"):
        p_sample_loop(ddpm_ref.network(params, cfg), sched, x_T, rng=rng, var_type="big")
    with pytest.raises(ValueError, match=r"x_T must have shape \(N, 2\)"):
        p_sample_loop(ddpm_ref.network(params, cfg), sched, np.zeros((4, 3)), rng=rng)


def test_p_sample_loop_is_algorithm_2_on_one_screen():
    """The core loop is read beside the paper: one flat function of at most 25 lines that calls p_sample
    itself for every t (no hop through a generic chain runner)."""
    import ast
    import inspect
    src = inspect.getsource(ddpm_ref.sample.p_sample_loop)
    assert len(src.splitlines()) <= 25, f"p_sample_loop is {len(src.splitlines())} lines"
    called = {n.func.id for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "p_sample" in called and "run_chain" not in called, called
