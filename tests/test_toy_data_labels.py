"""Labelled data (issue 31): the labelled built-ins, a user's file with a label column, and label encoding.

Each test names, in its docstring, a one-line bug that makes it fail."""

import numpy as np
import pytest

import toy_data
from toy_data import (DataError, class_names, draw, draw_labelled, encode_labels, load, load_fixed_labelled,
                      load_labelled)


@pytest.mark.parametrize("name", ["8gaussians", "moons"])
@pytest.mark.parametrize("seed, n", [(0, 1), (1, 2), (2, 7), (3, 1000)])
def test_draw_labelled_points_equal_draw_bit_for_bit(name, seed, n):
    """Bug: the labelled generator draws in another order (e.g. the noise before the modes, or a second
    permutation for the moon labels), so x differs from draw's or the generator ends in another state."""
    rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
    x = draw(name, n, rng_a)
    xl, y = draw_labelled(name, n, rng_b)
    assert xl.dtype == np.float64 and xl.shape == (n, 2) and xl.tobytes() == x.tobytes()
    assert y.dtype == np.int64 and y.shape == (n,)
    assert rng_a.random() == rng_b.random()                 # both used the same draws


def test_8gaussians_label_is_the_nearest_mode_and_named_by_its_compass_direction():
    """Bugs: y is drawn apart from the mode used for x (y = rng.integers(...) again), or class_names lists
    the compass points clockwise ("E", "SE", ...) or from the north."""
    x, y = draw_labelled("8gaussians", 20000, np.random.default_rng(5))
    centers = toy_data._eight_centers()
    nearest = np.argmin(((x[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest == y) >= 0.999
    assert set(np.unique(y)) == set(range(8))
    names = class_names("8gaussians")
    assert len(names) == 8
    c = dict(zip(names, centers))
    assert np.argmax(centers[:, 1]) == names.index("N") and np.argmin(centers[:, 1]) == names.index("S")
    assert np.argmax(centers[:, 0]) == names.index("E") and np.argmin(centers[:, 0]) == names.index("W")
    assert c["NE"][0] > 0 and c["NE"][1] > 0 and c["SW"][0] < 0 and c["SW"][1] < 0
    assert c["NW"][0] < 0 and c["NW"][1] > 0 and c["SE"][0] > 0 and c["SE"][1] < 0


def test_moons_labels_follow_the_moon():
    """Bug: the labels are not shuffled with the points (y = [0]*n1 + [1]*n2 unpermuted), or class_names
    swaps "upper" and "lower"."""
    x, y = draw_labelled("moons", 4000, np.random.default_rng(6))
    upper, lower = class_names("moons").index("upper"), class_names("moons").index("lower")
    assert np.sum(y == upper) == 2000 and np.sum(y == lower) == 2000
    assert x[y == upper, 1].mean() > x[y == lower, 1].mean() + 0.5   # upper moon ≈ 0.64, lower ≈ −0.14
    assert x[y == upper, 0].mean() < x[y == lower, 0].mean()          # upper centred at 0, lower at 1


def test_digits_labels_are_sklearns_targets():
    """Bug: the labels are another set's targets, or the rows are reordered against the targets."""
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = load_fixed_labelled("digits")
    d = datasets.load_digits()
    np.testing.assert_array_equal(x, d.data)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, d.target)
    assert class_names("digits") == tuple("0123456789")


def test_labelled_names_and_their_errors():
    """Bug: an unlabelled name is accepted (draw_labelled("circles") returning zeros) or the message does
    not name the labelled sets; draw's argument checks skipped."""
    assert toy_data.LABELS == {"8gaussians": "mode", "moons": "moon", "digits": "digit"}
    assert class_names("moons") == ("upper", "lower")
    with pytest.raises(ValueError, match="8gaussians, moons, digits"):
        class_names("circles")
    with pytest.raises(ValueError, match="8gaussians, moons"):
        draw_labelled("circles", 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"load_fixed_labelled\('digits'\)"):
        draw_labelled("digits", 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="positive integer"):
        draw_labelled("moons", 0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        draw_labelled("moons", 10, 0)
    with pytest.raises(ValueError, match="labelled ones are: digits"):
        load_fixed_labelled("iris")


def _write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


CSV = "x,y,label\n1,2,cat\n3,4,dog\n# a comment\n5,6,cat\n"


@pytest.mark.parametrize("column", ["label", 2, -1, "2"])
def test_load_labelled_by_name_index_and_negative_index(tmp_path, column):
    """Bug: a negative index is not taken from the end, or the label column is left in (or another taken out of) x."""
    x, raw = load_labelled(_write(tmp_path, CSV), column)
    np.testing.assert_array_equal(x, [[1, 2], [3, 4], [5, 6]])
    assert x.dtype == np.float64
    assert list(raw) == ["cat", "dog", "cat"]


def test_load_labelled_middle_numeric_column_and_quoted_cells(tmp_path):
    """Bugs: quotes kept on labels ('"cat"': the csv reader keeps them after a space) or on numbers, or x's
    columns out of order when the label is in the middle."""
    p = _write(tmp_path, 'a;"kind";b\n"1.5";"b";2\n2.5;a;"3"\n')
    x, raw = load_labelled(p, "kind")
    np.testing.assert_array_equal(x, [[1.5, 2], [2.5, 3]])
    assert list(raw) == ["b", "a"]
    x, raw = load_labelled(_write(tmp_path, 'x, label\n1, "cat"\n2, "dog"\n'), "label")   # space before a quote
    assert list(raw) == ["cat", "dog"]
    x, raw = load_labelled(_write(tmp_path, "1 10 0\n2 2 1\n3 3.0 2\n"), 1)      # whitespace, no header
    np.testing.assert_array_equal(x, [[1, 0], [2, 1], [3, 2]])
    assert list(raw) == ["10", "2", "3.0"]
    y, classes = encode_labels(raw)
    assert classes == ("2", "3", "10") and list(y) == [2, 0, 1]


def test_load_labelled_npy_writes_integers_without_point_zero(tmp_path):
    """Bug: an .npy label column returned as "3.0" (then a different class from a CSV's "3") or left in x."""
    p = tmp_path / "d.npy"
    np.save(p, np.array([[0.5, 3.0, 1.0], [1.5, 1.0, 2.0], [2.5, 0.25, 3.0]]))
    x, raw = load_labelled(p, 1)
    np.testing.assert_array_equal(x, [[0.5, 1], [1.5, 2], [2.5, 3]])
    assert list(raw) == ["3", "1", "0.25"]


def test_load_is_unchanged_for_a_file_with_labels_column_numbers(tmp_path):
    """Bug: the generalised CSV reader drops a column or the header for plain ``load``."""
    p = _write(tmp_path, "x,y,label\n1,2,0\n3,4,1\n")
    np.testing.assert_array_equal(load(p), [[1, 2, 0], [3, 4, 1]])


@pytest.mark.parametrize("text, column, match", [
    (CSV, "colour", r"d\.csv: no column 'colour' in the header; its columns are: 'x', 'y', 'label'$"),
    (CSV, 3, r"d\.csv: label column index 3 is out of range: the file has 3 columns"),
    (CSV, -4, r"the file has 3 columns"),
    ("1,2,0\n3,4,1\n", "label", r"d\.csv: the file has no header row, so the label column must be a 0-based index"),
    ("x,y,label\n1,2,cat\n3,4,\n", "label", r"d\.csv: line 3 has an empty label"),
    ("x,y,label\n1,2,cat\n\n3,4,NaN\n", "label", r"d\.csv: line 4 has a NaN label 'NaN'"),
    ("x,y,label\n1,2,3\n3,4,nan\n", -1, r"d\.csv: line 3 has a NaN label 'nan'"),
    ("label\ncat\ndog\n", "label", r"d\.csv: the label column is the only column; no data column is left"),
    ("x,label\n1,cat\nfoo,dog\n", "label", r"d\.csv: line 3 has a non-numeric cell 'foo'"),
    ("x,label\n1,cat\n2,dog,3\n", "label", r"d\.csv: line 3 has 3 columns, expected 2"),
    ("x,label\n1,cat\n", "label", r"need at least 2 rows"),
    ("x,label\n1,cat\nnan,dog\n", "label", r"NaN or infinite"),
])
def test_load_labelled_errors_are_one_line_naming_the_file(tmp_path, text, column, match):
    """Bugs: a missing column raises KeyError/IndexError, a NaN or empty label is kept as a class, a file
    with no data column left is accepted, or the line number is the data row's index, not the file's line."""
    with pytest.raises(DataError, match=match) as e:
        load_labelled(_write(tmp_path, text), column)
    assert "\n" not in str(e.value)


def test_load_labelled_npy_errors(tmp_path):
    """Bug: a NaN in an .npy label column becomes the class "nan", or a column name is looked up in an .npy."""
    p = tmp_path / "d.npy"
    np.save(p, np.array([[0.5, 1.0], [1.5, np.nan], [2.5, np.nan]]))
    with pytest.raises(DataError, match=r"d\.npy: 2 label\(s\) in column 1 are NaN, first at row 1"):
        load_labelled(p, 1)
    with pytest.raises(DataError, match=r"d\.npy: the file has no header row"):
        load_labelled(p, "label")
    with pytest.raises(DataError, match=r"d\.npy: label column index 2 is out of range: the file has 2 columns"):
        load_labelled(p, 2)
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        load_labelled(tmp_path / "nope.csv", 0)


def test_encode_labels_orders_numbers_numerically_and_merges_equal_values():
    """Bugs: numeric labels sorted as strings ("10" before "2"), or "3.0" and "3" two classes."""
    y, classes = encode_labels(["10", "2", "3.0", "3", "2"])
    assert classes == ("2", "3", "10")
    assert y.dtype == np.int64 and list(y) == [2, 0, 1, 1, 0]
    y, classes = encode_labels(np.array([1.0, 0.0, 1.0]))
    assert classes == ("0", "1") and list(y) == [1, 0, 1]
    y, classes = encode_labels(np.array(["dog", "cat", "10", "dog"]))
    assert classes == ("10", "cat", "dog") and list(y) == [2, 1, 0, 2]


@pytest.mark.parametrize("raw, match", [(["a", ""], "label 1 is empty"), (["1", "nan"], "label 1 is NaN"),
                                        (np.array([1.0, np.nan]), "label 1 is NaN")])
def test_encode_labels_rejects_empty_and_nan(raw, match):
    """Bug: NaN kept as a class (NaN != NaN would even make one class per NaN)."""
    with pytest.raises(DataError, match=match):
        encode_labels(raw)
