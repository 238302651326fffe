"""Untrusted data files: every CSV/NPY a user may hand to `ddpm fit --data` is accepted or refused with one
line naming the file (exit status 1), never a traceback."""

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddpm.cli import main
from toy_data import DataError, load

XY = np.array([[1.5, -2.0], [3.0, 4.25], [-0.5, 0.0]])


@pytest.mark.parametrize("name, content", [
    ("bom.csv", "\ufeffx,y\n1.5,-2\n3,4.25\n-0.5,0\n"),
    ("semicolon.csv", "x;y\n1.5;-2\n3;4.25\n-0.5;0\n"),
    ("tab.csv", "1.5\t-2\n3\t4.25\n-0.5\t0\n"),
    ("spaces.csv", "1.5  -2\n 3 4.25\n-0.5 0\n"),
    ("blank_lines.csv", "\n1.5,-2\n\n3,4.25\n   \n-0.5,0\n\n"),
    ("comments.csv", "# made by hand\nx,y\n1.5,-2\n# a comment\n3,4.25\n-0.5,0\n"),
    ("quoted.csv", '"x","y"\n"1.5","-2"\n"3","4.25"\n"-0.5","0"\n'),
    ("crlf.csv", "x,y\r\n1.5,-2\r\n3,4.25\r\n-0.5,0\r\n"),
])
def test_common_csv_dialects_are_read(tmp_path, name, content):
    (tmp_path / name).write_text(content, encoding="utf-8", newline="")
    np.testing.assert_array_equal(load(tmp_path / name), XY)


def test_a_single_column_is_one_dimensional_data(tmp_path):
    (tmp_path / "one.csv").write_text("v\n1\n2\n3\n")
    np.testing.assert_array_equal(load(tmp_path / "one.csv"), [[1.0], [2.0], [3.0]])


@pytest.mark.parametrize("name, content, match", [
    ("inf.csv", "1,2\n3,inf\n", "NaN or infinite"),
    ("huge.csv", "1,2\n3,1e308\n", "too large to standardise"),
    ("row.csv", "x,y\n1,2\n", "need at least 2 rows"),
    ("mixed.csv", "1,2\n3,four\n", "non-numeric cell 'four'"),
    ("latin1.csv", b"x,\xe9\n1,2\n3,4\n", "not a text CSV file"),
    ("binary.csv", bytes(range(256)), ""),
])
def test_bad_csv_files_are_refused_with_one_line_exit_1(tmp_path, capsys, name, content, match):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["fit", "--data", str(p), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ddpm: error: {p}") and match in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("make, match", [
    (lambda: np.array([[1, 2], [3, 4]], dtype=object), "objects"),
    (lambda: np.zeros((3, 2), dtype=[("a", "f8"), ("b", "f8")]), "expected numbers"),
    (lambda: np.array([["a", "b"], ["c", "d"]]), "expected numbers"),
    (lambda: np.zeros((2, 2, 2)), "2-D array"),
    (lambda: np.array([[1e200, 1.0], [0.0, 1.0]]), "too large"),
])
def test_bad_npy_arrays_are_refused(tmp_path, make, match):
    np.save(tmp_path / "a.npy", make(), allow_pickle=True)
    with pytest.raises(DataError, match=match):
        load(tmp_path / "a.npy")


def test_a_forged_npy_header_is_refused_before_reading(tmp_path):
    with open(tmp_path / "bomb.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**7, 10**7)})
        f.write(b"\0" * 64)
    with pytest.raises(DataError, match="truncated or forged"):
        load(tmp_path / "bomb.npy")


def test_a_million_rows_load_in_seconds(tmp_path):
    x = np.random.default_rng(0).normal(size=(10**6, 2)).round(4)
    np.savetxt(tmp_path / "big.csv", x, delimiter=",", fmt="%.4f")
    t0 = time.perf_counter()
    np.testing.assert_array_equal(load(tmp_path / "big.csv"), x)
    assert time.perf_counter() - t0 < 30


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("0123456789.-+eE,;\t \n#\"xnaif\ufeff")), max_size=80))
def test_any_text_is_accepted_or_refused_with_a_data_error(tmp_path, text):
    p = tmp_path / "fuzz.csv"
    p.write_text(text, encoding="utf-8")
    try:
        x = load(p)
    except DataError as e:
        assert str(p) in str(e) and "\n" not in str(e)
    else:
        assert x.ndim == 2 and x.shape[0] >= 2 and np.all(np.isfinite(x))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(blob=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".npy"]))
def test_any_bytes_are_accepted_or_refused_with_a_data_error(tmp_path, blob, suffix):
    p = tmp_path / ("fuzz" + suffix)
    p.write_bytes(blob)
    try:
        load(p)
    except DataError as e:
        assert str(p) in str(e)



def test_a_typo_in_the_first_data_row_is_an_error_not_a_header(tmp_path):
    (tmp_path / "t.csv").write_text("1.5,x2\n3,4\n5,6\n")
    with pytest.raises(DataError, match="line 1 has a non-numeric cell 'x2'"):
        load(tmp_path / "t.csv")
