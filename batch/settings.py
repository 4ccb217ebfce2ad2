"""Typed settings of `ncf-batch evaluate` and `ncf-batch run`, validated once at the entry point.

`PipelineSettings` is everything both commands share (data, split, model and its hyperparameters, refit,
evaluation): the same flags, env vars and config-file keys with the same meaning in both. `RunSettings`
adds publishing and the quality gate, `EvaluateSettings` what the evaluation report shows.

Sources, highest priority first: command-line flags, environment variables (`NCF_<FIELD>`, nested
fields as `NCF_TRAIN__EPOCHS`, `NCF_TRAIN__GMF__EPOCHS`, `NCF_MODELS__IALS__FACTORS`, `NCF_GATE__FLOORS`),
an optional TOML or JSON config file (`--config-file` or `NCF_CONFIG_FILE`), then the defaults. Each
setting has one name and one default: NCF models' in `model.ncf.config`, every other model's in its
constructor (`model.registry.settings_model`), the job's below.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from batch.cluster import cluster_task
from model.data.formats import FORMATS
from model.evaluation import PROTOCOLS
from model.ncf.config import NCFConfig, TrainConfig
from model.registry import MODELS, settings_models

ENV_PREFIX = "NCF_"
Protocol = Literal["sampled", "full"]


def _model_settings_fields() -> dict[str, Any]:
    """One nested settings field per registered non-NCF model that has settings (`ials`, `ease`, ...)."""
    return {
        name: (model, Field(default_factory=model, description=f"{name} model settings"))
        for name, model in settings_models().items()
    }


ModelSettings = create_model(
    "ModelSettings",
    __doc__="Settings of every non-NCF model, one nested group each (defaults: their constructors).",
    **_model_settings_fields(),
)


class GateSettings(BaseModel):
    """Quality gate: when a run may replace the published one (`batch.quality`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: Protocol = Field("sampled", description="protocol of the test HR@10 the gate reads")
    floors: dict[str, float] = Field(
        {"ml-1m": 0.70, "ml-100k": 0.60},
        description="refuse when the selection model's test HR@10 is below this, by data set name (the "
        "data folder's name); set it for each data set you run",
    )
    default_floor: float = Field(
        0.5, ge=0.0, le=1.0, description="floor of a data set `floors` does not name"
    )
    references: dict[str, float] = Field(
        {"ml-1m": 0.735},
        description="fixed reference test HR@10 by data set name, so that small drops from run to run "
        "cannot add up: refuse when the new run is more than `max_reference_drop` below it",
    )
    max_reference_drop: float = Field(0.03, ge=0.0, description="allowed drop below the fixed reference")
    max_drop: float = Field(
        0.02, ge=0.0, description="refuse when test HR@10 is this much below the LATEST run's"
    )
    allow_unreadable_previous: bool = Field(
        False,
        description="publish even when the LATEST run's metrics cannot be read (otherwise refused: the "
        "gate fails closed)",
    )
    max_validation_drop: float = Field(
        0.05,
        ge=0.0,
        description="published model: refuse when its HR@10 on the validation items (which it trains "
        "on) is more than this below the selection model's",
    )
    min_overlap: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="published model: refuse when its top-10 lists share fewer than this share of their "
        "movies with the selection model's lists (mean over the checked users)",
    )
    check_users: int = Field(
        2000, ge=1, description="published model: users whose lists are checked (a seeded sample)"
    )
    min_drift_overlap: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="refuse when the new top-10 lists share less than this share of their movies with the "
        "LATEST run's lists (mean over the users of both runs; metrics.json `drift`); None: drift is "
        "reported only",
    )

    def floor(self, dataset: str) -> float:
        return self.floors.get(dataset, self.default_floor)


class RaySettings(BaseModel):
    """Distributed scoring on a Ray cluster (`--executor ray`, `batch.distributed`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = Field(
        None,
        description="Ray cluster to join (`ray.init(address=...)`; `auto` inside a KubeRay job); None: the "
        "cluster $RAY_ADDRESS names, else a local cluster started for the run and stopped after it",
    )
    workers: int = Field(2, ge=1, description="scoring actors (Ray actors, started before training)")
    cpus_per_worker: float = Field(1.0, gt=0.0, description="CPUs Ray reserves for each scoring actor")
    shards_per_worker: int = Field(
        4,
        ge=1,
        description="users are cut into workers x this many shards of consecutive users, each one Parquet "
        "part; more shards balance better and redo less after a failure, fewer make fewer files",
    )
    max_retries: int = Field(
        3,
        ge=0,
        description="restarts of a dead scoring actor and retries of its shard before the run fails",
    )


class PipelineSettings(BaseSettings):
    """Data, split, model, refit and evaluation: what `evaluate` and `run` share."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", protected_namespaces=()
    )

    config_file: Path | None = Field(None, description="TOML (.toml) or JSON file of further settings")
    data_dir: Path = Field(description="MovieLens directory (any layout `DataLoader` reads); required")
    format: Literal["auto", *FORMATS] = Field("auto", description="input layout")
    min_rating: float | None = Field(None, description="keep only ratings >= this (None: every rating)")
    split_seed: int = Field(0, description="seed of the leave-one-out evaluation negatives")
    eval_negatives: int = Field(
        99, ge=1, description="sampled protocol: negatives per held-out item (paper: 99)"
    )
    protocol: Literal["sampled", "full", "both"] = Field(
        "both", description="evaluation protocol(s): sampled (held-out item vs its negatives), full ranking"
    )
    full_validation: bool = Field(
        True,
        description="compute the full-ranking validation figures when the protocol includes full ranking "
        "(one more pass over every user x movie pair; large catalogues turn it off)",
    )
    model: Literal[*MODELS] = Field("neumf", description="registered model name (model.registry.MODELS)")
    engine: Literal["keras", "numpy"] = Field("keras", description="engine of the NCF models")
    ncf: NCFConfig = Field(default_factory=NCFConfig, description="NCF architecture (model.ncf.config)")
    train: TrainConfig = Field(default_factory=TrainConfig, description="NCF training (model.ncf.config)")
    models: ModelSettings = Field(default_factory=ModelSettings, description="settings of the other models")
    refit: bool = Field(
        True,
        description="after selecting on validation, retrain the model with the same hyperparameters (NCF: "
        "for the selected number of epochs) on more data: train + validation items before the test "
        "figures of `evaluate`, every interaction before `run` publishes",
    )
    chunk_users: int = Field(
        1024,
        ge=1,
        description="users scored per chunk; one chunk holds chunk_users x n_movies float32 scores "
        "(1024 x 3706 = 15 MB on ML-1M) and is one Parquet row group",
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, path: Path) -> Path:
        return path.expanduser()

    @property
    def protocols(self) -> tuple[str, ...]:
        return PROTOCOLS if self.protocol == "both" else (self.protocol,)

    def model_options(self) -> dict[str, Any]:
        """`model.registry.build_model` options of the chosen model. A model holding a NeuMF member (the
        blend) without `neumf_options` of its own gets the run's `engine`, `ncf` and `train` settings for
        it (the member's training seed stays the blend's `seed`)."""
        ncf = self.ncf.model_dump(exclude={"kind"})
        ncf_options = {"engine": self.engine, "config": ncf, "train_config": self.train.model_dump()}
        if MODELS[self.model].ncf_kind is not None:
            return ncf_options
        group = getattr(self.models, self.model, None)
        options = group.model_dump() if group is not None else {}
        if "neumf_options" in options and options["neumf_options"] is None:
            options["neumf_options"] = ncf_options
        return options

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


