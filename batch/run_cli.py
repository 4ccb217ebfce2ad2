"""Flags of `ncf-batch run`, generated from `RunSettings` so each setting has one name, one default and one
help text. Only flags given on the command line are passed on (unset flags leave env / file / defaults).

Top-level fields become `--data-dir`, `--top-n`, ...; fields of the nested NCF models become
`--factors`, `--layers 64,32,16,8`, `--epochs`, ... (their defaults live in `model.ncf.config`).
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import BaseModel

from batch.settings import RunSettings

NESTED = {"ncf": ("kind",), "train": ()}  # nested settings -> fields not exposed as flags


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _add(group: argparse._ArgumentGroup, dest: str, annotation: Any, help_text: str) -> None:
    if _is_bool(annotation):
        group.add_argument(
            _flag(dest.split(".")[-1]), dest=dest, action=argparse.BooleanOptionalAction, help=help_text
        )
    else:
        group.add_argument(_flag(dest.split(".")[-1]), dest=dest, metavar="VALUE", help=help_text)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per settings field; every default is argparse.SUPPRESS (absent = not given)."""
    parser.argument_default = argparse.SUPPRESS
    job = parser.add_argument_group("job settings (env NCF_<NAME>; defaults: batch.settings.RunSettings)")
    for name, field in RunSettings.model_fields.items():
        if name in NESTED:
            continue
        default = "" if field.is_required() else f" (default {field.get_default(call_default_factory=True)})"
        _add(job, name, field.annotation, f"{field.description}{default}")
    for nested, hidden in NESTED.items():
        model_cls: type[BaseModel] = RunSettings.model_fields[nested].annotation
        group = parser.add_argument_group(
            f"{nested} settings (env NCF_{nested.upper()}__<NAME>; "
            f"defaults: model.ncf.config.{model_cls.__name__})"
        )
        for name, field in model_cls.model_fields.items():
            if name not in hidden:
                _add(
                    group,
                    f"{nested}.{name}",
                    field.annotation,
                    f"{field.description} (default {field.default})",
                )


def _value(raw: Any) -> Any:
    """Comma-separated values become lists (e.g. --layers 64,32,16,8); pydantic converts the rest."""
    if isinstance(raw, str) and "," in raw:
        return [part.strip() for part in raw.split(",")]
    return raw


def flags_to_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, as `RunSettings` keyword arguments (nested fields as dicts)."""
    values: dict[str, Any] = {}
    for dest, raw in vars(args).items():
        head, _, tail = dest.partition(".")
        if tail:
            values.setdefault(head, {})[tail] = _value(raw)
        elif head in RunSettings.model_fields:
            values[head] = raw
    return values
