"""Sample-quality statistics: how far generated points are from the data.

energy_distance (Székely & Rizzo 2013), the V-statistic
    E(X, Y) = 2·mean‖x_i − y_j‖ − mean‖x_i − x_k‖ − mean‖y_j − y_l‖   (all pairs, i = k included)
It is ≥ 0 and 0 only when the two empirical distributions coincide. Between two independent samples
of the same distribution it is not 0 but ≈ E‖X − X'‖·(1/n + 1/m): the *floor* a perfect model reaches.

For N-D data, where one exact W2 or one MMD² says little about which directions are wrong, also: sliced W2
(random 1-D projections), per-coordinate marginal W1 (mean and worst coordinate), and a memorisation check
(nearest-training-point distances of samples against held-out data's); the 1-D distances use the exact quantile coupling.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["mean_pairwise_distance", "energy_distance", "w2", "mmd2", "data_scale", "MMD_BANDWIDTHS",
           "SLICE_DIRECTIONS", "SLICE_SEED", "slice_directions", "sliced_w2", "marginal_w1",
           "nearest_neighbour_distances", "floor_terms", "EVAL_MODES", "FIT_EVAL_MODES", "sample_statistics"]


def mean_pairwise_distance(a: np.ndarray, b: np.ndarray, chunk: int = 1024) -> float:
    """mean over all (i, j) of ‖a_i − b_j‖₂, computed in row chunks to bound memory."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) arrays with the same D, got {a.shape} and {b.shape}")
    return _pair_sums(a, b, (), chunk)[0] / (a.shape[0] * b.shape[0])


