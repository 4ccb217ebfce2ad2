"""`fetch-data`: download an official MovieLens zip from GroupLens, verify its MD5, extract atomically.

ML-100K ships `u.data`; ML-1M `::`-separated `ratings.dat`, `movies.dat`, `users.dat`; ML-10M the
same layout without `users.dat`, in a folder `ml-10M100K`; ML-20M and ML-25M `ratings.csv` and
`movies.csv`. Whatever the zip's top folder is called, its contents land in `dest`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archive:
    url: str
    md5: str  # as published by GroupLens next to each zip (<name>.zip.md5)
    marker: str  # a file whose presence means the data set is already there


ARCHIVES = {
    "ml-1m": Archive(
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "c4d9eecfca2ab87c1945afe126590906",
        "ratings.dat",
    ),
    "ml-100k": Archive(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "0e33842e24a9c977be4e0107933c0723",
        "u.data",
    ),
    "ml-10m": Archive(
        "https://files.grouplens.org/datasets/movielens/ml-10m.zip",
        "ce571fd55effeba0271552578f2648bd",
        "ratings.dat",
    ),
    "ml-20m": Archive(
        "https://files.grouplens.org/datasets/movielens/ml-20m.zip",
        "cd245b17a1ae2cc31bb14903e1204af3",
        "ratings.csv",
    ),
    "ml-25m": Archive(
        "https://files.grouplens.org/datasets/movielens/ml-25m.zip",
        "6b51fb2759a8657d3bfcbfc42b592ada",
        "ratings.csv",
    ),
}


class FetchError(RuntimeError):
    """The archive could not be downloaded, verified or extracted."""


def fetch_dataset(
    name: str, dest: str | Path, url: str | None = None, md5: str | None = None, timeout: float = 60.0
) -> Path:
    """Make `dest` hold the data set `name`; a no-op when its marker file is already there.

    Args:
        name: a key of `ARCHIVES`.
        dest: target directory (created; the zip's top folder becomes this directory).
        url, md5: override the official URL and checksum (a mirror); both or neither.

    Returns:
        `dest` as a Path.
    """
    if name not in ARCHIVES:
        raise FetchError(f"unknown dataset {name!r}; choose from {sorted(ARCHIVES)}")
    archive = ARCHIVES[name]
    url, md5 = url or archive.url, (md5 or archive.md5).lower()
    dest = Path(dest)
    if (dest / archive.marker).exists():
        logger.info("%s already present in %s: nothing to do", name, dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        zip_path = Path(tmp) / f"{name}.zip"
        _download(url, zip_path, timeout)
        digest = _md5(zip_path)
        if digest != md5:
            raise FetchError(
                f"checksum mismatch for {url}: md5 {digest}, expected {md5}; nothing was extracted"
            )
        staged = _extract(zip_path, Path(tmp) / "extract", archive.marker)
        if dest.exists():
            if any(dest.iterdir()):
                raise FetchError(
                    f"{dest} exists, is not empty and has no {archive.marker}; refusing to overwrite"
                )
            dest.rmdir()
        staged.rename(dest)  # same file system: atomic
    logger.info("%s extracted to %s", name, dest)
    return dest


def _download(url: str, target: Path, timeout: float) -> None:
    logger.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise FetchError(
            f"could not download {url}: {exc}. If this machine is offline, download the zip elsewhere, "
            "unzip it, and point NCF_DATA_DIR (or --data-dir) at the extracted folder."
        ) from exc


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract(zip_path: Path, into: Path, marker: str) -> Path:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise FetchError(f"unsafe path {member!r} in {zip_path.name}")
            zf.extractall(into)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{zip_path.name} is not a valid zip: {exc}") from exc
    found = [p.parent for p in into.rglob(marker)]
    if len(found) != 1:
        raise FetchError(f"expected one {marker} in the archive, found {len(found)}")
    return found[0]
