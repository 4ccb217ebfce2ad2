"""`PositiveLookup`: vectorized "did user u interact with item i" against the sparse set of rated pairs.

Memory is O(interactions), never O(users x items): the pairs are kept as sorted unique int64 keys
`user_idx * n_items + item_idx` (8 bytes per pair) plus a one-hash Bloom filter of 16 to 32 bits per
pair. A query first reads its filter bit: a clear bit is a certain "no" (most queries, as most (user,
item) cells are unrated); only the rest, the true positives and a few percent of the others, pay for a
binary search over the keys. When that many bits cover every cell (users x items <= 32 x pairs, as on
ML-1M and ML-100K) the filter is a bitmap of the cells instead, one bit per cell, and a query reads
nothing else. Answers are exact either way.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from model.data.interactions import Interactions

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing multiplier (2^64 / golden ratio)
_FILTER_BITS_PER_KEY = 16  # at least this many filter bits per key (a power of two in total)
_QUERY_BLOCK = 1 << 22  # queries per block: bounds the temporaries of `contains` to ~100 MB


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-D array (np.sort and a mask: NumPy 2.4's np.unique hashes and is
    ~15x slower on int64 keys)."""
    values = np.sort(values)
    keep = np.empty(values.shape[0], dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


class PositiveLookup:
    """Exact membership test of (user_idx, item_idx) pairs in a fixed set of interactions.

    Args:
        interactions: the pairs that count as positives (duplicates allowed).
    """

    def __init__(self, interactions: Interactions) -> None:
        keys = interactions.user_idx.astype(np.int64) * interactions.n_items + interactions.item_idx
        self._init(unique_sorted(keys), interactions.n_users, interactions.n_items)

    @classmethod
    def from_csr(cls, matrix: sp.csr_matrix) -> PositiveLookup:
        """The stored cells of a (n_users, n_items) CSR matrix as positives (explicit zeros count too)."""
        matrix = sp.csr_matrix(matrix)
        n_users, n_items = matrix.shape
        rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(matrix.indptr))
        lookup = cls.__new__(cls)
        lookup._init(unique_sorted(rows * n_items + matrix.indices), n_users, n_items)
        return lookup

    def _init(self, keys: np.ndarray, n_users: int, n_items: int) -> None:
        """`keys`: (nnz,) int64 sorted, unique."""
        self.n_items = int(n_items)
        self._keys = keys
        bits = max(13, int(np.ceil(np.log2(max(1, keys.shape[0]) * _FILTER_BITS_PER_KEY))))
        cells = int(n_users) * self.n_items
        # A bitmap of every cell when it takes at most as many bits as the largest hashed filter.
        self._exact = cells <= 2 * _FILTER_BITS_PER_KEY * keys.shape[0]
        self._shift = np.uint64(64 - bits)
        self._filter = np.zeros(-(-cells // 8) if self._exact else 1 << (bits - 3), dtype=np.uint8)
        byte, mask = self._slot(keys)
        np.bitwise_or.at(self._filter, byte, mask)

    def __len__(self) -> int:
        return int(self._keys.shape[0])

    def _slot(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filter byte index (intp) and bit mask (uint8) of each key."""
        bit = keys.astype(np.uint64) if self._exact else (keys.astype(np.uint64) * _GOLDEN) >> self._shift
        return (bit >> np.uint64(3)).astype(np.intp), np.left_shift(1, bit & np.uint64(7), dtype=np.uint8)

    def contains(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """(n,) bool: True where (user_idx[j], item_idx[j]) is a positive; inputs (n,) int."""
        user_idx, item_idx = np.asarray(user_idx), np.asarray(item_idx)
        out = np.zeros(user_idx.shape[0], dtype=bool)
        for start in range(0, user_idx.shape[0], _QUERY_BLOCK):
            keys = user_idx[start : start + _QUERY_BLOCK].astype(np.int64) * self.n_items
            keys += item_idx[start : start + _QUERY_BLOCK]
            byte, mask = self._slot(keys)
            hit = (self._filter[byte] & mask).astype(bool)
            if self._exact:
                out[start : start + _QUERY_BLOCK] = hit
                continue
            maybe = np.flatnonzero(hit)
            if maybe.size:
                keys = keys[maybe]
                pos = np.minimum(np.searchsorted(self._keys, keys), self._keys.shape[0] - 1)
                out[start + maybe] = self._keys[pos] == keys
        return out
