"""Every setting of `ncf-batch run` and `evaluate`, generated from their settings models into
docs/configuration.md.

    python scripts/config_reference.py            # print the page
    python scripts/config_reference.py --write    # rewrite docs/configuration.md

Each command's settings class is walked recursively: each nested pydantic model is a group of its own,
however deep. Per field: its dotted name (the key in a config file), its command-line flag, its environment
variable, type, default and description. The flags are not derived here: they are read from the parsers
the CLI itself builds (`batch.flags.add_flags`, which names them with `batch.flags.flag_name`), so this page
and `--help` cannot disagree. Environment variable names follow the class's `env_prefix` and
`env_nested_delimiter`. Nothing here names a particular field. `tests/test_docs.py` checks that the
committed page equals this script's output and that every flag of the CLI is on it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from batch.flags import add_flags  # noqa: E402  (the CLI's own flag names)
from batch.settings import EvaluateSettings, RunSettings  # noqa: E402

COMMANDS: dict[str, type[BaseModel]] = {"run": RunSettings, "evaluate": EvaluateSettings}

OUT = ROOT / "docs" / "configuration.md"
REQUIRED = object()


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (also as `Model | None`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [nested_model(a) for a in get_args(annotation) if a is not type(None)]
        return models[0] if len(models) == 1 else None
    return None


def walk(
    model: type[BaseModel], defaults: BaseModel | None = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], FieldInfo, Any, type[BaseModel]]]:
    """(path, field, default, owning model) for every leaf field, depth first, fields in declaration order.
    A nested field's default is read from its parent's default instance when there is one (a parent may
    default its child to other values than the child's own), else from the child's field."""
    for name, field in model.model_fields.items():
        if defaults is not None:
            default = getattr(defaults, name)
        elif field.is_required():
            default = REQUIRED
        else:
            default = field.get_default(call_default_factory=True)
        child = nested_model(field.annotation)
        if child is None:
            yield (*path, name), field, default, model
        else:
            yield from walk(child, default if isinstance(default, BaseModel) else None, (*path, name))


def cli_parser(settings: type[BaseModel]) -> argparse.ArgumentParser:
    """The parser the CLI builds for a command's settings."""
    parser = argparse.ArgumentParser(add_help=False)
    add_flags(parser, settings)
    return parser


def cli_flags(settings: type[BaseModel]) -> dict[tuple[str, ...], list[str]]:
    """Flags of the CLI's parser by settings path (an argparse dest `a.b` or `a__b` is the path (a, b))."""
    parser = cli_parser(settings)
    flags: dict[tuple[str, ...], list[str]] = {}
    for action in parser._actions:
        if action.option_strings and action.help != argparse.SUPPRESS:
            flags[tuple(re.split(r"\.|__", action.dest))] = list(action.option_strings)
    return flags


def type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " / ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is dict:
        return f"object of {type_name(args[0])}: {type_name(args[1])}" if args else "object"
    if origin in (tuple, list, set, frozenset):
        return f"list of {type_name(args[0])}" if args else "list"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        names = {"Path": "path", "str": "text", "bool": "true / false"}
        return names.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def default_text(value: Any) -> str:
    if value is REQUIRED or value is PydanticUndefined:
        return "required"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, dict):
        return f"`{json.dumps(value)}`"
    if isinstance(value, (tuple, list)):
        return "`" + ",".join(str(v) for v in value) + "`"
    return f"`{value}`"


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def env_name(settings: type[BaseModel], path: tuple[str, ...]) -> str:
    prefix = settings.model_config.get("env_prefix", "")
    delimiter = settings.model_config.get("env_nested_delimiter")
    if len(path) > 1 and not delimiter:
        return "–"
    return f"`{prefix}{(delimiter or '').join(path).upper()}`"


def render(commands: dict[str, type[BaseModel]] = COMMANDS) -> str:
    """The page: one table per settings group; a setting only some commands have says which."""
    first = next(iter(commands.values()))
    rows: dict[tuple[str, ...], tuple[FieldInfo, Any, type[BaseModel]]] = {}
    has: dict[tuple[str, ...], list[str]] = {}
    flags: dict[tuple[str, ...], list[str]] = {}
    for command, settings in commands.items():
        for path, field, default, owner in walk(settings):
            rows.setdefault(path, (field, default, owner))
            has.setdefault(path, []).append(command)
        for path, names in cli_flags(settings).items():
            flags.setdefault(path, names)
    groups: dict[tuple[str, ...], list[str]] = {}
    owners: dict[tuple[str, ...], type[BaseModel]] = {}
    for path, (field, default, owner) in rows.items():
        owners.setdefault(path[:-1], owner)
        only = "" if len(has[path]) == len(commands) else f" (`{'`, `'.join(has[path])}` only)"
        cells = [
            f"`{'.'.join(path)}`",
            " / ".join(f"`{f}`" for f in flags.get(path, [])) or "–",
            env_name(first, path),
            cell(type_name(field.annotation)),
            cell(default_text(default)),
            cell(field.description or "") + only,
        ]
        groups.setdefault(path[:-1], []).append("| " + " | ".join(cells) + " |")
    names = " and ".join(
        f"`ncf-batch {command}` (`{s.__module__}.{s.__name__}`)" for command, s in commands.items()
    )
    lines = [
        "# Configuration reference",
        "",
        f"Every setting of {names}.",
        "Made by `python scripts/config_reference.py --write`; `tests/test_docs.py` checks it is current.",
        "",
        "Sources, highest priority first: command-line flags, environment variables, the config file",
        "(TOML or JSON; a nested group is a table, e.g. `[group]` with `field = value`), the defaults below.",
        "The setting column is the key in the config file. Lists are given comma-separated on the command",
        "line (`--flag 64,32,16`). `ncf-batch COMMAND --help` prints the same flags and defaults.",
    ]
    for group, group_rows in groups.items():
        if group:
            owner = owners[group]
            title = f"`{'.'.join(group)}` ({owner.__name__})"
            doc = cell((owner.__doc__ or "").strip().split("\n\n")[0])
        else:
            title = "Top level"
            doc = " ".join(cell((s.__doc__ or "").strip().split("\n\n")[0]) for s in commands.values())
        lines += ["", f"## {title}", "", *([doc, ""] if doc else [])]
        lines += ["| setting | flag | environment | type | default | description |", "|---" * 6 + "|"]
        lines += group_rows
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    args = parser.parse_args()
    text = render()
    if args.write:
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
