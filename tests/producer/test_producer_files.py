"""Reading and validating input files (no servers): CSV typing and folding, JSON lines, line
numbers, header problems, ``--campaign-id`` filling, streaming with flat memory."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from producer_support import HEADER, csv_text, good_row, phone, write

from worker.producer.check import (
    CAMPAIGN_ID_MAX,
    GoodRow,
    RowProblem,
    campaign_id_problem,
    checked_rows,
    scan_file,
)
from worker.producer.files import InputFileError, detect_format, read_rows


def rows_of(path: Path, campaign_id: str | None = None) -> list[GoodRow | RowProblem]:
    fmt = detect_format(path, None)
    return list(checked_rows(path, fmt, campaign_id=campaign_id))


def body(row: GoodRow | RowProblem) -> dict[str, Any]:
    assert isinstance(row, GoodRow), row
    data: dict[str, Any] = json.loads(row.prepared.body)
    return data


def test_csv_cells_become_typed_keys_and_context_folds(tmp_path: Path) -> None:
    header = [*HEADER, "MessageFeedbackEnabled", "Context.kind", "NotAfter"]
    full = good_row(1, MediaUrls="s3://my-media/a.PNG", TimeToLive="3600", DryRun="TRUE")
    full.update({"MessageFeedbackEnabled": "false", "Context.kind": "gift"})
    sparse = good_row(2, MessageBody="", MediaUrls="s3://my-media/b.pdf")
    sparse["Context.orderId"] = ""
    path = write(tmp_path / "a.csv", csv_text([full, sparse], header))
    first, second = rows_of(path)
    assert body(first) == {
        "RequestId": "csv-1",
        "DestinationPhoneNumber": phone(1),
        "OriginationIdentity": "pool-producer",
        "MessageBody": "hello 1",
        "MediaUrls": ["s3://my-media/a.PNG"],
        "TimeToLive": 3600,
        "DryRun": True,
        "MessageFeedbackEnabled": False,
        "Context": {"orderId": "order-1", "kind": "gift"},
    }
    # Empty cells are absent keys: no MessageBody, no Context, no NotAfter.
    assert body(second) == {
        "RequestId": "csv-2",
        "DestinationPhoneNumber": phone(2),
        "OriginationIdentity": "pool-producer",
        "MediaUrls": ["s3://my-media/b.pdf"],
    }
    assert isinstance(first, GoodRow) and first.line == 2 and first.prepared.request_id == "csv-1"


def test_bad_rows_are_reported_by_the_line_they_start_on(tmp_path: Path) -> None:
    rows = [
        good_row(1, MessageBody="two\nlines"),  # line 2..3
        good_row(2, TimeToLive="1h"),  # line 4
        good_row(3, DryRun="yes"),  # line 5
        good_row(4, DestinationPhoneNumber="555-0100"),  # line 6
        good_row(5, MessageBody=""),  # line 7: no content
        good_row(6, MediaUrls="s3://my-media/movie.avi"),  # line 8
        good_row(7, RequestId="has space"),  # line 9
    ]
    text = csv_text(rows) + "\n" + "csv-8,+12065550108\n"  # a blank line, then a short row
    found = rows_of(write(tmp_path / "bad.csv", text))
    assert isinstance(found[0], GoodRow) and body(found[0])["MessageBody"] == "two\nlines"
    problems = [(p.line, p.field) for p in found if isinstance(p, RowProblem)]
    assert problems == [
        (4, "TimeToLive"),
        (5, "DryRun"),
        (6, "DestinationPhoneNumber"),
        (7, "MessageBody"),
        (8, "MediaUrls"),
        (9, "RequestId"),
        (11, "row"),
    ]
    for problem in found[1:]:
        assert isinstance(problem, RowProblem)
        assert "555" not in problem.message and "1h" not in problem.message  # no values
        assert problem.message[0].isalpha() and len(problem.message) > 30  # says what to do


def test_bom_crlf_and_non_utf8_rows(tmp_path: Path) -> None:
    text = csv_text([good_row(1), good_row(2, MessageBody="caf\u00e9")]).replace("\n", "\r\n")
    raw = b"\xef\xbb\xbf" + text.encode().replace("caf\xc3\xa9".encode("latin-1"), b"caf\xe9")
    path = tmp_path / "bom.csv"
    path.write_bytes(raw)
    first, second = rows_of(path)
    assert body(first)["RequestId"] == "csv-1"
    assert isinstance(second, RowProblem) and second.line == 3
    assert second.field == "MessageBody" and "UTF-8" in second.message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("destinationPhoneNumber,MessageBody", "did you mean DestinationPhoneNumber?"),
        ("Context,MessageBody", "Context.<key>"),
        ("MessageBody,MessageBody", "appears twice"),
        ("", "is empty"),
        ("+12065550100,pool-abc,hello there", "is the header row missing?"),
        ("MessageBody,hello there", "column 2 (its name is not shown"),
    ],
)
def test_bad_headers_stop_before_any_row(tmp_path: Path, header: str, expected: str) -> None:
    path = write(tmp_path / "h.csv", header + ("\n+1,x\n" if header else ""))
    with pytest.raises(InputFileError) as caught:
        rows_of(path)
    assert expected in str(caught.value)
    assert "+1206" not in str(caught.value) and "hello" not in str(caught.value)


def test_unreadable_quoting_and_unknown_format(tmp_path: Path) -> None:
    path = write(tmp_path / "q.csv", csv_text([good_row(1)]) + 'csv-2,"+1"2065550102,p,x,,,,\n')
    with pytest.raises(InputFileError, match=r"line 3 of q.csv: .*quot"):
        rows_of(path)
    with pytest.raises(InputFileError, match=r"--format csv\|jsonl"):
        detect_format(tmp_path / "requests.txt", None)
    assert detect_format(tmp_path / "requests.txt", "jsonl") == "jsonl"
    assert detect_format(tmp_path / "R.NDJSON", None) == "jsonl"


def test_jsonl_rows_use_the_workers_strict_decoder(tmp_path: Path) -> None:
    good = {"DestinationPhoneNumber": phone(1), "OriginationIdentity": "p", "MessageBody": "x"}
    lines = [
        json.dumps(good),
        "",  # blank lines are skipped, but still counted
        '{"MessageBody": "x", "MessageBody": "y"}',
        json.dumps({**good, "TimeToLive": "60"}),
        json.dumps({**good, "Colour": "red"}),
        "[1]",
        json.dumps({**good, "MessageBody": "na\u00efve \U0001f600"}, ensure_ascii=False),
    ]
    found = rows_of(write(tmp_path / "r.jsonl", "\n".join(lines) + "\n"))
    assert [row.line for row in found] == [1, 3, 4, 5, 6, 7]
    problems = [(p.line, p.field) for p in found if isinstance(p, RowProblem)]
    assert problems == [(3, "MessageBody"), (4, "TimeToLive"), (5, "Colour"), (6, "body")]
    last = found[-1]
    assert isinstance(last, GoodRow) and last.prepared.body.isascii()
    assert body(last)["MessageBody"] == "na\u00efve \U0001f600"


def test_campaign_id_fills_missing_keys_and_generates_stable_request_ids(tmp_path: Path) -> None:
    own = {"DestinationPhoneNumber": phone(1), "OriginationIdentity": "p", "MessageBody": "x"}
    lines = [
        json.dumps(own),
        json.dumps({**own, "CampaignId": "other", "RequestId": "mine"}),
        json.dumps({**own, "CampaignId": "other"}),
    ]
    path = write(tmp_path / "c.jsonl", "\n".join(lines) + "\n")
    bodies = [body(row) for row in rows_of(path, campaign_id="spring")]
    assert [(b["CampaignId"], b["RequestId"]) for b in bodies] == [
        ("spring", "spring-1"),
        ("other", "mine"),
        ("other", "spring-3"),
    ]
    assert [body(row).get("RequestId") for row in rows_of(path)] == [None, "mine", None]
    scan = scan_file(path, "jsonl")
    assert (scan.rows, scan.valid, scan.without_request_id) == (3, 3, 2)
    assert campaign_id_problem("spring") is None
    assert campaign_id_problem("a b") and campaign_id_problem("x" * (CAMPAIGN_ID_MAX + 1))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_validation_streams_a_large_file_with_flat_memory(tmp_path: Path) -> None:
    """50,000 rows: the first row comes before the file is read whole, and memory does not
    grow with the rows read (valid or not: problems are handed on, never collected)."""
    path = tmp_path / "big.csv"
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=HEADER, lineterminator="\n")
        writer.writeheader()
        for n in range(50_000):  # 10% valid, 10% invalid for the model, 80% bad cells
            kind = n % 10
            writer.writerow(
                good_row(n)
                if kind == 0
                else good_row(n, DestinationPhoneNumber="12065550100")
                if kind == 1
                else good_row(n, DryRun="maybe")
            )
    size = path.stat().st_size
    read = 0

    def on_bytes(count: int) -> None:
        nonlocal read
        read += count

    first = next(checked_rows(path, "csv", on_bytes=on_bytes))
    assert isinstance(first, GoodRow) and read < size // 100

    samples: list[int] = []
    read = 0

    def sample(count: int) -> None:
        nonlocal read
        read += count
        if len(samples) < read * 10 // size:
            samples.append(_rss_bytes())

    problems = 0

    def count_problem(_: RowProblem) -> None:
        nonlocal problems
        problems += 1

    scan = scan_file(path, "csv", on_bytes=sample, on_problem=count_problem)
    assert (scan.rows, scan.valid, scan.invalid, problems) == (50_000, 5_000, 45_000, 45_000)
    growth = max(samples) - samples[0]
    assert growth < 8 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB while validating"


def test_read_rows_reports_what_was_read(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", csv_text([good_row(1), good_row(2)]))
    seen: list[int] = []
    rows = list(read_rows(path, "csv", on_bytes=seen.append))
    assert len(rows) == 2 and sum(seen) == path.stat().st_size


def test_sms_columns_and_country_parameters_fold(tmp_path: Path) -> None:
    header = ["RequestId", "Channel", "DestinationPhoneNumber", "MessageBody", "MessageType",
              "Keyword", "DestinationCountryParameters.IN_ENTITY_ID",
              "DestinationCountryParameters.IN_TEMPLATE_ID", "Context.orderId"]  # fmt: skip
    rows = [
        dict(zip(header, ["s-1", "SMS", phone(1), "Привет 😀", "PROMOTIONAL", "", "1101", "T-9",
                          "o-1"], strict=True)),
        dict(zip(header, ["s-2", "SMS", phone(2), "hi", "", "", "", "", ""], strict=True)),
        dict(zip(header, ["s-3", "SMS", phone(3), "hi", "BULK", "", "", "", ""], strict=True)),
    ]  # fmt: skip
    path = write(tmp_path / "sms.csv", csv_text(rows, header))
    first, second, third = rows_of(path)
    assert body(first) == {
        "RequestId": "s-1",
        "Channel": "SMS",
        "DestinationPhoneNumber": phone(1),
        "MessageBody": "Привет 😀",
        "MessageType": "PROMOTIONAL",
        "DestinationCountryParameters": {"IN_ENTITY_ID": "1101", "IN_TEMPLATE_ID": "T-9"},
        "Context": {"orderId": "o-1"},
    }
    assert body(second) == {"RequestId": "s-2", "Channel": "SMS",
                            "DestinationPhoneNumber": phone(2), "MessageBody": "hi"}  # fmt: skip
    assert isinstance(third, RowProblem) and third.field == "MessageType"


def test_a_whole_country_parameters_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "DestinationPhoneNumber,DestinationCountryParameters\n")
    with pytest.raises(InputFileError, match=r"DestinationCountryParameters\.IN_ENTITY_ID"):
        list(read_rows(path, "csv"))