class EvaluateSettings(PipelineSettings):
    """`ncf-batch evaluate`: the pipeline, then a report."""

    split: Literal["validation", "test"] = Field(
        "test",
        description="split of the headline figures; validation is a selection-only run that never "
        "evaluates, refits for or otherwise scores the test items",
    )
    json_output: bool = Field(False, description="print one JSON object instead of a text summary")


class RunSettings(PipelineSettings):
    """`ncf-batch run`: the pipeline, the quality gate, then scoring and publishing."""

    output_dir: Path = Field(Path("output"), description="where runs/ and LATEST are published")
    top_n: int = Field(50, ge=1, le=32767, description="recommendations kept per user")
    candidates: int = Field(
        200,
        ge=1,
        le=32767,
        description="ranked movies kept per user in the candidates (candidates.parquet, or candidates/ "
        "with the ray executor) and the served arrays, for request-time filters (genre, year, "
        "exclusions); at least top_n are kept",
    )
    similar_source: Literal["embedding", "cooccurrence"] = Field(
        "embedding",
        description="similar movies by the cosine of the published model's item embeddings (NCF: GMF's; "
        "models without embeddings use co-occurrence) or of the movies' interaction columns "
        "(co-occurrence); chosen on ML-1M validation fold-in HR@10 (bench/results/foldin.md)",
    )
    similar_k: int = Field(
        100,
        ge=1,
        le=32767,
        description="most similar movies kept per movie (similar_movies.parquet); chosen on ML-1M "
        "validation fold-in HR@10",
    )
    similar_chunk_items: int = Field(
        256,
        ge=1,
        description="movies per block of the similar-movies computation; one block holds "
        "similar_chunk_items x n_movies float32 similarities",
    )
    history: int = Field(
        10, ge=1, le=32767, description="newest rated movies kept per user (history.parquet)"
    )
    keep_runs: int = Field(7, ge=1, description="newest published runs kept; the LATEST run is never deleted")
    executor: Literal["local", "ray"] = Field(
        "local",
        description="where every user's movies are scored: local (this process, chunk by chunk, one "
        "recommendations.parquet and one candidates.parquet) or ray (shards of users on a Ray actor pool, "
        "Parquet datasets recommendations/ and candidates/ of one part per shard each); the same rows and "
        "the same training either way",
    )
    ray: RaySettings = Field(default_factory=RaySettings, description="Ray executor (batch.distributed)")
    warm_start: bool = Field(
        False,
        description="start training from the LATEST run's model when it is the same model and architecture "
        "(users and movies matched by raw id, new ones start fresh; NCF models); otherwise, or without a "
        "published run, train from scratch (metrics.json warm_start says which); bench/results/warm_start.md",
    )
    gate: GateSettings = Field(default_factory=GateSettings, description="quality gate (batch.quality)")

    @field_validator("output_dir")
    @classmethod
    def _expand_output(cls, path: Path) -> Path:
        return path.expanduser()

    @property
    def depth(self) -> int:
        """Ranks per user in candidates.parquet (and of popular.parquet): `candidates`, at least `top_n`."""
        return max(self.candidates, self.top_n)

    @model_validator(mode="after")
    def _warm_start_on_one_worker(self) -> RunSettings:
        # every task of a multi-worker training must start from the same weights; a task that cannot read
        # the chief's LATEST would start cold, so the combination is refused
        if self.warm_start and cluster_task().tasks > 1:
            raise ValueError(
                "warm_start is not supported in a multi-worker training ($TF_CONFIG names a cluster)"
            )
        return self

    @model_validator(mode="after")
    def _gate_protocol_is_evaluated(self) -> RunSettings:
        if self.gate.protocol not in self.protocols:
            raise ValueError(
                f"gate.protocol {self.gate.protocol!r} is not among the evaluated {self.protocols}"
            )
        return self


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
