import sys

import numpy as np
import pytest

import toy_data
from toy_data import DataError, draw, load


@pytest.mark.parametrize("name", toy_data.NAMES)
def test_generators_are_seeded_finite_and_2d(name):
    a = draw(name, 500, np.random.default_rng(3))
    b = draw(name, 500, np.random.default_rng(3))
    c = draw(name, 500, np.random.default_rng(4))
    assert a.shape == (500, 2) and a.dtype == np.float64 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a.std(axis=0) > 0.05)


def test_required_generators_exist():
    for name in ["swiss_roll", "moons", "circles", "rings", "8gaussians", "25gaussians", "pinwheel",
                 "2spirals", "checkerboard", "line", "word", "grid", "clusters", "knight"]:
        assert name in toy_data.NAMES
    for name in ["8gaussians", "grid", "clusters"]:
        assert name in toy_data.LOG_DENSITIES


def test_8gaussians_density_integrates_to_one_and_matches_samples():
    g = np.linspace(-3.5, 3.5, 701)
    xx, yy = np.meshgrid(g, g)
    p = np.exp(toy_data.log_density_8gaussians(np.stack([xx.ravel(), yy.ravel()], 1)))
    assert p.sum() * (g[1] - g[0]) ** 2 == pytest.approx(1.0, abs=1e-3)
    x = draw("8gaussians", 20000, np.random.default_rng(0))
    r = np.linalg.norm(x, axis=1)
    assert r.mean() == pytest.approx(2.0, abs=0.02)


# --- each generator's shape and noise level, read back from 100,000 points ------------------------
#
# Each test recovers the noise the generator added (the residual off its circle, arc, curve, centre
# or line) and compares its mean and standard deviation with the values written in toy_data. With
# N = 100,000 the standard error of a standard deviation is 0.2% (0.6% for one of 8 clusters); the
# tolerance REL = 3% leaves room for the curvature terms (O(σ²/R²), ≤ 1%) and still fails on a noise
# level off by 5% or more.

N = 100_000
REL = 0.03


def _points(name, seed=0):
    return draw(name, N, np.random.default_rng(seed))


def _assert_fractions(labels, probs, atol=0.01):
    counts = np.bincount(labels, minlength=len(probs))
    np.testing.assert_allclose(counts / len(labels), probs, atol=atol)


def _nearest_on_curve(q, u0, c, dc, ddc, lo, hi, iters=30):
    """u* minimising |q − c(u)| near u0 (Newton on ½|q − c(u)|², kept in [lo, hi]); the residual
    r = q − c(u*) (n, 2); the curve's unit normal n̂ = (−c'_y, c'_x)/|c'| at u*, so that r·n̂ is the
    signed distance; and r's component along the curve, |r·c'|/|c'|, 0 where Newton converged (and
    set to 0 at a clipped end, where the nearest point need not be stationary)."""
    u = u0.copy()
    for _ in range(iters):
        r = q - c(u)                                                        # (n, 2)
        d1, d2 = dc(u), ddc(u)
        u = np.clip(u + (r * d1).sum(1) / ((d1 * d1).sum(1) - (r * d2).sum(1)), lo, hi)
    d1 = dc(u)
    r = q - c(u)
    along = np.where((u > lo) & (u < hi), np.abs((r * d1).sum(1)) / np.linalg.norm(d1, axis=1), 0.0)
    normal = np.stack([-d1[:, 1], d1[:, 0]], 1) / np.linalg.norm(d1, axis=1, keepdims=True)
    return u, r, normal, along


