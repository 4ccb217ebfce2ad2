"""Typed configuration of the NCF models (architecture) and of their training."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class NCFConfig(BaseModel):
    """Architecture of GMF, MLP or NeuMF (He et al. 2017).

    Defaults are the configuration chosen on ML-1M's validation items (docs/accuracy.md).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["gmf", "mlp", "neumf"] = Field("neumf", description="which model: GMF, MLP or both fused")
    factors: int = Field(64, ge=1, description="GMF embedding size (the paper's predictive factors)")
    layers: tuple[int, ...] = Field(
        (128, 64, 32),
        description="MLP widths; layers[0] is the concatenated user+item embedding, so each MLP embedding "
        "is layers[0] // 2 wide; Dense+ReLU layers follow for layers[1:]",
    )
    l2: float = Field(0.0, ge=0.0, description="L2 penalty on embeddings and weights (0 = off)")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="dropout rate after each MLP hidden layer (0 = off)"
    )
    init_std: float = Field(0.01, gt=0.0, description="std of the Gaussian embedding initialisation")

    @field_validator("layers")
    @classmethod
    def _check_layers(cls, layers: tuple[int, ...]) -> tuple[int, ...]:
        if len(layers) < 1 or any(w < 1 for w in layers):
            raise ValueError("layers must be one or more positive widths")
        if layers[0] % 2:
            raise ValueError("layers[0] must be even: it is the user and item MLP embeddings concatenated")
        return layers


# NeuMF's pretrained towers, in the order their parameters are fused
TOWERS = ("gmf", "mlp")


