"""The former home of the Python API, kept so that users' scripts that import ``ddpm.api`` (``ddpm.api.fit``,
``ddpm.api.cosine_cap``, ``ddpm.api.DivergenceError``, ...) keep working. It defines nothing: each name below
is re-exported from the module that now does its job.

- ``ddpm.recipe``: the default recipe (``cosine_cap``, ``default_recipe``, ``default_steps`` and their constants).
- ``ddpm.data``: the data sets of a fit (``resolve_data``) and the grid of quantised data (``infer_grid``,
  ``dequantize``, ``quantize``).
- ``ddpm.outdir``: the output folder (``OUTPUT_FILES``, ``LOCK_FILE``, ``output_lock``, ``atomic``, ``write_json``).
- ``ddpm.guards``: memory, divergence and warning guards (``check_memory``, ``DivergenceError``,
  ``MemorisationWarning``, ``DeterministicSamplerWarning``).
- ``ddpm.runtime``: the compute backend (``BACKENDS``, ``choose_backend``) and the progress bar.
- ``ddpm.fit_plan`` and ``ddpm.fitting``: ``fit`` (its plan, training and files) and ``FitResult``.
- ``ddpm.measure``: the samples and metrics measured after a fit.
- ``ddpm.sampling``: ``sample``, ``sample_trajectory``, ``sample_to_file``, the samplers and ``default_sampler``.
- ``ddpm.likelihood``: ``likelihood_bound`` (all t or stratified, ``bound_stratified``) and ``ode_nll``.
- ``ddpm.evaluation``: ``evaluate`` (``ddpm eval``) and ``evaluation_streams``.
- ``ddpm.model``: ``Model`` and ``load_model``.
"""

from __future__ import annotations

from ddpm_ref import MLPConfig, TrainConfig

from .data import N_EVAL, N_FLOOR_DRAWS, N_TRAIN_DEFAULT, dequantize, fixed_default, infer_grid, quantize, resolve_data
from .evaluation import evaluate, evaluation_streams
from .fit_plan import check_resume, model_settings, train_settings
from .fitting import FitResult, fit
from .floors import cached_floors
from .guards import (DETERMINISTIC_MIN_ALPHA_BAR_T, DIVERGENCE_FACTOR, MEMORISATION_RATIO, DeterministicSamplerWarning,
                     DivergenceError, MemorisationWarning, available_memory, check_finite, check_memory, fit_memory,
                     warn_if_memorised, warn_if_tiny_alpha_bar_T)
from .likelihood import FAST_BOUND_POINTS, FAST_BOUND_T_DRAWS, bound_stratified, likelihood_bound, ode_nll
from .measure import FINAL_LOSS_WINDOW, N_BOUND, N_REVERSE_GRID, sample_and_measure, save_reverse_grid
from .metrics import EVAL_MODES, FIT_EVAL_MODES, sample_statistics
from .model import Model, Normalizer, data_fingerprint, load_model
from .outdir import LOCK_FILE, OUTPUT_FILES, atomic, output_lock, write_json
from .recipe import (LOW_DIM, MIN_STEPS, RECIPE_ALPHA_BAR_T, STEPS_PER_POINT, WIDE_DIM, cosine_cap, default_recipe,
                     default_steps)
from .runtime import BACKENDS, choose_backend
from .sampling import (DEFAULT_SOLVER, FEW_STEPS, SAMPLE_CHUNK, SAMPLERS, SOLVER_STEPS, default_sampler, ode_sigma_max,
                       sample, sample_to_file, sample_trajectory)

__all__ = ["DivergenceError", "DeterministicSamplerWarning", "cosine_cap", "default_recipe", "default_steps", "MemorisationWarning", "dequantize", "quantize", "fit", "sample", "sample_trajectory", "sample_to_file", "check_memory", "evaluate", "likelihood_bound", "load_model", "resolve_data", "FitResult", "BACKENDS",
           "OUTPUT_FILES"]