def test_moons_points_lie_off_their_two_arcs_with_noise_sd_0_1():
    # upper arc: centre (0, 0), radius 1, polar angle in [0, π]; lower arc (1 − cos a, 0.5 − sin a):
    # centre (1, 0.5), radius 1, polar angle in [−π, 0]; n//2 points on each; noise N(0, 0.1² I).
    x = _points("moons")
    dists, resid, angle = [], [], []
    for centre, (a_lo, a_hi) in (((0.0, 0.0), (0.0, np.pi)), ((1.0, 0.5), (-np.pi, 0.0))):
        v = x - np.array(centre)
        rho, theta = np.linalg.norm(v, axis=1), np.arctan2(v[:, 1], v[:, 0])
        ends = np.array(centre) + np.array([[np.cos(a_lo), np.sin(a_lo)], [np.cos(a_hi), np.sin(a_hi)]])
        to_end = np.linalg.norm(x[:, None, :] - ends[None], axis=2).min(1)
        on_arc = (theta >= a_lo) & (theta <= a_hi)
        dists.append(np.where(on_arc, np.abs(rho - 1.0), to_end))         # exact distance to the arc
        resid.append(rho - 1.0)
        angle.append(np.mod(theta - a_lo + np.pi / 2, 2 * np.pi) - np.pi / 2)  # along the arc: 0..π on it
    arc = np.argmin(dists, axis=0)                                          # (N,) 0 upper, 1 lower
    _assert_fractions(arc, [0.5, 0.5])
    d = np.choose(arc, dists)
    assert np.sqrt(np.mean(d ** 2)) == pytest.approx(0.1, rel=0.05)          # ends and curvature included
    for k in (0, 1):
        # away from the ends the signed distance to the circle is the radial noise component
        a = angle[k][arc == k]
        r = resid[k][arc == k][(a > 0.3) & (a < np.pi - 0.3)]
        assert abs(r.mean()) < 0.01, (k, r.mean())                          # radius 1 (bias σ²/2 = 0.005)
        assert r.std() == pytest.approx(0.1, rel=REL), k
        assert a.mean() == pytest.approx(np.pi / 2, abs=0.02), k            # uniform along the arc


def test_circles_radii_are_1_and_0_5_with_noise_sd_0_05():
    x = _points("circles")
    rho = np.linalg.norm(x, axis=1)
    ring = (rho > 0.75).astype(int)                                         # 0: r = 0.5, 1: r = 1
    _assert_fractions(ring, [0.5, 0.5])
    for k, r in enumerate((0.5, 1.0)):
        res = rho[ring == k] - r
        assert abs(res.mean()) < 0.005, (r, res.mean())                     # bias σ²/(2r) ≤ 0.0025
        assert res.std() == pytest.approx(0.05, rel=REL), r
        ang = np.arctan2(x[ring == k, 1], x[ring == k, 0])
        assert abs(np.cos(ang).mean()) < 0.01 and abs(np.sin(ang).mean()) < 0.01   # uniform angle


def test_rings_radii_0_5_to_2_weighted_by_radius_with_noise_sd_0_04():
    # radii 1, 2, 3, 4 with probability ∝ radius, noise 0.08, all halved
    x = _points("rings")
    rho = np.linalg.norm(x, axis=1)
    radii = np.array([0.5, 1.0, 1.5, 2.0])
    ring = np.argmin(np.abs(rho[:, None] - radii[None]), axis=1)
    _assert_fractions(ring, [0.1, 0.2, 0.3, 0.4])
    for k, r in enumerate(radii):
        res = rho[ring == k] - r
        assert abs(res.mean()) < 0.004, (r, res.mean())
        assert res.std() == pytest.approx(0.04, rel=REL), r


def test_8gaussians_centres_on_the_radius_2_circle_with_sd_0_2():
    x = _points("8gaussians")
    a = 2 * np.pi * np.arange(8) / 8
    centres = 2.0 * np.stack([np.cos(a), np.sin(a)], axis=1)
    k = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    _assert_fractions(k, np.full(8, 1 / 8))
    for j in range(8):
        off = x[k == j] - centres[j]
        np.testing.assert_allclose(off.mean(0), 0.0, atol=0.01, err_msg=f"centre {j}")
        np.testing.assert_allclose(off.std(0), 0.2, rtol=REL, err_msg=f"centre {j}")
        assert abs(np.corrcoef(off.T)[0, 1]) < 0.05                         # isotropic


def test_25gaussians_sit_on_the_integer_grid_with_sd_0_05():
    x = _points("25gaussians")
    g = np.clip(np.round(x), -2, 2)
    cell = ((g[:, 0] + 2) * 5 + (g[:, 1] + 2)).astype(int)
    _assert_fractions(cell, np.full(25, 1 / 25), atol=0.003)
    off = x - g
    np.testing.assert_allclose(off.mean(0), 0.0, atol=0.002)
    np.testing.assert_allclose(off.std(0), 0.05, rtol=REL)
    assert np.abs(off).max() < 0.4                                          # every point by its own centre


