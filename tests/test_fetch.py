"""fetch-data against a local HTTP server serving a small zip; never the internet."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from batch.fetch import ARCHIVES, FetchError, fetch_dataset
from model.data import DataLoader


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1; yields (base_url, www_dir, request_log)."""
    www = tmp_path / "www"
    www.mkdir()
    log: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):
            log.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www, log
    httpd.shutdown()
    httpd.server_close()


def _make_zip(
    www: Path, fixtures_dir: Path, name: str = "ml-1m", fixture: str = "dat", top: str = "ml-1m"
) -> str:
    """A zip `name`.zip of a fixture folder under the top folder `top`; returns its md5."""
    path = www / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted((fixtures_dir / fixture).iterdir()):
            zf.write(file, f"{top}/{file.name}")
        if name == "ml-10m":
            zf.writestr(f"{top}/tags.dat", "15::4973::excellent!::1215184630\n")
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def test_download_verify_extract_then_noop(server, fixtures_dir, tmp_path):
    base, www, log = server
    md5 = _make_zip(www, fixtures_dir)
    dest = tmp_path / "data" / "ml-1m"
    fetch_dataset("ml-1m", dest, url=f"{base}/ml-1m.zip", md5=md5)
    assert (dest / "ratings.dat").read_bytes() == (fixtures_dir / "dat" / "ratings.dat").read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["ml-1m"]  # no temporary leftovers
    fetch_dataset("ml-1m", dest, url=f"{base}/ml-1m.zip", md5=md5)
    assert log == ["/ml-1m.zip"]  # second call downloaded nothing


def test_checksum_mismatch_extracts_nothing(server, fixtures_dir, tmp_path):
    base, www, _ = server
    _make_zip(www, fixtures_dir)
    dest = tmp_path / "data" / "ml-1m"
    with pytest.raises(FetchError, match="checksum mismatch"):
        fetch_dataset("ml-1m", dest, url=f"{base}/ml-1m.zip", md5="0" * 32)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_official_checksum_is_checked_by_default(server, fixtures_dir, tmp_path):
    base, www, _ = server
    _make_zip(www, fixtures_dir)
    with pytest.raises(FetchError, match=ARCHIVES["ml-1m"].md5):
        fetch_dataset("ml-1m", tmp_path / "d", url=f"{base}/ml-1m.zip")


def test_offline_message(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="NCF_DATA_DIR"):
        fetch_dataset(
            "ml-1m", tmp_path / "d", url=f"http://127.0.0.1:{port}/ml-1m.zip", md5="0" * 32, timeout=5
        )


def test_not_a_zip(server, tmp_path):
    base, www, _ = server
    (www / "ml-1m.zip").write_bytes(b"not a zip")
    md5 = hashlib.md5(b"not a zip", usedforsecurity=False).hexdigest()
    with pytest.raises(FetchError, match="not a valid zip"):
        fetch_dataset("ml-1m", tmp_path / "d", url=f"{base}/ml-1m.zip", md5=md5)


def test_cli_exit_code(server, tmp_path):
    base, _, _ = server
    args = ["fetch-data", "--dest", str(tmp_path / "d"), "--url", f"{base}/missing.zip", "--md5", "0" * 32]
    proc = subprocess.run([sys.executable, "-m", "batch", *args], capture_output=True, text=True)
    assert proc.returncode == 5 and "could not download" in proc.stderr


def test_larger_releases_are_known():
    for name, marker in (("ml-10m", "ratings.dat"), ("ml-20m", "ratings.csv"), ("ml-25m", "ratings.csv")):
        archive = ARCHIVES[name]
        assert archive.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert archive.marker == marker and len(archive.md5) == 32 and int(archive.md5, 16) >= 0


def test_ml10m_layout_is_extracted(server, fixtures_dir, tmp_path):
    # GroupLens's ml-10m.zip holds a folder ml-10M100K with ratings.dat, movies.dat, tags.dat
    base, www, _ = server
    md5 = _make_zip(www, fixtures_dir, name="ml-10m", fixture="dat10m", top="ml-10M100K")
    dest = fetch_dataset("ml-10m", tmp_path / "ml-10m", url=f"{base}/ml-10m.zip", md5=md5)
    assert sorted(p.name for p in dest.iterdir()) == ["movies.dat", "ratings.dat", "tags.dat"]


def test_loader_reads_the_ml10m_layout(fixtures_dir):
    ds = DataLoader(fixtures_dir / "dat10m").load()
    assert (ds.format, ds.n_users, ds.n_items, ds.n_interactions) == ("dat", 3, 4, 8)
