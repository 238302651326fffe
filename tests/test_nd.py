"""N-D data: the fixed data sets (scikit-learn's bundled copies) and samples.png drawn by the data's shape."""

import sys

import numpy as np
import pytest

import toy_data


# --- fixed data sets ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, loader, shape", [("digits", "load_digits", (1797, 64)), ("iris", "load_iris", (150, 4)),
                                                 ("wine", "load_wine", (178, 13)),
                                                 ("breast_cancer", "load_breast_cancer", (569, 30))])
def test_fixed_set_is_sklearns_array_as_float64_of_its_shape(name, loader, shape):
    datasets = pytest.importorskip("sklearn.datasets")
    x = toy_data.load_fixed(name)
    assert x.shape == shape == toy_data.FIXED_INFO[name]["shape"]
    assert x.dtype == np.float64 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, getattr(datasets, loader)().data)
    x[0, 0] = -1.0                                                       # a copy: the next call is untouched
    assert toy_data.load_fixed(name)[0, 0] != -1.0


def test_digits_are_8_by_8_images_of_integers_0_to_16():
    pytest.importorskip("sklearn")
    x = toy_data.load_fixed("digits")
    info = toy_data.FIXED_INFO["digits"]
    assert info["image_shape"] == (8, 8) and np.prod(info["image_shape"]) == x.shape[1]
    assert info["bin_width"] == 1.0
    np.testing.assert_array_equal(x, np.round(x))
    assert x.min() == 0 and x.max() == 16
    assert len(np.unique(x)) == 17


def test_declared_bin_widths_hold_on_the_data():
    pytest.importorskip("sklearn")
    for name, info in toy_data.FIXED_INFO.items():
        if info["bin_width"] is not None:
            k = toy_data.load_fixed(name) / info["bin_width"]
            assert np.abs(k - np.round(k)).max() < 1e-9, name


@pytest.mark.parametrize("name", ["digits", "breast_cancer"])
def test_fixed_set_without_sklearn_is_one_line_naming_the_extra(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError) as e:
        toy_data.load_fixed(name)
    msg = str(e.value)
    assert "\n" not in msg
    assert name in msg and "pip install 'ddpm[data]'" in msg and "scikit-learn" in msg


# --- samples.png by the data's shape ---------------------------------------------------------------------

from ddpm import plot_samples as plots  # noqa: E402  (matplotlib is imported only when a picture is drawn)


@pytest.mark.parametrize("dim, image_shape, layout", [
    (1, None, "histogram"), (2, None, "scatter"), (3, None, "pairs"), (4, None, "pairs"), (5, None, "pca_pairs"),
    (13, None, "pca_pairs"), (15, None, "pca_pairs"), (16, None, "images"), (64, None, "images"),
    (65, None, "pca_pairs"), (784, None, "images"), (30, (5, 6), "images"), (4, (2, 2), "images")])
def test_layout_follows_the_data_shape(dim, image_shape, layout):
    assert plots.samples_layout(dim, image_shape) == layout


@pytest.mark.parametrize("image_shape", [(8, 7), (64,), (8, 8, 1), (0, 64), (8.0, 8), "8x8"])
def test_image_shape_must_hold_exactly_d_pixels(image_shape):
    with pytest.raises(ValueError, match="image_shape"):
        plots.samples_layout(64, image_shape)


def test_mosaic_puts_each_row_back_as_its_image_row_major():
    x = np.arange(5 * 12, dtype=float).reshape(5, 12)                    # 5 images of 3 × 4
    m = plots._mosaic(x, (3, 4), (2, 3))
    assert m.shape == (2 * 4 - 1, 3 * 5 - 1)
    np.testing.assert_array_equal(m[0:3, 0:4], x[0].reshape(3, 4))
    np.testing.assert_array_equal(m[4:7, 5:9], x[4].reshape(3, 4))      # 5th image: row 1, column 1
    assert np.isnan(m[3]).all() and np.isnan(m[:, 4]).all()             # the gaps
    assert np.isnan(m[4:7, 10:14]).all()                                  # no 6th image


def test_principal_components_are_uncorrelated_descending_and_map_samples_like_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 13)) @ rng.standard_normal((13, 13)) * np.logspace(0, 3, 13)
    pc, pc_same, frac = plots._principal_components(x, x, 4)
    np.testing.assert_allclose(pc_same, pc)
    cov = np.cov(pc, rowvar=False)
    np.testing.assert_allclose(cov - np.diag(np.diag(cov)), 0, atol=1e-9)
    assert np.all(np.diff(np.diag(cov)) <= 0) and np.all(np.diff(frac) <= 0) and 0 < frac.sum() <= 1
    z = (x - x.mean(0)) / x.std(0)                                          # fractions of the standardised variance
    lam = np.linalg.eigvalsh(np.cov(z, rowvar=False))[::-1]
    np.testing.assert_allclose(frac, lam[:4] / lam.sum(), rtol=1e-9)