def test_checkerboard_is_uniform_on_the_8_alternate_squares_of_side_2():
    x = _points("checkerboard")
    assert np.all(np.abs(x) <= 4)
    i = np.floor(x / 2).astype(int)                                         # square index, −2..1 per axis
    assert np.all((i[:, 0] + i[:, 1]) % 2 == 0)                             # only squares with i + j even
    occupied = [(a, b) for a in range(-2, 2) for b in range(-2, 2) if (a + b) % 2 == 0]
    label = ((i[:, 0] + 2) * 4 + (i[:, 1] + 2))
    counts = np.bincount(label, minlength=16)
    for a, b in occupied:
        assert counts[(a + 2) * 4 + (b + 2)] / N == pytest.approx(1 / 8, abs=0.01), (a, b)
    frac = x / 2 - i                                                        # position inside the square
    np.testing.assert_allclose(frac.mean(0), 0.5, atol=0.005)
    np.testing.assert_allclose(frac.var(0), 1 / 12, rtol=REL)


def test_swiss_roll_lies_off_the_spiral_u_cos_u_u_sin_u_with_noise_sd_0_5():
    # 10·x = u·(cos u, sin u) + N(0, 0.5² I), u ~ U(1.5π, 4.5π): turns 2π apart, so the nearest point
    # of the curve is the one the point came from, and the signed normal distance is the noise's
    # normal component, sd 0.5.
    q = 10 * _points("swiss_roll")
    lo, hi = 1.5 * np.pi, 4.5 * np.pi
    rho, phi = np.linalg.norm(q, axis=1), np.arctan2(q[:, 1], q[:, 0])
    u0 = np.clip(phi + 2 * np.pi * np.round((rho - phi) / (2 * np.pi)), lo, hi)  # u ≡ φ (mod 2π), u ≈ ρ
    c = lambda u: u[:, None] * np.stack([np.cos(u), np.sin(u)], 1)
    dc = lambda u: np.stack([np.cos(u) - u * np.sin(u), np.sin(u) + u * np.cos(u)], 1)
    ddc = lambda u: np.stack([-2 * np.sin(u) - u * np.cos(u), 2 * np.cos(u) - u * np.sin(u)], 1)
    u, r, normal, along = _nearest_on_curve(q, u0, c, dc, ddc, lo, hi)
    assert along.max() < 1e-9                                               # Newton converged
    dist = (r * normal).sum(1)
    inner = (u > lo + 0.5) & (u < hi - 0.5)
    assert abs(dist[inner].mean()) < 0.05                                  # curvature bias −κσ²/2 ≈ −0.015
    assert dist[inner].std() == pytest.approx(0.5, rel=REL)
    assert u.mean() == pytest.approx(3 * np.pi, abs=0.03)                  # u uniform on [1.5π, 4.5π]


