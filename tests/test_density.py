"""``ddpm.density.DiffusionDensity``: scikit-learn's estimator contract, and the density it reports is the model's.

The estimator checks run on a tiny configuration (seconds); the accuracy test fits 8gaussians with the default
recipe and compares the mean of ``score_samples`` with the mixture's exact log density on fresh points.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import toy_data  # noqa: E402
from ddpm import metrics  # noqa: E402
from ddpm.density import DiffusionDensity  # noqa: E402

TINY = dict(steps=40, T=40, hidden=16, depth=1, batch_size=32, ode_steps=8, backend="numpy")


def _blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-2, 0.3, (n // 2, 2)), rng.normal(2, 0.3, (n - n // 2, 2))])


def test_the_estimator_meets_scikit_learns_contract():
    from sklearn.utils.estimator_checks import check_estimator
    check_estimator(DiffusionDensity(**TINY))


def test_hyper_parameters_are_stored_as_given_and_fitted_attributes_end_in_underscore():
    est = DiffusionDensity(**TINY, random_state=3)
    assert est.get_params()["hidden"] == 16 and est.get_params()["random_state"] == 3
    assert not hasattr(est, "model_")
    est.fit(_blobs())
    assert est.n_features_in_ == 2 and est.model_.cfg.hidden == 16 and est.model_.step == 40
    assert est.model_.sched.T == 40


def test_bad_input_gets_one_clear_error():
    with pytest.raises(ValueError, match="NaN"):
        DiffusionDensity(**TINY).fit(np.array([[0.0, np.nan]] * 20))
    with pytest.raises(ValueError, match="minimum of 10"):
        DiffusionDensity(**TINY).fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="likelihood"):
        DiffusionDensity(**TINY, likelihood="exact").fit(_blobs())
    est = DiffusionDensity(**TINY).fit(_blobs())
    with pytest.raises(ValueError, match="features"):
        est.score_samples(np.zeros((3, 5)))


def test_score_is_the_mean_of_score_samples_and_sample_is_in_data_coordinates():
    est = DiffusionDensity(**{**TINY, "steps": 300}, random_state=0).fit(_blobs() * 10 + 100)
    x = _blobs(40, seed=1) * 10 + 100
    assert est.score(x) == pytest.approx(np.mean(est.score_samples(x)), rel=1e-12)
    s = est.sample(500, random_state=2)
    assert s.shape == (500, 2) and 80 < np.median(s) < 120            # the data's centre, not the model's 0
    np.testing.assert_array_equal(s, est.sample(500, random_state=2))


def test_the_bound_scores_lie_below_the_ode_density_on_average_in_the_same_units():
    """−bound ≤ log p of the ancestral model, close to the ODE model's: on average the bound's scores must not
    exceed the ODE's by more than their noise (a flipped sign would), and they are in nats per point."""
    est = DiffusionDensity(**{**TINY, "steps": 300}, random_state=0).fit(_blobs(400))
    x = _blobs(300, seed=5)
    ode = est.score_samples(x)
    bound = est.set_params(likelihood="bound").score_samples(x)
    assert bound.shape == ode.shape == (300,)
    diff = bound - ode
    assert diff.mean() < 3 * diff.std(ddof=1) / np.sqrt(diff.size)
    from ddpm.likelihood import likelihood_bound                  # nats, not bits: the documented bound × ln 2
    bits = likelihood_bound(est.model_, x, seed=est._seed())["bound_bits_per_point"]
    assert -bound.mean() == pytest.approx(bits * np.log(2), rel=1e-9)


def test_pickle_goes_through_the_checkpoint_format():
    est = DiffusionDensity(**TINY, random_state=0).fit(_blobs())
    blob = pickle.dumps(est)
    assert b"ddpm.model" not in blob and b"Model" not in blob        # the model is stored as .npz bytes
    back = pickle.loads(blob)
    x = _blobs(20, seed=4)
    np.testing.assert_array_equal(back.score_samples(x), est.score_samples(x))


def test_grid_search_picks_by_held_out_likelihood():
    from sklearn.model_selection import GridSearchCV, KFold
    cv = KFold(2, shuffle=True, random_state=0)                   # _blobs is sorted by blob: shuffle the folds
    search = GridSearchCV(DiffusionDensity(**TINY, random_state=0), {"steps": [2, 200]}, cv=cv).fit(_blobs(200))
    assert search.best_params_ == {"steps": 200}                  # 2 steps of training fit nothing
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0] + 0.5                            # nats per point: a clear margin


@pytest.mark.slow
def test_default_fit_of_8gaussians_scores_its_exact_density_and_samples_at_the_floor():
    rng = np.random.default_rng(0)
    est = DiffusionDensity(random_state=0).fit(toy_data.draw("8gaussians", 100_000, rng))
    fresh = toy_data.draw("8gaussians", 1000, rng)
    exact = toy_data.log_density_8gaussians(fresh)
    assert abs(np.mean(est.score_samples(fresh)) - np.mean(exact)) / 2 < 0.05          # nats per dimension
    n = 2000
    held, ref = toy_data.draw("8gaussians", n, rng), toy_data.draw("8gaussians", n, rng)
    ratio = metrics.energy_distance(est.sample(n, random_state=1), held) / metrics.energy_distance(ref, held)
    assert ratio <= 1.5


def test_grid_search_runs_unchanged_on_a_dask_cluster_with_the_serial_runs_results():
    """GridSearchCV under joblib's Dask backend on a 2-worker LocalCluster (each fit single-threaded,
    n_jobs=1): the same cv_results_ as the serial search for the same seeds."""
    distributed = pytest.importorskip("distributed")
    import joblib
    from sklearn.model_selection import GridSearchCV, KFold
    X = _blobs(120)
    est = DiffusionDensity(**TINY, n_jobs=1, random_state=0)
    grid = {"steps": [2, 60]}
    search = lambda **kw: GridSearchCV(est, grid, cv=KFold(2, shuffle=True, random_state=0), **kw).fit(X)
    serial = search()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with joblib.parallel_config(backend="dask"):
            on_dask = search(n_jobs=2)
        workers = client.run(lambda: __import__("os").getpid())
    assert len(workers) == 2
    for key in ("split0_test_score", "split1_test_score", "mean_test_score", "rank_test_score"):
        np.testing.assert_allclose(on_dask.cv_results_[key], serial.cv_results_[key], rtol=1e-9, atol=0)
    assert on_dask.best_params_ == serial.best_params_ == {"steps": 60}


def test_n_jobs_limits_the_threads_and_changes_no_result():
    numba = pytest.importorskip("numba")
    x = _blobs(100)
    a = DiffusionDensity(**{**TINY, "backend": "numba"}, random_state=0).fit(x)
    seen = []
    b = DiffusionDensity(**{**TINY, "backend": "numba"}, n_jobs=1, random_state=0)
    from ddpm import fitting
    train = fitting.ddpm_fast.train

    def spy(*args, **kw):
        seen.append(numba.get_num_threads())
        return train(*args, **kw)
    import unittest.mock
    with unittest.mock.patch.object(fitting.ddpm_fast, "train", spy):
        b.fit(x)
    assert seen and set(seen) == {1}
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS        # restored
    for k in a.model_.state["params"]:
        np.testing.assert_array_equal(a.model_.state["params"][k], b.model_.state["params"][k])
    with pytest.raises(ValueError, match="n_jobs"):
        DiffusionDensity(**TINY, n_jobs=0).fit(x)
