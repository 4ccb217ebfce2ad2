"""Scoring on a Ray cluster (`ncf-batch run --executor ray`): shards of users on a pool of Ray actors.

`ScorerPool` starts `ray.workers` `ShardScorer` actors (Ray Core actors, `ray.cpus_per_worker` CPUs each).
The job starts the pool before it loads the data and trains, so the actors' start (a Python process each,
the engine's imports: TensorFlow for the Keras engine) overlaps the training instead of adding to the
scoring step. Once the data is loaded, the job has each actor build the run's model untrained at the data's
sizes and compile its scorer (`ScorerPool.prepare`), also while the model trains; an actor then sets the
trained parameters into that model on its first shard (`NCFModel.load_weights`; any other model, or an
actor Ray restarted, loads the saved model instead), once. The local executor's scorer is likewise
compiled before its scoring step, by the quality gate's checks of the published model.

The driver (the job's process) cuts the users into shards of consecutive dense indices, each carrying its
own slice of the rated set as CSR (`indptr` rebased to 0, `indices`), and hands them to the actors as they
become free (one shard in flight per actor, so faster actors take more shards). An actor loads the saved
model (`model.base.load_model` from the run's staged `model/` directory, which must be on storage every
node sees, as the output volume is on Kubernetes), scores its shard chunk by chunk with the local
executor's `batch.recommend.chunk_lists` (top `depth` candidates and their first `top_n` from one scoring),
and writes the shard's two parts, `candidates/part-<shard>.parquet` and
`recommendations/part-<shard>.parquet` (one row group per chunk, sorted by user), under temporary names,
then renames them into place. When the job wants the full-ranking test figures from the scoring pass (no
refit), each shard also carries its users' held-out items and returns their ranks from the same scores.
Ray restarts a dead actor and retries its shard (`max_restarts`, `max_task_retries` = `ray.max_retries`);
a retried shard rewrites the same part names, so a retry never duplicates rows, and a half-written
temporary file of a killed attempt is never read and is deleted before publishing.

The driver checks that every shard answered exactly once and that `candidates/` and `recommendations/`
hold exactly those parts with the row counts their footers state; then the job writes the served arrays
from the candidate parts, writes the driver's own outputs (movies, popular, similar movies, history) and
publishes as for the local executor (LATEST flips only after every part is written and checksummed).

Per-shard slices rather than one rated CSR held by every actor: an actor's memory then grows with its
shard, not with all users, and a retried shard brings its own data along.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import shutil
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import pyarrow.parquet as pq
import scipy.sparse as sp

from batch.contract import (
    CANDIDATES,
    LIST_TABLES,
    MODEL_DIR,
    RECOMMENDATIONS,
    RECOMMENDATIONS_SCHEMA,
    RunWriter,
    dataset_dir,
    part_name,
)
from batch.recommend import ListWriter, chunk_lists, scored_chunks
from batch.settings import RunSettings
from model.base import load_id_maps, load_model
from model.data import Dataset
from model.data.split import HeldOut
from model.ncf.base import NCFModel
from model.registry import MODELS, build_model
from model.topn import available_cores

logger = logging.getLogger(__name__)

TMP_DIR = ".parts-tmp"  # inside the staging directory; removed before publishing
KILL_ENV = "NCF_TEST_KILL_SCORER"  # test hook: "<marker file>", see ShardScorer
# wall-clock stamps (time.time()) each shard's answer carries: its actor's start and end of its
# constructor, the call's start, and the shard's start (after loading the model, on an actor's first call)
# and end of scoring (`ScoringReport.phases`)
STAMPS = ("actor_started", "actor_ready", "call_started", "shard_started", "shard_finished")
SHARD = "shard"


@dataclass(frozen=True)
class ScoringReport:
    """What the distributed scoring step did: recommendation and candidate rows written, shards, actors,
    their compute threads each, whether every shard was scored by a model its actor had prepared (compiled
    before the step), the actors' peak RSS, where the time went, and the held-out items'
    full-ranking ranks (in `held`'s order) when asked for."""

    rows: int
    candidate_rows: int
    shards: int
    workers: int
    threads_per_worker: int
    prepared: bool
    worker_peak_rss_mb: float
    phases: dict[str, float] = field(default_factory=dict)
    ranks: np.ndarray | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "executor": "ray",
            "rows": self.rows,
            "candidate_rows": self.candidate_rows,
            "shards": self.shards,
            "workers": self.workers,
            "threads_per_worker": self.threads_per_worker,
            "prepared": self.prepared,
            "worker_peak_rss_mb": self.worker_peak_rss_mb,
            "phases": self.phases,
        }


