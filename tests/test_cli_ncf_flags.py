"""The NCF flags of `python -m batch evaluate` become typed NCFConfig / TrainConfig fields."""

import pytest

from batch.cli import build_parser, ncf_options
from model.registry import build_model


def parse(*flags):
    return build_parser().parse_args(["evaluate", "--data-dir", "x", "--model", "neumf", *flags])


def test_flags_override_only_what_is_given():
    args = parse("--factors", "64", "--layers", "256,128,64", "--epochs", "20", "--batch-size", "2048")
    args2 = parse(
        "--lr", "0.002", "--optimizer", "sgd", "--momentum", "0.9", "--pretrain", "--l2", "1e-6",
        "--weight-decay", "0.01",
    )  # fmt: skip
    assert ncf_options(args) == {
        "engine": "keras",
        "config": {"factors": 64, "layers": (256, 128, 64)},
        "train_config": {"epochs": 20, "batch_size": 2048},
    }
    opts = ncf_options(args2)
    assert opts["train_config"] == {
        "learning_rate": 0.002,
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 0.01,
        "pretrain": True,
    }
    assert opts["config"] == {"l2": 1e-6}
    tower_flags = ["--gmf-batch-size", "1024", "--mlp-lr-schedule", "constant", "--mlp-num-negatives", "4"]
    towers = ncf_options(parse(*tower_flags, "--mlp-epochs", "5"))
    assert towers["train_config"] == {
        "gmf_batch_size": 1024,
        "mlp_lr_schedule": "constant",
        "mlp_num_negatives": 4,
        "mlp_epochs": 5,
    }
    recency = ncf_options(parse("--recent-fraction", "0.1", "--recent-weight", "4", "--pretrain-alpha", ".6"))
    assert recency["train_config"] == {"recent_fraction": 0.1, "recent_weight": 4, "pretrain_alpha": 0.6}
    tower_config = build_model("neumf", **towers).train_config
    assert tower_config.tower_config("gmf").batch_size == 1024
    assert tower_config.tower_config("gmf").lr_schedule == "cosine"  # the default GMF tower schedule stays
    assert tower_config.tower_config("mlp").lr_schedule == "constant"
    assert tower_config.tower_config("mlp").epochs == 5 and tower_config.tower_config("gmf").epochs == 10
    model = build_model("neumf", **opts)
    assert model.train_config.optimizer == "sgd" and model.train_config.pretrain
    assert model.train_config.weight_decay == 0.01
    assert model.config.l2 == 1e-6 and model.config.kind == "neumf"


def test_bad_values_are_rejected():
    with pytest.raises(SystemExit):
        parse("--layers", "64,x")
    with pytest.raises(SystemExit):
        parse("--optimizer", "rmsprop")
    with pytest.raises(ValueError):  # pydantic: negative decay
        build_model("gmf", **ncf_options(parse("--weight-decay", "-0.1")))
    with pytest.raises(ValueError):  # pydantic: a share above 1
        build_model("neumf", **ncf_options(parse("--recent-fraction", "1.5")))
    with pytest.raises(ValueError):  # pydantic: a weight below 1
        build_model("neumf", **ncf_options(parse("--recent-weight", "0")))
    with pytest.raises(ValueError):  # pydantic: odd first layer
        build_model("mlp", **ncf_options(parse("--layers", "63,8")))


def test_baselines_ignore_ncf_options():
    assert build_model("itempop", **ncf_options(parse("--factors", "8"))).__class__.__name__ == "ItemPop"