def test_2spirals_lie_off_two_mirrored_arms_by_a_uniform_0_to_0_5_jitter():
    # 3·x = ±(−m cos m, m sin m) + j, m = 3π·√U, j ~ U[0, 0.5)² (the same for both arms). The nearest
    # curve point removes j's tangential part: the signed normal distance is j·n̂, whose mean is
    # 0.25·(n̂_x + n̂_y) and whose variance is (0.5²/12)|n̂|² = 0.5²/12 whatever n̂ is.
    q = 3 * _points("2spirals")
    lo, hi = 0.0, 3 * np.pi
    rho, phi = np.linalg.norm(q, axis=1), np.arctan2(q[:, 1], q[:, 0])
    best = None
    for sign, phase in ((1.0, np.pi), (-1.0, 0.0)):                       # arm +: angle π − m; arm −: −m
        base = phase - phi
        m0 = np.clip(base + 2 * np.pi * np.round((rho - base) / (2 * np.pi)), lo, hi)
        c = lambda m, s=sign: s * m[:, None] * np.stack([-np.cos(m), np.sin(m)], 1)
        dc = lambda m, s=sign: s * np.stack([-np.cos(m) + m * np.sin(m), np.sin(m) + m * np.cos(m)], 1)
        ddc = lambda m, s=sign: s * np.stack([2 * np.sin(m) + m * np.cos(m), 2 * np.cos(m) - m * np.sin(m)], 1)
        m, r, normal, along = _nearest_on_curve(q, m0, c, dc, ddc, lo, hi)
        arm = np.full(len(q), sign)
        if best is None:
            best = [m, r, normal, along, arm]
        else:                                                              # keep the nearer arm
            closer = np.linalg.norm(r, axis=1) < np.linalg.norm(best[1], axis=1)
            for b, new in zip(best, (m, r, normal, along, arm)):
                b[closer] = new[closer]
    m, r, normal, along, arm = best
    assert along.max() < 1e-9                                               # Newton converged on that arm
    dist = (r * normal).sum(1)
    assert np.mean(arm > 0) == pytest.approx(0.5, abs=0.01)
    assert np.abs(dist).max() < 0.5 * np.sqrt(2) + 0.05                   # |j| < 0.5·√2
    inner = (m > np.pi) & (m < hi - 0.5)                                   # curvature radius ≳ π there
    e = dist[inner] - 0.25 * normal[inner].sum(1)
    assert abs(e.mean()) < 0.02                                            # curvature terms O(κ·0.25²) ≈ 0.01
    assert e.std() == pytest.approx(0.5 / np.sqrt(12), rel=REL)
    assert np.mean(m < 1.5 * np.pi) == pytest.approx(0.25, abs=0.01)       # P(m < 3π/2) = (1/2)²: m = 3π√U


def test_pinwheel_arms_recover_radial_sd_0_3_and_tangential_sd_0_1():
    # x/2 = R(−θ)·f with f = (1 + 0.3 z_1, 0.1 z_2), θ = 2πk/5 + 0.25·e^{f_1}, k uniform on 0..4.
    # Writing f = ρ(cos χ, sin χ) with ρ = |x|/2 and ψ the polar angle of x: χ − 0.25 e^{ρ cos χ} ≡ ψ
    # (mod 2π/5), which fixes χ by iteration; then f_1 = ρ cos χ, f_2 = ρ sin χ and k are read back.
    y = _points("pinwheel") / 2
    rho, psi = np.linalg.norm(y, axis=1), np.arctan2(y[:, 1], y[:, 0])
    arm = 2 * np.pi / 5
    wrap = lambda a: (a + arm / 2) % arm - arm / 2
    chi = wrap(psi + 0.25 * np.exp(rho))
    for _ in range(50):
        chi = wrap(psi + 0.25 * np.exp(rho * np.cos(chi)))
    f1, f2 = rho * np.cos(chi), rho * np.sin(chi)
    assert np.max(np.abs(wrap(chi - 0.25 * np.exp(f1) - psi))) < 1e-9       # the fixed point was reached
    k = np.round(-(psi + 0.25 * np.exp(f1) - chi) / arm).astype(int) % 5
    _assert_fractions(k, np.full(5, 0.2))
    assert f1.mean() == pytest.approx(1.0, abs=0.01)
    assert f1.std() == pytest.approx(0.3, rel=REL)
    assert abs(f2.mean()) < 0.002
    assert f2.std() == pytest.approx(0.1, rel=REL)


def test_line_points_lie_off_y_equals_x_over_2_with_noise_sd_0_03():
    x = _points("line")
    normal = np.array([-0.5, 1.0]) / np.sqrt(1.25)
    along = np.array([1.0, 0.5]) / np.sqrt(1.25)
    d = x @ normal                                                          # exact: the line is infinite
    assert abs(d.mean()) < 0.001
    assert d.std() == pytest.approx(0.03, rel=REL)
    s = x @ along                                                           # U(−2, 2)·√1.25 plus noise
    assert s.mean() == pytest.approx(0.0, abs=0.02)
    assert s.var() == pytest.approx(16 * 1.25 / 12 + 0.03 ** 2, rel=REL)
    assert np.abs(x[:, 0]).max() < 2 + 6 * 0.03