def scoring_phases(
    pool_started: float, called: float, finished: float, results: list[dict[str, Any]]
) -> dict[str, float]:
    """Where the time went, in seconds. `pool_start_s`: from starting the pool until its last actor had
    run its constructor (process start, the engine's imports), wherever that falls; then, from `called`
    (the scoring step's start) to `finished`: `wall_s`; `to_first_shard_s` until the first shard began
    scoring (waiting for actors still starting, and the model load); `model_load_s` the slowest actor's
    model load; `scoring_s` from the first shard's start to the last one's end; `shard_busy_s` the
    shards' summed scoring time; `tail_s` after the last shard. Actors a failure restarted count too."""
    column = {key: np.asarray([float(r[key]) for r in results]) for key in STAMPS}
    first, last = float(column["shard_started"].min()), float(column["shard_finished"].max())
    return {
        "pool_start_s": round(float(column["actor_ready"].max()) - pool_started, 3),
        "wall_s": round(finished - called, 3),
        "to_first_shard_s": round(first - called, 3),
        "model_load_s": round(float(np.max(column["shard_started"] - column["call_started"])), 3),
        "scoring_s": round(last - first, 3),
        "shard_busy_s": round(float(np.sum(column["shard_finished"] - column["shard_started"])), 3),
        "tail_s": round(finished - last, 3),
    }


def shard_bounds(n_users: int, n_shards: int) -> np.ndarray:
    """(k + 1,) int64 boundaries of at most `n_shards` non-empty shards of consecutive users."""
    return np.unique(np.linspace(0, n_users, min(n_shards, max(n_users, 1)) + 1).round().astype(np.int64))


@dataclass(frozen=True)
class Shard:
    """One shard's work: its number, user range [start, stop), its slice of the rated CSR (`indptr`
    rebased to 0) and, when ranks are wanted, its users' held-out items (-1 for none)."""

    shard: int
    start: int
    stop: int
    indptr: np.ndarray
    indices: np.ndarray
    held: np.ndarray | None = None


def make_shards(
    known: sp.csr_matrix, bounds: np.ndarray, held_of_user: np.ndarray | None = None
) -> list[Shard]:
    """The shards of `bounds` over the rated CSR `known`; `held_of_user`: (n_users,) int64 or None."""
    shards = []
    for shard, (start, stop) in enumerate(itertools.pairwise(bounds)):
        indptr = known.indptr[start : stop + 1].astype(np.int64)
        indices = known.indices[indptr[0] : indptr[-1]].astype(np.int32)
        held = None if held_of_user is None else held_of_user[start:stop]
        shards.append(Shard(shard, int(start), int(stop), indptr - indptr[0], indices, held))
    return shards


def warm_modules(settings: RunSettings) -> tuple[str, ...]:
    """Modules an actor imports when it starts, before the model exists: the scoring code and the
    configured NCF engine (TensorFlow for the Keras engine)."""
    modules = ["batch.recommend", "model.base"]
    if MODELS[settings.model].ncf_kind is not None:
        modules.append(f"model.ncf.{settings.engine}_engine")
    return tuple(modules)


