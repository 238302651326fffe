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
                 "2spirals", "checkerboard", "line"]:
        assert name in toy_data.NAMES


def test_8gaussians_density_integrates_to_one_and_matches_samples():
    g = np.linspace(-3.5, 3.5, 701)
    xx, yy = np.meshgrid(g, g)
    p = np.exp(toy_data.log_density_8gaussians(np.stack([xx.ravel(), yy.ravel()], 1)))
    assert p.sum() * (g[1] - g[0]) ** 2 == pytest.approx(1.0, abs=1e-3)
    x = draw("8gaussians", 20000, np.random.default_rng(0))
    r = np.linalg.norm(x, axis=1)
    assert r.mean() == pytest.approx(2.0, abs=0.02)


def test_checkerboard_occupies_alternate_squares():
    x = draw("checkerboard", 5000, np.random.default_rng(0))
    cell = (np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2
    assert np.all(cell == cell[0])
    assert np.all(np.abs(x) <= 4)


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'spiral'.*swiss_roll.*checkerboard"):
        draw("spiral", 10, np.random.default_rng(0))


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