# --- fine structure: grid, clusters, word ---------------------------------------------------------
#
# Each mixture test recomputes the centres from the description in toy_data's docstrings (not from
# toy_data's code), assigns every point to its nearest centre and reads back the weights (a
# chi-square over the K centres, bounded at its 0.9999 quantile) and the per-coordinate sd of the
# residuals (REL = 3% on 100,000 points). The clusters are ≥ 13 sd apart, so no point is assigned
# to a neighbour's centre.


def _mixture_log_density_by_scipy(x, centres, sd):
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal
    comp = np.stack([multivariate_normal(c, sd ** 2 * np.eye(2)).logpdf(x) for c in centres], axis=1)
    return logsumexp(comp, axis=1) - np.log(len(centres))


def _assert_equal_weights_and_sd(x, centres, sd):
    from scipy.spatial import cKDTree
    from scipy.stats import chi2
    d, k = cKDTree(centres).query(x)
    counts = np.bincount(k, minlength=len(centres))
    expected = len(x) / len(centres)
    assert counts.min() > 0, "a centre drew no points"
    stat = ((counts - expected) ** 2 / expected).sum()
    assert stat < chi2.ppf(0.9999, len(centres) - 1), (stat, counts.min(), counts.max())
    off = x - centres[k]
    np.testing.assert_allclose(off.mean(0), 0.0, atol=4 * sd / np.sqrt(len(x)))
    np.testing.assert_allclose(off.std(0), sd, rtol=REL)
    assert abs(np.corrcoef(off.T)[0, 1]) < 0.02                              # isotropic
    assert d.max() < 6 * sd                                                  # P(|z| > 6) = e^−18 in 2-D
    means = np.stack([np.bincount(k, weights=off[:, i], minlength=len(centres)) for i in (0, 1)], 1) / counts[:, None]
    assert np.abs(means).max() < 5 * sd / np.sqrt(counts.min()), "a cluster is off its centre"


def _integral_on_lattice(log_density, lo, hi, h):
    """∫ exp(log_density) over [lo, hi]² by the midpoint rule with spacing h (for a Gaussian of sd σ
    the rule's relative error is about 2·exp(−2π²σ²/h²): 5e-9 at h = σ)."""
    g = np.arange(lo + h / 2, hi, h)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    return sum(np.exp(log_density(c)).sum() for c in np.array_split(pts, 1 + len(pts) // 20_000)) * h * h


def test_grid_is_100_equal_gaussians_at_minus_4_5_to_4_5_with_sd_0_05():
    g = np.arange(10) - 4.5
    centres = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    np.testing.assert_array_equal(toy_data.grid_centers(), centres)
    assert toy_data.GRID == {"side": 10, "spacing": 1.0, "sd": 0.05}
    _assert_equal_weights_and_sd(_points("grid"), centres, 0.05)


def test_grid_log_density_is_the_mixture_and_integrates_to_one_quarter_on_a_quadrant():
    rng = np.random.default_rng(1)
    x = np.concatenate([draw("grid", 200, rng), [[0.0, 0.0], [10.0, -10.0], [-4.5, 4.6], [0.5, 0.5]]])
    np.testing.assert_allclose(toy_data.log_density_grid(x), _mixture_log_density_by_scipy(
        x, toy_data.grid_centers(), 0.05), rtol=1e-10)
    # [−5, 0]² holds 25 of the 100 centres, each ≥ 10 sd inside its edges
    assert _integral_on_lattice(toy_data.log_density_grid, -5.0, 0.0, 0.05) == pytest.approx(0.25, abs=1e-7)


def _cluster_centres_by_chords():
    """The documented centres, arc length measured by chords on 400,001 points of each arm."""
    a = 1 / (3 * np.pi)
    u = np.linspace(np.pi / 2, 3 * np.pi, 400_001)
    centres = []
    for phase in (0.0, np.pi):
        c = a * u[:, None] * np.stack([np.cos(u + phase), np.sin(u + phase)], 1)
        s = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(c, axis=0), axis=1))])
        target = (np.arange(33) + 0.5) / 33 * s[-1]
        centres.append(np.stack([np.interp(target, s, c[:, 0]), np.interp(target, s, c[:, 1])], 1))
    phi = 2 * np.pi * np.arange(54) / 54
    centres.append(1.25 * np.stack([np.cos(phi), np.sin(phi)], 1))
    return np.concatenate(centres)


