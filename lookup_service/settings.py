"""Typed settings of the lookup service and of its gunicorn server, read from the environment (`NCF_*`)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What the Flask app needs. Each field is read from `NCF_<FIELD>` (e.g. `NCF_OUTPUT_DIR`)."""

    model_config = SettingsConfigDict(env_prefix="NCF_", extra="ignore")

    output_dir: Path = Field(Path("output"), description="Directory holding LATEST and runs/ (read only).")
    reload_interval_seconds: float = Field(
        5.0, ge=0, description="How often each worker polls LATEST for a new run; 0 turns polling off."
    )
    default_n: int = Field(10, ge=1, description="Recommendations returned when the request gives no `n`.")
    body_cache_mb: float = Field(
        16.0,
        ge=0,
        description="Per worker: rendered recommendation bodies kept for the served run (by user and n), "
        "dropped on reload; 0 renders every response.",
    )


class ServerSettings(BaseSettings):
    """What gunicorn needs (`lookup_service/gunicorn_conf.py`). Read from `NCF_BIND`, `NCF_WORKERS`, ..."""

    model_config = SettingsConfigDict(env_prefix="NCF_", extra="ignore")

    bind: str = Field("127.0.0.1:8000", description="host:port to listen on.")
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Worker processes: one per core, as a lookup is CPU-bound Python (the GIL).",
    )
    threads: int = Field(
        2,
        ge=1,
        description="Threads per worker: the second keeps a worker answering while one request trickles in "
        "from a slow client; more would only contend for the GIL on this CPU-bound lookup.",
    )
    timeout_seconds: int = Field(30, ge=1, description="A worker silent this long is killed and replaced.")
    graceful_timeout_seconds: int = Field(
        10, ge=1, description="On SIGTERM, in-flight requests get this long to finish."
    )
    access_log: str = Field("-", description="Access log file; '-' is stdout.")
    log_level: str = Field("info", description="Level of the service and gunicorn logs.")