class ShardScorer:
    """One Ray actor: imports `warm` when it starts, loads the model on its first shard (again only if a
    later shard names another model directory), and scores one shard per `score` call, writing its part.

    Test hook: with `kill_marker` set and that file absent, the actor creates it and exits hard
    (`os._exit`) after the first chunk of a shard is half-written, as a killed worker would.
    """

    def __init__(self, warm: tuple[str, ...] = (), kill_marker: str | None = None) -> None:
        self.started = time.time()
        for module in warm:
            importlib.import_module(module)
        self.threads = limit_threads()
        self.ready = time.time()
        self.kill_marker = Path(kill_marker) if kill_marker else None
        self.model_dir: str | None = None
        self.prepared: NCFModel | None = None

    def prepare(self, name: str, options: dict[str, Any], n_users: int, n_items: int) -> float:
        """Build the run's model (`model.registry.build_model(name, **options)`) untrained at the data's
        sizes and, for an NCF model, compile its scorer (`NCFModel.prepare_scoring`), while the driver
        trains; `_load` then sets the trained parameters into it. Returns the seconds it took."""
        started = time.time()
        model = build_model(name, **options)
        if isinstance(model, NCFModel):
            self.prepared = model.prepare_scoring(n_users, n_items)
        return time.time() - started

    def ready_at(self) -> float:
        """When the constructor finished (time.time())."""
        return self.ready

    def _load(self, model_dir: str) -> None:
        if model_dir != self.model_dir:
            if self.prepared is not None and self.prepared.load_weights(model_dir):
                self.model = self.prepared
            else:
                self.prepared = None  # another architecture or size: not kept beside the loaded model
                self.model = load_model(model_dir)
            self.user_ids, self.item_ids = load_id_maps(model_dir)
            self.model_dir = model_dir

    def score(
        self, shard: Shard, model_dir: str, staging: str, top_n: int, depth: int, chunk_users: int
    ) -> dict[str, Any]:
        """Score `shard` into its parts under `staging`. Returns shard, rows (by list table: rows of its
        part), the actor's peak RSS in MB and compute threads, whether the prepared model scored it, the held
        items' ranks (empty without), and the `STAMPS`."""
        called = time.time()
        self._load(model_dir)
        begun = time.time()
        rows, ranks = self._score_shard(shard, Path(staging), top_n, depth, chunk_users)
        stamps = (self.started, self.ready, called, begun, time.time())
        return {
            SHARD: shard.shard,
            "rows": rows,
            "peak_rss_mb": _peak_rss_mb(),
            "threads": self.threads,
            "prepared": self.model is self.prepared,
            "ranks": ranks,
            **dict(zip(STAMPS, stamps, strict=True)),
        }

    def _score_shard(
        self, shard: Shard, staging: Path, top_n: int, depth: int, chunk_users: int
    ) -> tuple[dict[str, int], np.ndarray]:
        start, stop = shard.start, shard.stop
        rated = sp.csr_matrix(
            (np.ones(shard.indices.shape[0], np.float32), shard.indices, shard.indptr),
            shape=(stop - start, self.model.n_items),
        )
        final = {table: staging / part_name(shard.shard, table) for table in LIST_TABLES}
        tmp = {
            table: staging / TMP_DIR / f"{table}.{shard.shard}.{uuid.uuid4().hex}" for table in LIST_TABLES
        }
        rows, shard_ranks = dict.fromkeys(LIST_TABLES, 0), []
        with (
            pq.ParquetWriter(tmp[CANDIDATES], RECOMMENDATIONS_SCHEMA) as deep,
            pq.ParquetWriter(tmp[RECOMMENDATIONS], RECOMMENDATIONS_SCHEMA) as out,
            ListWriter(deep, out) as lists_writer,
        ):
            ranges = ((first, min(first + chunk_users, stop)) for first in range(start, stop, chunk_users))
            for users, scores in scored_chunks(self.model, ranges):
                local = slice(users[0] - start, users[-1] + 1 - start)
                lists = chunk_lists(
                    self.model,
                    users,
                    rated[local],
                    top_n,
                    depth,
                    self.user_ids,
                    self.item_ids,
                    None if shard.held is None else shard.held[local],
                    scores,
                )
                lists_writer.write(lists)
                rows[CANDIDATES] += lists.candidates.num_rows
                rows[RECOMMENDATIONS] += lists.recommendations.num_rows
                if lists.ranks is not None:
                    shard_ranks.append(lists.ranks)
                self._maybe_die()
        for table in LIST_TABLES:
            os.replace(tmp[table], final[table])
        return rows, np.concatenate(shard_ranks) if shard_ranks else np.zeros(0, np.int64)

    def _maybe_die(self) -> None:
        if self.kill_marker is not None and not self.kill_marker.exists():
            self.kill_marker.touch()
            os._exit(1)


def limit_threads() -> int:
    """Cap this process's compute threads at `available_cores()` (an actor's reserved CPUs: Ray sets
    `OMP_NUM_THREADS` to them), the scorer's calls and, when TensorFlow is imported, its thread pools, so
    actors sharing a node do not each run a thread per core. Returns the thread count."""
    threads = available_cores()
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already ran an op; its pools are fixed
            logger.warning("TensorFlow's thread pools were already started; not capped at %d", threads)
    return threads


def _peak_rss_mb() -> float:
    from batch.steps import peak_rss_mb

    return peak_rss_mb()


