"""Small contract-conformant run directories for the lookup service tests, written with `RunWriter`, with or
without the served arrays (`batch/serving_arrays.py`)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch import contract
from batch.contract import (
    CANDIDATES,
    HISTORY,
    LATEST,
    METRICS,
    MOVIES,
    POPULAR,
    RECOMMENDATIONS,
    SIMILAR_MOVIES,
    RunWriter,
    run_dir,
)
from batch.served_lists import HISTORY_LISTS, SIMILAR_LISTS, write_list_arrays
from batch.serving_arrays import SERVING_DIR, write_serving_arrays

N_MOVIES = 40
GENRE_NAMES = ["Action", "Comedy", "Drama", "Sci-Fi"]
TRICKY_TITLE = 'Amélie "Le Fabuleux" \\ Destin <b>&</b> (2001)'  # JSON and HTML escaping


def movies_table(n_movies: int = N_MOVIES) -> pa.Table:
    movie_ids = np.arange(1, n_movies + 1, dtype=np.int32) * 3  # sparse raw ids: 3, 6, 9, ...
    return pa.table(
        {
            "movie_id": movie_ids,
            "title": [TRICKY_TITLE if m == 9 else f"Movie {m} ({1980 + m % 30})" for m in movie_ids],
            "year": pa.array([None if m == 3 else 1980 + m % 30 for m in movie_ids], type=pa.int16()),
            "genres": [[GENRE_NAMES[m % 4], GENRE_NAMES[(m + 1) % 4]] for m in movie_ids],
        }
    )


def recommendations_table(
    user_ids: np.ndarray, movie_ids: np.ndarray, top_n: int, seed: int, ragged: bool = False
) -> pa.Table:
    """Each user gets `top_n` distinct movies (`ragged`: user i gets top_n - i % 3, as when fewer movies
    are unrated), scores descending with rank; rows shuffled."""
    rng = np.random.default_rng(seed)
    picks = np.argsort(rng.random((len(user_ids), len(movie_ids))), axis=1)[:, :top_n]
    scores = np.sort(rng.random((len(user_ids), top_n)).astype(np.float32), axis=1)[:, ::-1]
    counts = top_n - np.arange(len(user_ids)) % 3 if ragged else np.full(len(user_ids), top_n)
    keep = np.arange(top_n)[None, :] < counts[:, None]
    rows, cols = np.nonzero(keep)
    table = pa.table(
        {
            "user_id": user_ids[rows].astype(np.int32),
            "rank": (cols + 1).astype(np.int16),
            "movie_id": movie_ids[picks][keep].astype(np.int32),
            "score": scores[keep],
        }
    )
    return table.take(pa.array(rng.permutation(table.num_rows)))


def similar_table(movie_ids: np.ndarray, k: int, seed: int) -> pa.Table:
    """Each movie but the last gets k distinct other movies (the last has none), scores descending."""
    rng = np.random.default_rng(seed + 100)
    rows = []
    for i, movie in enumerate(movie_ids[:-1]):
        others = np.delete(movie_ids, i)
        picks = rng.permutation(others)[:k]
        scores = np.sort(rng.random(k).astype(np.float32) * 0.9 + 0.05)[::-1]
        rows += [
            (int(movie), r + 1, int(m), float(s)) for r, (m, s) in enumerate(zip(picks, scores, strict=True))
        ]
    movie, rank, similar, score = zip(*rows, strict=True)
    return pa.table(
        {
            "movie_id": pa.array(movie, pa.int32()),
            "rank": pa.array(rank, pa.int16()),
            "similar_movie_id": pa.array(similar, pa.int32()),
            "score": pa.array(score, pa.float32()),
        }
    )


def history_table(user_ids: np.ndarray, movie_ids: np.ndarray, depth: int, seed: int) -> pa.Table:
    """User i gets depth - i % 2 rated movies, newest first (timestamps descending)."""
    rng = np.random.default_rng(seed + 200)
    rows = []
    for i, user in enumerate(user_ids):
        picks = rng.permutation(movie_ids)[: depth - i % 2]
        rows += [(int(user), r + 1, int(m), 978_300_000 - 60 * r) for r, m in enumerate(picks)]
    user, rank, movie, ts = zip(*rows, strict=True)
    return pa.table(
        {
            "user_id": pa.array(user, pa.int32()),
            "rank": pa.array(rank, pa.int16()),
            "movie_id": pa.array(movie, pa.int32()),
            "timestamp": pa.array(ts, pa.int64()),
        }
    )


CANDIDATES_DEPTH, SIMILAR_K, HISTORY_DEPTH = 30, 5, 4


def write_run(
    output_dir: Path,
    user_ids: np.ndarray | None = None,
    top_n: int = 20,
    seed: int = 0,
    run_id: str | None = None,
    edit_staging: Callable[[Path], None] | None = None,
    serving_arrays: bool = False,
    ragged: bool = False,
    row_group_size: int | None = None,
    extras: bool = False,
) -> str:
    """Write and publish one run (LATEST then names it); returns its run id.

    `serving_arrays`: the lists sorted by (user_id, rank), as the job writes them, and the served arrays
    written from them (with `extras`, the similar-movie and history lists' too); else rows are shuffled and
    there are no served arrays.
    `extras`: also candidates.parquet (`CANDIDATES_DEPTH` deep; recommendations.parquet is its first top_n
    ranks, popular.parquet as deep), similar_movies.parquet (`SIMILAR_K`) and history.parquet
    (`HISTORY_DEPTH`), as the current job writes them; without, the run looks like an older job's.
    `edit_staging(staging_dir)` runs just before the manifest is written (to plant bad content whose
    checksums still match).
    """
    user_ids = np.arange(1, 31, dtype=np.int32) if user_ids is None else user_ids
    movies = movies_table()
    writer = RunWriter(output_dir, run_id=run_id)
    writer.write_table(MOVIES, movies)
    movie_ids = movies.column("movie_id").to_numpy()
    depth = CANDIDATES_DEPTH if extras else top_n
    deep = recommendations_table(user_ids, movie_ids, depth, seed, ragged)
    if ragged and extras:
        raise ValueError("ragged runs are written without extras")
    if serving_arrays:
        deep = deep.sort_by([("user_id", "ascending"), ("rank", "ascending")])
    recs = deep.filter(pc.less_equal(deep.column("rank"), top_n))
    writer.write_table(RECOMMENDATIONS, recs, row_group_size=row_group_size)
    if extras:
        writer.write_table(CANDIDATES, deep, row_group_size=row_group_size)
        writer.write_table(SIMILAR_MOVIES, similar_table(movie_ids, SIMILAR_K, seed))
        writer.write_table(HISTORY, history_table(user_ids, movie_ids, HISTORY_DEPTH, seed))
    if serving_arrays:
        write_serving_arrays(writer)
        if extras:
            write_list_arrays(writer, SIMILAR_LISTS)
            write_list_arrays(writer, HISTORY_LISTS)
    popular = pa.table(
        {
            "rank": np.arange(1, depth + 1, dtype=np.int16),
            "movie_id": movie_ids[::-1][:depth],
            "score": np.linspace(1.0, 0.5, depth, dtype=np.float32),
        }
    )
    writer.write_table(POPULAR, popular)
    metrics = {"test": {"sampled": {"hr@10": 0.5, "ndcg@10": 0.3}}}
    if extras:
        metrics["beyond_accuracy"] = {"k": 10, "coverage": 0.625, "gini": 0.4}
    writer.write_json(METRICS, metrics)
    if edit_staging is not None:
        edit_staging(writer.staging)
    writer.publish(
        code_version="test",
        engine="numpy",
        model_config={"factors": 8, "layers": [16, 8]},
        dataset={"name": "synthetic"},
        counts={"users": len(user_ids), "movies": len(movie_ids)},
        top_n=top_n,
        **({"candidates": depth, "similar_k": SIMILAR_K, "history": HISTORY_DEPTH} if extras else {}),
    )
    return writer.run_id


def publish_corrupted(output_dir: Path, corrupt: Callable[[Path], None], **kwargs) -> str:
    """Write a good run elsewhere, damage it after its manifest is written, then move it in and point LATEST
    at it (so the service never sees it undamaged)."""
    scratch = Path(output_dir).parent / f"scratch-{os.getpid()}-{np.random.default_rng().integers(1 << 30)}"
    run_id = write_run(scratch, **kwargs)
    corrupt(run_dir(scratch, run_id))
    shutil.move(run_dir(scratch, run_id), run_dir(output_dir, run_id))
    shutil.rmtree(scratch)
    point_latest(output_dir, run_id)
    return run_id


def copy_without_serving_arrays(run: Path, output_dir: Path) -> str:
    """Copy a published run into `output_dir` without its served arrays (as a run of an older job: the
    manifest no longer lists them), point LATEST there; returns the run id."""
    copy = run_dir(output_dir, run.name)
    shutil.copytree(run, copy)
    shutil.rmtree(copy / SERVING_DIR)
    manifest = json.loads((copy / contract.MANIFEST).read_text())
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith(f"{SERVING_DIR}/")}
    (copy / contract.MANIFEST).write_text(json.dumps(manifest))
    point_latest(output_dir, run.name)
    return run.name


def point_latest(output_dir: Path, run_id: str) -> None:
    """Atomically make LATEST name `run_id` (as RunWriter.publish does)."""
    tmp = Path(output_dir) / f".{LATEST}.tmp"
    tmp.write_text(run_id + "\n")
    os.replace(tmp, Path(output_dir) / LATEST)


def _outside(run: Path) -> Path:
    """A file beside the output directory (not under it), its content a copy of the run's movies table."""
    secret = run.parents[2] / "outside" / "secret.parquet"
    secret.parent.mkdir(exist_ok=True)
    shutil.copy(run / MOVIES, secret)
    return secret


def _list_in_manifest(run: Path, key: str, file: Path) -> None:
    """Add `key` to the manifest with the size and checksum of `file`, so only the key itself is wrong."""
    manifest = json.loads((run / contract.MANIFEST).read_text())
    manifest["files"][key] = {"sha256": contract.sha256_file(file), "bytes": file.stat().st_size}
    (run / contract.MANIFEST).write_text(json.dumps(manifest))


def absolute_key(run: Path) -> None:
    secret = _outside(run)
    _list_in_manifest(run, str(secret), secret)


def dotdot_key(run: Path) -> None:
    secret = _outside(run)
    _list_in_manifest(run, f"../../../outside/{secret.name}", secret)


def symlinked_file(run: Path) -> None:
    secret = _outside(run)
    (run / MOVIES).unlink()
    (run / MOVIES).symlink_to(secret)


def symlinked_directory(run: Path) -> None:
    secret = _outside(run)
    (run / "model").symlink_to(secret.parent, target_is_directory=True)
    _list_in_manifest(run, f"model/{secret.name}", secret)


def symlinked_manifest(run: Path) -> None:
    secret = _outside(run).with_name(contract.MANIFEST)
    (run / contract.MANIFEST).rename(secret)
    (run / contract.MANIFEST).symlink_to(secret)


# Published runs whose manifest reaches outside the run directory (checksums match), with the words of the
# refusal: for `publish_corrupted`.
ESCAPES: dict[str, tuple[Callable[[Path], None], str]] = {
    "absolute key": (absolute_key, "is not a plain relative path"),
    "../ key": (dotdot_key, "is not a plain relative path"),
    "symlinked file": (symlinked_file, f"{MOVIES}: a symbolic link"),
    "symlink on the way": (symlinked_directory, "model: a symbolic link"),
    "symlinked manifest": (symlinked_manifest, f"{contract.MANIFEST}: a symbolic link"),
}
