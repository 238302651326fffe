"""Named experiment presets.

``sohl_dickstein``: the swiss-roll experiment of Sohl-Dickstein et al. 2015 (Sec. 3.1, Table 1) in
our terms — T = 40, the fixed schedule β_t = 1/(T − t + 1), a network that outputs the reverse
mean μ directly and (learned) variances, trained on the bound L_vlb, data centred and scaled by one
constant to unit variance. It reports K, the bound on the log-likelihood in bits per point in those
scaled coordinates, and K − L_null, where L_null is the log-likelihood of the isotropic unit
Gaussian, next to Table 1 (swiss roll: K = 2.35 bits, K − L_null = 6.45 bits).

Differences from the paper, stated: their Gaussian-diffusion runs learned β_2..T (β_1 fixed) —
1/(T − t + 1) is their binomial schedule — their network was a multi-scale convolutional/radial
basis model, their swiss roll's noise level is not given, and our learned variance is Improved
DDPM's interpolation between β_t and β̃_t. Our swiss roll is ``toy_data``'s (noise sd 0.05 in its
own units, i.e. ≈ 0.07 after scaling to unit variance).
"""

from __future__ import annotations

import math

import numpy as np

from ddpm_ref import LN2, GeneralTrainConfig

from .likelihood import likelihood_bound

PRESETS = {
    "sohl_dickstein": {
        "T": 40,
        "schedule": "sohl_dickstein",
        "normalize": "isotropic",
        "train": GeneralTrainConfig(objective="vlb", parametrization="mu", var_type="learned"),
    },
}
TABLE1_SWISS_ROLL = {"K_bits": 2.35, "K_minus_L_null_bits": 6.45}


def preset_kwargs(name: str) -> dict:
    """Keyword arguments of ``ddpm.fit`` for a named preset."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def sohl_dickstein_report(model, x: np.ndarray, seed: int = 0) -> dict:
    """K and K − L_null (bits per point) of ``model`` on points x, in the model's scaled coordinates."""
    res = likelihood_bound(model, x, seed=seed)
    log_scale_bits = float(np.sum(np.log(model.norm.scale))) / LN2
    # likelihood_bound reports data coordinates; K is defined on the unit-variance data (Jacobian removed).
    bound_scaled_bits = res["bound_bits_per_point"] - log_scale_bits
    u = model.norm.to_model(x)
    D = x.shape[1]
    L_null_bits = float(np.mean(-0.5 * np.sum(u * u, axis=1) - 0.5 * D * math.log(2 * math.pi))) / LN2
    K = -bound_scaled_bits
    se_bits = res["bound_bits_per_dim_se"] * D
    return {"K_bits": K, "K_se_bits": se_bits, "L_null_bits": L_null_bits, "K_minus_L_null_bits": K - L_null_bits,
            "table1": TABLE1_SWISS_ROLL, "n_points": int(x.shape[0]), "T": model.sched.T,
            "bound_bits_per_dim_data_coords": res["bound_bits_per_dim"]}
