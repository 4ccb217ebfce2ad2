"""The flags of `evaluate` and `run` are generated from the settings models: one name, one meaning and one
default per setting in both commands, nested NCF, tower, baseline and gate settings included."""

from __future__ import annotations

import subprocess
import sys

import pytest

from batch.cli import build_parser
from batch.flags import flags_to_settings, walk
from batch.settings import EvaluateSettings, PipelineSettings, RunSettings
from model.ncf.config import NCFConfig, TrainConfig
from model.registry import build_model


def settings(command: str, *flags: str) -> EvaluateSettings | RunSettings:
    cls = EvaluateSettings if command == "evaluate" else RunSettings
    args = build_parser().parse_args([command, "--data-dir", "x", *flags])
    return cls(**flags_to_settings(args, cls))


@pytest.mark.parametrize("command", ["evaluate", "run", "fetch-data", "synth-data"])
def test_every_subcommand_help_works(command):
    proc = subprocess.run([sys.executable, "-m", "batch", command, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


def test_evaluate_and_run_share_every_pipeline_flag():
    def flags(command: str) -> set[str]:
        sub = build_parser()._subparsers._group_actions[0].choices[command]
        return {opt for action in sub._actions for opt in action.option_strings}

    shared = flags("evaluate") & flags("run")
    from batch.flags import flag_name

    pipeline = {flag_name(path) for path, _, _ in walk(PipelineSettings)}
    assert pipeline <= shared
    assert {"--train-seed", "--split-seed", "--learning-rate", "--gmf-epochs", "--ials-factors"} <= pipeline


@pytest.mark.parametrize("command", ["evaluate", "run"])
def test_flags_reach_the_model_the_same_way_in_both_commands(command):
    s = settings(
        command, "--model", "neumf", "--factors", "16", "--layers", "32,16", "--epochs", "3",
        "--learning-rate", "0.01", "--train-seed", "4", "--gmf-epochs", "2", "--mlp-num-negatives", "3",
        "--no-pretrain", "--engine", "numpy",
    )  # fmt: skip
    model = build_model(s.model, **s.model_options())
    assert model.engine == "numpy" and model.config == NCFConfig(kind="neumf", factors=16, layers=(32, 16))
    cfg = model.train_config
    assert (cfg.epochs, cfg.learning_rate, cfg.seed, cfg.pretrain) == (3, 0.01, 4, False)
    # one tower field given: the tower's other defaults stay
    assert cfg.gmf.epochs == 2 and cfg.gmf.batch_size == TrainConfig().gmf.batch_size
    assert cfg.mlp.num_negatives == 3 and cfg.mlp.epochs == TrainConfig().mlp.epochs
    assert cfg.tower_config("gmf").epochs == 2 and cfg.tower_config("mlp").num_negatives == 3


@pytest.mark.parametrize("command", ["evaluate", "run"])
def test_baseline_settings_reach_the_baseline(command):
    ials = build_model("ials", **settings(command, "--model", "ials", "--ials-factors", "8").model_options())
    assert ials.factors == 8 and ials.alpha == build_model("ials").alpha
    ease = settings(command, "--model", "ease", "--ease-l2", "123", "--ease-recent-weight", "2")
    model = build_model("ease", **ease.model_options())
    assert (model.l2, model.recent_weight) == (123.0, 2.0)


@pytest.mark.parametrize("command", ["evaluate", "run"])
def test_ncf_flags_reach_the_blends_neumf_member(command):
    args = (
        "--model",
        "neumf_blend",
        "--engine",
        "numpy",
        "--epochs",
        "3",
        "--factors",
        "16",
        "--train-seed",
        "9",
    )
    blend = build_model("neumf_blend", **settings(command, *args).model_options())
    neumf = blend._build_neumf()
    assert neumf.engine == "numpy" and neumf.config.factors == 16 and neumf.train_config.epochs == 3
    assert neumf.train_config.seed == blend.seed == 0  # the member trains with the blend's seed
    # by default the member is the default NeuMF, as the blend's own default
    default = build_model("neumf_blend", **settings(command, "--model", "neumf_blend").model_options())
    member = default._build_neumf()
    assert (member.engine, member.config, member.train_config) == ("keras", NCFConfig(), TrainConfig())
    # the blend's own neumf_options win
    given = settings(command, "--model", "neumf_blend", "--neumf-blend-neumf-options", '{"engine": "numpy"}')
    member = build_model("neumf_blend", **given.model_options())._build_neumf()
    assert member.engine == "numpy" and member.train_config.epochs == TrainConfig().epochs


def test_env_names_nested_settings(monkeypatch):
    monkeypatch.setenv("NCF_MODELS__IALS__FACTORS", "12")
    monkeypatch.setenv("NCF_TRAIN__MLP__EPOCHS", "2")
    monkeypatch.setenv("NCF_GATE__FLOORS", '{"my-data": 0.3}')
    s = settings("run")
    assert s.models.ials.factors == 12 and s.train.mlp.epochs == 2 and s.gate.floor("my-data") == 0.3


BAD = [
    ("layers", ["run", "--layers", "63,8"]),
    ("optimizer", ["run", "--optimizer", "rmsprop"]),
    ("weight_decay", ["evaluate", "--weight-decay", "-0.1"]),
    ("recent_fraction", ["evaluate", "--recent-fraction", "1.5"]),
    ("factors", ["run", "--ials-factors", "many"]),
    ("model", ["run", "--model", "nope"]),
    ("JSON", ["run", "--gate-floors", "ml-1m=0.7"]),
    (r"gate\.protocol", ["run", "--protocol", "sampled", "--gate-protocol", "full"]),
]


@pytest.mark.parametrize(("message", "argv"), BAD)
def test_bad_values_are_rejected_naming_the_setting(message, argv):
    with pytest.raises(ValueError, match=message):
        settings(*argv)


def test_unknown_model_options_are_rejected():
    with pytest.raises(ValueError, match="factors"):
        build_model("itempop", factors=8)
    with pytest.raises(ValueError):
        build_model("ease", l2=-1, unknown=3)