class ScorerPool:
    """`ray.workers` `ShardScorer` actors, started on creation (joining `ray.address`, or starting a local
    cluster that `close` stops again). A context manager; `close` ends the actors."""

    def __init__(self, settings: RunSettings) -> None:
        import ray

        options = settings.ray
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            ray.init(address=options.address, include_dashboard=False, logging_level=logging.WARNING)
        self.started = time.time()
        actor = ray.remote(ShardScorer).options(
            num_cpus=options.cpus_per_worker,
            max_restarts=options.max_retries,
            max_task_retries=options.max_retries,
        )
        warm, kill_marker = warm_modules(settings), os.environ.get(KILL_ENV)
        self.actors = [actor.remote(warm, kill_marker) for _ in range(options.workers)]
        self.preparing: list[Any] = []
        logger.info(
            "started %d scoring actors (%g CPU each, warming %s)",
            options.workers,
            options.cpus_per_worker,
            warm,
        )

    def wait_ready(self) -> float:
        """Block until every actor has run its constructor; returns the seconds since the pool started."""
        import ray

        return max(ray.get([actor.ready_at.remote() for actor in self.actors])) - self.started

    def prepare(self, settings: RunSettings, n_users: int, n_items: int) -> None:
        """Have every actor build the run's model untrained at the data's sizes and compile its scorer
        (`ShardScorer.prepare`) without waiting: the job calls this once the data is loaded, so that it
        happens while the model trains; `write_recommendations_ray` waits for it (`prepared_s`)."""
        options = settings.model_options()
        self.preparing = [
            actor.prepare.remote(settings.model, options, n_users, n_items) for actor in self.actors
        ]

    def prepared_s(self) -> float | None:
        """The slowest actor's `prepare` in seconds (waiting for it), None when `prepare` was not called."""
        import ray

        return max(ray.get(self.preparing)) if self.preparing else None

    def run(
        self, shards: list[Shard], model_dir: str, staging: str, top_n: int, depth: int, chunk_users: int
    ) -> list[dict]:
        """Score every shard, one in flight per actor, the next shard to whichever actor answers first.

        Raises:
            ray.exceptions.RayError: a shard failed beyond its retries (the other actors are stopped).
        """
        import ray

        pending, in_flight, results = deque(shards), {}, []

        def submit(actor: Any) -> None:
            if pending:
                shard = pending.popleft()
                in_flight[actor.score.remote(shard, model_dir, staging, top_n, depth, chunk_users)] = actor

        for actor in self.actors:
            submit(actor)
        while in_flight:
            (done,), _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(done)
            results.append(ray.get(done))
            submit(actor)
        return results

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        if self.started_ray:
            ray.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_recommendations_ray(
    writer: RunWriter,
    dataset: Dataset,
    known: sp.csr_matrix,
    settings: RunSettings,
    held: HeldOut | None = None,
    pool: ScorerPool | None = None,
) -> ScoringReport:
    """Score every user on the Ray cluster into `candidates/` and `recommendations/` of the staged run; see
    the module docstring. The model must already be saved in the staging directory's `model/`. `pool`: actors
    started earlier (the job starts them before training); without it a pool is started and closed here.
    With `held` (as for `batch.job.write_recommendations`) the actors also rank each held-out item among
    the user's unrated movies from the same scores; the report's `ranks` are in `held`'s order.

    Raises:
        RuntimeError: a shard is missing or answered twice, or the parts on disk do not match the shards.
        ray.exceptions.RayError: a shard failed beyond `ray.max_retries` (nothing is published).
    """
    called = time.time()
    options = settings.ray
    own_pool = pool is None
    pool = pool if pool is not None else ScorerPool(settings)
    try:
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
        for table in LIST_TABLES:
            (writer.staging / dataset_dir(table)).mkdir()
        (writer.staging / TMP_DIR).mkdir()
        prepare_s = pool.prepared_s()
        results = pool.run(
            make_shards(known, bounds, held_of_user),
            str(writer.path(MODEL_DIR)),
            str(writer.staging),
            settings.top_n,
            settings.depth,
            settings.chunk_users,
        )
    finally:
        if own_pool:
            pool.close()
    shutil.rmtree(writer.staging / TMP_DIR)
    finished = time.time()
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
        rows=rows[RECOMMENDATIONS],
        candidate_rows=rows[CANDIDATES],
        shards=n_shards,
        workers=options.workers,
        threads_per_worker=max(int(r["threads"]) for r in results),
        prepared=all(bool(r["prepared"]) for r in results),
        worker_peak_rss_mb=max(float(r["peak_rss_mb"]) for r in results),
        phases={
            **scoring_phases(pool.started, called, finished, results),
            **({} if prepare_s is None else {"prepare_s": round(prepare_s, 3)}),
        },
        ranks=ranks,
    )
    logger.info("scored on Ray: %s", report.as_dict())
    return report


def _check_parts(staging: Path, results: list[dict[str, Any]], n_shards: int) -> dict[str, int]:
    """Every shard answered exactly once, each list table's folder holds exactly their parts, and each
    part's footer has the rows its shard reported. Returns the total rows by list table."""
    shards = sorted(int(r[SHARD]) for r in results)
    if shards != list(range(n_shards)):
        raise RuntimeError(f"scoring answered for shards {shards}, expected 0..{n_shards - 1} once each")
    totals = {}
    for table in LIST_TABLES:
        folder = dataset_dir(table)
        expected = {part_name(shard, table) for shard in shards}
        present = {f"{folder}/{p.name}" for p in (staging / folder).iterdir()}
        if present != expected:
            raise RuntimeError(f"parts on disk {sorted(present ^ expected)} do not match the shards")
        for r in results:
            part = part_name(int(r[SHARD]), table)
            if pq.ParquetFile(staging / part).metadata.num_rows != int(r["rows"][table]):
                raise RuntimeError(f"{part}: row count differs from what its shard reported")
        totals[table] = sum(int(r["rows"][table]) for r in results)
    return totals
