"""Every setting of `ncf-batch run`, generated from its settings model into docs/configuration.md.

    python scripts/config_reference.py            # print the page
    python scripts/config_reference.py --write    # rewrite docs/configuration.md

The settings class is walked recursively: each nested pydantic model is a group of its own, however deep.
Per field: its dotted name (the key in a config file), its command-line flag, its environment variable,
type, default and description. The flags are not derived here: they are read from the parser the CLI
itself builds (`batch.run_cli.add_run_arguments`, which names them), so this page and `ncf-batch run
--help` cannot disagree. Environment variable names follow the class's `env_prefix` and
`env_nested_delimiter`. Nothing here names a particular field. `tests/test_docs.py` checks that the
committed page equals this script's output and that every flag of the CLI is on it.
"""

from __future__ import annotations

import argparse
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

from batch.run_cli import add_run_arguments  # noqa: E402  (the CLI's own flag names)
from batch.settings import RunSettings  # noqa: E402

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


def cli_flags() -> dict[tuple[str, ...], list[str]]:
    """Flags of the CLI's parser by settings path (an argparse dest `a.b` or `a__b` is the path (a, b))."""
    parser = argparse.ArgumentParser(add_help=False)
    add_run_arguments(parser)
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


def render(settings: type[BaseModel] = RunSettings) -> str:
    flags = cli_flags()
    groups: dict[tuple[str, ...], list[str]] = {}
    owners: dict[tuple[str, ...], type[BaseModel]] = {}
    for path, field, default, owner in walk(settings):
        group = path[:-1]
        owners[group] = owner
        flag = " / ".join(f"`{f}`" for f in flags.get(path, [])) or "–"
        cells = [
            f"`{'.'.join(path)}`",
            flag,
            env_name(settings, path),
            cell(type_name(field.annotation)),
            cell(default_text(default)),
            cell(field.description or ""),
        ]
        groups.setdefault(group, []).append("| " + " | ".join(cells) + " |")
    lines = [
        "# Configuration reference",
        "",
        f"Every setting of `ncf-batch run` (`{settings.__module__}.{settings.__name__}`). Generated by",
        "`python scripts/config_reference.py --write`; `tests/test_docs.py` checks that it is current.",
        "",
        "Sources, highest priority first: command-line flags, environment variables, the config file",
        "(TOML or JSON; a nested group is a table, e.g. `[group]` with `field = value`), the defaults below.",
        "The setting column is the key in the config file. Lists are given comma-separated on the command",
        "line (`--flag 64,32,16`). `ncf-batch run --help` prints the same flags and defaults.",
    ]
    for group, rows in groups.items():
        owner = owners[group]
        name = f"`{'.'.join(group)}` ({owner.__name__})" if group else owner.__name__
        doc = cell((owner.__doc__ or "").strip().split("\n\n")[0])
        lines += ["", f"## {name}", "", *([doc, ""] if doc else [])]
        lines += ["| setting | flag | environment | type | default | description |", "|---" * 6 + "|"]
        lines += rows
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
