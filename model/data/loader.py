"""`DataLoader`: reads a MovieLens directory into a `Dataset` of dense indices plus the raw-id maps."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from model.columns import LINE, MOVIE_ID, RATING, TIMESTAMP, USER_ID
from model.data.errors import DataFormatError
from model.data.formats import (
    FORMATS,
    MOVIE_FILES,
    READERS,
    FixedTest,
    RawData,
    check_data_dir,
    detect_format,
)
from model.data.interactions import Interactions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """A loaded MovieLens data set as implicit feedback.

    Attributes:
        name: data set name (directory name, or the NCF file stem).
        format: the layout it was read from (`dat`, `csv`, `ml100k`, `ncf`).
        user_ids: (n_users,) int64 raw user id of each `user_idx` (sorted ascending).
        item_ids: (n_items,) int64 raw movie id of each `item_idx` (sorted ascending; rated movies only).
        user_idx, item_idx: (n,) int32 one positive interaction per rating kept.
        timestamp: (n,) int64 seconds since the epoch.
        order: (n,) int64 position in the source files; ties on timestamp are broken by it (later = newer).
        movies: movie metadata with raw ids (movie_id, title, year, genres) or None.
        files: the files read.
        fixed_test: a test split given by the files (NCF layout), else None.
        unlisted_movie_ids: (k,) int64 raw ids (sorted) of rated movies the movie metadata does not list:
            they have no title, year or genres. Empty when the layout has no metadata file at all.
    """

    name: str
    format: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_idx: np.ndarray
    item_idx: np.ndarray
    timestamp: np.ndarray
    order: np.ndarray
    movies: pd.DataFrame | None
    files: tuple[Path, ...]
    fixed_test: FixedTest | None = None
    unlisted_movie_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def n_interactions(self) -> int:
        return int(self.user_idx.shape[0])

    def interactions(self) -> Interactions:
        """Every interaction (what the production refit trains on)."""
        return Interactions(self.user_idx, self.item_idx, self.n_users, self.n_items)

    def to_user_idx(self, user_id: np.ndarray) -> np.ndarray:
        """Raw user ids -> dense indices, int32; -1 where the id is unknown."""
        return _lookup(self.user_ids, user_id)

    def to_item_idx(self, movie_id: np.ndarray) -> np.ndarray:
        """Raw movie ids -> dense indices, int32; -1 where the id is unknown."""
        return _lookup(self.item_ids, movie_id)


def _lookup(sorted_ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    raw = np.asarray(raw, dtype=np.int64)
    pos = np.searchsorted(sorted_ids, raw)
    pos_clipped = np.minimum(pos, len(sorted_ids) - 1)
    found = (pos < len(sorted_ids)) & (sorted_ids[pos_clipped] == raw)
    return np.where(found, pos_clipped, -1).astype(np.int32)


class DataLoader:
    """Reads MovieLens files (no database) and turns ratings into implicit feedback.

    Args:
        data_dir: directory holding one supported layout (see `model.data.formats`).
        format: `auto` (detect from file names), `dat`, `csv`, `ml100k` or `ncf`.
        min_rating: keep only ratings >= this value as positives; None (default) keeps every rating, as
            the NCF paper does.
        encoding: override the layout's encoding (Latin-1 for `dat`/`ml100k`, UTF-8 for `csv`/`ncf`).

    Negative sampling lives in `model.data.sampling` and takes the `Interactions` this produces.
    """

    def __init__(
        self,
        data_dir: str | Path,
        format: str = "auto",
        min_rating: float | None = None,
        encoding: str | None = None,
    ) -> None:
        if format != "auto" and format not in FORMATS:
            raise ValueError(f"format must be 'auto' or one of {FORMATS}, got {format!r}")
        self.data_dir = Path(data_dir)
        self.format = format
        self.min_rating = min_rating
        self.encoding = encoding

    def load(self) -> Dataset:
        """Parse and validate the files; raises `DataFormatError` on any malformed input."""
        start = time.perf_counter()
        check_data_dir(self.data_dir)
        fmt = detect_format(self.data_dir) if self.format == "auto" else self.format
        reader = READERS[fmt]
        raw = (
            reader(self.data_dir) if self.encoding is None else reader(self.data_dir, encoding=self.encoding)
        )
        dataset = self._to_dataset(raw)
        logger.info(
            "loaded %s (%s): %d users, %d items, %d interactions in %.2fs",
            dataset.name,
            fmt,
            dataset.n_users,
            dataset.n_items,
            dataset.n_interactions,
            time.perf_counter() - start,
        )
        return dataset

    def _to_dataset(self, raw: RawData) -> Dataset:
        ratings = raw.ratings
        _check_duplicates(raw)
        if self.min_rating is not None:
            ratings = ratings[ratings[RATING].to_numpy() >= self.min_rating]
            if ratings.empty:
                raise DataFormatError(raw.files[0], f"no rating >= min_rating={self.min_rating}")
        if raw.format == "ncf":
            # The authors' ids are already dense and 0-based; keep them as they are.
            user_ids = np.arange(int(ratings[USER_ID].max()) + 1, dtype=np.int64)
            n_items = int(max(ratings[MOVIE_ID].max(), raw.fixed_test.negatives.max())) + 1
            item_ids = np.arange(n_items, dtype=np.int64)
        else:
            user_ids = np.unique(ratings[USER_ID].to_numpy())
            item_ids = np.unique(ratings[MOVIE_ID].to_numpy())
        user_idx = _lookup(user_ids, ratings[USER_ID].to_numpy())
        item_idx = _lookup(item_ids, ratings[MOVIE_ID].to_numpy())
        timestamp = ratings[TIMESTAMP].to_numpy(dtype=np.int64)
        order = ratings[LINE].to_numpy(dtype=np.int64)
        # Sort by user, then time, then file position: a user's rows end with their newest interaction.
        perm = np.lexsort((order, timestamp, user_idx))
        return Dataset(
            name=raw.name,
            format=raw.format,
            user_ids=user_ids,
            item_ids=item_ids,
            user_idx=user_idx[perm],
            item_idx=item_idx[perm],
            timestamp=timestamp[perm],
            order=order[perm],
            movies=raw.movies,
            files=raw.files,
            fixed_test=raw.fixed_test,
            unlisted_movie_ids=_unlisted_movies(raw, item_ids),
        )


def _unlisted_movies(raw: RawData, item_ids: np.ndarray) -> np.ndarray:
    """Raw ids of rated movies (`item_ids`, sorted) missing from the movie metadata; logs one warning."""
    if raw.movies is None:
        return np.empty(0, dtype=np.int64)
    unlisted = np.setdiff1d(item_ids, raw.movies[MOVIE_ID].to_numpy(dtype=np.int64))
    if unlisted.size:
        logger.warning(
            "%d rated movies are missing from %s (e.g. %s): they have no title, year or genres",
            unlisted.size,
            MOVIE_FILES[raw.format],
            ", ".join(str(i) for i in unlisted[:5].tolist()),
        )
    return unlisted


def _check_duplicates(raw: RawData) -> None:
    ratings = raw.ratings
    dup = ratings.duplicated(subset=[USER_ID, MOVIE_ID], keep="first").to_numpy()
    if not dup.any():
        return
    i = int(np.flatnonzero(dup)[0])
    line = int(ratings[LINE].iloc[i])
    path = raw.files[0]
    if raw.format == "ncf":
        n_train_lines = int((ratings.index < len(ratings) - len(raw.fixed_test.user_id)).sum())
        if i >= n_train_lines:
            path, line = raw.files[1], i - n_train_lines + 1
    raise DataFormatError(
        path,
        f"duplicate rating of movie {ratings[MOVIE_ID].iloc[i]} by user {ratings[USER_ID].iloc[i]}",
        line,
    )
