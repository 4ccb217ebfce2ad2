"""The nightly job behind `ncf-batch run`: load, train (selecting on validation), evaluate, quality gate,
refit on all interactions, score every unrated movie in chunks of users, publish one run atomically.

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

from batch.contract import (
    METRICS,
    MODEL_DIR,
    MOVIES,
    POPULAR,
    RECOMMENDATIONS,
    Manifest,
    RunWriter,
    prune,
    sha256_file,
)
from batch.quality import check_quality
from batch.settings import RunSettings
from batch.steps import StepTimer
from batch.version import code_version
from model.base import Recommender
from model.columns import GENRES, MOVIE_ID, RANK, SCORE, TITLE, USER_ID, YEAR
from model.data import DataLoader, Dataset, leave_one_out
from model.evaluation import Evaluator
from model.ncf.base import NCFModel
from model.ncf.scoring import available_cores
from model.registry import build_model

logger = logging.getLogger(__name__)

NCF_MODELS = ("gmf", "mlp", "neumf")
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


def build(settings: RunSettings) -> Recommender:
    """A fresh, unfitted model per the settings."""
    if settings.model not in NCF_MODELS:
        return build_model(settings.model)
    train = settings.train.model_dump()
    ncf = settings.ncf.model_dump(exclude={"kind"})
    return build_model(settings.model, engine=settings.engine, config=ncf, train_config=train)


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


def run_job(settings: RunSettings, pause: PausePoint | None = None) -> Manifest:
    """Run every step and publish; raises `DataFormatError` (bad input) or `QualityGateError` (refused)."""
    pause = pause or PausePoint()
    with output_lock(settings.output_dir):
        return _run(settings, pause)


def _run(settings: RunSettings, pause: PausePoint) -> Manifest:
    timer = StepTimer()
    with timer.step("load"):
        dataset = DataLoader(settings.data_dir, format=settings.format, min_rating=settings.min_rating).load()
        input_files = {path.name: sha256_file(path) for path in dataset.files}
        split = leave_one_out(dataset, seed=settings.split_seed, n_negatives=settings.eval_negatives)
    with timer.step("train"):
        model = build(settings).fit(split.train, split.validation)
    with timer.step("evaluate"):
        evaluator = Evaluator(split, k=10, chunk_users=settings.chunk_users)
        results = {which: evaluator.evaluate(model, which) for which in ("validation", "test")}
    for which, by_protocol in results.items():
        for protocol, values in by_protocol.items():
            logger.info("%s %s: HR@10 %.4f NDCG@10 %.4f", which, protocol, values["hr@10"], values["ndcg@10"])
    gate = check_quality(
        results["test"][settings.gate_protocol]["hr@10"],
        settings.output_dir,
        settings.gate_protocol,
        settings.min_test_hr,
        settings.max_hr_drop,
    )
    best_epoch = getattr(model, "best_epoch_", None)
    production, trained_on = model, split.train
    if settings.refit:
        with timer.step("refit"):
            trained_on = dataset.interactions()
            # NCF: same engine and configuration, best_epoch_ epochs (pretrained parts refit too).
            production = (
                model.refit(trained_on) if isinstance(model, NCFModel) else build(settings).fit(trained_on)
            )

    writer = RunWriter(settings.output_dir)
    try:
        with timer.step("score"):
            rows = write_recommendations(writer, production, dataset, settings, pause)
        with timer.step("write"):
            writer.write_table(MOVIES, movies_table(dataset))
            writer.write_table(
                POPULAR, popular_table(trained_on.item_counts(), dataset.item_ids, settings.top_n)
            )
            if isinstance(production, NCFModel):
                production.save(writer.path(MODEL_DIR), user_ids=dataset.user_ids, item_ids=dataset.item_ids)
        metrics = _metrics(results, model, best_epoch, gate, timer.seconds, settings)
        metrics["refit_history"] = getattr(production, "history_", []) if production is not model else []
        writer.write_json(METRICS, metrics)
        with timer.step("publish"):
            manifest = writer.publish(
                checkpoint=pause,
                code_version=code_version(),
                engine=getattr(production, "engine", "numpy"),
                model_config=_model_config(settings, production, best_epoch),
                dataset={"name": dataset.name, "format": dataset.format, "files": input_files},
                counts={
                    "users": dataset.n_users,
                    "movies": dataset.n_items,
                    "interactions": dataset.n_interactions,
                    "rows": rows,
                },
                top_n=settings.top_n,
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
    writer: RunWriter, model: Recommender, dataset: Dataset, settings: RunSettings, pause: PausePoint
) -> int:
    """Score every unrated movie for all users, chunk by chunk, one Parquet row group per chunk.

    Scores come from the model's own `score_users` (NCF: the structured all-items scorer of its engine,
    XLA-compiled for Keras, `model.ncf.scoring` for NumPy; bench/score_all.py). Memory per chunk: the
    (chunk_users, n_movies) float32 score matrix plus the scorer's own bounded working set; the output of
    a chunk is (chunk_users, top_n) rows. Returns the number of rows written.
    """
    from batch.topn import mask_rated, top_n

    known = dataset.interactions().to_csr()
    n_users, chunk = dataset.n_users, settings.chunk_users
    logger.info(
        "scoring %d users x %d movies in chunks of %d users (%.1f MB of scores per chunk)",
        n_users,
        dataset.n_items,
        chunk,
        chunk * dataset.n_items * 4 / 1e6,
    )
    rows = 0
    with writer.open_table(RECOMMENDATIONS) as out:
        for start in range(0, n_users, chunk):
            users = np.arange(start, min(start + chunk, n_users))
            scores = np.array(model.score_users(users), dtype=np.float32, copy=True)
            unrated = mask_rated(scores, known[users])
            items, best = top_n(scores, settings.top_n, workers=available_cores())
            keep = np.arange(items.shape[1])[None, :] < unrated[:, None]
            user_rows, rank_cols = np.nonzero(keep)
            table = pa.table(
                {
                    USER_ID: pa.array(dataset.user_ids[users[user_rows]], pa.int32()),
                    RANK: pa.array(rank_cols + 1, pa.int16()),
                    MOVIE_ID: pa.array(dataset.item_ids[items[keep]], pa.int32()),
                    SCORE: pa.array(best[keep], pa.float32()),
                }
            )
            out.write_table(table)
            rows += table.num_rows
            StepTimer.progress("score", int(users[-1]) + 1, n_users, max(1, n_users // 10))
            pause("scoring")
    return rows


def movies_table(dataset: Dataset) -> pa.Table:
    """movies.parquet: the data set's movie metadata, or bare ids when the layout has none."""
    movies = dataset.movies
    if movies is None:
        movies = pd.DataFrame(
            {MOVIE_ID: dataset.item_ids, TITLE: None, YEAR: None, GENRES: [[] for _ in dataset.item_ids]}
        )
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


def _model_config(settings: RunSettings, model: Recommender, best_epoch: int | None) -> dict[str, Any]:
    config: dict[str, Any] = {"name": settings.model, "refit": settings.refit, "best_epoch": best_epoch}
    if isinstance(model, NCFModel):
        config["config"] = model.config.model_dump(mode="json")
        config["train_config"] = model.train_config.model_dump(mode="json")
    return config


def _metrics(
    results: dict,
    model: Recommender,
    best_epoch: int | None,
    gate: dict,
    seconds: dict,
    settings: RunSettings,
) -> dict[str, Any]:
    return {
        "validation": results["validation"],
        "test": results["test"],
        "model": settings.model,
        "best_epoch": best_epoch,
        "history": getattr(model, "history_", []),
        "pretrain_history": {kind: sub.history_ for kind, sub in getattr(model, "pretrained_", {}).items()},
        "quality_gate": gate,
        "step_seconds": dict(seconds),
    }
