"""A diffusion model as a scikit-learn density estimator: ``DiffusionDensity`` has the interface of
``KernelDensity`` and ``GaussianMixture`` (``fit(X)``, ``sample(n)``, ``score_samples(X)``, ``score(X)``,
hyper-parameters in ``__init__``), so it goes into ``cross_val_score``, ``GridSearchCV`` and pipelines beside
them. Training is ``ddpm.fit``'s (Algorithm 1 with the default recipe, the same checks), in memory on every
point of X; the density is the exact one of the model's probability-flow ODE (``ddpm.likelihood``).

scikit-learn is optional: importing ``ddpm`` does not need it; this module does.

    from ddpm.density import DiffusionDensity
    from sklearn.model_selection import GridSearchCV
    search = GridSearchCV(DiffusionDensity(steps=4000), {"hidden": [64, 128]}, cv=3).fit(X)
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

import ddpm_ref

from .fit_plan import check_fit_arguments, plan_fit
from .fitting import train_model
from .likelihood import likelihood_bound, ode_log_density
from .model import Model
from .runtime import choose_backend
from .sampling import sample

__all__ = ["DiffusionDensity", "LIKELIHOODS", "MIN_SAMPLES"]

LIKELIHOODS = ("ode", "bound")
MIN_SAMPLES = 10              # as ddpm fit: fewer points cannot be standardised and fitted meaningfully


@contextlib.contextmanager
def _threads(n):
    """At most ``n`` threads for Numba's parallel kernels and for BLAS inside the block (None: unchanged)."""
    if n is None:
        yield
        return
    if not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"n_jobs must be a positive integer or None, got {n!r}")
    from threadpoolctl import threadpool_limits
    try:
        import numba
    except ImportError:                                    # numpy backend only: BLAS is all there is to limit
        numba = None
    old = numba.get_num_threads() if numba is not None else None
    try:
        if numba is not None:
            numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
        with threadpool_limits(limits=int(n)):
            yield
    finally:
        if numba is not None:
            numba.set_num_threads(old)


class DiffusionDensity(DensityMixin, BaseEstimator):
    """A DDPM (Ho et al. 2020) fitted to the rows of X, as a density estimator.

    Parameters (stored as given; ``None`` takes ``ddpm.fit``'s default recipe for the data's dimension)
    ----------
    steps : int or None
        Training steps of Algorithm 1 (None: ``ddpm.default_steps`` of the number of rows, 2,000–16,000).
    T : int
        Diffusion steps (1000).
    hidden, depth : int or None
        The MLP's width and number of hidden layers (None: the recipe's, 128 or 192, and 3).
    lr, batch_size : float, int or None
        Adam's initial step size and the batch (None: ``TrainConfig``'s, 4e-3 and 512).
    fourier : int or None
        Octaves of input Fourier features (None: the recipe's, 6 up to 3 columns, else 0).
    schedule : str or None
        A named β schedule (None: the recipe's, the capped cosine one for 2-D and 3-D data).
    likelihood : "ode" or "bound"
        What ``score_samples`` returns: "ode", log p(x) of the probability-flow ODE model, an exact density
        (Song et al. 2021; computed with ``ode_steps`` RK4 steps); "bound", minus the variational bound
        (Eq. 5) of the ancestral model, a lower bound on its log-density, with one Monte Carlo draw of x_t per
        step and point (unbiased, noisy per point).
    ode_steps : int
        RK4 steps of the ODE likelihood (100).
    backend : str or None
        "numba", "numpy" or "cupy" for training and sampling (None: numba when installed).
    n_jobs : int or None
        Threads of the compiled kernels and BLAS during ``fit``, ``score_samples`` and ``sample`` (None: as
        configured). Under ``GridSearchCV(n_jobs=...)`` or a Dask cluster give 1, so that parallel fits do not
        oversubscribe the cores; results do not depend on it.
    random_state : int, RandomState or None
        Seeds the weights, the training draws and the bound's noise.

    Attributes
    ----------
    n_features_in_ : int
    model_ : ddpm.model.Model, the fitted model (``ddpm.sample``, ``ddpm.evaluate`` and ``ddpm.show`` take it)
    """

    def __init__(self, steps=None, T=1000, hidden=None, depth=None, lr=None, batch_size=None, fourier=None,
                 schedule=None, likelihood="ode", ode_steps=100, backend=None, n_jobs=None, random_state=None):
        self.steps = steps
        self.T = T
        self.hidden = hidden
        self.depth = depth
        self.lr = lr
        self.batch_size = batch_size
        self.fourier = fourier
        self.schedule = schedule
        self.likelihood = likelihood
        self.ode_steps = ode_steps
        self.backend = backend
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def fit(self, X, y=None):
        """Train on every row of X (n_samples, n_features): Algorithm 1 with ``ddpm.fit``'s recipe and checks,
        in memory (no output folder, nothing held out). Returns self."""
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=MIN_SAMPLES)
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        train = {k: v for k, v in (("lr", self.lr), ("batch_size", self.batch_size)) if v is not None}
        model = {k: v for k, v in (("hidden", self.hidden), ("depth", self.depth), ("fourier", self.fourier))
                 if v is not None}
        with _threads(self.n_jobs):
            self.model_ = self._train(X, train, model)
        return self

    def _train(self, X, train: dict, model: dict) -> Model:
        given_train = check_fit_arguments("none", train or None, None, self.backend, None, 1)
        plan = plan_fit(X, seed=self._seed(), n_train=None, n_eval=0, resume=None, train=train or None,
                        given_train=given_train, steps=self.steps, T=self.T, schedule=self.schedule,
                        schedule_params=None, model=model or None, normalize=None, bin_width=None,
                        image_shape=None, backend=self.backend)
        backend = choose_backend(self.backend, plan.model.tcfg)
        plan.model.info["backend"] = backend
        train_model(plan, backend, None, 1, False, None)
        return plan.model

    def score_samples(self, X) -> np.ndarray:
        """Natural-log density of each row of X under the fitted model (n_samples,), in X's coordinates:
        the ODE model's exact log p(x) (``likelihood="ode"``) or minus the variational bound (``"bound"``)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        with _threads(self.n_jobs):
            if self.likelihood == "bound":
                return -likelihood_bound(self.model_, X, seed=self._seed())["per_point_nats"]
            return ode_log_density(self.model_, X, steps=self.ode_steps)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per sample of X (nats; ``GridSearchCV`` maximises it on held-out folds)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """``n_samples`` draws from the model (Algorithm 2), in X's coordinates: (n_samples, n_features)."""
        check_is_fitted(self)
        seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
        with _threads(self.n_jobs):
            return sample(self.model_, int(n_samples), seed=seed)

    # pickling through the checkpoint format: arrays and a JSON config, no code in the saved state
    def __getstate__(self):
        state = self.__dict__.copy()
        if "model_" in state:
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "model.npz")
                state["model_"].save(path)
                with open(path, "rb") as f:
                    state["model_"] = f.read()
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), bytes):
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "model.npz")
                with open(path, "wb") as f:
                    f.write(state["model_"])
                state["model_"] = Model.load(path)
        self.__dict__.update(state)
