"""The output contract between the batch job, the lookup service and downstream readers, defined once.

Layout under the output directory:

    LATEST                      one line: the run id of the newest published run (replaced atomically)
    runs/<run_id>/
      recommendations.parquet   user_id int32, rank int16 (1..N), movie_id int32, score float32
      candidates.parquet        the same columns, ranks 1..C (C = `candidates` >= N): the deeper list that
                                request-time filters pick from; its first N ranks are recommendations.parquet
        or, for both lists (`--executor ray`): recommendations/part-<shard>.parquet and
                                candidates/part-<shard>.parquet, Parquet datasets with one part per shard of
                                users (the same shards in both), parts in user order, each sorted by
                                (user_id, rank); a run has one layout for both lists (`list_table_parts`)
      movies.parquet            movie_id int32, title string, year int16 (nullable), genres list<string>
      popular.parquet           rank int16, movie_id int32, score float32 (ranks 1..C)
      similar_movies.parquet    movie_id int32, rank int16 (1..K), similar_movie_id int32, score float32
      history.parquet           user_id int32, rank int16 (1 = newest), movie_id int32, timestamp int64
      metrics.json              evaluation figures, history, step timings
      serving/*.npy             candidates as flat arrays the lookup service memory-maps
                                (`batch/serving_arrays.py`); the Parquet stays the contract
      manifest.json             `Manifest`: ids, versions, counts, sha256 + size of every other file
      model/                    the saved model

Writing goes through `RunWriter`: files land in a hidden staging directory, are fsynced, the manifest is
written last, the directory is renamed into `runs/`, and only then is `LATEST` replaced (os.replace). A crash
at any point leaves the previous run served and intact. This module imports only pyarrow and pydantic, so
the lookup service can use it without TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

LATEST = "LATEST"
RUNS_DIR = "runs"
STAGING_PREFIX = ".staging-"
RECOMMENDATIONS = "recommendations.parquet"
MOVIES = "movies.parquet"
POPULAR = "popular.parquet"
CANDIDATES = "candidates.parquet"
SIMILAR_MOVIES = "similar_movies.parquet"
HISTORY = "history.parquet"
METRICS = "metrics.json"
MANIFEST = "manifest.json"
MODEL_DIR = "model"

RECOMMENDATIONS_SCHEMA = pa.schema(
    [("user_id", pa.int32()), ("rank", pa.int16()), ("movie_id", pa.int32()), ("score", pa.float32())]
)
MOVIES_SCHEMA = pa.schema(
    [
        ("movie_id", pa.int32()),
        ("title", pa.string()),
        ("year", pa.int16()),
        ("genres", pa.list_(pa.string())),
    ]
)
POPULAR_SCHEMA = pa.schema([("rank", pa.int16()), ("movie_id", pa.int32()), ("score", pa.float32())])
SIMILAR_MOVIES_SCHEMA = pa.schema(
    [
        ("movie_id", pa.int32()),
        ("rank", pa.int16()),
        ("similar_movie_id", pa.int32()),
        ("score", pa.float32()),
    ]
)
HISTORY_SCHEMA = pa.schema(
    [("user_id", pa.int32()), ("rank", pa.int16()), ("movie_id", pa.int32()), ("timestamp", pa.int64())]
)
TABLE_SCHEMAS = {
    RECOMMENDATIONS: RECOMMENDATIONS_SCHEMA,
    MOVIES: MOVIES_SCHEMA,
    POPULAR: POPULAR_SCHEMA,
    CANDIDATES: RECOMMENDATIONS_SCHEMA,
    SIMILAR_MOVIES: SIMILAR_MOVIES_SCHEMA,
    HISTORY: HISTORY_SCHEMA,
}
REQUIRED_FILES = (RECOMMENDATIONS, MOVIES, POPULAR, METRICS)  # recommendations: in either layout
# Written by every run of the current job; a run of an older job lacks them and is still served (without
# request-time depth, similar movies or history). When the manifest lists one, its schema is checked.
OPTIONAL_TABLES = (CANDIDATES, SIMILAR_MOVIES, HISTORY)
# The per-user lists: each one file (`--executor local`) or a folder of parts (`--executor ray`, the dataset
# layout), the same layout for both in a run.
LIST_TABLES = (RECOMMENDATIONS, CANDIDATES)
PART_SUFFIX = ".parquet"


def dataset_dir(table: str) -> str:
    """The folder of list table `table` in the dataset layout (`recommendations.parquet`:
    `recommendations`)."""
    return table.removesuffix(PART_SUFFIX)


RECOMMENDATIONS_DIR = dataset_dir(RECOMMENDATIONS)
CANDIDATES_DIR = dataset_dir(CANDIDATES)


def part_name(shard: int, table: str = RECOMMENDATIONS) -> str:
    """Manifest key of shard `shard`'s part of `table` in the dataset layout, e.g.
    `candidates/part-00003.parquet` (zero-padded, so sorting the names sorts the parts by shard, i.e. by
    user)."""
    return f"{dataset_dir(table)}/part-{shard:05d}{PART_SUFFIX}"


def has_list_table(files: Iterable[str], table: str) -> bool:
    """Whether `files` (manifest keys) hold list table `table` in either layout."""
    prefix = dataset_dir(table) + "/"
    return any(name == table or name.startswith(prefix) for name in files)


class RunInvalid(Exception):
    """A run directory does not meet the contract (missing file, bad checksum, wrong schema)."""


class FileEntry(BaseModel):
    sha256: str
    bytes: int


class Manifest(BaseModel):
    """manifest.json of one run."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    run_id: str
    created_at: str = Field(description="UTC, ISO 8601")
    schema_version: int = SCHEMA_VERSION
    code_version: str
    engine: str | None = None  # NCF models: "keras" or "numpy"; None for single-implementation models
    model_config_: dict[str, Any] = Field(default_factory=dict, alias="model_config")
    dataset: dict[str, Any] = Field(
        default_factory=dict, description="name, format, sha256 of each input file"
    )
    counts: dict[str, int] = Field(default_factory=dict)
    top_n: int
    candidates: int | None = Field(None, description="ranks per user in candidates.parquet (>= top_n)")
    similar_k: int | None = Field(None, description="most similar movies kept per movie")
    similar_source: str | None = Field(None, description="embedding or cooccurrence (batch.similar)")
    history: int | None = Field(None, description="newest rated movies kept per user in history.parquet")
    files: dict[str, FileEntry]


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time: `20261127T020000Z-<6 hex>`."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_latest(output_dir: Path) -> str | None:
    """The run id `LATEST` names, or None before the first publish."""
    try:
        text = (Path(output_dir) / LATEST).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def run_dir(output_dir: Path, run_id: str) -> Path:
    return Path(output_dir) / RUNS_DIR / run_id


