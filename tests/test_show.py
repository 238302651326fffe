"""``ddpm show``: the six pictures are written, readable and not blank, from the CLI and from Python;
nothing is replaced without --overwrite; N-D models say which coordinates are drawn and 1-D ones are
refused; and the numbers behind the pictures are right: the true field is the gradient of the forward
marginal's log-density, that marginal is the data's density pushed through q, q_step and q_sample
give the same distribution, and ε_θ is read the same way whatever the network predicts."""

from __future__ import annotations

import importlib
import math
import os
import re
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from PIL import Image, ImageSequence  # noqa: E402  (Pillow comes with matplotlib)

import ddpm  # noqa: E402
import ddpm_ref  # noqa: E402
import toy_data  # noqa: E402
from ddpm.cli import main  # noqa: E402
from ddpm.model import Normalizer  # noqa: E402
from ddpm.show import FILES  # noqa: E402

show_mod = importlib.import_module("ddpm.show")    # the module; ddpm.show is the function

SMALL = ["-n", "300", "--n-gif", "120", "--n-bound", "20"]            # keeps each run to a few seconds
SMALL_KW = dict(n=300, n_gif=120, n_bound=20)


def _tiny_fit(data, out, T=30):
    return ddpm.fit(data, out, steps=30, T=T, model=ddpm_ref.MLPConfig(hidden=16, depth=2), n_train=2000,
                    n_eval=300, progress=False)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit8g")
    res = _tiny_fit("8gaussians", str(out))
    return res.model, str(out / "model.npz")


def _rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float64)


def _assert_picture(path):
    """A valid image that is not blank: pixels vary (std) and there are many colours, not one."""
    assert os.path.getsize(path) > 0
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        frames = [_rgb(f) for f in ImageSequence.Iterator(im)]
    for a in (frames[0], frames[-1]):
        assert a.shape[0] > 100 and a.shape[1] > 100, f"{path}: {a.shape}"
        assert a.std() > 10.0, f"{path}: pixel std {a.std():.2f}, blank?"
        assert len(np.unique(a.reshape(-1, 3), axis=0)) > 8, f"{path}: a handful of colours, blank?"
    return frames


def _assert_six_pictures(out):
    assert sorted(os.listdir(out)) == sorted(FILES), "exactly the six files, no temporary left behind"
    for f in FILES:
        frames = _assert_picture(os.path.join(out, f))
        if f.endswith(".gif"):
            assert len(frames) > 10, f"reverse.gif has {len(frames)} frames"
            assert np.abs(frames[0] - frames[-1]).mean() > 1.0, "the chain does not move"


def test_cli_show_writes_six_readable_nonblank_pictures(fitted, tmp_path, capsys):
    _, path = fitted
    out = str(tmp_path / "show")
    assert main(["show", path, "--out", out] + SMALL) == 0
    assert "wrote forward.png" in capsys.readouterr().out
    _assert_six_pictures(out)


def test_python_show_writes_the_same_files_with_t_in_every_title(fitted, tmp_path):
    m, _ = fitted
    res = ddpm.show(m, tmp_path / "py", **SMALL_KW)
    assert set(res.files) == set(FILES)
    assert all(os.path.dirname(p) == str(tmp_path / "py") for p in res.files.values())
    _assert_six_pictures(str(tmp_path / "py"))
    for f in FILES:
        assert re.search(r"\bt = ", res.titles[f]), (f, res.titles[f])           # every picture names its t
    assert "exact for the 8gaussians mixture" in res.titles["field.png"]
    assert "first 2 of" not in res.titles["forward.png"]


def test_show_refuses_to_replace_pictures_without_overwrite(fitted, tmp_path, capsys):
    _, path = fitted
    out = str(tmp_path / "show")
    assert main(["show", path, "--out", out] + SMALL) == 0
    before = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in FILES}
    assert main(["show", path, "--out", out] + SMALL) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ddpm: error:") and "--overwrite" in err[0] and "forward.png" in err[0]
    assert {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in FILES} == before
    with pytest.raises(FileExistsError):
        ddpm.show(path, out, **SMALL_KW)
    assert main(["show", path, "--out", out, "--overwrite"] + SMALL) == 0
    assert all(os.stat(os.path.join(out, f)).st_mtime_ns > before[f] for f in FILES)


def test_nd_model_draws_first_two_coordinates_and_says_so_in_every_figure(tmp_path, monkeypatch):
    import matplotlib.figure
    rng = np.random.default_rng(0)
    x = np.concatenate([toy_data.draw("8gaussians", 2000, rng), rng.standard_normal((2000, 1))], axis=1)
    m = _tiny_fit(x, None).model
    assert m.cfg.dim == 3
    seen = {}                                           # file -> texts of every figure saved for it
    real_savefig = matplotlib.figure.Figure.savefig

    def spy(fig, fname, *a, **k):
        name = "reverse.gif" if not isinstance(fname, (str, os.PathLike)) else \
            next((f for f in FILES if os.path.basename(os.fspath(fname)).startswith(f".{f}")), fname)
        sup = fig._suptitle.get_text() if fig._suptitle is not None else ""
        seen.setdefault(name, []).append(" ".join([sup] + [ax.get_title() for ax in fig.axes]))
        return real_savefig(fig, fname, *a, **k)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    res = ddpm.show(m, tmp_path / "nd", **SMALL_KW)
    _assert_six_pictures(str(tmp_path / "nd"))
    for f in ("forward.png", "reverse.png", "reverse.gif", "field.png", "profiles.png"):
        assert seen[f] and all(("first 2 of 3 coord" in s) for s in seen[f]), (f, seen.get(f))
        assert "first 2 of 3 coord" in res.titles[f]
    assert "no true field" in res.titles["field.png"]


