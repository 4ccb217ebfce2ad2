"""Typed settings of `ncf-batch run`, validated once at the entry point.

Sources, highest priority first: command-line flags, environment variables (`NCF_<FIELD>`, nested model
fields as `NCF_NCF__FACTORS`, `NCF_TRAIN__EPOCHS`), an optional TOML or JSON config file (`--config-file`
or `NCF_CONFIG_FILE`), then the defaults below. Each field has exactly one default, documented in its
description.
Model hyperparameters live in `NCFConfig` / `TrainConfig` (their defaults are the tuned NeuMF configuration).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from model.ncf.config import NCFConfig, TrainConfig

ENV_PREFIX = "NCF_"


class RunSettings(BaseSettings):
    """Everything `ncf-batch run` can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", protected_namespaces=()
    )

    config_file: Path | None = Field(None, description="TOML (.toml) or JSON file of further settings")
    data_dir: Path = Field(description="MovieLens directory (any layout `DataLoader` reads); required")
    output_dir: Path = Field(Path("output"), description="where runs/ and LATEST are published")
    format: Literal["auto", "dat", "csv", "ml100k", "ncf"] = Field("auto", description="input layout")
    min_rating: float | None = Field(None, description="keep only ratings >= this (None: every rating)")
    split_seed: int = Field(0, description="seed of the leave-one-out evaluation negatives")
    eval_negatives: int = Field(
        99, ge=1, description="sampled protocol: negatives per held-out item (paper: 99)"
    )
    model: str = Field("neumf", description="registered model name (model.registry.MODELS)")
    engine: Literal["keras", "numpy"] = Field("keras", description="engine of NCF models")
    ncf: NCFConfig = Field(default_factory=NCFConfig, description="NCF architecture (model.ncf.config)")
    train: TrainConfig = Field(default_factory=TrainConfig, description="NCF training (model.ncf.config)")
    refit: bool = Field(
        True, description="retrain on all interactions for the selected number of epochs before scoring"
    )
    top_n: int = Field(50, ge=1, le=32767, description="recommendations kept per user")
    chunk_users: int = Field(
        1024,
        ge=1,
        description="users scored per chunk; one chunk holds chunk_users x n_movies float32 scores "
        "(1024 x 3706 = 15 MB on ML-1M) and is one Parquet row group",
    )
    keep_runs: int = Field(7, ge=1, description="newest published runs kept; the LATEST run is never deleted")
    min_test_hr: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="quality gate: refuse to publish when test HR@10 (gate_protocol) is below this "
        "(ItemPop scores 0.45 sampled on ML-1M)",
    )
    max_hr_drop: float = Field(
        0.02, ge=0.0, description="quality gate: refuse when test HR@10 is this much below the LATEST run's"
    )
    gate_protocol: Literal["sampled", "full"] = Field(
        "sampled", description="protocol the quality gate reads"
    )

    @field_validator("data_dir", "output_dir")
    @classmethod
    def _expand(cls, path: Path) -> Path:
        return path.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, ConfigFileSource(settings_cls, init_settings, env_settings)


class ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the TOML (`.toml`) or JSON file named by the `config_file` flag or `$NCF_CONFIG_FILE`."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        name = init_settings().get("config_file") or env_settings().get("config_file")
        self.values: dict[str, Any] = _read_config_file(Path(name)) if name else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


def _read_config_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a table / object of settings")
    return values