def _pair_sums(a, b, gammas, chunk: int = 1024, distances: bool = True) -> tuple:
    """Over all pairs (i, j): Σ ‖a_i − b_j‖ (0 unless ``distances``) and Σ_γ Σ exp(−γ‖a_i − b_j‖²) (0 without
    gammas), in one pass
    over row chunks of the squared distances (float64, ‖a‖² + ‖b‖² − 2a·b). The square roots and the
    exponentials are taken in float32 (twice as fast; relative error ≤ 6e-8 per root and ~1e-6 per
    exponential after the fourth powers of ``_exp_plan``, far below the floors of the energy distance and
    MMD², ~1e-4 and ~1e-3 of the means they are differences of) and summed in float64."""
    b2 = np.sum(b * b, axis=1)                                             # (M,)
    plan = _exp_plan(gammas)
    dist = kern = 0.0
    for i in range(0, a.shape[0], chunk):
        ac = a[i:i + chunk]                                                # (c, D)
        d2 = np.sum(ac * ac, axis=1)[:, None] + b2[None, :] - 2.0 * ac @ b.T  # (c, M)
        d2 = np.maximum(d2, 0.0, out=d2).astype(np.float32)
        if distances:
            dist += float(np.sqrt(d2).sum(dtype=np.float64))
        es = []
        for how, v in plan:
            if how == "exp":
                e = np.exp(np.float32(-v) * d2)
            else:
                e = es[v] * es[v]
                e *= e
            es.append(e)
            kern += float(e.sum(dtype=np.float64))
    return dist, kern


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Energy distance (V-statistic) between point sets x (N, D) and y (M, D); see the module docstring."""
    for name, arr in (("x", x), ("y", y)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"energy_distance: {name} contains NaN or infinite values")
    return 2.0 * mean_pairwise_distance(x, y) - mean_pairwise_distance(x, x) - mean_pairwise_distance(y, y)


def w2(x: np.ndarray, y: np.ndarray) -> float:
    """Exact 2-Wasserstein distance between the empirical distributions of x (N, D) and y (M, D):
    W2² = min over couplings π of Σ π_ij ‖x_i − y_j‖², uniform weights 1/N and 1/M.

    Solved exactly with POT's network simplex (``ot.emd2``, the field's library, optional: pip install
    'ddpm[ot]'); without POT, for N = M the optimal coupling is a permutation (Birkhoff), so scipy's
    ``linear_sum_assignment`` gives the same exact value (about 1.5× slower)."""
    x, y = _check_pair(x, y, "w2")
    cost = np.sum(x * x, axis=1)[:, None] + np.sum(y * y, axis=1)[None, :] - 2.0 * x @ y.T    # (N, M)
    np.maximum(cost, 0.0, out=cost)
    try:
        ot = _import_pot()
    except ImportError:
        ot = None
    if ot is not None:
        a, b = np.full(x.shape[0], 1.0 / x.shape[0]), np.full(y.shape[0], 1.0 / y.shape[0])
        return float(np.sqrt(max(ot.emd2(a, b, cost, numItermax=100 * cost.size), 0.0)))
    if x.shape[0] != y.shape[0]:
        raise ImportError("exact W2 between point sets of different sizes needs POT: pip install 'ddpm[ot]' (or pot)")
    from scipy.optimize import linear_sum_assignment
    r, c = linear_sum_assignment(cost)
    return float(np.sqrt(cost[r, c].mean()))


def _import_pot():
    """POT without its torch/JAX/CuPy/TF backends (unless POT_BACKEND_DISABLE_* is set): 1.2 s to import, not 2.3."""
    for name in ("PYTORCH", "JAX", "CUPY", "TENSORFLOW"):
        os.environ.setdefault(f"POT_BACKEND_DISABLE_{name}", "1")
    import ot
    return ot


MMD_BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0)   # × the data's scale: small ones see fine structure


def data_scale(x: np.ndarray) -> float:
    """The scale the MMD bandwidths are relative to: the root mean per-coordinate variance of x."""
    return float(np.sqrt(np.mean(np.var(np.asarray(x, dtype=np.float64), axis=0))))


def mmd2(x: np.ndarray, y: np.ndarray, scale: float, bandwidths=MMD_BANDWIDTHS) -> float:
    """Unbiased MMD² (Gretton et al. 2012, Eq. 3) between x (N, D) and y (M, D) for the kernel
    k(a, b) = Σ_h exp(−‖a − b‖²/(2 (h·scale)²)), h over ``bandwidths``:
        MMD² = mean_{i≠k} k(x_i, x_k) + mean_{j≠l} k(y_j, y_l) − 2 mean_{i,j} k(x_i, y_j).
    Unbiased, so it scatters around 0 (and can be < 0) between two samples of one distribution."""
    x, y = _check_pair(x, y, "mmd2")
    return _mmd2(x, y, _gammas(scale, bandwidths))


def _gammas(scale, bandwidths):
    if not scale > 0:
        raise ValueError(f"mmd2: scale must be > 0, got {scale!r}")
    return [1.0 / (2.0 * (h * scale) ** 2) for h in bandwidths]


def _exp_plan(gammas) -> list:
    """How ``_kernel_mean`` gets exp(−γ d²) for each γ: ("exp", γ), or ("pow4", i) when γ = 4·γ_i for an
    earlier one (exp(−4γd²) = exp(−γd²)⁴, two squarings instead of an exp: the default bandwidths
    0.05, 0.1, 0.2, 0.5, 1 need two exps and three fourth powers)."""
    plan, done = [], []
    for g in sorted(gammas):
        j = next((i for i, h in enumerate(done) if np.isclose(g, 4.0 * h, rtol=1e-12, atol=0)), None)
        plan.append(("exp", g) if j is None else ("pow4", j))
        done.append(g)
    return plan


def _kernel_mean(a, b, gammas, same: bool, chunk: int = 1024) -> float:
    """mean of k(a_i, b_j) over all pairs, or over i ≠ j when ``same`` (a is b)."""
    return _kernel_mean_of(_pair_sums(a, b, gammas, chunk, distances=False)[1], a, b, gammas, same)


def _kernel_mean_of(total, a, b, gammas, same: bool) -> float:
    """The mean of ``_kernel_mean`` from the kernel sum over all pairs."""
    if same:                                                   # drop the diagonal: k(a_i, a_i) = len(gammas)
        n = a.shape[0]
        if n < 2:
            raise ValueError("mmd2 needs at least 2 points in each set")
        return (total - len(gammas) * n) / (n * (n - 1))
    return total / (a.shape[0] * b.shape[0])


def floor_terms(x: np.ndarray, y: np.ndarray) -> tuple:
    """(energy distance, |MMD²|) between x (n, D) and y (m, D) from one pass of pair sums each, MMD's
    bandwidths relative to y's scale: one draw of the quantities whose means are the floors (``ddpm.floors``)."""
    n, m = x.shape[0], y.shape[0]
    g = _gammas(data_scale(y), MMD_BANDWIDTHS)
    (d_xy, s_xy), (d_xx, s_xx), (d_yy, s_yy) = _pair_sums(x, y, g), _pair_sums(x, x, g), _pair_sums(y, y, g)
    return (2.0 * d_xy / (n * m) - d_xx / (n * n) - d_yy / (m * m),
            abs(_kernel_mean_of(s_xx, x, x, g, True) + _kernel_mean_of(s_yy, y, y, g, True)
                - 2.0 * _kernel_mean_of(s_xy, x, y, g, False)))