def test_1d_model_is_refused_with_one_line(tmp_path, capsys):
    x = np.random.default_rng(1).standard_normal((500, 1))
    m = ddpm.fit(x, str(tmp_path / "fit1d"), steps=3, T=30, model=ddpm_ref.MLPConfig(hidden=8, depth=1),
                 n_eval=50, progress=False).model
    with pytest.raises(ValueError, match="D = 1"):
        ddpm.show(m, tmp_path / "s")
    assert main(["show", str(tmp_path / "fit1d" / "model.npz"), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ddpm: error:") and "D = 1" in err[0]
    assert not os.path.exists(tmp_path / "s")


def test_without_matplotlib_show_names_the_plot_extra_and_writes_nothing(fitted, tmp_path, monkeypatch, capsys):
    _, path = fitted
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    assert main(["show", path, "--out", str(tmp_path / "s")] + SMALL) == 2
    assert "pip install 'ddpm[plot]'" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "s")


# --- the numbers behind the pictures -------------------------------------------------------------------

NORM = Normalizer(np.array([0.3, -0.2]), np.array([1.4, 0.9]))               # unequal scales on purpose


@pytest.mark.parametrize("name", show_mod.MIXTURES)
def test_mixture_at_t0_is_toy_datas_own_density_in_standardised_coordinates(name):
    """The components come from toy_data's public constants; the density they make must be
    LOG_DENSITIES[name], moved to u = (x − mean)/scale: log q_u(u) = log q_x(x) + Σ log scale."""
    x = toy_data.draw(name, 400, np.random.default_rng(2)) + 0.05 * np.random.default_rng(3).standard_normal((400, 2))
    means, var = show_mod.marginal_mixture(*show_mod.mixture_components(name), NORM.mean, NORM.scale, 1.0)
    got = show_mod.mixture_log_density(NORM.to_model(x), means, var)
    np.testing.assert_allclose(got, toy_data.LOG_DENSITIES[name](x) + np.log(NORM.scale).sum(), rtol=1e-10, atol=1e-8)
    assert set(show_mod.MIXTURES) == set(toy_data.LOG_DENSITIES)


@pytest.mark.parametrize("name", show_mod.MIXTURES)
@pytest.mark.parametrize("t", [1, 5, 40, 200])
def test_true_score_is_the_finite_difference_gradient_of_log_q_xt(name, t):
    sched = ddpm_ref.make_schedule("linear", 200)
    rng = np.random.default_rng(t)
    u0 = NORM.to_model(toy_data.draw(name, 30, rng))
    ab = sched.alpha_bar[t]
    u = math.sqrt(ab) * u0 + math.sqrt(1 - ab) * rng.standard_normal(u0.shape) + 0.3 * rng.standard_normal(u0.shape)
    means, var = show_mod.marginal_mixture(*show_mod.mixture_components(name), NORM.mean, NORM.scale, ab)
    h = 1e-4 * math.sqrt(var.min())
    fd = np.stack([(show_mod.mixture_log_density(u + h * e, means, var) - show_mod.mixture_log_density(u - h * e, means, var))
                   / (2 * h) for e in np.eye(2)], axis=1)
    score = show_mod.mixture_score(u, means, var)
    np.testing.assert_allclose(score, fd, rtol=1e-5, atol=1e-5 * np.abs(fd).max())
    scaled = show_mod.true_scaled_score(name, NORM.mean, NORM.scale, sched, u, t)
    np.testing.assert_allclose(scaled, math.sqrt(1 - ab) * score, rtol=1e-12)


def test_marginal_is_the_data_density_convolved_with_q_xt_given_x0():
    """q(u_t) = ∫ q(u_0) N(u_t; √ᾱ_t u_0, (1−ᾱ_t) I) du_0 by quadrature on a fine lattice, with q(u_0)
    from toy_data's 8gaussians density: the closed-form mixture (means √ᾱ m_k, variance ᾱ v + 1 − ᾱ)."""
    ab = 0.8
    g = np.linspace(-3.6, 3.6, 721)
    du = g[1] - g[0]
    U0 = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)                 # (L, 2)
    log_q0 = toy_data.log_density_8gaussians(NORM.to_data(U0)) + np.log(NORM.scale).sum()
    assert abs(np.exp(log_q0).sum() * du * du - 1) < 1e-6, "the lattice holds all of q(u_0)"
    ut = np.random.default_rng(4).uniform(-1.5, 1.5, (6, 2))
    d2 = ((ut[:, None, :] - math.sqrt(ab) * U0[None]) ** 2).sum(-1)                        # (6, L)
    kernel = np.exp(-0.5 * d2 / (1 - ab)) / (2 * math.pi * (1 - ab))
    quad = np.log((kernel * np.exp(log_q0)[None]).sum(axis=1) * du * du)
    means, var = show_mod.marginal_mixture(*show_mod.mixture_components("8gaussians"), NORM.mean, NORM.scale, ab)
    np.testing.assert_allclose(show_mod.mixture_log_density(ut, means, var), quad, atol=1e-6)


