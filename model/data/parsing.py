"""Vectorized, strict parsing of delimited text files into pandas columns.

Every check is done on whole arrays (NumPy over the raw bytes, pandas for the values), never with a Python
loop per line, and every failure raises `DataFormatError` naming the file, the 1-based line and the problem.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from model.data.errors import DataFormatError

_INTERNAL_SEP = b"\t"


def read_bytes(path: Path) -> bytes:
    """Read a whole file; a missing or empty file is a `DataFormatError`."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise DataFormatError(path, "is a directory, expected a file") from None
    if not raw.strip():
        raise DataFormatError(path, "file is empty")
    return raw


def _line_of_offset(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def check_encoding(path: Path, raw: bytes, encoding: str) -> None:
    """Reject bytes that are not text in `encoding`.

    Latin-1 decodes any byte, so for Latin-1 files two mistakes are caught instead: NUL bytes (UTF-16 or
    binary data) and text that is valid multi-byte UTF-8 (a re-encoded file whose titles would turn into
    mojibake). Pass encoding="utf-8" to read such a file on purpose.
    """
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataFormatError(
            path, f"NUL byte found: not {encoding} text (UTF-16 or binary?)", _line_of_offset(raw, nul)
        )
    if encoding.lower().replace("_", "-") in ("latin-1", "latin1", "iso-8859-1"):
        if raw.isascii():
            return
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return  # not UTF-8: genuinely Latin-1 (or at least single-byte) text
        first = int(np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) >= 0x80)[0])
        raise DataFormatError(
            path,
            "text is UTF-8 encoded but this layout is Latin-1; pass encoding='utf-8' to read it as UTF-8",
            _line_of_offset(raw, first),
        )
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            path, f"not valid {encoding}: {exc.reason} at byte {exc.start}", _line_of_offset(raw, exc.start)
        ) from None


def _normalise_lines(raw: bytes) -> bytes:
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n")
    return raw.rstrip(b"\n") + b"\n"


def split_header(path: Path, raw: bytes, expected: Sequence[str]) -> bytes:
    """Drop a CSV header line after checking it names the `expected` columns."""
    end = raw.find(b"\n")
    header = raw[:end].decode("utf-8", "replace").strip().lstrip("\ufeff")
    if [h.strip() for h in header.split(",")] != list(expected):
        raise DataFormatError(path, f"header is {header!r}, expected {','.join(expected)!r}", 1)
    return raw[end + 1 :]