def test_clusters_are_120_equal_gaussians_with_sd_0_01_spaced_evenly_along_two_arms_and_a_circle():
    from scipy.spatial.distance import pdist
    centres = _cluster_centres_by_chords()
    assert len(centres) == 120
    np.testing.assert_allclose(toy_data.cluster_centers(), centres, atol=1e-6)
    gaps = np.linalg.norm(np.diff(centres[:33], axis=0), axis=1)             # along arm 1
    assert gaps.max() - gaps.min() < 0.003                                   # equal arcs, chords differ by curvature
    assert pdist(centres).min() / 0.01 == pytest.approx(13.9, abs=0.05)      # as documented
    _assert_equal_weights_and_sd(_points("clusters"), centres, 0.01)


def test_clusters_log_density_is_the_mixture_and_integrates_to_one():
    rng = np.random.default_rng(1)
    x = np.concatenate([draw("clusters", 200, rng), [[0.0, 0.0], [3.0, 3.0], [1.25, 0.005], [-0.3, 0.1]]])
    # the centres themselves are checked above (to 1e-6 = 1e-4 sd, which moves log q by up to ~1e-6)
    np.testing.assert_allclose(toy_data.log_density_clusters(x), _mixture_log_density_by_scipy(
        x, toy_data.cluster_centers(), 0.01), rtol=1e-10)
    # every centre lies within radius 1.25, ≥ 10 sd inside [−1.35, 1.35]²
    assert _integral_on_lattice(toy_data.log_density_clusters, -1.35, 1.35, 0.01) == pytest.approx(1.0, abs=1e-6)


WORD_SD = 0.01


# (text, font, outline, contours, length rtol of the 32-chord flattening, least share of points on straight pieces)
OUTLINES = {"word": ("DDPM", "DejaVuSans-Bold.ttf", toy_data.word_outline, 7, 1e-5, 0.4),   # D, D: 2 each; P: 2; M: 1
            "knight": ("\u265e", "DejaVuSans.ttf", toy_data.knight_outline, 4, 1e-4, 0.1)}  # body, eye, nostril, mane


@pytest.fixture(scope="module", params=sorted(OUTLINES))
def word_reference(request):
    """The outline of "DDPM" in matplotlib's bundled DejaVu Sans Bold (and of the glyph ♞ in DejaVu Sans
    for ``knight``: ``ref["name"]``), built here from TextPath's raw
    vertices and codes (Bézier formulas written out, not matplotlib's iter_bezier), bounding box
    centred on 0 and scaled to width 4, then resampled every h = 0.001 (0.1 sd) by arc length.
    Per sample point: position p, unit tangent, arc-length coordinate s over all contours (length L),
    whether it lies on a straight (LINETO/CLOSEPOLY) piece and, if so, its distance to that piece's
    nearer end."""
    matplotlib = pytest.importorskip("matplotlib")
    import os

    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path
    from matplotlib.textpath import TextPath
    from scipy.spatial import cKDTree
    text, font = OUTLINES[request.param][:2]
    fname = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", font)
    path = TextPath((0, 0), text, size=1.0, prop=FontProperties(fname=fname))
    v, codes = path.vertices, path.codes
    t = np.linspace(0, 1, 401)[:, None]
    pieces, i = [], 0                                                       # (straight?, points along it)
    while i < len(codes):
        if codes[i] == Path.MOVETO:
            start = cur = v[i]
            i += 1
        elif codes[i] in (Path.LINETO, Path.CLOSEPOLY):
            end = v[i] if codes[i] == Path.LINETO else start
            pieces.append((True, np.array([cur, end])))
            cur, i = end, i + 1
        elif codes[i] == Path.CURVE3:
            p1, p2 = v[i], v[i + 1]
            pieces.append((False, (1 - t) ** 2 * cur + 2 * t * (1 - t) * p1 + t ** 2 * p2))
            cur, i = p2, i + 2
        elif codes[i] == Path.CURVE4:
            p1, p2, p3 = v[i], v[i + 1], v[i + 2]
            pieces.append((False, (1 - t) ** 3 * cur + 3 * t * (1 - t) ** 2 * p1 + 3 * t ** 2 * (1 - t) * p2 + t ** 3 * p3))
            cur, i = p3, i + 3
        else:
            raise AssertionError(f"path code {codes[i]}")
    allp = np.concatenate([p for _, p in pieces])
    lo, hi = allp.min(0), allp.max(0)
    h, s0 = 0.001, 0.0
    out = {"p": [], "tangent": [], "s": [], "straight": [], "to_end": []}
    for straight, p in pieces:
        p = (p - (lo + hi) / 2) * (4.0 / (hi[0] - lo[0]))
        d = np.diff(p, axis=0)
        ell = np.linalg.norm(d, axis=1)
        d, ell, a = d[ell > 0], ell[ell > 0], p[:-1][ell > 0]
        if len(ell) == 0:
            continue
        cum = np.concatenate([[0.0], np.cumsum(ell)])
        m = int(np.ceil(cum[-1] / h))
        s = (np.arange(m) + 0.5) / m * cum[-1]
        k = np.searchsorted(cum, s, side="right") - 1
        out["p"].append(a[k] + ((s - cum[k]) / ell[k])[:, None] * d[k])
        out["tangent"].append(d[k] / ell[k][:, None])
        out["s"].append(s0 + s)
        out["straight"].append(np.full(m, straight))
        out["to_end"].append(np.minimum(s, cum[-1] - s))
        s0 += cum[-1]
    ref = {key: np.concatenate(val) for key, val in out.items()}
    ref["L"] = s0
    ref["tree"] = cKDTree(ref["p"])
    ref["name"] = request.param
    return ref


