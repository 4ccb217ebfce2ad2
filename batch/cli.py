"""Command line: `python -m batch run ...` (the nightly job), `evaluate ...` and `fetch-data ...`.

The only place that configures logging; JSON results go to stdout, logs and progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence

from batch import exit_codes
from batch.fetch import ARCHIVES, FetchError, fetch_dataset
from batch.quality import QualityGateError
from batch.run_cli import add_run_arguments, flags_to_settings
from model.data import DataFormatError, DataLoader, leave_one_out
from model.data.formats import FORMATS
from model.data.split import N_NEGATIVES
from model.evaluation import PROTOCOLS, Evaluator
from model.ncf.config import TOWER_OVERRIDES, TOWERS
from model.registry import MODELS, build_model

logger = logging.getLogger("batch")


def _protocols(value: str) -> tuple[str, ...]:
    return PROTOCOLS if value == "both" else (value,)


def _layers(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers wants comma-separated widths, got {value!r}") from None


# CLI flag -> (config group, field) of the NCF models; unset flags keep the pydantic defaults.
NCF_FLAGS = {
    "factors": ("config", "factors"),
    "layers": ("config", "layers"),
    "l2": ("config", "l2"),
    "dropout": ("config", "dropout"),
    "epochs": ("train_config", "epochs"),
    "batch_size": ("train_config", "batch_size"),
    "lr": ("train_config", "learning_rate"),
    "lr_schedule": ("train_config", "lr_schedule"),
    "optimizer": ("train_config", "optimizer"),
    "momentum": ("train_config", "momentum"),
    "weight_decay": ("train_config", "weight_decay"),
    "num_negatives": ("train_config", "num_negatives"),
    "recent_fraction": ("train_config", "recent_fraction"),
    "recent_weight": ("train_config", "recent_weight"),
    "patience": ("train_config", "patience"),
    "pretrain": ("train_config", "pretrain"),
    "pretrain_alpha": ("train_config", "pretrain_alpha"),
    "finetune_lr": ("train_config", "finetune_learning_rate"),
    "finetune_weight_decay": ("train_config", "finetune_weight_decay"),
    "train_seed": ("train_config", "seed"),
    **{name: ("train_config", name) for name in TOWER_OVERRIDES},
}


def _add_ncf_arguments(parser: argparse.ArgumentParser) -> None:
    ncf = parser.add_argument_group("NCF models (gmf, mlp, neumf); defaults: model.ncf.config")
    ncf.add_argument("--engine", default="keras", choices=["keras", "numpy"])
    ncf.add_argument("--factors", type=int, help="GMF predictive factors")
    ncf.add_argument("--layers", type=_layers, help="MLP widths, e.g. 256,128,64")
    ncf.add_argument("--l2", type=float, help="L2 penalty")
    ncf.add_argument("--dropout", type=float, help="MLP dropout rate")
    ncf.add_argument("--epochs", type=int, help="maximum epochs")
    ncf.add_argument("--batch-size", type=int)
    ncf.add_argument("--lr", type=float, help="learning rate")
    ncf.add_argument("--lr-schedule", choices=["constant", "cosine"], help="per-epoch learning rate")
    ncf.add_argument("--optimizer", choices=["adam", "sgd"])
    ncf.add_argument("--momentum", type=float, help="SGD momentum")
    ncf.add_argument("--weight-decay", type=float, help="decoupled weight decay (AdamW / SGDW)")
    ncf.add_argument("--num-negatives", type=int, help="training negatives per positive")
    ncf.add_argument("--recent-fraction", type=float, help="share of newest positives per user weighted")
    ncf.add_argument("--recent-weight", type=int, help="times each of those counts (1 = off)")
    ncf.add_argument("--patience", type=int, help="early-stopping patience in epochs (0 = off)")
    ncf.add_argument(
        "--pretrain", action=argparse.BooleanOptionalAction, default=None, help="NeuMF: pretrain GMF + MLP"
    )
    ncf.add_argument("--pretrain-alpha", type=float, help="NeuMF: GMF tower's weight in the fused output")
    ncf.add_argument("--finetune-lr", type=float, help="NeuMF learning rate after pretraining")
    ncf.add_argument("--finetune-weight-decay", type=float, help="NeuMF weight decay after pretraining")
    ncf.add_argument("--train-seed", type=int, help="seed of initialisation, negatives and shuffling")
    for kind in TOWERS:
        tower = f"NeuMF pretraining: {kind.upper()} tower"
        ncf.add_argument(f"--{kind}-batch-size", type=int, help=f"{tower} batch size")
        ncf.add_argument(f"--{kind}-lr-schedule", choices=["constant", "cosine"], help=f"{tower} schedule")
        ncf.add_argument(f"--{kind}-num-negatives", type=int, help=f"{tower} negatives per positive")
        ncf.add_argument(f"--{kind}-epochs", type=int, help=f"{tower} maximum epochs")
    ncf.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after selecting the best epoch on validation, retrain on train + validation items for that "
        "many epochs and report test figures of the retrained model (validation figures stay those of "
        "the selection run)",
    )


def ncf_options(args: argparse.Namespace) -> dict:
    """`build_model` options from the parsed NCF flags (only the flags given override defaults)."""
    options: dict = {"engine": args.engine, "config": {}, "train_config": {}}
    for flag, (group, field) in NCF_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            options[group][field] = value
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncf-batch", description=__doc__)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="train a model and report HR@10 / NDCG@10 (leave-one-out)")
    ev.add_argument(
        "--data-dir",
        default=os.environ.get("NCF_DATA_DIR"),
        help="MovieLens directory (default: $NCF_DATA_DIR)",
    )
    ev.add_argument("--format", default="auto", choices=["auto", *FORMATS])
    ev.add_argument("--model", default="itempop", choices=sorted(MODELS))
    ev.add_argument("--protocol", default="both", choices=[*PROTOCOLS, "both"])
    ev.add_argument(
        "--split", default="test", choices=["validation", "test"], help="split of the headline figures"
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the candidate negatives")
    ev.add_argument(
        "--eval-negatives",
        type=int,
        default=N_NEGATIVES,
        help="sampled negatives per held-out item (paper: 99)",
    )
    ev.add_argument("--min-rating", type=float, default=None, help="keep only ratings >= this as positives")
    ev.add_argument("--json", action="store_true", help="print one JSON object instead of a text summary")
    _add_ncf_arguments(ev)

    run = sub.add_parser("run", help="the nightly job: train, evaluate, score all unrated movies, publish")
    add_run_arguments(run)

    fe = sub.add_parser("fetch-data", help="download and verify an official MovieLens archive")
    fe.add_argument("--dataset", default="ml-1m", choices=sorted(ARCHIVES))
    fe.add_argument("--dest", required=True, help="directory to create (the zip's folder becomes it)")
    fe.add_argument("--url", default=None, help="mirror URL instead of GroupLens (give --md5 with it)")
    fe.add_argument("--md5", default=None, help="expected MD5 of the zip at --url")
    return parser


def run_evaluate(args: argparse.Namespace) -> dict:
    if not args.data_dir:
        raise DataFormatError(".", "no data directory: pass --data-dir or set NCF_DATA_DIR")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    dataset = DataLoader(args.data_dir, format=args.format, min_rating=args.min_rating).load()
    timings["load_s"] = time.perf_counter() - start

    start = time.perf_counter()
    split = leave_one_out(dataset, seed=args.seed, n_negatives=args.eval_negatives)
    timings["split_s"] = time.perf_counter() - start

    start = time.perf_counter()
    model = build_model(args.model, **ncf_options(args)).fit(split.train, split.validation)
    timings["fit_s"] = time.perf_counter() - start
    test_model = model
    if args.refit and hasattr(model, "refit"):
        start = time.perf_counter()
        test_model = model.refit(split.train_with_validation())
        timings["refit_s"] = time.perf_counter() - start

    evaluator = Evaluator(split, k=10, protocols=_protocols(args.protocol))
    results = {}
    for which, evaluated in (("validation", model), ("test", test_model)):
        start = time.perf_counter()
        results[which] = evaluator.evaluate(evaluated, which)
        timings[f"evaluate_{which}_s"] = time.perf_counter() - start
    headline = results[args.split][evaluator.protocols[0]]
    return {
        "model": args.model,
        "dataset": dataset.name,
        "format": dataset.format,
        "split": args.split,
        "protocol": args.protocol,
        "hr@10": headline["hr@10"],
        "ndcg@10": headline["ndcg@10"],
        "validation": results["validation"],
        "test": results["test"],
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "n_interactions": dataset.n_interactions,
        "seed": args.seed,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        **_training_report(model, args),
    }


def _training_report(model: object, args: argparse.Namespace) -> dict:
    """Configuration, per-epoch history and best epoch of a trained NCF model (empty for baselines)."""
    if not hasattr(model, "history_"):
        return {}
    report = {
        "engine": model.engine,
        "config": model.config.model_dump(mode="json"),
        "train_config": model.train_config.model_dump(mode="json"),
        "best_epoch": model.best_epoch_,
        "refit": args.refit,
        "history": model.history_,
    }
    if hasattr(model, "pretrained_"):
        report["pretrain_history"] = {kind: sub.history_ for kind, sub in model.pretrained_.items()}
    return report


def _print_summary(result: dict) -> None:
    print(
        f"{result['model']} on {result['dataset']} ({result['n_users']} users, {result['n_items']} items, "
        f"{result['n_interactions']} interactions)"
    )
    for which in ("validation", "test"):
        for protocol, m in result[which].items():
            print(f"  {which:<10} {protocol:<7} HR@10 {m['hr@10']:.4f}  NDCG@10 {m['ndcg@10']:.4f}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "evaluate":
            result = run_evaluate(args)
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                _print_summary(result)
        elif args.command == "run":
            return _run_job(args)
        elif args.command == "fetch-data":
            fetch_dataset(args.dataset, args.dest, url=args.url, md5=args.md5)
    except DataFormatError as exc:
        logger.error("bad input: %s", exc)
        return exit_codes.BAD_INPUT
    except FetchError as exc:
        logger.error("%s", exc)
        return exit_codes.DOWNLOAD
    return exit_codes.OK


def _run_job(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from batch.job import JobLocked, PausePoint, run_job
    from batch.settings import RunSettings

    try:
        settings = RunSettings(**flags_to_settings(args))
    except (ValidationError, OSError, ValueError) as exc:
        logger.error("invalid settings: %s", exc)
        return exit_codes.USAGE
    logger.info("settings: %s", settings.model_dump_json())
    try:
        manifest = run_job(settings, PausePoint(os.environ.get("NCF_TEST_PAUSE_AT")))
    except QualityGateError as exc:
        logger.error("quality gate: not publishing, %s; the published output is unchanged", exc)
        return exit_codes.QUALITY_GATE
    except JobLocked as exc:
        logger.error("%s", exc)
        return exit_codes.FAILURE
    print(json.dumps({"run_id": manifest.run_id, "output_dir": str(settings.output_dir), **manifest.counts}))
    return exit_codes.OK