class TowerConfig(BaseModel):
    """How one of NeuMF's pretrained towers (GMF or MLP) trains where it differs from the NeuMF run; a
    field left at None takes the `TrainConfig` value of the same name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int | None = Field(None, ge=1, description="examples per mini-batch (None = batch_size)")
    lr_schedule: Literal["constant", "cosine"] | None = Field(
        None, description="learning-rate schedule (None = lr_schedule)"
    )
    num_negatives: int | None = Field(None, ge=0, description="negatives per positive (None = num_negatives)")
    epochs: int | None = Field(
        None, ge=1, description="maximum epochs; a cosine schedule spans them (None = epochs)"
    )


class GMFTowerConfig(TowerConfig):
    """The GMF tower's settings (defaults chosen on ML-1M's validation items)."""

    batch_size: int | None = Field(2048, ge=1, description="examples per mini-batch (None = batch_size)")
    lr_schedule: Literal["constant", "cosine"] | None = Field(
        "cosine", description="learning-rate schedule (None = lr_schedule)"
    )


class MLPTowerConfig(TowerConfig):
    """The MLP tower's settings (defaults chosen on ML-1M's validation items)."""

    lr_schedule: Literal["constant", "cosine"] | None = Field(
        "cosine", description="learning-rate schedule (None = lr_schedule)"
    )
    epochs: int | None = Field(
        5, ge=1, description="maximum epochs; a cosine schedule spans them (None = epochs)"
    )


class TrainConfig(BaseModel):
    """How `NeuMFTrainer` trains any `NCFModel` engine.

    Defaults are the configuration chosen on ML-1M's validation items (docs/accuracy.md).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(10, ge=1, description="maximum number of epochs")
    batch_size: int = Field(4096, ge=1, description="examples per mini-batch")
    learning_rate: float = Field(0.002, gt=0.0, description="optimizer step size")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant",
        description="per-epoch step size: constant, or cosine (epoch e of `epochs` trains at "
        "learning_rate * (1 + cos(pi * (e - 1) / epochs)) / 2; a refit for fewer epochs follows the "
        "selection run's curve, which `schedule_epochs` pins)",
    )
    schedule_epochs: int | None = Field(
        None, ge=1, description="length of the cosine curve in epochs (None = `epochs`)"
    )
    optimizer: Literal["adam", "sgd"] = Field("adam", description="adam, or sgd (with optional momentum)")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="SGD momentum (ignored by adam)")
    embedding_updates: Literal["dense", "lazy"] = Field(
        "dense",
        description="Keras engine: how the optimizer updates the embedding tables: dense (every row at "
        "every step, as Keras' own optimizers; the step's cost grows with the tables) or lazy (only the "
        "batch's rows and their moments, as the NumPy engine always does; the cost grows with the batch "
        "only, for large catalogues; about 0.006 lower validation HR@10 on ML-1M)",
    )
    weight_decay: float = Field(
        0.1,
        ge=0.0,
        description="decoupled weight decay (AdamW / SGDW): before each step every parameter, whole "
        "embedding tables included, is multiplied by 1 - learning_rate * weight_decay (0 = off)",
    )
    num_negatives: int = Field(8, ge=0, description="fresh negatives per positive each epoch")
    loss: Literal["log", "softmax"] = Field(
        "log",
        description="training loss: log (the paper's: each positive and negative is one example of a "
        "binary log loss), or softmax (each positive and its `num_negatives` negatives form a group whose "
        "loss is -log of the positive's softmax share, log(sum exp(group logits)) - positive logit, "
        "averaged over the groups; with one negative it is BPR's pairwise loss); with softmax a "
        "mini-batch holds batch_size // (1 + num_negatives) whole groups",
    )
    negative_popularity: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="negatives drawn with probability proportional to (the movie's training count + 1) ** "
        "this exponent (0 = uniform, the paper's sampling; 0.75 = word2vec's)",
    )
    recent_fraction: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="recency weighting: the share of each user's newest training positives (at least one "
        "when > 0) that count `recent_weight` times in the log loss, negatives included (0 = off)",
    )
    recent_weight: int = Field(
        6, ge=1, description="recency weighting: times each recent positive counts per epoch (1 = off)"
    )
    patience: int = Field(
        2, ge=0, description="epochs without validation HR@10 gain before stopping (0 = never)"
    )
    seed: int = Field(0, description="seeds initialisation, shuffling and negative sampling")
    pretrain: bool = Field(
        True, description="NeuMF only: train GMF and MLP first and start from their fused weights"
    )
    pretrain_alpha: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="NeuMF after pretraining: weight of the GMF tower in the fused output layer, the MLP's "
        "being 1 - alpha (the paper's is 0.5)",
    )
    finetune_learning_rate: float | None = Field(
        0.0002,
        gt=0.0,
        description="NeuMF after pretraining: learning rate of the fused model (None = learning_rate)",
    )
    finetune_weight_decay: float | None = Field(
        None,
        ge=0.0,
        description="NeuMF after pretraining: decoupled weight decay of the fused model (None = as before)",
    )

    gmf: GMFTowerConfig = Field(
        default_factory=GMFTowerConfig, description="NeuMF pretraining: the GMF tower's own settings"
    )
    mlp: MLPTowerConfig = Field(
        default_factory=MLPTowerConfig, description="NeuMF pretraining: the MLP tower's own settings"
    )

    def tower_config(self, kind: Literal["gmf", "mlp"]) -> TrainConfig:
        """How NeuMF's pretrained `kind` tower trains: this configuration with the tower's own settings
        (the fields of `self.gmf` / `self.mlp` that are set), and no pretraining of its own."""
        own = getattr(self, kind).model_dump(exclude_none=True)
        tower = self.model_copy(update={"pretrain": False, **own})
        return tower._check_softmax_negatives()

    def group_size(self) -> int:
        """Examples per loss group: 1 + num_negatives under the softmax loss, 1 under the log loss."""
        return 1 + self.num_negatives if self.loss == "softmax" else 1

    def group_batch_size(self) -> int:
        """Examples per mini-batch: `batch_size` rounded down to whole loss groups (at least one)."""
        group = self.group_size()
        return max(1, self.batch_size // group) * group

    def check_groups(self, m: int, batch_size: int) -> None:
        """Raise ValueError unless `m` examples and mini-batches of `batch_size` are whole loss groups."""
        group = self.group_size()
        if m % group or batch_size % group:
            raise ValueError(
                f"loss softmax: {m} examples in mini-batches of {batch_size} are not whole groups of "
                f"{group} (a positive and its num_negatives negatives)"
            )

    @model_validator(mode="after")
    def _check_schedule_length(self) -> TrainConfig:
        if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
            raise ValueError("schedule_epochs must be at least epochs (the cosine curve would rise again)")
        return self

    @model_validator(mode="after")
    def _check_softmax_negatives(self) -> TrainConfig:
        if self.loss == "softmax" and self.num_negatives < 1:
            raise ValueError("loss softmax needs num_negatives >= 1 (a group: a positive, its negatives)")
        return self
