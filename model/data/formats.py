"""Readers for each supported MovieLens layout, returning raw-id frames.

Layouts:
- `dat`: ML-1M / ML-10M `ratings.dat`, `movies.dat` (and `users.dat`), `::`-separated, Latin-1.
- `csv`: ML-20M / ML-25M / latest `ratings.csv`, `movies.csv`, header row, UTF-8, quoted titles.
- `ml100k`: ML-100K `u.data` (tab-separated), `u.item` (`|`-separated, Latin-1, genre flags).
- `ncf`: the NCF authors' preprocessed split `<name>.train.rating`, `<name>.test.rating`,
  `<name>.test.negative` (tab-separated, 0-based ids; negative lines are `(user,item)\\tneg1\\tneg2...`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from model.columns import GENRES, LINE, MOVIE_ID, RATING, TIMESTAMP, TITLE, USER_ID, YEAR
from model.data.errors import DataFormatError
from model.data.parsing import read_bytes, read_fields, to_integers, to_ratings

logger = logging.getLogger(__name__)

FORMATS = ("dat", "csv", "ml100k", "ncf")

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

_RATING_COLUMNS = (USER_ID, MOVIE_ID, RATING, TIMESTAMP)
_INT_DTYPES = {USER_ID: np.int64, MOVIE_ID: np.int64, TIMESTAMP: np.int64}


@dataclass(frozen=True)
class FixedTest:
    """A test split given by the data files (the NCF authors' `.test.rating` + `.test.negative`).

    Attributes:
        user_id: (n,) int64 raw user ids, one test item each.
        movie_id: (n,) int64 raw test item ids.
        negatives: (n, m) int64 raw ids of the sampled negatives for that user (m = 99 in the paper's files).
    """

    user_id: np.ndarray
    movie_id: np.ndarray
    negatives: np.ndarray


@dataclass(frozen=True)
class RawData:
    """What a reader returns: ratings with raw ids plus optional metadata.

    `ratings` columns: user_id int64, movie_id int64, rating float32, timestamp int64, line int64 (1-based
    line in its file). `movies` columns: movie_id int64, title str, year Int16 (nullable), genres list[str].
    """

    name: str
    format: str
    ratings: pd.DataFrame
    movies: pd.DataFrame | None
    files: tuple[Path, ...]
    fixed_test: FixedTest | None = None


RATINGS_FILES = ("ratings.dat", "ratings.csv", "u.data")  # the NCF layout: <name>.train.rating
MOVIE_FILES = {"dat": "movies.dat", "csv": "movies.csv", "ml100k": "u.item"}  # the NCF layout has none


def check_data_dir(data_dir: Path) -> None:
    """Raise `DataFormatError` unless `data_dir` is a directory, saying what it is instead."""
    if data_dir.is_dir():
        return
    if not data_dir.exists():
        raise DataFormatError(data_dir, "data directory not found")
    if data_dir.name in RATINGS_FILES or data_dir.name.endswith(".train.rating"):
        hint = f"pass the folder that holds it, {data_dir.parent}"
    else:
        hint = f"pass the folder that holds {', '.join(RATINGS_FILES)} or <name>.train.rating"
    raise DataFormatError(data_dir, f"is a file, not a directory; {hint}")


def detect_format(data_dir: Path) -> str:
    """Guess the layout from the file names in `data_dir`."""
    check_data_dir(data_dir)
    if (data_dir / "ratings.dat").exists():
        return "dat"
    if (data_dir / "ratings.csv").exists():
        return "csv"
    if (data_dir / "u.data").exists():
        return "ml100k"
    if list(data_dir.glob("*.train.rating")):
        return "ncf"
    raise DataFormatError(
        data_dir, "no ratings.dat, ratings.csv, u.data or *.train.rating found: not a MovieLens directory"
    )


def _ratings_frame(path: Path, frame: pd.DataFrame, first_line: int, low: float, high: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            USER_ID: to_integers(path, frame, USER_ID, first_line),
            MOVIE_ID: to_integers(path, frame, MOVIE_ID, first_line),
            RATING: to_ratings(path, frame, RATING, first_line, low, high),
            TIMESTAMP: to_integers(path, frame, TIMESTAMP, first_line, high=2**62),
            LINE: np.arange(first_line, first_line + len(frame), dtype=np.int64),
        }
    )


def _read_ratings(
    path: Path, *, sep: str, encoding: str, header=None, low: float = 1.0, high: float = 5.0
) -> pd.DataFrame:
    raw = read_bytes(path)
    frame, first = read_fields(
        path,
        raw,
        sep=sep,
        names=_RATING_COLUMNS,
        encoding=encoding,
        header=header,
        fast_dtypes={**_INT_DTYPES, RATING: np.float64},
    )
    return _ratings_frame(path, frame, first, low, high)


def _movies_frame(path: Path, frame: pd.DataFrame, first_line: int, genres: pd.Series) -> pd.DataFrame:
    titles = frame[TITLE].astype(str).str.strip()
    year = titles.str.extract(r"\((\d{4})\)\s*$", expand=False)
    return pd.DataFrame(
        {
            MOVIE_ID: to_integers(path, frame, MOVIE_ID, first_line),
            TITLE: titles.to_numpy(dtype=object),
            YEAR: pd.to_numeric(year, errors="coerce").astype("Int16").to_numpy(),
            GENRES: genres.to_numpy(dtype=object),
        }
    )


def _split_genres(text: pd.Series) -> pd.Series:
    """'A|B' -> ['A', 'B']; '' and '(no genres listed)' -> []."""
    cleaned = text.astype(str).str.strip().replace({"(no genres listed)": ""})
    return cleaned.str.split("|").map(lambda parts: [p for p in parts if p])


def _optional(path: Path) -> bool:
    if path.exists():
        return True
    logger.warning("%s not found: recommendations will carry no titles or genres", path)
    return False


def read_dat(data_dir: Path, encoding: str = "latin-1") -> RawData:
    ratings_path = data_dir / "ratings.dat"
    ratings = _read_ratings(ratings_path, sep="::", encoding=encoding, low=0.5)  # ML-10M: half stars
    movies, files = None, [ratings_path]
    movies_path = data_dir / MOVIE_FILES["dat"]
    if _optional(movies_path):
        frame, first = read_fields(
            movies_path, read_bytes(movies_path), sep="::", names=(MOVIE_ID, TITLE, GENRES), encoding=encoding
        )
        movies = _movies_frame(movies_path, frame, first, _split_genres(frame[GENRES]))
        files.append(movies_path)
    users_path = data_dir / "users.dat"
    if users_path.exists():
        # Validated for shape and ids (the model does not use demographics).
        frame, first = read_fields(
            users_path,
            read_bytes(users_path),
            sep="::",
            names=(USER_ID, "gender", "age", "occupation", "zip"),
            encoding=encoding,
        )
        to_integers(users_path, frame, USER_ID, first)
        files.append(users_path)
    return RawData(data_dir.name, "dat", ratings, movies, tuple(files))


def read_csv_layout(data_dir: Path, encoding: str = "utf-8") -> RawData:
    ratings_path = data_dir / "ratings.csv"
    ratings = _read_ratings(
        ratings_path, sep=",", encoding=encoding, header=("userId", "movieId", "rating", "timestamp"), low=0.5
    )
    movies, files = None, [ratings_path]
    movies_path = data_dir / MOVIE_FILES["csv"]
    if _optional(movies_path):
        frame, first = read_fields(
            movies_path,
            read_bytes(movies_path),
            sep=",",
            names=(MOVIE_ID, TITLE, GENRES),
            encoding=encoding,
            header=("movieId", "title", "genres"),
            quoted=True,
        )
        movies = _movies_frame(movies_path, frame, first, _split_genres(frame[GENRES]))
        files.append(movies_path)
    return RawData(data_dir.name, "csv", ratings, movies, tuple(files))


def read_ml100k(data_dir: Path, encoding: str = "latin-1") -> RawData:
    ratings_path = data_dir / "u.data"
    ratings = _read_ratings(ratings_path, sep="\t", encoding=encoding)
    movies, files = None, [ratings_path]
    item_path = data_dir / MOVIE_FILES["ml100k"]
    if _optional(item_path):
        names = (MOVIE_ID, TITLE, "release_date", "video_release_date", "url", *ML100K_GENRES)
        frame, first = read_fields(item_path, read_bytes(item_path), sep="|", names=names, encoding=encoding)
        flags = np.column_stack([to_integers(item_path, frame, g, first, high=1) for g in ML100K_GENRES])
        labels = np.array(ML100K_GENRES, dtype=object)
        genres = pd.Series([list(labels[row.astype(bool)]) for row in flags])
        movies = _movies_frame(item_path, frame, first, genres)
        files.append(item_path)
    return RawData(data_dir.name, "ml100k", ratings, movies, tuple(files))


def read_ncf(data_dir: Path, encoding: str = "utf-8") -> RawData:
    """Read the NCF authors' split; the train and test ratings together form the interaction set."""
    trains = sorted(data_dir.glob("*.train.rating"))
    if len(trains) != 1:
        raise DataFormatError(data_dir, f"expected one *.train.rating file, found {len(trains)}")
    stem = trains[0].name[: -len(".train.rating")]
    train_path, test_path = trains[0], data_dir / f"{stem}.test.rating"
    negative_path = data_dir / f"{stem}.test.negative"
    train = _read_ratings(train_path, sep="\t", encoding=encoding, low=0.0)
    test = _read_ratings(test_path, sep="\t", encoding=encoding, low=0.0)
    fixed = _read_negatives(negative_path, test, encoding)
    # Test lines come after every training line in the tie-break order.
    test[LINE] += int(train[LINE].max())
    ratings = pd.concat([train, test], ignore_index=True)
    return RawData(stem, "ncf", ratings, None, (train_path, test_path, negative_path), fixed)


def _read_negatives(path: Path, test: pd.DataFrame, encoding: str) -> FixedTest:
    raw = read_bytes(path)
    # "(u,i)\tn1\tn2..." -> "u\ti\tn1\tn2..." keeps the layout strict: a stray comma elsewhere is an error.
    body = raw.replace(b"(", b"", 1) if raw.startswith(b"(") else raw
    body = body.replace(b"\n(", b"\n").replace(b")\t", b"\t").replace(b",", b"\t", -1)
    first_tab = raw.find(b"\t")
    n_fields = raw[: raw.find(b"\n")].count(b"\t") + 2 if first_tab >= 0 else 0
    if n_fields < 3:
        raise DataFormatError(path, "expected '(user,item)' then tab-separated negative item ids", 1)
    names = ["user", "item"] + [f"neg{j}" for j in range(n_fields - 2)]
    frame, first = read_fields(
        path, body, sep="\t", names=names, encoding=encoding, fast_dtypes=dict.fromkeys(names, np.int64)
    )
    values = np.column_stack([to_integers(path, frame, c, first) for c in names])
    if len(values) != len(test):
        raise DataFormatError(path, f"{len(values)} lines but the test file has {len(test)}")
    mismatch = np.flatnonzero(
        (values[:, 0] != test[USER_ID].to_numpy()) | (values[:, 1] != test[MOVIE_ID].to_numpy())
    )
    if mismatch.size:
        i = int(mismatch[0])
        raise DataFormatError(
            path,
            f"(user,item) = ({values[i, 0]},{values[i, 1]}) does not match the test file's line {i + 1}",
            i + 1,
        )
    return FixedTest(values[:, 0], values[:, 1], values[:, 2:])


READERS = {"dat": read_dat, "csv": read_csv_layout, "ml100k": read_ml100k, "ncf": read_ncf}