def _mmd2(x, y, gammas, kyy: float | None = None) -> float:
    kyy = _kernel_mean(y, y, gammas, True) if kyy is None else kyy
    return _kernel_mean(x, x, gammas, True) + kyy - 2.0 * _kernel_mean(x, y, gammas, False)


def _quantile_coupling(n: int, m: int):
    """The optimal (monotone) coupling of two 1-D empirical distributions of n and m points, uniform weights:
    indices (i_k, j_k) into the sorted points and masses w_k (Σ w_k = 1) such that, for every p ≥ 1,
        W_p^p = ∫₀¹ |F⁻¹(u) − G⁻¹(u)|^p du = Σ_k w_k |a_(i_k) − b_(j_k)|^p     exactly
    (Villani 2003, Thm 2.18; Peyré & Cuturi 2019, Remark 2.30). u ∈ (0, 1] is cut at the breakpoints
    {i/n} ∪ {j/m}; on each piece both quantile functions are constant. Counted in integers (u·n·m), so
    equal breakpoints merge exactly. For n = m it is the sorted matching: i_k = j_k = k, w_k = 1/n."""
    u = np.union1d(np.arange(1, n + 1, dtype=np.int64) * m, np.arange(1, m + 1, dtype=np.int64) * n)  # (K,) right ends × nm
    w = np.diff(u, prepend=0) / (n * m)                                     # (K,)
    i = (u + m - 1) // m - 1                                                # F⁻¹ on (u_{k−1}, u_k]: the ⌈u n⌉-th point
    j = (u + n - 1) // n - 1
    return i, j, w


def _wp_sorted(a: np.ndarray, b: np.ndarray, p: int) -> np.ndarray:
    """W_p^p between the columns of a (n, L) and b (m, L), each column sorted: (L,)."""
    assert a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[1], (a.shape, b.shape)
    if a.shape[0] == b.shape[0]:
        d = np.abs(a - b)                                                   # (n, L): the sorted matching
        return np.mean(d ** p, axis=0)
    i, j, w = _quantile_coupling(a.shape[0], b.shape[0])
    return w @ (np.abs(a[i] - b[j]) ** p)                                   # (K,) @ (K, L) → (L,)


SLICE_DIRECTIONS = 200        # L: sliced W2 moves by a few % with the choice of directions (sd 3% on anisotropic 3-D
                              # test sets); 5,000 points × 200 directions: ~8 ms to project and sort
SLICE_SEED = 15               # one constant: statistic, floor and every run see the same directions


