"""ddpm: fit diffusion models (Ho et al. 2020) to 2-D and small N-D point sets, from Python or the shell.

    import ddpm
    res = ddpm.fit("swiss_roll", out="runs/sr")    # Algorithm 1, then samples and metrics
    x = ddpm.sample("runs/sr/model.npz", 10_000)   # Algorithm 2, in the data's own coordinates

The method itself lives in ``ddpm_ref`` (readable NumPy); this package is the application around it.
"""

from . import api  # noqa: F401  (ddpm.api: the API's former home, kept for users' scripts)
from .data import resolve_data
from .evaluation import evaluate
from .fitting import FitResult, fit
from .guards import MemorisationWarning
from .likelihood import likelihood_bound, ode_nll
from .metrics import energy_distance
from .model import Model, load_model
from .recipe import default_recipe, default_steps
from .runtime import BACKENDS
from .sampling import sample, sample_trajectory
from .show import show

__version__ = "0.1.0"
__all__ = ["fit", "default_recipe", "default_steps", "MemorisationWarning", "sample", "sample_trajectory", "evaluate", "likelihood_bound", "ode_nll", "load_model", "resolve_data", "FitResult", "Model", "energy_distance", "BACKENDS", "show"]
