"""The documentation cannot drift: generated parts equal their generators' output, links resolve.

- docs/configuration.md equals `scripts/config_reference.py`'s output, and names every flag of
  `ncf-batch run` and `ncf-batch evaluate`;
- README.md's results block and docs/accuracy.md's leaderboard block equal `scripts/render_results.py`'s
  output (figures read from bench/results/);
- every relative link in README.md, docs/*.md and bench/results/README.md points to an existing file (and
  an existing heading when it names one).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "bench" / "results" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_page_is_current() -> None:
    reference = script("config_reference")
    assert (ROOT / "docs" / "configuration.md").read_text() == reference.render(), (
        "docs/configuration.md is stale: run python scripts/config_reference.py --write"
    )


@pytest.mark.parametrize("command", ["run", "evaluate"])
def test_configuration_page_names_every_flag(command: str) -> None:
    from batch.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    actions = [a for a in subparsers.choices[command]._actions if a.help != argparse.SUPPRESS]
    flags = [flag for action in actions for flag in action.option_strings if flag not in ("-h", "--help")]
    assert flags
    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = [flag for flag in flags if f"`{flag}`" not in page]
    assert not missing, f"flags of ncf-batch {command} missing from docs/configuration.md: {missing}"


def test_readme_results_block_is_current() -> None:
    render = script("render_results")
    readme = (ROOT / "README.md").read_text()
    assert render.BEGIN in readme and render.END in readme
    assert render.block_of(readme) == render.render(), (
        "README.md's results block is stale: run python scripts/render_results.py --write"
    )


def test_accuracy_leaderboard_block_is_current() -> None:
    render = script("render_results")
    page = (ROOT / "docs" / "accuracy.md").read_text()
    assert render.BOARD_BEGIN in page and render.BOARD_END in page
    assert render.block_of(page, render.BOARD_BEGIN, render.BOARD_END) == render.render_leaderboard(), (
        "docs/accuracy.md's leaderboard block is stale: run python scripts/render_results.py --write"
    )


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_describe_what_is(page: Path) -> None:
    """No work-history narration in the pages: numbered sessions or rounds, old figures ("was" + a number)."""
    hits = re.findall(r".{0,30}\b(?:session|round|was) [0-9].{0,30}", page.read_text(), re.I)
    assert not hits, f"{page.relative_to(ROOT)}: {hits}"
