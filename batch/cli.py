"""Command line: `python -m batch run ...` (the nightly job), `evaluate ...` (train and report figures,
publishing nothing), `fetch-data ...` (an official MovieLens archive) and `synth-data ...` (a synthetic
MovieLens-shaped set, for scale and speed checks only).

`evaluate` and `run` take the same flags for everything they share (generated from `batch.settings`), and
both go through `batch.pipeline.run_pipeline`. The only place that configures logging; JSON results go to
stdout, logs and progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from batch import exit_codes
from batch.fetch import ARCHIVES, FetchError, fetch_dataset
from batch.flags import add_flags, flags_to_settings
from batch.pipeline import run_pipeline
from batch.quality import QualityGateError
from batch.settings import EvaluateSettings, RunSettings
from model.data import DataFormatError
from model.data.synth import SHAPES, write_synthetic

logger = logging.getLogger("batch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncf-batch", description=__doc__)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="train a model and report HR@10 / NDCG@10 (leave-one-out)")
    add_flags(ev, EvaluateSettings)
    run = sub.add_parser("run", help="the nightly job: train, evaluate, score all unrated movies, publish")
    add_flags(run, RunSettings)

    fe = sub.add_parser("fetch-data", help="download and verify an official MovieLens archive")
    fe.add_argument("--dataset", default="ml-1m", choices=sorted(ARCHIVES))
    fe.add_argument("--dest", required=True, help="directory to create (the zip's folder becomes it)")
    fe.add_argument("--url", default=None, help="mirror URL instead of GroupLens (give --md5 with it)")
    fe.add_argument("--md5", default=None, help="expected MD5 of the zip at --url")

    sy = sub.add_parser(
        "synth-data",
        help="write a synthetic MovieLens-shaped data set (CSV layout) for scale and speed checks only",
    )
    sy.add_argument("--shape", required=True, choices=sorted(SHAPES), help="real set whose sizes to copy")
    sy.add_argument("--dest", required=True, help="directory to write ratings.csv, movies.csv, README.txt")
    sy.add_argument("--seed", type=int, default=0, help="seed of every draw")
    return parser


def run_evaluate(settings: EvaluateSettings) -> dict:
    """The pipeline without publishing; the report with the headline figures of `settings.split`."""
    result = run_pipeline(settings, publish=False, selection_only=settings.split == "validation")
    headline = result.results[settings.split][settings.protocols[0]]
    report = result.report(settings)
    return {"split": settings.split, "protocol": settings.protocol, **headline, **report}


def _print_summary(result: dict) -> None:
    print(
        f"{result['model']} on {result['dataset']} ({result['n_users']} users, {result['n_items']} items, "
        f"{result['n_interactions']} interactions)"
    )
    for which in ("validation", "test"):
        for protocol, m in result.get(which, {}).items():
            print(f"  {which:<10} {protocol:<7} HR@10 {m['hr@10']:.4f}  NDCG@10 {m['ndcg@10']:.4f}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "evaluate":
            settings = _settings(EvaluateSettings, args)
            if settings is None:
                return exit_codes.USAGE
            result = run_evaluate(settings)
            if settings.json_output:
                print(json.dumps(result, indent=2))
            else:
                _print_summary(result)
        elif args.command == "run":
            return _run_job(args)
        elif args.command == "synth-data":
            print(write_synthetic(args.shape, args.dest, seed=args.seed))
        elif args.command == "fetch-data":
            fetch_dataset(args.dataset, args.dest, url=args.url, md5=args.md5)
    except DataFormatError as exc:
        logger.error("bad input: %s", exc)
        return exit_codes.BAD_INPUT
    except FetchError as exc:
        logger.error("%s", exc)
        return exit_codes.DOWNLOAD
    return exit_codes.OK


def _settings(
    settings_cls: type[EvaluateSettings] | type[RunSettings], args: argparse.Namespace
) -> EvaluateSettings | RunSettings | None:
    """Validated settings from flags, env, config file and defaults; None (logged) when invalid."""
    try:
        settings = settings_cls(**flags_to_settings(args, settings_cls))
    except (ValidationError, OSError, ValueError) as exc:
        logger.error("invalid settings: %s", exc)
        return None
    logger.info("settings: %s", settings.model_dump_json())
    return settings


def _run_job(args: argparse.Namespace) -> int:
    from batch.job import JobLocked, PausePoint, run_job

    settings = _settings(RunSettings, args)
    if settings is None:
        return exit_codes.USAGE
    try:
        manifest = run_job(settings, PausePoint(os.environ.get("NCF_TEST_PAUSE_AT")))
    except QualityGateError as exc:
        logger.error("quality gate: not publishing, %s; the published output is unchanged", exc)
        return exit_codes.QUALITY_GATE
    except JobLocked as exc:
        logger.error("%s", exc)
        return exit_codes.FAILURE
    if manifest is None:  # a multi-worker training's task other than the chief: trained, published nothing
        return exit_codes.OK
    print(json.dumps({"run_id": manifest.run_id, "output_dir": str(settings.output_dir), **manifest.counts}))
    return exit_codes.OK
