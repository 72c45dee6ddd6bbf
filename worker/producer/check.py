"""Validate the rows of an input file with the worker's own parser, streaming.

A row's JSON is what goes on the queue: ``--campaign-id`` fills ``CampaignId`` where a row
has none, and ``RequestId`` where a row has none becomes ``<campaign-id>-<line>`` (stable
across runs of the same file, so enqueueing it twice sends nothing twice).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.model import InvalidRequest, parse_request
from worker.model.rules import TOKEN_MAX, TOKEN_PATTERN
from worker.producer.files import Format, RawRow, read_rows
from worker.producer.requests import (
    PLACEHOLDER_MESSAGE_ID,
    PreparedRequest,
    check_body,
    dump_body,
    request_data,
)
from worker.status.expected import add_to_digest

#: Room left in a RequestId for ``-<line number>`` after the campaign id.
CAMPAIGN_ID_MAX = TOKEN_MAX - 11


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row the worker would reject: where, which key, what is wrong (never a value)."""

    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class GoodRow:
    line: int
    prepared: PreparedRequest


@dataclass
class Scan:
    """Counts of one validation pass."""

    rows: int = 0
    valid: int = 0
    invalid: int = 0
    without_request_id: int = 0
    digest: int = 0  # of the valid rows' RequestIds, order-free (worker.status.expected)


def campaign_id_problem(campaign_id: str) -> str | None:
    """Why ``campaign_id`` cannot be used with ``--campaign-id``, or None."""
    if re.fullmatch(TOKEN_PATTERN, campaign_id) is None or len(campaign_id) > CAMPAIGN_ID_MAX:
        return (
            f"--campaign-id must be 1..{CAMPAIGN_ID_MAX} characters of A-Z a-z 0-9 _ . : - "
            "(it also prefixes generated RequestIds)"
        )
    return None


def _fill(data: dict[str, Any], campaign_id: str | None, line: int) -> bool:
    """Add CampaignId and RequestId where missing; True when something was added."""
    if campaign_id is None:
        return False
    added = False
    if "CampaignId" not in data:
        data["CampaignId"] = campaign_id
        added = True
    if "RequestId" not in data:
        data["RequestId"] = f"{campaign_id}-{line}"
        added = True
    return added


def check_row(raw: RawRow, campaign_id: str | None = None) -> GoodRow | RowProblem:
    """The row's body, validated exactly as the worker will validate it."""
    if raw.message:
        return RowProblem(raw.line, raw.field, raw.message)
    if raw.body is not None:  # a JSON line: the worker's strict decoder reads it first
        first = parse_request(raw.body, sqs_message_id=PLACEHOLDER_MESSAGE_ID)
        if isinstance(first, InvalidRequest):
            return RowProblem(raw.line, first.field, first.message)
        data = request_data(first.payload)
        if not _fill(data, campaign_id, raw.line):
            return GoodRow(raw.line, PreparedRequest(dump_body(data), first.payload.RequestId))
    else:
        data = dict(raw.data or {})
        _fill(data, campaign_id, raw.line)
    result = check_body(dump_body(data))
    if isinstance(result, InvalidRequest):
        return RowProblem(raw.line, result.field, result.message)
    return GoodRow(raw.line, result)


def checked_rows(
    path: Path,
    fmt: Format,
    *,
    campaign_id: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[GoodRow | RowProblem]:
    """Every row of the file, validated, in order (streaming)."""
    for raw in read_rows(path, fmt, on_bytes=on_bytes):
        yield check_row(raw, campaign_id)


def scan_file(
    path: Path,
    fmt: Format,
    *,
    campaign_id: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_problem: Callable[[RowProblem], None] | None = None,
) -> Scan:
    """Validate the whole file, keeping only counts; each bad row goes to ``on_problem``."""
    scan = Scan()
    for row in checked_rows(path, fmt, campaign_id=campaign_id, on_bytes=on_bytes):
        scan.rows += 1
        if isinstance(row, RowProblem):
            scan.invalid += 1
            if on_problem is not None:
                on_problem(row)
            continue
        scan.valid += 1
        if row.prepared.request_id is None:
            scan.without_request_id += 1
        else:
            scan.digest = add_to_digest(scan.digest, row.prepared.request_id)
    return scan
