"""Synthetic MovieLens-shaped data sets for scale and speed checks (never for accuracy).

`write_synthetic(shape, dest, seed)` writes `ratings.csv` (`userId,movieId,rating,timestamp`),
`movies.csv` (`movieId,title,genres`) and a `README.txt` in the CSV layout of ML-20M / ML-25M, with the
real set's numbers of users, rated movies and ratings (`SHAPES`), so `DataLoader(dest).load()` reads it
like the real thing. Structure, not content, is MovieLens-like:

- movie popularity is Zipf-like (weight of the r-th most popular movie ~ (r + 30)^-1.2), every movie has
  at least one rating;
- user activity is log-normal with at least 20 ratings per user (a user rates at most half the movies);
- no user rates a movie twice; a user's timestamps strictly increase in file order, within the real
  set's time range;
- ratings follow roughly MovieLens's histogram, on the 0.5..5 half-star scale (1..5 for the ml-1m shape).

User ids are 1..n_users, movie ids a random sorted subset of 1..the real set's largest id.

Generation runs chunk by chunk of users, vectorized within a chunk: memory is O(chunk + movies) (peak
RSS ~360 MB), and ML-25M's 25 M rows take about half a minute. A user's distinct movies are drawn by
rejection: draw from the popularity distribution with replacement, drop repeats (the first draw of a
movie counts), redraw the users still short; so each user's set is a successive sample without
replacement.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

logger = logging.getLogger(__name__)

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRES = "(no genres listed)"

MIN_RATINGS_PER_USER = 20
_ZIPF_EXPONENT = 1.2
_ZIPF_OFFSET = 30.0
_ACTIVITY_SIGMA = 1.2  # sigma of the log-normal number of ratings per user
_MAX_SHARE_PER_USER = 0.5  # a user rates at most this share of the movies
_CHUNK_USERS = 8192
# Rating histograms, roughly MovieLens 20M's (half stars) and MovieLens 1M's (whole stars).
_HALF_STARS = (np.arange(1, 11) / 2, np.array([1.1, 3.3, 1.2, 7.2, 4.4, 21.3, 10.5, 26.6, 7.6, 14.5]))
_WHOLE_STARS = (np.arange(1, 6, dtype=np.float64), np.array([5.6, 10.8, 26.1, 34.9, 22.6]))
_README = """Synthetic data set in the MovieLens {name} shape, written by model.data.synth (seed {seed}).

{n_ratings:,} ratings of {n_movies:,} movies by {n_users:,} users; the ids, titles, genres, ratings and
timestamps are random. Only its size and skew resemble MovieLens (Zipf-like movie popularity,
log-normal user activity with at least {min_ratings} ratings per user).

