"""End to end: fit 8gaussians with the library's defaults (fewer steps) and measure the samples."""

import ddpm

# Stated factor: a trained model's energy distance is within 2.5× the sampling floor (two
# independent data draws of the same size). Default settings reach ≈ 1× (README table).
FACTOR = 2.5
N_EVAL = 2000


def test_fitted_8gaussians_is_within_factor_of_the_floor_and_untrained_is_not():
    res = ddpm.fit("8gaussians", steps=5000, n_eval=N_EVAL, progress=False, seed=0)
    m = res.metrics
    assert m["energy_distance"] <= FACTOR * m["energy_distance_floor"], m
    # The held-out bound is a bound: never below the exact NLL of the mixture (3 standard errors).
    ev = ddpm.evaluate(res.model, "8gaussians", n=1000, seed=1)
    gap, se = ev["bound_minus_true_nll_bits_per_dim"], ev["bound_minus_true_nll_bits_per_dim_se"]
    assert gap > -3 * se, ev
    print(f"8gaussians: bound − true NLL = {gap:.3f} ± {se:.3f} bits/dim")
    # The same check on an untrained model fails: the test can tell a fit from no fit.
    untrained = ddpm.fit("8gaussians", steps=1, n_eval=N_EVAL, progress=False, seed=0).metrics
    assert untrained["energy_distance"] > 10 * FACTOR * untrained["energy_distance_floor"], untrained
