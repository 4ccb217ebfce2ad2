"""`scripts/lock_requirements.py`: pinning a dependency closure from the installed environment, with the
sha256 of each pin's wheels (pip's resolution is faked here: the tests never use the network)."""

from __future__ import annotations

import importlib.util
import platform
from importlib import metadata
from pathlib import Path

import pytest
from packaging.tags import _manylinux

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


SHA = {key: key * 64 for key in "abcde"}


def test_render_is_sorted_name_equals_version_with_hashes():
    text = lock.render({"b": "2", "a": "1.0"}, ["a", "b"], {"a": [SHA["a"]], "b": [SHA["b"], SHA["c"]]})
    assert text.splitlines()[2:] == [
        "a==1.0 \\",
        f"    --hash=sha256:{SHA['a']}",
        "b==2 \\",
        f"    --hash=sha256:{SHA['b']} \\",
        f"    --hash=sha256:{SHA['c']}",
    ]
    assert text.startswith("# Generated")
    assert lock.parse_pins(text) == {"a": "1.0", "b": "2"}


def test_platform_tags_follow_packaging_order():
    assert lock.platform_tags("aarch64", 18) == [
        "manylinux_2_18_aarch64",
        "manylinux_2_17_aarch64",
        "manylinux2014_aarch64",
    ]
    tags = lock.platform_tags("x86_64", 36)
    assert tags[0] == "manylinux_2_36_x86_64" and tags[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert tags[tags.index("manylinux_2_17_x86_64") + 1] == "manylinux2014_x86_64"
    glibc = platform.libc_ver()
    if platform.system() == "Linux" and platform.machine() == "x86_64" and glibc[0] == "glibc":
        minor = int(glibc[1].split(".")[1])
        assert lock.platform_tags("x86_64", minor) == list(_manylinux.platform_tags(["x86_64"]))


def _report(*items: tuple[str, str, str | None]) -> dict:
    return {
        "install": [
            {
                "metadata": {"name": name, "version": version},
                "download_info": {
                    "url": f"https://x/{name}.whl",
                    "archive_info": {"hashes": {"sha256": sha}},
                },
            }
            for name, version, sha in items
        ]
    }


def test_report_pins_reads_canonical_names_versions_and_hashes():
    report = _report(("Flask", "3.1.3", SHA["a"]), ("typing_extensions", "4.16.0", SHA["b"]))
    assert lock.report_pins(report) == {
        "flask": ("3.1.3", SHA["a"]),
        "typing-extensions": ("4.16.0", SHA["b"]),
    }
    with pytest.raises(SystemExit, match="no sha256 for flask"):
        lock.report_pins(_report(("Flask", "3.1.3", None)))


def _fake_pip(monkeypatch, per_target: dict) -> None:
    monkeypatch.setattr(
        lock, "resolve", lambda reqs, target, no_deps: lock.report_pins(_report(*per_target[target]))
    )


def test_hashes_unite_the_wheels_of_every_target(monkeypatch):
    bookworm, trixie = lock.TARGETS
    _fake_pip(
        monkeypatch,
        {
            bookworm: [("a", "1", SHA["b"]), ("b", "2", SHA["c"])],
            trixie: [("a", "1", SHA["a"]), ("b", "2", SHA["c"])],
        },
    )
    assert lock.hashes({"a": "1", "b": "2"}) == {"a": [SHA["a"], SHA["b"]], "b": [SHA["c"]]}


def test_hashes_refuse_a_different_version_or_a_missing_wheel(monkeypatch):
    bookworm, trixie = lock.TARGETS
    _fake_pip(monkeypatch, {bookworm: [("a", "1.1", SHA["a"])], trixie: [("a", "1", SHA["a"])]})
    with pytest.raises(SystemExit, match=r"pip picked a==1\.1"):
        lock.hashes({"a": "1"})
    _fake_pip(monkeypatch, {bookworm: [("a", "1", SHA["a"])], trixie: [("a", "1", SHA["a"])]})
    with pytest.raises(SystemExit, match="no wheel hash from PyPI for: b"):
        lock.hashes({"a": "1", "b": "2"})


def test_stale_files_compares_versions_offline(tmp_path):
    roots = ["flask>=3"]
    pins = lock.closure(roots)
    sha = {name: [SHA["a"]] for name in pins}
    (tmp_path / "app.txt").write_text(lock.render(pins, roots, sha))
    (tmp_path / "build.txt").write_text(
        lock.render({"setuptools": "80.1"}, ["setuptools>=77"], {"setuptools": [SHA["a"]]})
    )
    assert lock.stale_files(tmp_path, {"app.txt": roots}, ["setuptools>=77"]) == []
    (tmp_path / "app.txt").write_text(lock.render({**pins, "flask": "0.1"}, roots, sha))
    assert lock.stale_files(tmp_path, {"app.txt": roots}, ["setuptools>=81", "wheel"]) == [
        "app.txt",
        "build.txt",
    ]