Use it for scale and speed checks only, never for accuracy: no model can learn anything real from it.
"""


@dataclass(frozen=True)
class Shape:
    """The size of a MovieLens release.

    Attributes:
        name: the release ("ml-25m").
        n_users, n_movies, n_ratings: users, rated movies and ratings (each user has >= 20 ratings).
        half_stars: ratings on the 0.5..5 half-star scale, else whole stars 1..5.
        first_timestamp, last_timestamp: the time range of the ratings, seconds since the epoch.
        max_movie_id: movie ids are drawn from 1..max_movie_id (the real set's largest id).
    """

    name: str
    n_users: int
    n_movies: int
    n_ratings: int
    half_stars: bool
    first_timestamp: int
    last_timestamp: int
    max_movie_id: int


SHAPES = {
    s.name: s
    for s in (
        Shape("ml-1m", 6_040, 3_706, 1_000_209, False, 956_703_932, 1_046_454_590, 3_952),
        Shape("ml-10m", 69_878, 10_677, 10_000_054, True, 789_652_009, 1_231_131_736, 65_133),
        Shape("ml-20m", 138_493, 26_744, 20_000_263, True, 789_652_009, 1_427_784_002, 131_262),
        Shape("ml-25m", 162_541, 59_047, 25_000_095, True, 789_652_009, 1_574_327_703, 209_171),
    )
}


def write_synthetic(shape: str | Shape, dest: str | Path, seed: int = 0) -> Path:
    """Write a synthetic data set of `shape` (a key of `SHAPES`, or a `Shape`) into `dest` (created).

    The same shape and seed give the same bytes. Files already in `dest` with the same names are
    replaced (each file is written under a temporary name, then renamed).

    Returns:
        `dest` as a Path.
    """
    if isinstance(shape, str):
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; choose from {sorted(SHAPES)}")
        shape = SHAPES[shape]
    if not MIN_RATINGS_PER_USER * shape.n_users <= shape.n_ratings <= _max_per_user(shape) * shape.n_users:
        raise ValueError(
            f"{shape.n_ratings} ratings do not fit {shape.n_users} users of {shape.n_movies} movies"
        )
    if shape.n_movies > shape.max_movie_id:
        raise ValueError(f"{shape.n_movies} movies do not fit ids 1..{shape.max_movie_id}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    movie_ids = np.sort(rng.choice(shape.max_movie_id, size=shape.n_movies, replace=False) + 1)
    popularity = rng.permutation(shape.n_movies)  # popularity[r] = movie index of the r-th most popular
    weights = (np.arange(1, shape.n_movies + 1) + _ZIPF_OFFSET) ** -_ZIPF_EXPONENT
    cdf = np.cumsum(weights / weights.sum())
    counts = user_activity(shape, rng)
    # One rating of every movie, by a random user, so that every movie is rated.
    first_user = np.sort(rng.integers(0, shape.n_users, size=shape.n_movies))
    first_movie = rng.permutation(shape.n_movies)
    _atomic_write(dest / "movies.csv", lambda path: _write_movies(path, movie_ids, rng))
    _atomic_write(
        dest / "ratings.csv",
        lambda path: _write_ratings(
            path, shape, counts, (first_user, first_movie), cdf, popularity, movie_ids, rng
        ),
    )
    (dest / "README.txt").write_text(
        _README.format(
            name=shape.name,
            seed=seed,
            n_ratings=shape.n_ratings,
            n_movies=shape.n_movies,
            n_users=shape.n_users,
            min_ratings=MIN_RATINGS_PER_USER,
        )
    )
    logger.info("synthetic %s (seed %d) written to %s", shape.name, seed, dest)
    return dest


def _max_per_user(shape: Shape) -> int:
    return max(MIN_RATINGS_PER_USER, int(_MAX_SHARE_PER_USER * shape.n_movies))


def user_activity(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """(n_users,) int64 ratings per user: 20 + log-normal, at most half the movies, summing to n_ratings."""
    low, high = MIN_RATINGS_PER_USER, _max_per_user(shape)
    extra = shape.n_ratings / shape.n_users - low
    raw = rng.lognormal(np.log(max(extra, 1e-9)) - _ACTIVITY_SIGMA**2 / 2, _ACTIVITY_SIGMA, shape.n_users)

    def total(scale: float) -> int:
        return int(np.clip(np.floor(low + raw * scale), low, high).sum())

    lo, hi = 0.0, 1.0
    while total(hi) < shape.n_ratings:
        hi *= 2
    for _ in range(100):  # largest scale whose total does not exceed n_ratings
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(mid) <= shape.n_ratings else (lo, mid)
    counts = np.clip(np.floor(low + raw * lo), low, high).astype(np.int64)
    room = np.flatnonzero(counts < high)
    counts[rng.choice(room, size=shape.n_ratings - int(counts.sum()), replace=False)] += 1
    return counts


def _write_ratings(
    path: Path,
    shape: Shape,
    counts: np.ndarray,
    first: tuple[np.ndarray, np.ndarray],
    cdf: np.ndarray,
    popularity: np.ndarray,
    movie_ids: np.ndarray,
    rng: np.random.Generator,
) -> None:
    first_user, first_movie = first
    values, probabilities = _HALF_STARS if shape.half_stars else _WHOLE_STARS
    rating_cdf = np.cumsum(probabilities / probabilities.sum())
    schema = pa.schema(
        [("userId", pa.int32()), ("movieId", pa.int32()), ("rating", pa.float32()), ("timestamp", pa.int64())]
    )
    with path.open("wb") as out:
        out.write(b"userId,movieId,rating,timestamp\n")
        options = pacsv.WriteOptions(include_header=False, quoting_style="none")
        with pacsv.CSVWriter(out, schema, write_options=options) as writer:
            for start in range(0, shape.n_users, _CHUNK_USERS):
                stop = min(start + _CHUNK_USERS, shape.n_users)
                lo, hi = np.searchsorted(first_user, [start, stop])
                users, movies = distinct_movies(
                    counts[start:stop], first_user[lo:hi] - start, first_movie[lo:hi], cdf, popularity, rng
                )
                timestamps = _timestamps(counts[start:stop], shape, rng)
                ratings = values[np.searchsorted(rating_cdf, rng.random(users.shape[0]), side="right")]
                table = pa.table(
                    [
                        pa.array(users + start + 1, pa.int32()),
                        pa.array(movie_ids[movies], pa.int32()),
                        pa.array(ratings, pa.float32()),
                        pa.array(timestamps, pa.int64()),
                    ],
                    schema=schema,
                )
                writer.write_table(table)


def distinct_movies(
    counts: np.ndarray,
    fixed_user: np.ndarray,
    fixed_movie: np.ndarray,
    cdf: np.ndarray,
    popularity: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """counts[u] distinct movies for each user u of a chunk, the given (user, movie) pairs included.

    Args:
        counts: (c,) int movies per user.
        fixed_user, fixed_movie: (f,) int pairs every user keeps (distinct movies; at most counts[u] each).
        cdf: (n_movies,) float cumulative popularity by rank; popularity: (n_movies,) movie of each rank.

    Returns:
        (user, movie): (sum(counts),) int64 each, grouped by user in random order within a user.
    """
    n_movies = cdf.shape[0]
    kept = np.sort(fixed_user.astype(np.int64) * n_movies + fixed_movie)
    missing = counts - np.bincount(fixed_user, minlength=counts.shape[0])
    if (missing < 0).any():
        raise ValueError("a user has more fixed movies than ratings")
    factor = 1.2
    while (todo := np.flatnonzero(missing)).size:
        per_user = np.ceil(missing[todo] * factor).astype(np.int64) + 1
        users = np.repeat(todo, per_user)
        ranks = np.minimum(np.searchsorted(cdf, rng.random(users.shape[0]), side="right"), n_movies - 1)
        keys = users * n_movies + popularity[ranks]
        # First draw of each new (user, movie), in draw order (= grouped by user), the first missing[u] kept.
        unique, first = np.unique(keys, return_index=True)
        known = np.searchsorted(kept, unique)
        new = (known == kept.shape[0]) | (kept[np.minimum(known, kept.shape[0] - 1)] != unique)
        new_keys = unique[new][np.argsort(first[new])]
        owner = new_keys // n_movies
        group_start = np.searchsorted(owner, owner, side="left")
        take = new_keys[np.arange(new_keys.shape[0]) - group_start < missing[owner]]
        kept = np.sort(np.concatenate([kept, take]))
        missing -= np.bincount(take // n_movies, minlength=counts.shape[0])
        factor = min(factor * 2, 64.0)
    users = kept // n_movies
    shuffled = np.lexsort((rng.random(kept.shape[0]), users))
    return users[shuffled], kept[shuffled] % n_movies


def _timestamps(counts: np.ndarray, shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """(sum(counts),) int64: per user, strictly increasing seconds within the shape's time range.

    A user's ratings spread over a span (most users rate within a short time, a few over years), with
    exponential gaps; the k-th rating is at start + k + gap time, so no two of a user's are equal.
    """
    n = int(counts.sum())
    owner = np.repeat(np.arange(counts.shape[0]), counts)
    offsets = np.cumsum(counts) - counts
    range_s = shape.last_timestamp - shape.first_timestamp
    span = (rng.random(counts.shape[0]) ** 3 * range_s / 2).astype(np.int64)
    latest_start = shape.last_timestamp - span - counts
    start = shape.first_timestamp + (rng.random(counts.shape[0]) * (latest_start - shape.first_timestamp))
    gaps = rng.exponential(size=n + counts.shape[0])  # one extra gap per user after its last rating
    cumulative = np.cumsum(gaps)
    user_end = offsets + counts + np.arange(counts.shape[0])  # index of each user's extra gap
    user_first = user_end - counts
    base = np.where(user_first > 0, cumulative[np.maximum(user_first - 1, 0)], 0.0)
    rows = np.arange(n) + owner  # each row's gap index, skipping the extra gaps
    fraction = (cumulative[rows] - base[owner]) / (cumulative[user_end] - base)[owner]
    position = np.arange(n) - offsets[owner]
    return start.astype(np.int64)[owner] + position + np.floor(fraction * span[owner]).astype(np.int64)


def _write_movies(path: Path, movie_ids: np.ndarray, rng: np.random.Generator) -> None:
    n = movie_ids.shape[0]
    years = rng.integers(1920, 2020, size=n)
    titles = np.char.add(
        np.char.add(np.char.add("Synthetic Movie ", movie_ids.astype(str)), " ("),
        np.char.add(years.astype(str), ")"),
    )
    # 1 to 3 distinct genres per movie as a bit mask, 1% with none; a string per distinct mask.
    n_genres = rng.choice([0, 1, 2, 3], size=n, p=[0.01, 0.39, 0.35, 0.25])
    order = np.argsort(rng.random((n, len(GENRES))), axis=1)
    chosen = np.arange(3)[None, :] < n_genres[:, None]
    masks = np.where(chosen, np.left_shift(1, order[:, :3]), 0).sum(axis=1)
    distinct, inverse = np.unique(masks, return_inverse=True)
    names = np.array(
        ["|".join(g for b, g in enumerate(GENRES) if m >> b & 1) or NO_GENRES for m in distinct.tolist()],
        dtype=object,
    )
    table = pa.table({"movieId": pa.array(movie_ids, pa.int32()), "title": titles, "genres": names[inverse]})
    with path.open("wb") as out:
        out.write(b"movieId,title,genres\n")
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
