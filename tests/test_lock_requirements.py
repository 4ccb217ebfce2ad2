"""`scripts/lock_requirements.py`: pinning a dependency closure from the installed environment."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "lock_requirements.py"
spec = importlib.util.spec_from_file_location("lock_requirements", SCRIPT)
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)


def test_closure_pins_installed_versions_of_all_dependencies():
    pins = lock.closure(["flask>=3"])
    assert {"flask", "werkzeug", "jinja2", "markupsafe", "click", "itsdangerous", "blinker"} <= set(pins)
    assert all(pins[name] == metadata.version(name) for name in pins)


def test_closure_skips_requirements_whose_marker_is_false():
    assert lock.closure(['flask; sys_platform == "nonexistent-os"']) == {}


def test_closure_refuses_an_installed_version_outside_the_range():
    with pytest.raises(SystemExit, match="is installed but"):
        lock.closure(["flask<1"])


def test_select_takes_pyproject_ranges_and_rejects_unknown_names():
    deps = ["Flask>=3.0,<4", "pyarrow>=18"]
    assert lock.select(deps, ["flask"]) == ["Flask>=3.0,<4"]
    with pytest.raises(SystemExit, match="tensorflow"):
        lock.select(deps, ["tensorflow"])


def test_render_is_sorted_name_equals_version():
    text = lock.render({"b": "2", "a": "1.0"}, ["a", "b"])
    assert text.splitlines()[2:] == ["a==1.0", "b==2"]
    assert text.startswith("# Generated")
