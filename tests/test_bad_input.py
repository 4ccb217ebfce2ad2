"""Malformed input raises one exception type naming the file, the line and the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model.data import DataFormatError, DataLoader


def _copy(fixtures_dir: Path, layout: str, tmp_path: Path) -> Path:
    target = tmp_path / layout
    shutil.copytree(fixtures_dir / layout, target)
    return target


def _replace_line(path: Path, line: int, text: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = text
    path.write_bytes(b"\n".join(lines))


DAT_CASES = [
    # (line to overwrite, new content, words the message must contain)
    (3, b"1::260::5", "expected 4 fields"),
    (4, b"1::260::5::978301020::9", "expected 4 fields"),
    (5, b"1,260,5,978301020", "expected 4 fields"),
    (6, b"1::abc::5::978301020", "movie_id must be an integer"),
    (7, b"x1::260::5::978301020", "user_id must be an integer"),
    (8, b"1::260::6::978301020", "rating must be a number in [0.5, 5.0]"),
    (9, b"1::260::0::978301020", "rating must be a number in [0.5, 5.0]"),
    (10, b"1::260::4::-5", "timestamp must be an integer"),
    (11, b"", "empty line"),
    (12, b"2::260:4::978301020", "expected 4 fields"),
]


@pytest.mark.parametrize(("line", "content", "message"), DAT_CASES)
def test_malformed_ratings_dat(fixtures_dir, tmp_path, line, content, message):
    data = _copy(fixtures_dir, "dat", tmp_path)
    _replace_line(data / "ratings.dat", line, content)
    with pytest.raises(DataFormatError) as err:
        DataLoader(data).load()
    assert err.value.path == data / "ratings.dat"
    assert err.value.line == line
    assert message in str(err.value)
    assert f"ratings.dat:{line}:" in str(err.value)


def test_half_star_rating_is_valid(fixtures_dir, tmp_path):
    data = _copy(fixtures_dir, "dat", tmp_path)
    user, movie, _, ts = (data / "ratings.dat").read_bytes().split(b"\n")[12].split(b"::")
    _replace_line(data / "ratings.dat", 13, b"::".join([user, movie, b"4.5", ts]))
    assert DataLoader(data).load().n_interactions == 37


def test_duplicate_pair_names_the_second_line(fixtures_dir, tmp_path):
    data = _copy(fixtures_dir, "dat", tmp_path)
    first = (data / "ratings.dat").read_bytes().split(b"\n")[0]
    user, movie = first.split(b"::")[:2]
    _replace_line(data / "ratings.dat", 20, b"::".join([user, movie, b"3", b"978309999"]))
    with pytest.raises(DataFormatError, match=r"ratings\.dat:20: duplicate rating of movie"):
        DataLoader(data).load()


@pytest.mark.parametrize("format", ["auto", "dat"])
def test_a_data_path_that_is_a_file_says_so(fixtures_dir, format):
    ratings = fixtures_dir / "dat" / "ratings.dat"
    with pytest.raises(
        DataFormatError, match="is a file, not a directory; pass the folder that holds it"
    ) as err:
        DataLoader(ratings, format=format).load()
    assert str(err.value).endswith(str(fixtures_dir / "dat"))
    with pytest.raises(
        DataFormatError, match=r"is a file, not a directory; pass the folder that holds ratings\.dat"
    ):
        DataLoader(fixtures_dir / "dat" / "movies.dat", format=format).load()


def test_missing_and_empty_files(fixtures_dir, tmp_path):
    with pytest.raises(DataFormatError, match="data directory not found"):
        DataLoader(tmp_path / "nowhere").load()
    data = _copy(fixtures_dir, "dat", tmp_path)
    (data / "ratings.dat").write_bytes(b"\n\n")
    with pytest.raises(DataFormatError, match="file is empty"):
        DataLoader(data).load()
    (data / "ratings.dat").unlink()
    with pytest.raises(DataFormatError, match="file not found"):
        DataLoader(data, format="dat").load()
    with pytest.raises(DataFormatError, match="not a MovieLens directory"):
        DataLoader(data).load()


def test_wrong_encoding_dat_utf8(fixtures_dir, tmp_path):
    data = _copy(fixtures_dir, "dat", tmp_path)
    movies = data / "movies.dat"
    movies.write_bytes(movies.read_bytes().decode("latin-1").encode("utf-8"))
    with pytest.raises(DataFormatError) as err:
        DataLoader(data).load()
    assert err.value.line == 6 and "UTF-8 encoded but this layout is Latin-1" in str(err.value)
    # Asked for explicitly, the same file reads fine.
    ds = DataLoader(data, encoding="utf-8").load()
    assert "Misérables, Les (1995)" in set(ds.movies["title"])


def test_wrong_encoding_utf16(fixtures_dir, tmp_path):
    data = _copy(fixtures_dir, "dat", tmp_path)
    ratings = data / "ratings.dat"
    ratings.write_bytes(ratings.read_text().encode("utf-16"))
    with pytest.raises(DataFormatError, match=r"ratings\.dat:1: NUL byte"):
        DataLoader(data).load()


def test_wrong_encoding_csv_latin1(fixtures_dir, tmp_path):
    data = _copy(fixtures_dir, "csv", tmp_path)
    movies = data / "movies.csv"
    movies.write_bytes(movies.read_text(encoding="utf-8").encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"movies\.csv:7: not valid utf-8"):
        DataLoader(data).load()


def test_csv_header_and_fields(fixtures_dir, tmp_path):
    data = _copy(fixtures_dir, "csv", tmp_path)
    _replace_line(data / "ratings.csv", 1, b"user,movie,rating,timestamp")
    with pytest.raises(DataFormatError, match=r"ratings\.csv:1: header is"):
        DataLoader(data).load()
    data = _copy(fixtures_dir, "csv", tmp_path / "b")
    _replace_line(data / "ratings.csv", 4, b"1,7,9.5,978301010")
    with pytest.raises(DataFormatError, match=r"ratings\.csv:4: rating must be a number in \[0.5, 5.0\]"):
        DataLoader(data).load()
    data = _copy(fixtures_dir, "csv", tmp_path / "c")
    _replace_line(data / "movies.csv", 3, b"3,Grumpier Old Men (1995)")
    with pytest.raises(DataFormatError, match=r"movies\.csv:3: expected 3 comma-separated fields, found 2"):
        DataLoader(data).load()


def test_ml100k_bad_separator(fixtures_dir, tmp_path):
    data = _copy(fixtures_dir, "ml100k", tmp_path)
    _replace_line(data / "u.data", 2, b"1 7 1 978301010")
    with pytest.raises(DataFormatError, match=r"u\.data:2: expected 4 fields separated by '\\t'"):
        DataLoader(data).load()


def test_ncf_negative_file_must_match_test_file(fixtures_dir, tmp_path):
    data = _copy(fixtures_dir, "ncf", tmp_path)
    _replace_line(data / "tiny.test.negative", 2, b"(1,3)\t1\t5\t7")
    with pytest.raises(DataFormatError, match=r"tiny\.test\.negative:2: .* does not match"):
        DataLoader(data).load()
    data = _copy(fixtures_dir, "ncf", tmp_path / "b")
    _replace_line(data / "tiny.test.negative", 3, b"(2,6)\t7\tten\t8")
    with pytest.raises(DataFormatError, match=r"tiny\.test\.negative:3: neg1 must be an integer"):
        DataLoader(data).load()


def test_ncf_test_item_already_in_train(fixtures_dir, tmp_path):
    data = _copy(fixtures_dir, "ncf", tmp_path)
    train_first = (data / "tiny.train.rating").read_bytes().split(b"\n")[0].split(b"\t")
    test_lines = (data / "tiny.test.rating").read_bytes().split(b"\n")
    test_lines[0] = b"\t".join([train_first[0], train_first[1], b"4", b"978300050"])
    (data / "tiny.test.rating").write_bytes(b"\n".join(test_lines))
    neg = (data / "tiny.test.negative").read_bytes().split(b"\n")
    neg[0] = b"(" + train_first[0] + b"," + train_first[1] + b")\t9\t10\t5"
    (data / "tiny.test.negative").write_bytes(b"\n".join(neg))
    with pytest.raises(DataFormatError, match=r"tiny\.test\.rating:1: duplicate rating"):
        DataLoader(data).load()
