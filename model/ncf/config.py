"""Typed configuration of the NCF models (architecture) and of their training."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class NCFConfig(BaseModel):
    """Architecture of GMF, MLP or NeuMF (He et al. 2017).

    Defaults are the best ML-1M configuration measured (bench/results/neumf_accuracy.md).
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


# NeuMF's pretrained towers, and the TrainConfig fields each can set for itself (`TrainConfig.tower_config`)
TOWERS = ("gmf", "mlp")
TOWER_FIELDS = ("batch_size", "lr_schedule", "num_negatives", "epochs")
# ... as TrainConfig's own field names: gmf_batch_size, ..., mlp_num_negatives
TOWER_OVERRIDES = tuple(f"{kind}_{field}" for kind in TOWERS for field in TOWER_FIELDS)


class TrainConfig(BaseModel):
    """How `NeuMFTrainer` trains any `NCFModel` engine.

    Defaults are the best ML-1M configuration measured (bench/results/neumf_accuracy.md).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(10, ge=1, description="maximum number of epochs")
    batch_size: int = Field(4096, ge=1, description="examples per mini-batch")
    learning_rate: float = Field(0.002, gt=0.0, description="optimizer step size")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant",
        description="per-epoch step size: constant, or cosine (epoch e of `epochs` trains at "
        "learning_rate * (1 + cos(pi * (e - 1) / epochs)) / 2; a refit for fewer epochs follows the "
        "selection run's curve, which `schedule_epochs` pins). On ML-1M validation, cosine lifts the "
        "pretrained towers (HR@10: GMF 0.740 -> 0.752, MLP 0.686 -> 0.728), so they use it by default "
        "(`gmf_lr_schedule`, `mlp_lr_schedule`), but not the fused NeuMF (cosine in every stage: mean of "
        "training seeds 0-2 0.7520 with weight decay 0.05, vs 0.7540 at a constant rate)",
    )
    schedule_epochs: int | None = Field(
        None, ge=1, description="length of the cosine curve in epochs (None = `epochs`)"
    )
    optimizer: Literal["adam", "sgd"] = Field("adam", description="adam, or sgd (with optional momentum)")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="SGD momentum (ignored by adam)")
    weight_decay: float = Field(
        0.1,
        ge=0.0,
        description="decoupled weight decay (AdamW / SGDW): before each step every parameter, whole "
        "embedding tables included, is multiplied by 1 - learning_rate * weight_decay (0 = off; 0.1 had "
        "the best validation HR@10 of 0 / 0.05 / 0.1 / 0.15 / 0.2 at a constant rate)",
    )
    num_negatives: int = Field(8, ge=0, description="fresh negatives per positive each epoch")
    recent_fraction: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="recency weighting: the share of each user's newest training positives (at least one "
        "when > 0) that count `recent_weight` times in the log loss, negatives included (0 = off). The "
        "held-out items are each user's newest, and on ML-1M validation this lifts every tower (GMF HR@10 "
        "0.756 -> 0.787 at 10% x6; screens in bench/results/neumf_runs/notes.md, session 6)",
    )
    recent_weight: int = Field(
        6,
        ge=1,
        description="recency weighting: how many times each recent positive counts per epoch (1 = off; "
        "validation HR@10 of the GMF tower at 10%: x2 0.774 (20%), x4 0.783, x6 0.787)",
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
        "being 1 - alpha (the paper's is 0.5; on ML-1M validation, with recency weighting, the fused start "
        "scores 0.780 / 0.785 / 0.789 / 0.790 / 0.791 / 0.789 HR@10 at 0.5 / 0.6 / 0.7 / 0.8 / 0.85 / 0.9)",
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

    # NeuMF pretraining: each tower's own batch size, schedule, negatives, epochs (None = as the NeuMF run).
    # On ML-1M validation the fused model gains from its towers' own best settings
    # (bench/results/neumf_runs/notes.md, session 4).
    gmf_batch_size: int | None = Field(
        2048, ge=1, description="NeuMF pretraining: GMF tower batch size (None = batch_size)"
    )
    gmf_lr_schedule: Literal["constant", "cosine"] | None = Field(
        "cosine", description="NeuMF pretraining: GMF tower learning-rate schedule (None = lr_schedule)"
    )
    gmf_num_negatives: int | None = Field(
        None, ge=0, description="NeuMF pretraining: GMF tower negatives per positive (None = num_negatives)"
    )
    gmf_epochs: int | None = Field(
        None, ge=1, description="NeuMF pretraining: GMF tower maximum epochs (None = epochs)"
    )
    mlp_batch_size: int | None = Field(
        None, ge=1, description="NeuMF pretraining: MLP tower batch size (None = batch_size)"
    )
    mlp_lr_schedule: Literal["constant", "cosine"] | None = Field(
        "cosine", description="NeuMF pretraining: MLP tower learning-rate schedule (None = lr_schedule)"
    )
    mlp_num_negatives: int | None = Field(
        None, ge=0, description="NeuMF pretraining: MLP tower negatives per positive (None = num_negatives)"
    )
    mlp_epochs: int | None = Field(
        5,
        ge=1,
        description="NeuMF pretraining: MLP tower maximum epochs (None = epochs; its cosine schedule spans "
        "them). On ML-1M validation, with recency weighting, 5 epochs give as good a tower (0.751 vs 0.747 "
        "HR@10) and fused start (0.7925 vs 0.7904) as 10, in half the time",
    )

    def tower_config(self, kind: Literal["gmf", "mlp"]) -> TrainConfig:
        """How NeuMF's pretrained `kind` tower trains: this configuration with the tower's own batch size,
        schedule, negatives and epochs (`{kind}_*` fields that are set), and no pretraining of its own."""
        own = {field: getattr(self, f"{kind}_{field}") for field in TOWER_FIELDS}
        return self.model_copy(update={"pretrain": False, **{k: v for k, v in own.items() if v is not None}})

    @model_validator(mode="after")
    def _check_schedule_length(self) -> TrainConfig:
        if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
            raise ValueError("schedule_epochs must be at least epochs (the cosine curve would rise again)")
        return self