def verify_run(path: Path) -> Manifest:
    """Check a run directory against its manifest (files present, sizes, sha256, table schemas: the four
    required files' always, the optional tables' when the manifest lists them, every part's in the dataset
    layout; the lists in one layout with no unlisted file in their folders, `list_table_parts`).

    Every file the manifest lists must be a regular file inside `path` reached through no symbolic link:
    a key that is absolute, holds `..` or an empty part, or leads through a symlink refuses the run, so a
    manifest cannot make the reader open anything outside its run directory.

    Raises:
        RunInvalid: naming the first problem found.
    """
    path = Path(path)
    if path.is_symlink():
        raise RunInvalid(f"{path}: the run directory is a symbolic link")
    if (path / MANIFEST).is_symlink():
        raise RunInvalid(f"{path / MANIFEST}: a symbolic link")
    try:
        manifest = Manifest.model_validate_json((path / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise RunInvalid(f"{path}: {MANIFEST} missing") from None
    except ValueError as exc:
        raise RunInvalid(f"{path / MANIFEST}: invalid manifest: {exc}") from None
    if manifest.schema_version != SCHEMA_VERSION:
        raise RunInvalid(f"{path}: schema_version {manifest.schema_version}, expected {SCHEMA_VERSION}")
    for name in REQUIRED_FILES:
        if name not in manifest.files and name not in LIST_TABLES:
            raise RunInvalid(f"{path}: manifest does not list {name}")
    lists = list_table_parts(path, manifest)
    for name, entry in manifest.files.items():
        file = _listed_file(path, name)
        if file.stat().st_size != entry.bytes:
            raise RunInvalid(f"{file}: {file.stat().st_size} bytes, manifest says {entry.bytes}")
        if sha256_file(file) != entry.sha256:
            raise RunInvalid(f"{file}: sha256 does not match the manifest")
    for table, schema in TABLE_SCHEMAS.items():
        if table in lists:
            names = lists[table]
        else:
            names = [table] if table in REQUIRED_FILES or table in manifest.files else []
        for name in names:
            try:
                actual = pq.read_schema(path / name)
            except (pa.ArrowException, OSError) as exc:
                raise RunInvalid(f"{path / name}: unreadable Parquet: {exc}") from None
            if not actual.remove_metadata().equals(schema):
                raise RunInvalid(f"{path / name}: schema {actual} differs from the contract {schema}")
    return manifest


def table_parts(path: Path, manifest: Manifest, table: str) -> list[str]:
    """The manifest keys of list table `table` (`LIST_TABLES`) in user order: `[table]` (single file), the
    parts `<folder>/part-*.parquet` sorted (dataset layout), or `[]` when the manifest lists neither.

    Raises:
        RunInvalid: the manifest lists both layouts of `table`, a key in its folder that is not a part, or
            the folder holds a file the manifest does not list (readers of the folder would read it too).
    """
    folder_name = dataset_dir(table)
    prefix = folder_name + "/"
    parts = sorted(name for name in manifest.files if name.startswith(prefix))
    if table in manifest.files:
        if parts:
            raise RunInvalid(f"{path}: manifest lists both {table} and {prefix}")
        return [table]
    bad = [name for name in parts if "/" in name[len(prefix) :] or not name.endswith(PART_SUFFIX)]
    if bad:
        raise RunInvalid(f"{path}: {bad[0]} is not a part of the form {part_name(0, table)}")
    folder = Path(path) / folder_name
    present = sorted(f"{prefix}{entry.name}" for entry in folder.iterdir()) if folder.is_dir() else []
    unlisted = sorted(set(present) - set(parts))
    if unlisted:
        raise RunInvalid(f"{path}: {unlisted[0]} is not listed in the manifest")
    return parts


def list_table_parts(path: Path, manifest: Manifest) -> dict[str, list[str]]:
    """`table_parts` of every list table the run has (recommendations always, candidates when listed),
    checked to share one layout: both single files, or both datasets with parts of the same shards.

    Raises:
        RunInvalid: as `table_parts`; no recommendations; the lists in different layouts (mixed) or with
            parts of different shards.
    """
    lists = {table: table_parts(path, manifest, table) for table in LIST_TABLES}
    if not lists[RECOMMENDATIONS]:
        raise RunInvalid(f"{path}: manifest lists neither {RECOMMENDATIONS} nor {RECOMMENDATIONS_DIR}/ parts")
    lists = {table: names for table, names in lists.items() if names}
    layouts = {table: _layout(table, names) for table, names in lists.items()}
    if len(set(layouts.values())) > 1:
        found = "; ".join(
            f"{table}: {' '.join(layout) or 'single file'}" for table, layout in layouts.items()
        )
        raise RunInvalid(f"{path}: the lists are not in one layout with the same parts ({found})")
    return lists


def _layout(table: str, names: list[str]) -> tuple[str, ...]:
    """The part file names of a list table's manifest keys; () for the single file."""
    return () if names == [table] else tuple(name.rsplit("/", 1)[1] for name in names)


def staged_table_files(run: Path, table: str) -> list[Path]:
    """The files of list table `table` in a run directory (staged or published) in user order, found on
    disk: the single file when present, else the dataset's parts sorted by name. Empty when there are
    none."""
    run = Path(run)
    if (run / table).is_file():
        return [run / table]
    folder = run / dataset_dir(table)
    return sorted(folder.glob(f"part-*{PART_SUFFIX}")) if folder.is_dir() else []


def _listed_file(run: Path, name: str) -> Path:
    """The regular file a manifest key names inside `run`; RunInvalid unless the key is a relative POSIX path
    without `..` or empty parts whose every step exists and is not a symbolic link."""
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(part in {"", ".", ".."} for part in parts):
        raise RunInvalid(f"{run}: manifest key {name!r} is not a plain relative path inside the run")
    file = run
    for part in parts:
        file = file / part
        if file.is_symlink():
            raise RunInvalid(f"{file}: a symbolic link (manifest key {name!r})")
    if not file.is_file():
        raise RunInvalid(f"{file}: missing")
    if not file.resolve().is_relative_to(run.resolve()):
        raise RunInvalid(f"{run}: manifest key {name!r} resolves outside the run")
    return file


class RunWriter:
    """Stages one run and publishes it atomically.

    Usage:
        writer = RunWriter(output_dir)
        writer.write_table(RECOMMENDATIONS, table)      # or write_batches for chunked output
        writer.write_json(METRICS, metrics)
        writer.publish(manifest_fields)                 # -> runs/<run_id>, then LATEST

    Call `abort()` (or let `publish` fail) to remove the staging directory; a staging directory left by a
    killed process is harmless and is removed by the next `prune`.
    """

    def __init__(self, output_dir: str | Path, run_id: str | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.run_id = run_id or new_run_id()
        self.staging = self.output_dir / RUNS_DIR / f"{STAGING_PREFIX}{self.run_id}"
        self.staging.mkdir(parents=True, exist_ok=False)

    def path(self, name: str) -> Path:
        """Where to write `name` inside the staging directory (e.g. the model directory)."""
        return self.staging / name

    def write_table(self, name: str, table: pa.Table, row_group_size: int | None = None) -> None:
        """Write a whole table, cast to the contract schema of `name`."""
        schema = TABLE_SCHEMAS[name]
        pq.write_table(
            table.select(schema.names).cast(schema), self.staging / name, row_group_size=row_group_size
        )

    def open_table(self, name: str) -> pq.ParquetWriter:
        """A ParquetWriter for `name`, for writing one row group per chunk (`write_table` on each batch)."""
        return pq.ParquetWriter(self.staging / name, TABLE_SCHEMAS[name])

    def write_json(self, name: str, obj: Any) -> None:
        (self.staging / name).write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))

    def publish(self, checkpoint: Callable[[str], None] | None = None, **manifest_fields: Any) -> Manifest:
        """Write manifest.json (checksums of every staged file), fsync, rename into runs/, replace LATEST.

        `manifest_fields`: everything of `Manifest` except run_id, created_at, schema_version and files.
        `checkpoint`: called with "staged" (before the rename) and "renamed" (before LATEST) - a test hook.
        """
        checkpoint = checkpoint or (lambda stage: None)
        files = {}
        for file in sorted(p for p in self.staging.rglob("*") if p.is_file()):
            rel = file.relative_to(self.staging).as_posix()
            files[rel] = FileEntry(sha256=sha256_file(file), bytes=file.stat().st_size)
            _fsync_path(file)
        manifest = Manifest(
            run_id=self.run_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            files=files,
            **manifest_fields,
        )
        manifest_path = self.staging / MANIFEST
        manifest_path.write_text(manifest.model_dump_json(indent=2, by_alias=True))
        _fsync_path(manifest_path)
        for directory in sorted({p.parent for p in self.staging.rglob("*")} | {self.staging}, reverse=True):
            _fsync_path(directory)
        checkpoint("staged")
        final = run_dir(self.output_dir, self.run_id)
        self.staging.rename(final)
        _fsync_path(final.parent)
        checkpoint("renamed")
        tmp_latest = self.output_dir / f".{LATEST}.{self.run_id}.tmp"
        with tmp_latest.open("w") as fh:
            fh.write(self.run_id + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_latest, self.output_dir / LATEST)
        _fsync_path(self.output_dir)
        return manifest

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def prune(output_dir: str | Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` runs and any leftover staging directories; never the LATEST run.

    Returns the run ids deleted.
    """
    output_dir = Path(output_dir)
    runs = output_dir / RUNS_DIR
    if not runs.is_dir():
        return []
    latest = read_latest(output_dir)
    for leftover in runs.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    run_ids = sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    doomed = [r for r in run_ids[: max(0, len(run_ids) - keep)] if r != latest]
    for run_id in doomed:
        shutil.rmtree(runs / run_id, ignore_errors=True)
    return doomed