def test_schedules_picture_of_a_model_with_small_T_skips_the_schedules_undefined_there(fitted, tmp_path):
    m, _ = fitted
    sched = ddpm_ref.make_schedule("cosine", 10)
    res = ddpm.show(replace(m, sched=sched, state={**m.state, "lt_hist": np.zeros(11)}), tmp_path / "s", **SMALL_KW)
    assert "not defined at T = 10: linear" in res.titles["schedules.png"]
    _assert_picture(res.files["schedules.png"])


def test_no_true_field_for_sets_without_a_known_density():
    sched = ddpm_ref.make_schedule("linear", 30)
    u = np.zeros((3, 2))
    assert show_mod.true_scaled_score("swiss_roll", NORM.mean, NORM.scale, sched, u, 5) is None
    assert show_mod.true_scaled_score("points.csv", NORM.mean, NORM.scale, sched, u, 5) is None


def test_q_step_iterated_and_q_sample_give_the_same_marginals():
    """The two rows of forward.png: mean √ᾱ_t·E[u_0] and covariance ᾱ_t·Cov u_0 + (1 − ᾱ_t) I, both ways."""
    sched = ddpm_ref.make_schedule("linear", 100)
    u0 = NORM.to_model(toy_data.draw("8gaussians", 20000, np.random.default_rng(5)))
    ts = show_mod.display_steps(100)
    assert ts.tolist() == list(range(0, 101, 10))
    by_step, closed = show_mod.forward_grids(sched, u0, ts, np.random.default_rng(6))
    for i, t in enumerate(ts):
        ab = sched.alpha_bar[t]
        mean = math.sqrt(ab) * u0.mean(0)
        cov = ab * np.cov(u0.T) + (1 - ab) * np.eye(2)
        for x in (by_step[i], closed[i]):
            np.testing.assert_allclose(x.mean(0), mean, atol=0.03)               # SE ≈ 0.007
            np.testing.assert_allclose(np.cov(x.T), cov, atol=0.04)
    np.testing.assert_array_equal(by_step[0], u0)
    np.testing.assert_array_equal(closed[0], u0)


@pytest.mark.parametrize("p", ddpm_ref.PARAMETRIZATIONS)
def test_eps_theta_gives_the_same_x0_as_the_parametrization(fitted, p):
    """Whatever the network's output means, ε_θ read from it implies the x̂_0 that ddpm_ref.predict_x0 reads."""
    m, _ = fitted
    m = replace(m, tcfg=replace(m.tcfg, parametrization=p))
    u = np.random.default_rng(7).standard_normal((50, 2))
    t = np.random.default_rng(8).integers(2, m.sched.T + 1, 50)
    out = ddpm_ref.forward(m.state["ema"], u, t, m.cfg)[0]
    x0 = ddpm_ref.predict_x0(p, m.sched, u, t, out)
    np.testing.assert_allclose(ddpm_ref.x0_from_eps(m.sched, u, t, show_mod.eps_theta(m, u, t)), x0, rtol=1e-8, atol=1e-8)


def test_eps_mse_by_t_covers_every_step_once():
    sched = ddpm_ref.make_schedule("linear", 1000)

    class Fake:
        pass
    m = Fake()
    m.sched, m.cfg, m.tcfg = sched, ddpm_ref.MLPConfig(dim=2, hidden=8, depth=1), ddpm_ref.GeneralTrainConfig()
    m.state = {"ema": ddpm_ref.init_params(m.cfg, np.random.default_rng(0))}
    edges, mse = show_mod.eps_mse_by_t(m, np.zeros((100, 2)), np.random.default_rng(0))
    assert edges[0] == 0 and edges[-1] == 1000 and len(mse) == 20 and np.all(np.diff(edges) == 50)
    assert np.all(np.isfinite(mse)) and np.all(mse > 0)


@pytest.mark.parametrize("name,T", [("linear", 1000), ("linear", 30), ("cosine", 1000), ("sohl_dickstein", 40)])
def test_gif_frames_run_from_T_down_to_0(name, T):
    f = show_mod.frame_steps(ddpm_ref.make_schedule(name, T, warn=False))
    assert f[0] == T and f[-1] == 0 and np.all(np.diff(f) < 0)
    assert len(f) >= min(40, T // 2) and len(f) <= 51