def slice_directions(dim: int, n_directions: int = SLICE_DIRECTIONS, seed: int = SLICE_SEED) -> np.ndarray:
    """θ (L, D): L directions uniform on the unit sphere S^{D−1} (standard normals, normalised), from a
    Generator seeded by ``seed`` — the same directions for the same (D, L, seed)."""
    if dim < 1 or n_directions < 1:
        raise ValueError(f"slice_directions: need dim ≥ 1 and n_directions ≥ 1, got {dim} and {n_directions}")
    g = np.random.default_rng(seed).standard_normal((n_directions, dim))  # (L, D)
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def _sorted_projections(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    return np.sort(x @ theta.T, axis=0)                                     # (N, L): θ_lᵀ x_i, sorted per direction


def sliced_w2(x: np.ndarray, y: np.ndarray, n_directions: int = SLICE_DIRECTIONS, seed: int = SLICE_SEED) -> float:
    """Sliced 2-Wasserstein distance (Rabin et al. 2011; Bonneel et al. 2015) between x (N, D) and y (M, D):
        SW2 = sqrt( (1/L) Σ_l W2²(θ_lᵀx, θ_lᵀy) ),   θ_l = ``slice_directions(D, L, seed)``,
    each 1-D W2² exact by the quantile formula (``_quantile_coupling``), so all N and M points are used
    whatever the sizes (for N = M: the sorted matching). In 1-D it is the exact W2. Rotating both sets
    leaves its expectation over directions unchanged; with L fixed directions it moves by their
    Monte-Carlo error (sd ≈ 3% of SW2 at L = 200 on the tests' anisotropic 3-D sets)."""
    x, y = _check_pair(x, y, "sliced_w2")
    theta = slice_directions(x.shape[1], n_directions, seed)
    return float(np.sqrt(np.mean(_wp_sorted(_sorted_projections(x, theta), _sorted_projections(y, theta), 2))))


def marginal_w1(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Exact 1-D W1 between the marginals of x (N, D) and y (M, D), one per coordinate: (D,),
        W1_d = ∫₀¹ |F_d⁻¹(u) − G_d⁻¹(u)| du   (quantile functions; the sorted matching for N = M).
    Shifting coordinate d of x by c: W1_d(x + c·e_d, x) = |c| exactly, the other coordinates 0."""
    x, y = _check_pair(x, y, "marginal_w1")
    return _wp_sorted(np.sort(x, axis=0), np.sort(y, axis=0), 1)


KDTREE_MAX_DIM = 10           # nearest neighbours by scipy's cKDTree up to this D, chunked brute force above. Measured
                              # (10,000 queries vs 100,000 points): 2-D swiss roll kd 0.03 s vs brute 12 s; Gaussian 8-D
                              # 0.19 s vs 2.2 s, 16-D 5.1 s vs 5.8 s, 64-D 129 s vs 7.5 s; digits (1,797 queries vs
                              # 1,438 points, 64-D): kd 19 ms vs brute 7 ms
NN_CHUNK_BYTES = 1 << 26      # brute force holds one (chunk, M) float64 block of at most 64 MiB


def nearest_neighbour_distances(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """min_j ‖x_i − ref_j‖₂ for every row of x (N, D): (N,). Exact in both paths: cKDTree for
    D ≤ KDTREE_MAX_DIM, else row chunks of ‖x‖² + ‖r‖² − 2 x·r (memory ≤ NN_CHUNK_BYTES), whose argmin's
    distance is then recomputed directly (no cancellation in the value: a copy of a reference point is at 0)."""
    x, ref = _check_pair(x, ref, "nearest_neighbour_distances")
    if x.shape[1] <= KDTREE_MAX_DIM:
        from scipy.spatial import cKDTree
        return cKDTree(ref).query(x, k=1)[0]
    r2 = np.sum(ref * ref, axis=1)                                          # (M,)
    chunk = max(1, NN_CHUNK_BYTES // (8 * ref.shape[0]))
    out = np.empty(x.shape[0])
    for i in range(0, x.shape[0], chunk):
        xc = x[i:i + chunk]                                                 # (c, D)
        j = np.argmin(r2[None, :] - 2.0 * xc @ ref.T, axis=1)               # (c,): ‖x_i‖² is the same along a row
        out[i:i + chunk] = np.sqrt(np.sum((xc - ref[j]) ** 2, axis=1))
    return out


def _check_pair(x, y, what):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or x.shape[0] < 1 or y.shape[0] < 1:
        raise ValueError(f"{what}: need two non-empty (N, D) arrays with the same D, got {x.shape} and {y.shape}")
    for name, arr in (("x", x), ("y", y)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: {name} contains NaN or infinite values")
    return x, y


def _ratio(stat: float, floor: float) -> float:
    """statistic / floor; inf for a positive statistic over a zero floor, nan for 0 / 0 (nothing to compare)."""
    if floor > 0:
        return stat / floor
    return float("nan") if stat == 0 else float("inf")


EVAL_MODES = ("full", "fast")   # sample_statistics' modes (and ddpm eval's)
FIT_EVAL_MODES = EVAL_MODES + ("none",)   # fit's: "none" measures nothing
N_FAST_FLOOR_DRAWS = 2          # fast mode without a cached floor: energy and MMD² floors over this many references,
                                # the exact W2 floor over one (one solve beside the samples' own, in two threads)


def _floor_of(values) -> dict:
    """A floor from its draws: {"mean", "se" (sd/√draws; None from one draw), "draws"}; None without draws."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return None
    return {"mean": float(v.mean()), "se": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None,
            "draws": int(v.size)}


def sample_statistics(samples: np.ndarray, held: np.ndarray, refs: list, n_floor_exact: int = 2,
                      train: np.ndarray | None = None, mode: str = "full", floors: dict | None = None) -> dict:
    """Energy distance, exact W2, small-bandwidth MMD², sliced W2 and marginal W1 of ``samples`` (n, D) against
    held-out data ``held``, each next to its floor — the same statistic between an independent reference
    draw of the data (of the samples' size) and ``held`` — averaged over ``refs`` (energy, MMD², sliced W2 and
    marginal W1 over all of them; the exact W2, the costly one, over the first ``n_floor_exact``) and the
    ratio statistic / floor. A statistic means something only next to its floor: a perfect model scores
    ratio ≈ 1 (|MMD²| for MMD's floor, since the unbiased MMD² scatters around 0 between two samples of one
    distribution). ``refs`` have n points each; W2 compares the first k = min(n, len(held)) points of each
    side (exact for equal sizes with or without POT), the others use all points (sliced W2 and marginal W1
    by the exact 1-D quantile formula, which needs no equal sizes). Marginal W1 is reported as its mean
    over coordinates (``marginal_w1``) and its worst coordinate (``marginal_w1_max``, at
    ``marginal_w1_argmax``); the floor of the max is the mean over references of their own max.

    With ``train`` (N, D), the points the model was fitted on, also memorisation: the median distance from
    a sample to its nearest training point, ``nn_train_samples_median``, against the same for the held-out
    points, ``nn_train_heldout_median`` (data the model never saw: ``held`` must not overlap ``train``), and
    ``nn_train_ratio`` = samples / held-out (nan when the held-out median is 0: duplicated data). ≈ 1 for a model that generalises; < 1 when samples sit closer
    to training points than fresh data does: memorisation (copies of training points give ≈ 0), or a
    model sharper than the data (samples crowded where training points are dense); > 1 when samples fall
    where there is no data. The sizes are in the result.

    Every floor comes with its standard error over its draws, ``<statistic>_floor_se`` (sd/√draws; None from
    one draw), and every ratio with ``<short>_ratio_se`` = ratio · floor_se / floor: the statistic itself is
    exact given the samples, so the floor's error is the ratio's. ``mode``: "full" as above; "fast" computes
    the same statistics of the samples (the same numbers as "full") but takes the energy, W2 and MMD²
    floors from ``floors`` — ``ddpm.floors.cached_floors``'s {key: {"mean", "se", "draws"}} for a built-in
    data set — or, without them, from the first N_FAST_FLOOR_DRAWS references (W2 from the first only): one
    exact W2 solve or two instead of 1 + n_floor_exact, and no reference pair sums with cached floors. Sliced
    W2 and marginal W1 (milliseconds) keep their floors over all ``refs`` in both modes. The result says
    which: ``eval_mode`` and ``floor_source`` ("draws" or "table")."""
    if mode not in EVAL_MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; choose one of {', '.join(EVAL_MODES)}")
    if floors is not None and mode != "fast":
        raise ValueError("cached floors are for mode='fast'; mode='full' draws its own")
    samples = np.asarray(samples, dtype=np.float64)
    held = np.asarray(held, dtype=np.float64)
    for name, arr in (("samples", samples), ("held", held)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"sample statistics: {name} contain NaN or infinite values")
    n = samples.shape[0]
    if not refs:
        raise ValueError("sample statistics need at least one reference draw of the data (refs) for the floors")
    k = min(n, held.shape[0])          # W2 on k points of each side: an equal-size transport problem
    if any(r.shape[0] != n for r in refs):
        raise ValueError(f"every reference draw must have the samples' size {n}: "
                         f"got {[r.shape[0] for r in refs]}")
    refs = [np.asarray(r, dtype=np.float64) for r in refs]
    scale = data_scale(held)
    floors_ot = refs[:max(1, n_floor_exact)]
    refs_em = refs                                                # the references of the energy and MMD² floors
    if mode == "fast":
        refs_em = [] if floors is not None else refs[:N_FAST_FLOOR_DRAWS]
        floors_ot = [] if floors is not None else refs[:1]
    gammas = _gammas(scale, MMD_BANDWIDTHS)
    # the exact W2 problems (network simplex, one core each) run in two threads beside the rest
    pool = ThreadPoolExecutor(2)
    m, nh = samples.shape[0], held.shape[0]
    theta = slice_directions(held.shape[1])                       # (L, D), the same for statistic and floor
    held_proj = _sorted_projections(held, theta)                  # (m, L)
    held_sorted = np.sort(held, axis=0)                           # (m, D)

    def energy_mmd(a):
        """energy distance and unbiased MMD² of a against held, from one pass over each pair set."""
        d_ah, s_ah = _pair_sums(a, held, gammas)
        d_aa, s_aa = _pair_sums(a, a, gammas)
        e = 2.0 * d_ah / (m * nh) - d_aa / (m * m) - d_hh / (nh * nh)
        return e, (_kernel_mean_of(s_aa, a, a, gammas, True) + k_hh
                   - 2.0 * _kernel_mean_of(s_ah, a, held, gammas, False))

    def sliced(a):
        return float(np.sqrt(np.mean(_wp_sorted(_sorted_projections(a, theta), held_proj, 2))))

    def marginal(a):
        return _wp_sorted(np.sort(a, axis=0), held_sorted, 1)     # (D,)

    try:
        w2_jobs = [pool.submit(w2, a[:k], held[:k]) for a in [samples] + floors_ot]
        d_hh, s_hh = _pair_sums(held, held, gammas)               # the held-out side's terms, once
        k_hh = _kernel_mean_of(s_hh, held, held, gammas, True)
        w1, w1_refs = marginal(samples), [marginal(r) for r in refs]
        e_s, mmd_s = energy_mmd(samples)
        e_refs, mmd_refs = zip(*[energy_mmd(r) for r in refs_em]) if refs_em else ((), ())
        w2s = [j.result() for j in w2_jobs]
    finally:
        pool.shutdown(cancel_futures=True)
    drawn = {"energy_distance": _floor_of(e_refs), "w2": _floor_of(w2s[1:]),
             "mmd2": _floor_of([abs(v) for v in mmd_refs]),
             "sliced_w2": _floor_of([sliced(r) for r in refs]), "marginal_w1": _floor_of([w.mean() for w in w1_refs]),
             "marginal_w1_max": _floor_of([w.max() for w in w1_refs])}
    if floors is not None:
        drawn.update({key: dict(floors[key]) for key in ("energy_distance", "w2", "mmd2")})
    res = {"eval_mode": mode, "floor_source": "draws" if floors is None else "table",
           "n_samples": int(n), "n_heldout": int(held.shape[0]),
           "floor_draws_energy": drawn["energy_distance"]["draws"],
           "floor_draws_w2": drawn["w2"]["draws"], "floor_draws_mmd": drawn["mmd2"]["draws"],
           "floor_draws_sliced_marginal": len(refs),
           "mmd2_bandwidths": [h * scale for h in MMD_BANDWIDTHS],
           "energy_distance": e_s, "n_w2": int(k), "w2": w2s[0], "mmd2": mmd_s,
           "slice_directions": int(theta.shape[0]), "slice_seed": SLICE_SEED,
           "sliced_w2": sliced(samples), "marginal_w1": float(w1.mean()),
           "marginal_w1_max": float(w1.max()), "marginal_w1_argmax": int(np.argmax(w1))}
    for key, short in (("energy_distance", "energy"), ("w2", "w2"), ("mmd2", "mmd2"), ("sliced_w2", "sliced_w2"),
                       ("marginal_w1", "marginal_w1"), ("marginal_w1_max", "marginal_w1_max")):
        floor, se = drawn[key]["mean"], drawn[key]["se"]
        res[f"{key}_floor"], res[f"{key}_floor_se"] = floor, se
        res[f"{short}_ratio"] = _ratio(res[key], floor)
        res[f"{short}_ratio_se"] = None if se is None or not floor > 0 else abs(res[f"{short}_ratio"]) * se / floor
    if train is not None:
        res["n_nn_train"] = int(np.shape(train)[0])
        res["nn_train_samples_median"] = float(np.median(nearest_neighbour_distances(samples, train)))
        res["nn_train_heldout_median"] = float(np.median(nearest_neighbour_distances(held, train)))
        res["nn_train_ratio"] = _ratio(res["nn_train_samples_median"], res["nn_train_heldout_median"])
    return res