def _spy(monkeypatch, name):
    """Record each figure the helper ``name`` of ddpm.plots returns (with its arguments)."""
    seen = []
    real = getattr(plots, name)

    def spy(*a, **k):
        fig = real(*a, **k)
        seen.append((a, k, fig._suptitle.get_text() if fig._suptitle else ""))
        return fig
    monkeypatch.setattr(plots, name, spy)
    return seen


def _assert_png_drawn(path):
    image = pytest.importorskip("matplotlib.image")
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    px = image.imread(str(path))[..., :3].mean(axis=-1)                     # grey levels in [0, 1]
    assert px.shape[0] > 200 and px.shape[1] > 200
    assert (px < 0.3).mean() > 0.005 and (px > 0.9).mean() > 0.2           # ink on paper: not blank


def test_digits_picture_is_a_grid_of_data_images_beside_sample_images(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    x = toy_data.load_fixed("digits")
    seen = _spy(monkeypatch, "_image_grids")
    f = tmp_path / "samples.png"
    assert plots.save_samples_plot(f, x[:300], x[300:800], title="digits") == "images"   # the old call: no image_shape
    _assert_png_drawn(f)
    (args, _, suptitle), = seen
    assert args[3] == (8, 8)
    assert suptitle.startswith("digits: data images beside sample images") and "0 (white) to 16 (black)" in suptitle
    declared = tmp_path / "declared.png"
    assert plots.save_samples_plot(declared, x[:300], x[300:800], image_shape=toy_data.FIXED_INFO["digits"]["image_shape"]) == "images"
    _assert_png_drawn(declared)


def test_declared_non_square_image_shape_draws_images(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    seen = _spy(monkeypatch, "_image_grids")
    rng = np.random.default_rng(1)
    x = rng.random((100, 30))
    assert plots.save_samples_plot(tmp_path / "s.png", x, x[::-1], image_shape=(5, 6)) == "images"
    assert seen[0][0][3] == (5, 6)
    with pytest.raises(ValueError, match="image_shape"):
        plots.save_samples_plot(tmp_path / "bad.png", x, x, image_shape=(5, 5))


def test_d_13_draws_a_pair_plot_of_the_top_4_principal_components(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    seen = _spy(monkeypatch, "_pair_plot")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 13)) * np.arange(1, 14)
    f = tmp_path / "s.png"
    assert plots.save_samples_plot(f, x[:150], x[150:], title="wine") == "pca_pairs"
    _assert_png_drawn(f)
    (args, kw, suptitle), = seen
    assert args[1].shape == (150, 4) and args[2].shape == (150, 4)
    assert [lab.split()[0] for lab in args[3]] == ["PC1", "PC2", "PC3", "PC4"] and kw["equal"]
    assert suptitle.startswith("wine: top 4 principal components of the standardised data") and "D = 13" in suptitle


def test_d_4_draws_a_pair_plot_of_the_coordinates(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    seen = _spy(monkeypatch, "_pair_plot")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 4)) + np.array([5.0, 3.0, 4.0, 1.0])
    f = tmp_path / "s.png"
    assert plots.save_samples_plot(f, x[:100], x[100:], title="iris") == "pairs"
    _assert_png_drawn(f)
    (args, kw, suptitle), = seen
    np.testing.assert_array_equal(args[1], x[:100])                      # the coordinates themselves
    assert args[3] == ["$x_{1}$", "$x_{2}$", "$x_{3}$", "$x_{4}$"] and not kw["equal"]
    assert suptitle.startswith("iris: all 4 coordinates")


@pytest.mark.parametrize("dim, layout", [(1, "histogram"), (2, "scatter")])
def test_d_1_and_2_keep_their_histogram_and_scatter(tmp_path, monkeypatch, dim, layout):
    pytest.importorskip("matplotlib")
    seen = _spy(monkeypatch, "_data_beside_samples")
    x = np.random.default_rng(4).standard_normal((500, dim))
    f = tmp_path / "s.png"
    assert plots.save_samples_plot(f, x, x + 0.5, "moons") == layout      # title positional, as before
    _assert_png_drawn(f)
    assert len(seen) == 1 and seen[0][2] == "moons"


def test_data_and_samples_of_different_dimension_are_refused(tmp_path):
    with pytest.raises(ValueError, match="same D"):
        plots.save_samples_plot(tmp_path / "s.png", np.zeros((10, 3)), np.zeros((10, 4)))
