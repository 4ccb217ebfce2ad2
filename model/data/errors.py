"""The one exception type for bad input files."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A MovieLens-style input file is missing or malformed.

    Attributes:
        path: the offending file.
        line: 1-based line number, or None when the problem is not tied to one line.
        reason: what is wrong, in words.
    """

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {reason}")
