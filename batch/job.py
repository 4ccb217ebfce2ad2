"""The nightly job behind `ncf-batch run`: the shared pipeline (load, train selecting on validation,
evaluate, refit on all interactions), the quality gate on both models, then every unrated movie scored in
chunks of users and one run published atomically.

Each step is logged with its duration; scoring logs its progress. Nothing is written to the output
directory before the quality gate has passed, and everything is staged by `RunWriter` until `publish`.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from batch.beyond_accuracy import beyond_accuracy, drift
from batch.cluster import cluster_task
from batch.contract import (
    CANDIDATES,
    HISTORY,
    METRICS,
    MODEL_DIR,
    MOVIES,
    POPULAR,
    RECOMMENDATIONS,
    SIMILAR_MOVIES,
    Manifest,
    RunWriter,
    prune,
    read_latest,
    run_dir,
    sha256_file,
)
from batch.pipeline import WarmStart, run_pipeline, scoring_pass_evaluates_test
from batch.quality import check_drift, check_quality, published_model_checks
from batch.recommend import ListWriter, chunk_lists, scored_chunks
from batch.served_lists import HISTORY_LISTS, SIMILAR_LISTS, write_list_arrays
from batch.serving_arrays import write_serving_arrays
from batch.settings import RunSettings
from batch.similar import history_table, item_vectors, similar_movies_batches
from batch.steps import StepTimer
from batch.version import code_version
from model.base import Recommender, load_id_maps, load_model
from model.columns import GENRES, MOVIE_ID, RANK, SCORE, TITLE, YEAR
from model.data import Dataset
from model.data.interactions import Interactions
from model.data.split import HeldOut

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class JobLocked(RuntimeError):
    """Another run holds the output directory's lock."""


class PausePoint:
    """Test-only hook: with spec "<stage>:<file>" (from $NCF_TEST_PAUSE_AT), touch <file> on reaching
    <stage> and sleep, so a test can SIGKILL the job exactly there. Stages: scoring (after the first chunk
    is written), staged (manifest written, before the rename into runs/), renamed (before LATEST)."""

    def __init__(self, spec: str | None = None) -> None:
        self.stage, _, marker = (spec or "").partition(":")
        self.marker = Path(marker) if marker else None

    def __call__(self, stage: str) -> None:
        if self.marker is not None and stage == self.stage:
            self.marker.touch()
            time.sleep(600)


