"""ddpm_ref: Denoising Diffusion Probabilistic Models in plain, readable NumPy (float64).

Read it next to Ho et al. 2020 ("Denoising Diffusion Probabilistic Models") and Sohl-Dickstein
et al. 2015. Modules in dependency order (each imports only those above it):

    schedule.py   β_t and everything derived from it (ᾱ_t, β̃_t, posterior coefficients); Ho's linear β_t
    forward.py    q(x_t|x_{t−1}) (Eq. 2), q(x_t|x_0) (Eq. 4), q(x_{t−1}|x_t,x_0) (Eqs. 6–7)
    mlp.py        ε_θ(x_t, t): an MLP on [γ(x_t), sinusoidal embedding of t]; forward and hand-written backward
    optim.py      Adam, gradient clipping, EMA of the weights
    param.py      what the network predicts (ε, x_0, v, μ) and σ_t² (β, β̃, learned): conversions in one place
    bound.py      the variational bound L_T + Σ_{t≥2} L_{t−1} + L_0 (Eq. 5), Gaussian KL, decoders
    train.py      L_simple (Eq. 14) and Algorithm 1, as in the paper (ε, uniform t)
    sample.py     p_θ(x_{t−1}|x_t) (Eqs. 1, 11) and Algorithm 2, as in the paper (ε, σ_t² = β_t or β̃_t)
    named_schedules.py  every named schedule for any T: linear rescaled by 1000/T, cosine, …, zero terminal SNR
    objectives.py Algorithm 1 for every variant: x_0/v/μ targets, L_vlb and L_hybrid, importance sampling of t
    reverse.py    Algorithm 2 for every variant: x_0/v/μ outputs, learned σ_t², respaced steps, x̂_0 thresholding
    respace.py    K < T steps: timestep spacings, respaced schedules, DDIM and its inversion
    ode.py        the probability-flow ODE and its exact log-likelihood
    guidance.py   class-conditional ε_θ(x_t, t, y), label dropout, classifier-free guidance (Ho & Salimans 2022)
    solvers.py    high-order ODE samplers: DPM-Solver++(2M)/(2S), UniPC, Heun (EDM); log-SNR/Karras grids
    checkpoint.py arrays + JSON config in one .npz, no pickle, atomic writes

The core path — the study note, Ho et al.'s Algorithms 1 and 2 — is schedule.py → forward.py → mlp.py →
optim.py → train.py (``loss_simple``, ``loss_and_grads``, ``train_step``, ``train``) → sample.py
(``p_mean_variance``, ``p_sample``, ``p_sample_loop``). Neither takes an option that is not in the paper
(σ_t² = β_t or β̃_t, Sec. 3.2; Ho's linear β_t); the variants live in named_schedules.py, objectives.py
and reverse.py, which reuse the core's schedule, optimiser step and loops, never the reverse. The
network is the study note's MLP (Ho's is a U-Net); ``MLPConfig`` holds its shape, and its Fourier
input features γ(x) are off (K = 0) unless asked for, and so is its class table (n_classes = 0:
unconditional; guidance.py uses it). The core path's six
modules are 874 lines (docstrings included) of the package's 2,636; ``tests/test_docs.py`` keeps this
count true; they import nothing else from the package. ``TrainConfig`` holds Algorithm 1's settings
only; a variant's (objective, target, σ_t², t sampling) are ``objectives.GeneralTrainConfig``.

Glossary (code name: symbol — meaning). Time follows the paper: t = 1..T, x_0 is data, and every
schedule array has length T + 1 and is indexed by t.

    T                   number of diffusion steps
    beta[t]             β_t — variance of the forward step q(x_t|x_{t−1}) = N(√(1−β_t) x_{t−1}, β_t I)
    alpha[t]            α_t = 1 − β_t
    alpha_bar[t]        ᾱ_t = ∏_{s≤t} α_s; q(x_t|x_0) = N(√ᾱ_t x_0, (1−ᾱ_t) I)
    beta_tilde[t]       β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t) · β_t — variance of q(x_{t−1}|x_t, x_0)
    x0, xt, x_prev      x_0 (data), x_t, x_{t−1}
    eps, eps_theta      ε ~ N(0, I) and the network's prediction ε_θ(x_t, t)
    sigma2              σ_t² — variance of p_θ(x_{t−1}|x_t): β_t or β̃_t
    z                   the standard-normal noise of Algorithm 2, line 3
    params, ema, opt    θ (dict of arrays), its EMA, the Adam state

No function draws random numbers itself except the outer loops, which take an explicit
``numpy.random.Generator``; everything else takes its noise as an argument.
"""