def test_word_outline_is_matplotlibs_ddpm_centred_and_4_wide(word_reference):
    _, _, outline_of, contours, length_rtol, _ = OUTLINES[word_reference["name"]]
    outline = outline_of()
    assert len(outline) == contours
    for p in outline:
        np.testing.assert_array_equal(p[0], p[-1])                          # closed
    v = np.concatenate(outline)
    np.testing.assert_allclose(v.min(0), -v.max(0), atol=1e-12)             # bounding box centred on 0
    assert v.max(0)[0] == pytest.approx(2.0, abs=1e-12)
    assert word_reference["tree"].query(v)[0].max() < 0.001                 # every vertex on the outline
    length = sum(np.linalg.norm(np.diff(p, axis=0), axis=1).sum() for p in outline)
    assert length == pytest.approx(word_reference["L"], rel=length_rtol)   # and none of it missing


def test_word_points_lie_off_the_outline_with_noise_sd_0_01(word_reference):
    ref = word_reference
    x = _points(ref["name"])
    dist, j = ref["tree"].query(x)
    assert dist.max() < 6 * WORD_SD                                         # |noise| ≥ distance; e^−18 in 2-D
    # Signed distance to the outline where it is straight (≥ 5 sd from the piece's ends): exactly the
    # noise's normal component there, N(0, sd²), up to points a thin gap sends to the other side.
    normal = np.stack([-ref["tangent"][:, 1], ref["tangent"][:, 0]], 1)
    r = ((x - ref["p"][j]) * normal[j]).sum(1)
    on_line = ref["straight"][j] & (ref["to_end"][j] > 5 * WORD_SD)
    assert on_line.mean() > OUTLINES[ref["name"]][5]                        # knight: 0.14
    assert abs(r[on_line].mean()) < 0.02 * WORD_SD
    assert r[on_line].std() == pytest.approx(WORD_SD, rel=REL)
    assert np.sqrt(np.mean(dist ** 2)) == pytest.approx(WORD_SD, rel=REL)  # all points, corners included


def test_word_points_cover_the_outline_uniformly_by_arc_length(word_reference):
    # 200 bins of equal arc length (0.1 = 10 sd each) over all contours; a point counts in the bin of
    # its nearest outline point. Corners move a few points across bin edges (chi-square ≈ 230 on 199).
    from scipy.stats import chi2
    ref = word_reference
    _, j = ref["tree"].query(_points(ref["name"]))
    bins = 200
    counts = np.bincount((ref["s"][j] / ref["L"] * bins).astype(int), minlength=bins)
    expected = N / bins
    z = (counts - expected) / np.sqrt(expected)
    assert np.abs(z).max() < 5, (np.argmax(np.abs(z)), z.max(), z.min())
    assert (z ** 2).sum() < chi2.ppf(0.9999, bins - 1) + 30