@contextmanager
def output_lock(output_dir: Path) -> Iterator[None]:
    """Exclusive lock on the output directory for the whole run (released by the OS if the job dies)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with (output_dir / LOCK_FILE).open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobLocked(f"{output_dir}: another run is in progress") from None
        yield


def run_job(settings: RunSettings, pause: PausePoint | None = None) -> Manifest | None:
    """Run every step and publish; raises `DataFormatError` (bad input) or `QualityGateError` (refused).

    In a multi-worker training (`$TF_CONFIG`, `batch.cluster`) a task that is not the chief only trains
    alongside the chief (the fit and the refit) and returns None: it takes no lock, evaluates, scores and
    writes nothing."""
    task = cluster_task()
    if not task.is_chief:
        run_pipeline(settings, publish=True, evaluate=False)
        logger.info(
            "%s task %d of %d: trained; the chief evaluates, scores and publishes",
            task.type,
            task.index,
            task.tasks,
        )
        return None
    pause = pause or PausePoint()
    with output_lock(settings.output_dir), scorer_pool(settings) as pool:
        return _run(settings, pause, pool)


@contextmanager
def scorer_pool(settings: RunSettings) -> Iterator[Any]:
    """The Ray executor's scoring actors (`batch.distributed.ScorerPool`), started before the pipeline so
    their start overlaps the training; None for the local executor."""
    if settings.executor != "ray":
        yield None
        return
    from batch.distributed import ScorerPool

    with ScorerPool(settings) as pool:
        yield pool


def _run(settings: RunSettings, pause: PausePoint, pool: Any = None) -> Manifest:
    test_in_scoring = scoring_pass_evaluates_test(settings, settings.gate.protocol)
    warm_from = previous_model(settings.output_dir) if settings.warm_start else None
    result = run_pipeline(
        settings,
        publish=True,
        full_test_in_scoring=test_in_scoring,
        warm_from=warm_from,
        on_load=None if pool is None else lambda data: pool.prepare(settings, data.n_users, data.n_items),
    )
    dataset, model, production, timer = result.dataset, result.model, result.final, result.timer
    input_files = {path.name: sha256_file(path) for path in dataset.files}
    known = dataset.interactions().to_csr()
    with timer.step("gate"):
        published = published_model_checks(model, production, result.split, known, settings.gate)
        gate = check_quality(
            result.results["test"][settings.gate.protocol]["hr@10"],
            dataset.name,
            settings.output_dir,
            settings.gate,
            published,
        )
    trained_on = dataset.interactions() if production is not model else result.split.train

    writer = RunWriter(settings.output_dir)
    try:
        with timer.step("save_model"):  # before scoring: the Ray executor's actors load it from here
            production.save(writer.path(MODEL_DIR), user_ids=dataset.user_ids, item_ids=dataset.item_ids)
        held = result.split.held_out("test") if test_in_scoring else None
        with timer.step("score"):
            start = time.perf_counter()
            if settings.executor == "ray":
                from batch.distributed import write_recommendations_ray

                report = write_recommendations_ray(writer, dataset, known, settings, held, pool)
                rows, ranks, scoring = report.rows, report.ranks, report.as_dict()
            else:
                rows, ranks = write_recommendations(writer, production, dataset, known, settings, pause, held)
                scoring = {"executor": "local", "rows": rows}
        if ranks is not None:
            full = result.evaluator.figures(ranks, time.perf_counter() - start, "full")
            result.results["test"]["full"] = {**full, "from": "scoring pass"}
            logger.info("test full (scoring pass): HR@10 %.4f NDCG@10 %.4f", full["hr@10"], full["ndcg@10"])
        with timer.step("write"):
            writer.write_table(MOVIES, movies_table(dataset))
            write_serving_arrays(writer)
            writer.write_table(
                POPULAR, popular_table(trained_on.item_counts(), dataset.item_ids, settings.depth)
            )
        with timer.step("similar"):
            similar_source, similar_rows = write_similar_movies(
                writer, production, trained_on, dataset.item_ids, settings
            )
            write_list_arrays(writer, SIMILAR_LISTS)
        with timer.step("history"):
            writer.write_table(HISTORY, history_table(dataset, settings.history))
            write_list_arrays(writer, HISTORY_LISTS)
        with timer.step("beyond_accuracy"):
            figures = beyond_accuracy(
                writer.staging,
                dataset.item_ids,
                trained_on.item_counts(),
                dataset.n_users,
                settings.top_n,
            )
            drifted = drift(writer.staging, settings.output_dir)
            check_drift(drifted, settings.gate)
        metrics = {
            **result.report(settings),
            "quality_gate": gate,
            "beyond_accuracy": figures,
            "drift": drifted,
            "scoring": scoring,
        }
        writer.write_json(METRICS, metrics)
        with timer.step("publish"):
            manifest = writer.publish(
                checkpoint=pause,
                code_version=code_version(),
                engine=production.engine,
                model_config=_model_config(settings.model, model, production),
                dataset={"name": dataset.name, "format": dataset.format, "files": input_files},
                counts={
                    "users": dataset.n_users,
                    "movies": dataset.n_items,
                    "interactions": dataset.n_interactions,
                    "rows": rows,
                    "similar_rows": similar_rows,
                },
                top_n=settings.top_n,
                candidates=settings.depth,
                similar_k=settings.similar_k,
                similar_source=similar_source,
                history=settings.history,
            )
    except BaseException:
        writer.abort()
        raise
    deleted = prune(settings.output_dir, settings.keep_runs)
    logger.info(
        "published run %s (%d rows); pruned %s; step seconds %s",
        manifest.run_id,
        rows,
        deleted,
        timer.seconds,
    )
    return manifest


def write_recommendations(
    writer: RunWriter,
    model: Recommender,
    dataset: Dataset,
    known: sp.csr_matrix,
    settings: RunSettings,
    pause: PausePoint,
    held: HeldOut | None = None,
) -> tuple[int, np.ndarray | None]:
    """Score every unrated movie for all users, chunk by chunk, one Parquet row group per chunk: the top
    `settings.depth` movies into candidates.parquet and their first `top_n` into recommendations.parquet.

    A chunk's lists come from `batch.recommend.chunk_lists` (the Ray executor's actors call it too): the
    model's scores of the chunk's users (`score_users`; NCF scores with the structured all-items scorer of
    its engine, XLA-compiled for Keras, `model.ncf.scoring` for NumPy; bench/score_all.py), rated movies
    (`known`) masked before the top-n selection (`model.topn.select_and_rank`, as the model's `recommend`).
    A chunk's tables are written while the next chunk is scored (`batch.recommend.ListWriter`), and the
    next chunk is scored while this one's lists are selected (`batch.recommend.scored_chunks`). Memory per
    chunk: the (chunk_users, n_movies) float32 score matrix plus the scorer's own bounded working set; the
    output of a chunk is (chunk_users, depth) rows, of which at most two chunks' are held (one being
    written); two or three chunks' score matrices are held at once.

    With `held` (the test items, when the published model is the selection model) the same scores also
    give each held-out item's full-ranking rank (`Recommender.recommend_and_rank`; `known` holds the held
    items, so they are never recommended).

    Returns:
        the number of rows written to recommendations.parquet, and (len(held),) int64 0-based ranks in
        `held`'s order, or None.
    """
    n_users, chunk = dataset.n_users, settings.chunk_users
    logger.info(
        "scoring %d users x %d movies in chunks of %d users (%.1f MB of scores per chunk)",
        n_users,
        dataset.n_items,
        chunk,
        chunk * dataset.n_items * 4 / 1e6,
    )
    rows = 0
    held_of_user = None
    if held is not None:
        held_of_user = np.full(n_users, -1, dtype=np.int64)
        held_of_user[held.user_idx] = held.item_idx
        ranks_of_user = np.full(n_users, -1, dtype=np.int64)
    with (
        writer.open_table(RECOMMENDATIONS) as out,
        writer.open_table(CANDIDATES) as deep,
        ListWriter(deep, out) as lists_writer,
    ):
        ranges = ((start, min(start + chunk, n_users)) for start in range(0, n_users, chunk))
        for users, scores in scored_chunks(model, ranges):
            targets = None if held_of_user is None else held_of_user[users]
            lists = chunk_lists(
                model,
                users,
                known[users],
                settings.top_n,
                settings.depth,
                dataset.user_ids,
                dataset.item_ids,
                targets,
                scores,
            )
            if lists.ranks is not None:
                ranks_of_user[users] = lists.ranks
            lists_writer.write(lists)
            rows += lists.recommendations.num_rows
            StepTimer.progress("score", int(users[-1]) + 1, n_users, max(1, n_users // 10))
            pause("scoring")
    return rows, None if held is None else ranks_of_user[held.user_idx]


def previous_model(output_dir: Path) -> WarmStart | None:
    """The model of the run LATEST names, with its id maps, to warm-start from; None (logged) when there is
    no published run or its model cannot be read."""
    run_id = read_latest(output_dir)
    if run_id is None:
        logger.info("warm start: no published run in %s, training from scratch", output_dir)
        return None
    path = run_dir(output_dir, run_id) / MODEL_DIR
    try:
        return WarmStart(load_model(path), load_id_maps(path), run_id)
    except (OSError, ValueError, KeyError) as exc:
        logger.warning(
            "warm start: the model of run %s cannot be read (%s), training from scratch", run_id, exc
        )
        return None


def write_similar_movies(
    writer: RunWriter,
    model: Recommender,
    interactions: Interactions,
    item_ids: np.ndarray,
    settings: RunSettings,
) -> tuple[str, int]:
    """similar_movies.parquet, one row group per block of `similar_chunk_items` movies (`batch.similar`):
    from the published model's item embeddings (`similar_source` "embedding", when it has them), else from
    the interactions it was trained on. Returns (the source used, the number of rows)."""
    vectors = model.item_embeddings() if settings.similar_source == "embedding" else None
    source = "embedding" if vectors is not None else "cooccurrence"
    if vectors is None:
        vectors = item_vectors(interactions)
    rows = 0
    with writer.open_table(SIMILAR_MOVIES) as out:
        for table in similar_movies_batches(
            vectors, item_ids, settings.similar_k, settings.similar_chunk_items
        ):
            out.write_table(table)
            rows += table.num_rows
    logger.info("similar movies from %s: %d rows", source, rows)
    return source, rows


def movies_table(dataset: Dataset) -> pa.Table:
    """movies.parquet: the data set's movie metadata, plus bare ids (no title, year or genres) for rated
    movies it does not list, or only bare ids when the layout has none."""
    bare_ids = dataset.item_ids if dataset.movies is None else dataset.unlisted_movie_ids
    bare = pd.DataFrame({MOVIE_ID: bare_ids, TITLE: None, YEAR: None, GENRES: [[] for _ in bare_ids]})
    parts = [frame for frame in (dataset.movies, bare) if frame is not None and len(frame)]
    movies = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return pa.table(
        {
            MOVIE_ID: pa.array(movies[MOVIE_ID].to_numpy(), pa.int32()),
            TITLE: pa.array(movies[TITLE].to_numpy(dtype=object), pa.string(), from_pandas=True),
            YEAR: pa.array(movies[YEAR].to_numpy(dtype=object), pa.int16(), from_pandas=True),
            GENRES: pa.array(movies[GENRES].to_numpy(dtype=object), pa.list_(pa.string())),
        }
    )


def popular_table(counts: np.ndarray, item_ids: np.ndarray, n: int) -> pa.Table:
    """popular.parquet: the n most interacted-with movies (ties: lower movie id first), score = count."""
    order = np.lexsort((item_ids, -counts))[:n]
    return pa.table(
        {
            RANK: pa.array(np.arange(1, order.shape[0] + 1), pa.int16()),
            MOVIE_ID: pa.array(item_ids[order], pa.int32()),
            SCORE: pa.array(counts[order], pa.float32()),
        }
    )


def _model_config(name: str, model: Recommender, production: Recommender) -> dict[str, Any]:
    """The manifest's description of the published model: registered name, class, hyperparameters, the
    epoch selected on validation, and whether it was refit on every interaction."""
    report = production.report()
    return {
        "name": name,
        "class": report["class"],
        "hyperparameters": report["hyperparameters"],
        "best_epoch": model.report()["best_epoch"],
        "refit": production is not model,
    }
