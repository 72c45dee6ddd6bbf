"""Read an input file row by row, streaming: CSV (a header of contract keys) or JSON lines.

A row becomes either the JSON data of a request body or a problem (field and message). Rows
are numbered by the line of the file they start on (the CSV header is line 1), which is what
an editor shows. Nothing is held beyond the current row.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from worker.model import CONTRACT_KEYS
from worker.model.messages import RULES

Format = Literal["csv", "jsonl"]
FORMATS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CONTEXT_PREFIX = "Context."
#: The object-valued keys a CSV writes one column per entry of: ``Context.orderId``,
#: ``DestinationCountryParameters.IN_ENTITY_ID`` (SMS).
MAP_KEYS = ("Context", "DestinationCountryParameters")
BOOLEAN_COLUMNS = frozenset({"DryRun", "MessageFeedbackEnabled"})
_INTEGER = re.compile(r"[0-9]{1,9}")
_KEY_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,99}")
_BOM = b"\xef\xbb\xbf"
# ``surrogateescape`` turns bytes that are not UTF-8 into these; the row is then reported.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
NOT_UTF8 = "the row is not valid UTF-8; save the file as UTF-8"


class InputFileError(ValueError):
    """The file as a whole cannot be read (format, header, encoding); no row was checked."""


@dataclass(frozen=True, slots=True)
class RawRow:
    """One row: ``data`` to validate, or the ``field`` and ``message`` of what was wrong."""

    line: int
    data: dict[str, Any] | None = None
    body: bytes | None = None  # a JSON line, as is (decoded by the worker's strict parser)
    field: str = ""
    message: str = ""


def detect_format(path: Path, given: str | None) -> Format:
    if given is not None:
        if given not in ("csv", "jsonl"):
            raise InputFileError(f"unknown format {given!r}: use csv or jsonl")
        return "csv" if given == "csv" else "jsonl"
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise InputFileError(
            f"cannot tell the format of {path.name} from its extension: name it .csv or "
            ".jsonl, or pass --format csv|jsonl"
        )
    return found


def file_size(path: Path) -> int:
    """The size of the file at ``path``; :class:`InputFileError` if it cannot be read."""
    try:
        if not path.exists():
            raise InputFileError(f"{path} does not exist; check the path")
        if not path.is_file():
            raise InputFileError(f"{path} is not a file; give the path of a .csv or .jsonl file")
        return path.stat().st_size
    except OSError as exc:
        raise InputFileError(_unreadable(path, exc)) from None


def _unreadable(path: Path, exc: OSError) -> str:
    return f"cannot read {path}: {exc.strerror or exc}; check the path and its permissions"


def _lines(stream: BinaryIO, on_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    first = True
    for line in stream:
        if on_bytes is not None:
            on_bytes(len(line))
        if first:
            first = False
            line = line.removeprefix(_BOM)
        yield line


def read_rows(
    path: Path, fmt: Format, *, on_bytes: Callable[[int], None] | None = None
) -> Iterator[RawRow]:
    """Every row of the file, in order; ``on_bytes`` is told how much was read as it goes.

    Raises :class:`InputFileError` (before yielding anything) when the file cannot be opened
    or, for CSV, when its header is not a valid list of columns.
    """
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise InputFileError(_unreadable(path, exc)) from None
    with stream:
        lines = _lines(stream, on_bytes)
        if fmt == "jsonl":
            yield from _jsonl_rows(lines)
        else:
            yield from _csv_rows(lines, path)


def _jsonl_rows(lines: Iterable[bytes]) -> Iterator[RawRow]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield RawRow(number, body=line)


# --- CSV --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    key: str  # the contract key, or the map entry's key
    into: str | None = None  # the map key (Context, DestinationCountryParameters) it is in

    @property
    def context(self) -> bool:
        """An entry of a map key rather than a key of its own."""
        return self.into is not None


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, CONTRACT_KEYS, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _shown(name: str) -> str:
    """A column name fit for a message: only when it looks like a key name (a file without a
    header row would otherwise echo a phone number or a message body)."""
    if _KEY_LIKE.fullmatch(name):
        return f"'{name}'"
    return "(its name is not shown: it does not look like a key name)"


def parse_header(names: list[str]) -> list[_Column]:
    """The columns of a CSV header; :class:`InputFileError` naming every bad column."""
    problems: list[str] = []
    columns: list[_Column] = []
    seen: set[str] = set()
    for position, raw in enumerate(names, start=1):
        name = raw.strip()
        if name in seen:
            problems.append(f"column {position} {_shown(name)} appears twice; keep one")
        seen.add(name)
        into, dot, entry = name.partition(".")
        if dot and into in MAP_KEYS and entry.strip():
            columns.append(_Column(entry, into=into))
        elif name in MAP_KEYS:
            example = "orderId" if name == "Context" else "IN_ENTITY_ID"
            problems.append(
                f"column {position} '{name}': write one column per entry, named "
                f"{name}.<key> (such as {name}.{example})"
            )
        elif name in CONTRACT_KEYS:
            columns.append(_Column(name))
        else:
            problems.append(
                f"column {position} {_shown(name)} is not a contract key{_suggest(name)}; "
                "name columns exactly like the message keys (case-sensitive) or Context.<key>"
            )
    if not columns:
        raise InputFileError(
            "line 1 must be a header naming the columns after the contract keys, such as "
            "DestinationPhoneNumber,OriginationIdentity,MessageBody; none of its cells is one "
            "(is the header row missing?)"
        )
    if problems:
        raise InputFileError("the CSV header is not valid:\n  " + "\n  ".join(problems))
    return columns


def _cell_value(column: _Column, cell: str) -> tuple[Any, str]:
    """The JSON value of a non-empty cell, or ``(None, message)``."""
    if column.key == "TimeToLive" and not column.context:
        if _INTEGER.fullmatch(cell) is None:
            return None, f"{RULES['TimeToLive']}; in a CSV cell write digits only, such as 3600"
        return int(cell), ""
    if column.key in BOOLEAN_COLUMNS and not column.context:
        lowered = cell.lower()
        if lowered not in ("true", "false"):
            return None, f"{column.key} must be true or false in a CSV cell (or left empty)"
        return lowered == "true", ""
    if column.key == "MediaUrls" and not column.context:
        return [cell], ""
    return cell, ""


def csv_row_data(columns: list[_Column], cells: list[str], line: int) -> RawRow:
    """One CSV record as request data: empty cells are absent, Context.* (and
    DestinationCountryParameters.*) cells fold into their object, TimeToLive is an integer,
    DryRun and MessageFeedbackEnabled booleans."""
    if len(cells) != len(columns):
        return RawRow(
            line,
            field="row",
            message=(
                f"the row has {len(cells)} cells but the header has {len(columns)}; "
                "quote cells that hold commas, line breaks or quotes"
            ),
        )
    data: dict[str, Any] = {}
    maps: dict[str, dict[str, str]] = {}
    for column, cell in zip(columns, cells, strict=True):
        if cell == "":
            continue
        if _UNDECODABLE.search(cell):
            return RawRow(line, field=column.into or column.key, message=NOT_UTF8)
        if column.into is not None:
            maps.setdefault(column.into, {})[column.key] = cell
            continue
        value, problem = _cell_value(column, cell)
        if problem:
            return RawRow(line, field=column.key, message=problem)
        data[column.key] = value
    data.update(maps)
    return RawRow(line, data=data)


def _csv_rows(lines: Iterable[bytes], path: Path) -> Iterator[RawRow]:
    text = (line.decode("utf-8", "surrogateescape") for line in lines)
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise InputFileError(
                f"{path.name} is empty: its first line must be a header of contract keys, "
                "such as DestinationPhoneNumber,OriginationIdentity,MessageBody"
            )
        if any(_UNDECODABLE.search(name) for name in header):
            raise InputFileError(f"the CSV header of {path.name} is not UTF-8; save as UTF-8")
        columns = parse_header(header)
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise InputFileError(f"line {start} of {path.name}: {_csv_error(exc)}") from None
            if cells:  # a blank line is no row
                yield csv_row_data(columns, cells, start)
    except csv.Error as exc:  # in the header
        raise InputFileError(f"line 1 of {path.name}: {_csv_error(exc)}") from None


def _csv_error(exc: csv.Error) -> str:
    return (
        f"the CSV cannot be read ({exc}); check the quoting of this row: a cell "
        'that holds a comma, line break or quote must be quoted, a quote inside doubled ("")'
    )


def file_version(path: Path) -> tuple[int, int]:
    """Size and modification time: a file that changes between the passes is not sent."""
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)
