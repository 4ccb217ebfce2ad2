"""Scoring on a Ray cluster (`ncf-batch run --executor ray`): shards of users on a Ray Data actor pool.

The driver (the job's process) cuts the users into shards of consecutive dense indices and builds a Ray
dataset of one row per shard, carrying the shard's own slice of the rated set as CSR (`indptr` rebased to
0, `indices`). `map_batches` runs `ShardScorer` on an actor pool (`concurrency` = `ray.workers`): each
actor loads the saved model once (`model.base.load_model` from the run's staged `model/` directory, which
must be on storage every node sees, as the output volume is on Kubernetes), scores its shard chunk by chunk
with the same `recommendation_table` as the local executor, and writes the shard's part
`recommendations/part-<shard>.parquet` (one row group per chunk, sorted by user) under a temporary name,
then renames it into place. When the job wants the full-ranking test figures from the scoring pass (no
refit), each shard also carries its users' held-out items and returns their ranks from the same scores.
Ray schedules the shards, restarts a dead actor and retries its shard (`max_restarts`,
`max_task_retries`); a retried shard rewrites the same part name, so a retry never duplicates rows, and a
half-written temporary file of a killed attempt is never read and is deleted before publishing.

The driver checks that every shard answered exactly once and that `recommendations/` holds exactly those
parts with the row counts their footers state; then the job writes the served arrays from the parts and
publishes as for the local executor (LATEST flips only after every part is written and checksummed).

Per-shard slices rather than one rated CSR held by every actor: an actor's memory then grows with its
shard, not with all users, and a retried shard brings its own data along.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from batch.contract import (
    MODEL_DIR,
    RECOMMENDATIONS_DIR,
    RECOMMENDATIONS_SCHEMA,
    RunWriter,
    part_name,
)
from batch.recommend import recommendation_table
from batch.settings import RunSettings
from model.data import Dataset
from model.data.split import HeldOut

logger = logging.getLogger(__name__)

TMP_DIR = ".parts-tmp"  # inside the staging directory; removed before publishing
KILL_ENV = "NCF_TEST_KILL_SCORER"  # test hook: "<marker file>", see ShardScorer
SHARD, START, STOP, INDPTR, INDICES, HELD = "shard", "start", "stop", "indptr", "indices", "held"


@dataclass(frozen=True)
class ScoringReport:
    """What the distributed scoring step did: rows written, shards, actors, the actors' peak RSS, and the
    held-out items' full-ranking ranks (in `held`'s order) when asked for."""

    rows: int
    shards: int
    workers: int
    worker_peak_rss_mb: float
    ranks: np.ndarray | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "executor": "ray",
            "rows": self.rows,
            "shards": self.shards,
            "workers": self.workers,
            "worker_peak_rss_mb": self.worker_peak_rss_mb,
        }


def shard_bounds(n_users: int, n_shards: int) -> np.ndarray:
    """(k + 1,) int64 boundaries of at most `n_shards` non-empty shards of consecutive users."""
    return np.unique(np.linspace(0, n_users, min(n_shards, max(n_users, 1)) + 1).round().astype(np.int64))


def shard_tables(
    known: sp.csr_matrix, bounds: np.ndarray, held_of_user: np.ndarray | None = None
) -> list[pa.Table]:
    """One one-row table per shard: its number, user range, its slice of the rated CSR and, with
    `held_of_user` ((n_users,) int64 held-out item per user, -1 for none), its users' held items (so Ray
    makes each shard its own block, and the actor pool spreads them)."""
    tables = []
    for shard, (start, stop) in enumerate(itertools.pairwise(bounds)):
        indptr = known.indptr[start : stop + 1].astype(np.int64)
        indices = known.indices[indptr[0] : indptr[-1]].astype(np.int32)
        columns = {
            SHARD: pa.array([shard], pa.int32()),
            START: pa.array([start], pa.int64()),
            STOP: pa.array([stop], pa.int64()),
            INDPTR: pa.array([indptr - indptr[0]], pa.list_(pa.int64())),
            INDICES: pa.array([indices], pa.list_(pa.int32())),
        }
        if held_of_user is not None:
            columns[HELD] = pa.array([held_of_user[start:stop]], pa.list_(pa.int64()))
        tables.append(pa.table(columns))
    return tables


class ShardScorer:
    """Ray Data callable class: one actor, the model loaded once; each call scores one shard and writes its
    part. Returns one row per shard: shard, part (manifest key), rows, the actor's peak RSS in MB and the
    ranks of the shard's held-out items (`HELD`, when the shard carries them; empty otherwise).

    Test hook: with `kill_marker` set and that file absent, the actor creates it and exits hard
    (`os._exit`) after the first chunk of its first shard is half-written, as a killed worker would.
    """

    def __init__(
        self, model_dir: str, staging: str, top_n: int, chunk_users: int, kill_marker: str | None = None
    ) -> None:
        from model.base import load_id_maps, load_model

        self.model = load_model(model_dir)
        self.user_ids, self.item_ids = load_id_maps(model_dir)
        self.staging = Path(staging)
        self.top_n, self.chunk_users = top_n, chunk_users
        self.kill_marker = Path(kill_marker) if kill_marker else None

    def __call__(self, batch: pa.Table) -> pa.Table:
        out: dict[str, list] = {SHARD: [], "part": [], "rows": [], "peak_rss_mb": [], "ranks": []}
        for row in batch.to_pylist():
            shard = int(row[SHARD])
            rows, ranks = self._score_shard(shard, row)
            out[SHARD].append(shard)
            out["part"].append(part_name(shard))
            out["rows"].append(rows)
            out["peak_rss_mb"].append(_peak_rss_mb())
            out["ranks"].append(ranks)
        return pa.table(
            {
                SHARD: pa.array(out[SHARD], pa.int32()),
                "part": pa.array(out["part"], pa.string()),
                "rows": pa.array(out["rows"], pa.int64()),
                "peak_rss_mb": pa.array(out["peak_rss_mb"], pa.float64()),
                "ranks": pa.array(out["ranks"], pa.list_(pa.int64())),
            }
        )

    def _score_shard(self, shard: int, row: dict[str, Any]) -> tuple[int, np.ndarray]:
        start, stop = int(row[START]), int(row[STOP])
        indptr = np.asarray(row[INDPTR], np.int64)
        indices = np.asarray(row[INDICES], np.int32)
        held = None if row.get(HELD) is None else np.asarray(row[HELD], np.int64)
        shard_ranks = []
        rated = sp.csr_matrix(
            (np.ones(indices.shape[0], np.float32), indices, indptr), shape=(stop - start, self.model.n_items)
        )
        final = self.staging / part_name(shard)
        tmp = self.staging / TMP_DIR / f"{final.name}.{uuid.uuid4().hex}"
        rows = 0
        with pq.ParquetWriter(tmp, RECOMMENDATIONS_SCHEMA) as writer:
            for first in range(start, stop, self.chunk_users):
                users = np.arange(first, min(first + self.chunk_users, stop))
                local = slice(users[0] - start, users[-1] + 1 - start)
                table, ranks = recommendation_table(
                    self.model,
                    users,
                    rated[local],
                    self.top_n,
                    self.user_ids,
                    self.item_ids,
                    None if held is None else held[local],
                )
                writer.write_table(table)
                rows += table.num_rows
                if ranks is not None:
                    shard_ranks.append(ranks)
                self._maybe_die()
        os.replace(tmp, final)
        return rows, np.concatenate(shard_ranks) if shard_ranks else np.zeros(0, np.int64)

    def _maybe_die(self) -> None:
        if self.kill_marker is not None and not self.kill_marker.exists():
            self.kill_marker.touch()
            os._exit(1)


def _peak_rss_mb() -> float:
    from batch.steps import peak_rss_mb

    return peak_rss_mb()


def write_recommendations_ray(
    writer: RunWriter,
    dataset: Dataset,
    known: sp.csr_matrix,
    settings: RunSettings,
    held: HeldOut | None = None,
) -> ScoringReport:
    """Score every user on the Ray cluster into `recommendations/` of the staged run; see the module
    docstring. The model must already be saved in the staging directory's `model/`. With `held` (as for
    `batch.job.write_recommendations`) the actors also rank each held-out item among the user's unrated
    movies from the same scores; the report's `ranks` are in `held`'s order.

    Raises:
        RuntimeError: a shard is missing or answered twice, or the parts on disk do not match the shards.
        ray.exceptions.RayError: a shard failed beyond `ray.max_retries` (nothing is published).
    """
    import ray

    options = settings.ray
    started = not ray.is_initialized()
    if started:
        ray.init(address=options.address, include_dashboard=False, logging_level=logging.WARNING)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        bounds = shard_bounds(dataset.n_users, options.workers * options.shards_per_worker)
        held_of_user = None
        if held is not None:
            held_of_user = np.full(dataset.n_users, -1, dtype=np.int64)
            held_of_user[held.user_idx] = held.item_idx
        n_shards = len(bounds) - 1
        logger.info(
            "scoring %d users x %d movies on Ray: %d shards, %d actors x %g CPU, chunks of %d users",
            dataset.n_users,
            dataset.n_items,
            n_shards,
            options.workers,
            options.cpus_per_worker,
            settings.chunk_users,
        )
        (writer.staging / RECOMMENDATIONS_DIR).mkdir()
        (writer.staging / TMP_DIR).mkdir()
        results = (
            ray.data.from_arrow(shard_tables(known, bounds, held_of_user))
            .map_batches(
                ShardScorer,
                batch_size=1,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=options.workers),
                num_cpus=options.cpus_per_worker,
                # Ray 2.60 takes these only as `ray_remote_args` (deprecated, hence ray < 2.64)
                max_restarts=options.max_retries,
                max_task_retries=options.max_retries,
                fn_constructor_kwargs={
                    "model_dir": str(writer.path(MODEL_DIR)),
                    "staging": str(writer.staging),
                    "top_n": settings.top_n,
                    "chunk_users": settings.chunk_users,
                    "kill_marker": os.environ.get(KILL_ENV),
                },
            )
            .take_all()
        )
    finally:
        if started:
            ray.shutdown()
    shutil.rmtree(writer.staging / TMP_DIR)
    rows = _check_parts(writer.staging, results, n_shards)
    ranks = None
    if held is not None:
        ranks_of_user = np.concatenate(
            [np.asarray(r["ranks"], np.int64) for r in sorted(results, key=lambda r: int(r[SHARD]))]
        )
        if ranks_of_user.shape[0] != dataset.n_users:
            raise RuntimeError(f"ranks for {ranks_of_user.shape[0]} users, expected {dataset.n_users}")
        ranks = ranks_of_user[held.user_idx]
    report = ScoringReport(
        rows=rows,
        shards=n_shards,
        workers=options.workers,
        worker_peak_rss_mb=max(float(r["peak_rss_mb"]) for r in results),
        ranks=ranks,
    )
    logger.info("scored on Ray: %s", report.as_dict())
    return report


def _check_parts(staging: Path, results: list[dict[str, Any]], n_shards: int) -> int:
    """Every shard answered exactly once, `recommendations/` holds exactly their parts, and each part's
    footer has the rows its shard reported. Returns the total rows."""
    shards = sorted(int(r[SHARD]) for r in results)
    if shards != list(range(n_shards)):
        raise RuntimeError(f"scoring answered for shards {shards}, expected 0..{n_shards - 1} once each")
    expected = {part_name(shard) for shard in shards}
    present = {f"{RECOMMENDATIONS_DIR}/{p.name}" for p in (staging / RECOMMENDATIONS_DIR).iterdir()}
    if present != expected:
        raise RuntimeError(f"parts on disk {sorted(present ^ expected)} do not match the shards")
    for r in results:
        if pq.ParquetFile(staging / r["part"]).metadata.num_rows != int(r["rows"]):
            raise RuntimeError(f"{r['part']}: row count differs from what its shard reported")
    return sum(int(r["rows"]) for r in results)