def test_word_without_matplotlib_says_how_to_install_it(monkeypatch):
    for mod in ("matplotlib", "matplotlib.font_manager", "matplotlib.path", "matplotlib.textpath"):
        monkeypatch.setitem(sys.modules, mod, None)                         # import → ImportError
    toy_data._outline.cache_clear()
    with pytest.raises(ImportError, match=r"pip install 'ddpm\[plot\]'"):
        draw("word", 10, np.random.default_rng(0))
    with pytest.raises(ImportError, match="render '\u265e' with matplotlib.*pip install 'ddpm\\[plot\\]'"):
        draw("knight", 10, np.random.default_rng(0))
    toy_data._outline.cache_clear()

def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'spiral'.*swiss_roll.*checkerboard"):
        draw("spiral", 10, np.random.default_rng(0))


def test_fixed_sets_are_not_generators_but_are_built_in_names():
    assert set(toy_data.FIXED) == {"digits", "iris", "wine", "breast_cancer"} == set(toy_data.FIXED_INFO)
    assert not set(toy_data.FIXED) & set(toy_data.NAMES)
    assert toy_data.ALL_NAMES == toy_data.NAMES + tuple(toy_data.FIXED)
    with pytest.raises(ValueError, match="fixed data set.*load_fixed"):
        toy_data.draw("digits", 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown fixed data set 'mnist'.*digits"):
        toy_data.load_fixed("mnist")


def test_bad_n_and_rng_are_rejected():
    with pytest.raises(ValueError, match="positive integer"):
        draw("moons", 0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        draw("moons", 10, 0)


def test_load_npy_and_csv_with_and_without_header(tmp_path):
    x = np.random.default_rng(0).standard_normal((20, 3))
    np.save(tmp_path / "a.npy", x)
    np.testing.assert_array_equal(load(tmp_path / "a.npy"), x)
    np.savetxt(tmp_path / "b.csv", x, delimiter=",")
    np.testing.assert_allclose(load(tmp_path / "b.csv"), x, rtol=1e-15)
    np.savetxt(tmp_path / "c.csv", x, delimiter=",", header="u,v,w", comments="")
    np.testing.assert_allclose(load(tmp_path / "c.csv"), x, rtol=1e-15)


@pytest.mark.parametrize("fname, content, match", [
    ("bad.csv", "x,y\n1,2\n3,abc\n", r"bad\.csv: line 3 has a non-numeric cell 'abc'"),
    ("nan.csv", "1,2\n3,nan\n5,6\n", r"nan\.csv: 1 value\(s\) are NaN or infinite, first at row 1, column 1"),
    ("inf.csv", "1,2\n3,inf\n", r"inf\.csv: .*NaN or infinite"),
    ("ragged.csv", "1,2\n3\n", r"ragged\.csv: line 2 has 1 columns, expected 2"),
    ("one.csv", "x,y\n1,2\n", r"one\.csv: need at least 2 rows"),
    ("empty.csv", "", r"empty\.csv: the file is empty"),
    ("comments.csv", "# only\n\n#x\n", r"comments\.csv: the file is empty"),
    ("data.txt", "1,2\n", r"data\.txt: unknown file type '\.txt'"),
    ("corrupt.npy", "this is not numpy", r"corrupt\.npy: not a readable \.npy"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, fname, content, match):
    p = tmp_path / fname
    p.write_text(content)
    with pytest.raises(DataError, match=match):
        load(p)


def test_wrong_rank_and_dtype_are_rejected(tmp_path):
    np.save(tmp_path / "r1.npy", np.arange(10.0))
    with pytest.raises(DataError, match=r"r1\.npy: expected a 2-D array of shape \(N, D\), got shape \(10,\) \(rank 1\)"):
        load(tmp_path / "r1.npy")
    np.save(tmp_path / "s.npy", np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(DataError, match=r"s\.npy: expected numbers"):
        load(tmp_path / "s.npy")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(DataError, match="NaN or infinite"):
        load(tmp_path / "nan.npy")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load(tmp_path / "nope.csv")
