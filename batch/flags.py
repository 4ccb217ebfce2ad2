"""Command-line flags generated from the settings models, so each setting has one name, one default and one
help text, and `evaluate` and `run` share every flag of `PipelineSettings`. Only flags given on the command
line are passed on (unset flags leave env / config file / defaults in charge).

Names: a top-level field becomes `--data-dir`, `--top-n`; fields of the NCF groups (`ncf`, `train`) keep
their own name (`--factors`, `--layers 64,32,16,8`, `--epochs`); every other group prefixes its name:
`--gmf-batch-size` (train.gmf), `--ials-factors` (models.ials), `--gate-floors '{"ml-1m": 0.7}'` (gate).
Lists are comma-separated, dicts JSON, booleans `--x` / `--no-x`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

UNPREFIXED = {"ncf", "train", "models"}  # groups whose fields keep their bare names
HIDDEN = {"ncf.kind"}  # set by the model name, never by a flag
ALIASES = {"train.seed": "train-seed", "json_output": "json"}


def flag_name(path: str) -> str:
    """The flag of a dotted settings path: `train.gmf.batch_size` -> `--gmf-batch-size`."""
    if path in ALIASES:
        return "--" + ALIASES[path]
    *groups, name = path.split(".")
    prefix = groups[-1].replace("_", "-") + "-" if groups and groups[-1] not in UNPREFIXED else ""
    return "--" + prefix + name.replace("_", "-")


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def walk(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo, str]]:
    """(dotted path, field, group title) of every leaf setting, nested models flattened."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _nested_model(field.annotation)
        if nested is not None:
            yield from walk(nested, path + ".")
        elif path not in HIDDEN:
            yield path, field, prefix.rstrip(".") or "job"


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def _is_dict(annotation: Any) -> bool:
    """A dict setting, also as `dict[...] | None`."""
    if annotation is dict or get_origin(annotation) is dict:
        return True
    options = [a for a in get_args(annotation) if a is not type(None)]
    return get_origin(annotation) in (Union, UnionType) and len(options) == 1 and _is_dict(options[0])


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return ""
    default = field.get_default(call_default_factory=True)
    return f" (default {json.dumps(default) if isinstance(default, dict) else default})"


def add_flags(parser: argparse.ArgumentParser, settings_cls: type[BaseModel]) -> None:
    """One flag per leaf setting of `settings_cls`; every default is argparse.SUPPRESS (absent = not
    given). Help texts escape `%` for argparse. ValueError if two settings would share a flag."""
    parser.argument_default = argparse.SUPPRESS
    groups: dict[str, argparse._ArgumentGroup] = {}
    seen: dict[str, str] = {}
    for path, field, title in walk(settings_cls):
        flag = flag_name(path)
        if flag in seen:
            raise ValueError(f"settings {seen[flag]} and {path} would share the flag {flag}")
        seen[flag] = path
        if title not in groups:
            env = (
                "NCF_" + "__".join(title.upper().split(".")) + "__<NAME>" if title != "job" else "NCF_<NAME>"
            )
            groups[title] = parser.add_argument_group(f"{title} settings (env {env})")
        help_text = f"{field.description or ''}{_default_text(field)}".replace("%", "%%")
        if _is_bool(field.annotation):
            groups[title].add_argument(flag, dest=path, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            literal = _is_literal(field.annotation)
            metavar = "{" + ",".join(map(str, get_args(field.annotation))) + "}" if literal else "VALUE"
            groups[title].add_argument(flag, dest=path, metavar=metavar, help=help_text)


def _is_literal(annotation: Any) -> bool:
    return str(get_origin(annotation)) == "typing.Literal"


def _value(raw: Any, field: FieldInfo) -> Any:
    """Comma-separated values become lists (e.g. --layers 64,32,16,8), dict settings parse as JSON;
    pydantic converts and validates the rest."""
    if isinstance(raw, str) and _is_dict(field.annotation):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{raw!r} is not a JSON object: {exc}") from None
    if isinstance(raw, str) and "," in raw:
        return [part.strip() for part in raw.split(",")]
    return raw


def flags_to_settings(args: argparse.Namespace, settings_cls: type[BaseModel]) -> dict[str, Any]:
    """The flags given, as keyword arguments of `settings_cls` (nested fields as nested dicts)."""
    fields = {path: field for path, field, _ in walk(settings_cls)}
    values: dict[str, Any] = {}
    for path, raw in vars(args).items():
        if path not in fields:
            continue
        *groups, name = path.split(".")
        target = values
        for group in groups:
            target = target.setdefault(group, {})
        target[name] = _value(raw, fields[path])
    return values