from .bound import (LN2, bound, discretized_gaussian_nll, gaussian_nll, normal_kl, normal_kl_grad, prior_kl,
                    terms_and_grads_at, terms_at)
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .forward import extract, q_mean_variance, q_posterior, q_sample, q_step
from .mlp import (ACTIVATIONS, Denoiser, MLPConfig, backward, backward_with_dx, forward, init_params, input_features,
                  network, timestep_embedding)
from .optim import adam_init, adam_update, clip_grad_norm, ema_update, global_norm
from .param import (PARAMETRIZATIONS, VAR_TYPES, eps_from_v, eps_from_x0, mean_from_output, p_log_variance,
                    predict_x0, target, threshold_x0, v_target, x0_from_eps, x0_from_mean, x0_from_v)
from .ode import SIGMA_MAX, ode_log_likelihood, ode_sample, sigma_of_t, sigmas, t_of_sigma
from .solvers import SOLVER_SPACINGS, SOLVERS, solver_order, solver_sample, solver_timesteps
from .respace import SPACINGS, RespacedSchedule, ddim_invert, ddim_sample_loop, ddim_step, respace, timesteps
from .sample import p_mean_variance, p_sample, p_sample_loop, p_sample_trajectory
from .reverse import p_mean_variance_general, p_sample_general, p_sample_loop_general, p_sample_trajectory_general
from .schedule import Schedule, TerminalSNRWarning, linear_schedule, schedule_from_betas
from .named_schedules import SCHEDULES, make_schedule, rescale_zero_terminal_snr
from .train import (TrainConfig, apply_step, draw_batch, init_state, learning_rate, loss_and_grads,
                    loss_simple, train, train_step)
from .guidance import (P_UNCOND, GuidedDenoiser, draw_batch_conditional, guided_network, guided_output,
                       train_conditional)
from .objectives import (HISTORY, OBJECTIVES, GeneralTrainConfig, as_general, importance_probs, importance_weights,
                         objective_and_grads, train_general, train_step_general, with_history)

__all__ = [
    "Schedule", "linear_schedule", "make_schedule", "schedule_from_betas", "SCHEDULES", "TerminalSNRWarning", "rescale_zero_terminal_snr",
    "q_step", "q_sample", "q_mean_variance", "q_posterior", "extract",
    "MLPConfig", "ACTIVATIONS", "timestep_embedding", "input_features", "init_params", "forward", "backward", "backward_with_dx",
    "adam_init", "adam_update", "clip_grad_norm", "global_norm", "ema_update",
    "TrainConfig", "loss_simple", "loss_and_grads", "apply_step", "draw_batch", "init_state", "train_step", "train",
    "learning_rate", "train_step_general", "train_general", "GeneralTrainConfig", "as_general", "with_history",
    "HISTORY", "OBJECTIVES", "importance_probs", "importance_weights", "objective_and_grads", "PARAMETRIZATIONS", "VAR_TYPES", "predict_x0", "target", "mean_from_output",
    "p_log_variance", "threshold_x0", "x0_from_eps", "eps_from_x0", "v_target", "x0_from_v", "eps_from_v", "x0_from_mean",
    "LN2", "normal_kl", "normal_kl_grad", "gaussian_nll", "discretized_gaussian_nll", "prior_kl", "terms_at", "terms_and_grads_at", "bound",
    "SPACINGS", "timesteps", "respace", "RespacedSchedule", "network", "Denoiser", "SIGMA_MAX", "ode_log_likelihood", "ode_sample",
    "sigma_of_t", "sigmas", "t_of_sigma", "SOLVERS", "SOLVER_SPACINGS", "solver_order", "solver_sample",
    "solver_timesteps", "ddim_step", "ddim_sample_loop", "ddim_invert", "p_mean_variance", "p_sample", "p_sample_loop", "p_sample_trajectory",
    "p_mean_variance_general", "p_sample_general", "p_sample_loop_general", "p_sample_trajectory_general",
    "save_checkpoint", "load_checkpoint", "CheckpointError",
    "P_UNCOND", "GuidedDenoiser", "draw_batch_conditional", "guided_network", "guided_output", "train_conditional",
]