def check_field_counts(
    path: Path, body: bytes, sep: bytes, n_fields: int | None, first_line: int, sep_name: str
) -> int:
    """Check every line of `body` (normalised, single-byte `sep`) has the same number of fields.

    Returns the number of fields per line. `n_fields=None` accepts any count shared by all lines (>= 2).
    """
    buf = np.frombuffer(body, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    seps = np.flatnonzero(buf == sep[0])
    seps_before = np.searchsorted(seps, newlines)
    per_line = np.diff(seps_before, prepend=0) + 1
    line_len = np.diff(newlines, prepend=-1) - 1
    empty = np.flatnonzero(line_len == 0)
    if empty.size:
        raise DataFormatError(path, "empty line", first_line + int(empty[0]))
    expected = n_fields if n_fields is not None else int(per_line[0])
    bad = np.flatnonzero(per_line != expected)
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(
            path,
            f"expected {expected} fields separated by {sep_name!r}, found {int(per_line[i])}",
            first_line + i,
        )
    if expected < 2:
        raise DataFormatError(path, f"no {sep_name!r} separator found", first_line)
    return expected


def read_fields(
    path: Path,
    raw: bytes,
    *,
    sep: str,
    names: Sequence[str],
    encoding: str,
    header: Sequence[str] | None = None,
    quoted: bool = False,
    fast_dtypes: Mapping[str, type] | None = None,
) -> tuple[pd.DataFrame, int]:
    """Parse a delimited file into a DataFrame of string columns.

    Args:
        sep: the separator as it appears in the file ("::", "\\t", "|", ",").
        names: column names; the file must have exactly this many fields on every line.
        header: when given, the first line must be this CSV header and is skipped.
        quoted: honour CSV double quotes (movies.csv titles); otherwise quotes are literal characters.
        fast_dtypes: numeric dtypes to try parsing straight into; if any value does not parse, the file is
            re-read as text so `to_integers` / `to_ratings` can name the bad line.

    Returns:
        (frame, first_line): string columns, one row per line, and the 1-based file line of row 0.
    """
    check_encoding(path, raw, encoding)
    raw = _normalise_lines(raw)
    first_line = 1
    if header is not None:
        raw = split_header(path, raw, header)
        first_line = 2
        if not raw.strip():
            raise DataFormatError(path, "file has a header but no data lines")
    if quoted:
        return _read_quoted_csv(path, raw, names, encoding, first_line), first_line
    body = raw.replace(sep.encode(), _INTERNAL_SEP) if len(sep) > 1 else raw
    if len(sep) > 1 and sep[0].encode() != _INTERNAL_SEP and _INTERNAL_SEP in raw:
        offset = raw.find(_INTERNAL_SEP)
        raise DataFormatError(
            path, f"tab character found; fields are separated by {sep!r}", _line_of_offset(raw, offset)
        )
    internal = _INTERNAL_SEP if len(sep) > 1 else sep.encode()
    check_field_counts(path, body, internal, len(names), first_line, sep)
    kwargs = dict(
        sep=internal.decode(),
        header=None,
        names=list(names),
        quoting=csv.QUOTE_NONE,
        na_filter=False,
        encoding=encoding,
        engine="c",
    )
    if fast_dtypes:
        # Fast path: let the C parser convert numbers; only on failure re-read as text to find the line.
        try:
            return pd.read_csv(io.BytesIO(body), dtype=dict(fast_dtypes), **kwargs), first_line
        except (ValueError, OverflowError):
            pass
    return pd.read_csv(io.BytesIO(body), dtype=str, **kwargs), first_line


def _read_quoted_csv(
    path: Path, raw: bytes, names: Sequence[str], encoding: str, first_line: int
) -> pd.DataFrame:
    """Quoted CSV (movies.csv titles may hold commas) through pyarrow, single-threaded so a bad row has a
    number."""
    bad_rows = []

    def on_bad_row(row: pacsv.InvalidRow) -> str:
        bad_rows.append(row)
        return "error"

    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=list(names), use_threads=False, encoding=encoding),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_bad_row),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid as exc:
        if bad_rows:
            row = bad_rows[0]
            raise DataFormatError(
                path,
                f"expected {len(names)} comma-separated fields, found {row.actual_columns}",
                first_line + row.number - 1,
            ) from None
        raise DataFormatError(path, f"malformed CSV: {exc}") from None
    return table.to_pandas()


def to_integers(
    path: Path, frame: pd.DataFrame, column: str, first_line: int, *, low: int = 0, high: int = 2**31 - 1
) -> np.ndarray:
    """Convert a column to int64, raising on the first non-integer or out-of-range value."""
    text = frame[column]
    if pd.api.types.is_integer_dtype(text.dtype):
        arr = text.to_numpy(dtype=np.int64)
        bad = np.flatnonzero((arr < low) | (arr > high))
        if bad.size:
            i = int(bad[0])
            raise DataFormatError(
                path, f"{column} must be an integer in [{low}, {high}], got {arr[i]}", first_line + i
            )
        return arr
    values = pd.to_numeric(text, errors="coerce")
    arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(arr) | (arr != np.floor(arr)) | (arr < low) | (arr > high)
    # Reject things like "1.0" or " 7" too: an id field must be plain digits.
    stripped = text.str.fullmatch(r"-?\d+").to_numpy(dtype=bool, na_value=False)
    bad |= ~stripped
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            path,
            f"{column} must be an integer in [{low}, {high}], got {text.iloc[i]!r}",
            first_line + i,
        )
    return arr.astype(np.int64)


def to_ratings(
    path: Path, frame: pd.DataFrame, column: str, first_line: int, low: float, high: float
) -> np.ndarray:
    """Convert a column to float32 ratings in [low, high]."""
    text = frame[column]
    if pd.api.types.is_numeric_dtype(text.dtype):
        arr = text.to_numpy(dtype=np.float64)
    else:
        arr = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(arr) | (arr < low) | (arr > high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            path, f"{column} must be a number in [{low}, {high}], got {text.iloc[i]!r}", first_line + i
        )
    return arr.astype(np.float32)
