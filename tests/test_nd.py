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
