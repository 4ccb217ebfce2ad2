"""Request-time rules over a ranked list and the fold-in of a new user, both O(list length) per request.

`CatalogFacts` holds what the rules read per movie position, precomputed once when a run is loaded: genre
membership (one boolean row per genre of the run) and release year. `NeighbourLists` holds the run's
similar-movie lists (similar_movies.parquet) as flat arrays. `fold_in` recommends for a set of liked
movies from those lists; the offline benchmark (bench/foldin.py) measures this very function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

NO_YEAR = np.iinfo(np.int32).min


@dataclass(frozen=True)
class CatalogFacts:
    """Per movie position: `genres` name -> row of `members` ((n_genres, n_movies) bool), `years`
    (n_movies,) int32 (`NO_YEAR` when absent), `popular_rank` (n_movies,) int64 rank in the run's
    popular list (0 = most popular; movies outside it rank after every listed one)."""

    genres: dict[str, int]
    members: np.ndarray
    years: np.ndarray
    popular_rank: np.ndarray

    @classmethod
    def build(
        cls, genre_lists: list[list[str]], years: list[int | None], popular_pos: np.ndarray
    ) -> CatalogFacts:
        """From each movie's genres and year (in movie position order) and the popular list's positions."""
        names = sorted({g for genres in genre_lists for g in genres})
        index = {name: i for i, name in enumerate(names)}
        members = np.zeros((len(names), len(genre_lists)), dtype=bool)
        lengths = np.fromiter((len(g) for g in genre_lists), dtype=np.int64, count=len(genre_lists))
        flat = [index[g] for genres in genre_lists for g in genres]
        members[np.asarray(flat, dtype=np.int64), np.repeat(np.arange(len(genre_lists)), lengths)] = True
        year_array = np.array([NO_YEAR if y is None else y for y in years], dtype=np.int32)
        rank = np.full(len(genre_lists), len(genre_lists), dtype=np.int64)
        rank[popular_pos] = np.arange(len(popular_pos))
        return cls(index, members, year_array, rank)


@dataclass(frozen=True)
class Rules:
    """Request-time rules: keep movies of `genre`, drop those of `exclude_genre` and the positions in
    `exclude`, keep release years within [year_from, year_to] (a movie without a year fails a year rule)."""

    genre: int | None = None
    exclude_genre: int | None = None
    exclude: np.ndarray | None = None
    year_from: int | None = None
    year_to: int | None = None

    @property
    def active(self) -> bool:
        values = (self.genre, self.exclude_genre, self.exclude, self.year_from, self.year_to)
        return any(v is not None for v in values)

    def allowed(self, facts: CatalogFacts, movie_pos: np.ndarray) -> np.ndarray:
        """(k,) bool: which of the (k,) movie positions pass every rule."""
        keep = np.ones(len(movie_pos), dtype=bool)
        if self.genre is not None:
            keep &= facts.members[self.genre, movie_pos]
        if self.exclude_genre is not None:
            keep &= ~facts.members[self.exclude_genre, movie_pos]
        if self.exclude is not None and len(self.exclude):
            keep &= ~np.isin(movie_pos, self.exclude)
        if self.year_from is not None or self.year_to is not None:
            years = facts.years[movie_pos]
            keep &= years != NO_YEAR
            if self.year_from is not None:
                keep &= years >= self.year_from
            if self.year_to is not None:
                keep &= years <= self.year_to
        return keep


@dataclass(frozen=True)
class NeighbourLists:
    """Each movie position's most similar movies: rows offsets[p]:offsets[p + 1] of `movie_pos` / `scores`
    (float64 short decimals), best first."""

    offsets: np.ndarray
    movie_pos: np.ndarray
    scores: np.ndarray

    def of(self, pos: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self.offsets[pos], self.offsets[pos + 1]
        return self.movie_pos[start:stop], self.scores[start:stop]


def fold_in(
    lists: NeighbourLists,
    popular_pos: np.ndarray,
    popular_rank: np.ndarray,
    liked: np.ndarray,
    n: int,
    allowed: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Top n for a new user who liked the movie positions `liked`, without retraining.

    A movie's score is the sum of its similarity to each liked movie over the liked movies' neighbour lists
    (movies in no list score 0); ties go to the more popular movie. Liked movies and those `allowed` rejects
    are never recommended. When fewer than n movies are scored, the popular list (in its order, same rules)
    fills the rest with score 0. Work: O(sum of the liked movies' list lengths + the popular list).

    Returns:
        (positions (k,) int64, scores (k,) float64, how many came from the neighbour lists), k <= n.
    """
    liked = np.unique(np.asarray(liked, dtype=np.int64))
    starts, stops = lists.offsets[liked], lists.offsets[liked + 1]
    counts = stops - starts
    total = int(counts.sum())
    if total:
        rows = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
        candidates, inverse = np.unique(lists.movie_pos[rows], return_inverse=True)
        sums = np.bincount(inverse, weights=lists.scores[rows])
        keep = ~np.isin(candidates, liked) & allowed(candidates)
        candidates, sums = candidates[keep].astype(np.int64), sums[keep]
        order = np.lexsort((candidates, popular_rank[candidates], -sums))[:n]
        chosen, scores = candidates[order], sums[order]
    else:
        chosen, scores = np.empty(0, np.int64), np.empty(0, np.float64)
    from_lists = len(chosen)
    if from_lists < n:
        pool = popular_pos.astype(np.int64)
        pool = pool[~np.isin(pool, liked) & ~np.isin(pool, chosen)]
        fill = pool[allowed(pool)][: n - from_lists]
        chosen = np.concatenate([chosen, fill])
        scores = np.concatenate([scores, np.zeros(len(fill))])
    return chosen, scores, from_lists
