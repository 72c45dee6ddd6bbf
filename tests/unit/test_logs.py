"""Personal data never reaches a log line."""

from __future__ import annotations

import json

import pytest
import structlog

from worker.logs import configure_logging, get_logger


@pytest.fixture(autouse=True)
def _reset_structlog() -> object:
    yield
    structlog.reset_defaults()


def test_numbers_are_masked_and_bodies_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    structlog.contextvars.bind_contextvars(identity="+18005550100")
    try:
        get_logger("t").info(
            "sent",
            detail="to +12065550100 and +447911123456",
            MessageBody="secret text",
            Context={"k": "v"},
            request_id="r-1",
        )
    finally:
        structlog.contextvars.clear_contextvars()
    line = capsys.readouterr().err.strip()
    event = json.loads(line)
    assert event["detail"] == "to +1***00 and +44***56"
    assert event["identity"] == "+1***00"
    assert event["MessageBody"] == "[redacted]" and event["Context"] == "[redacted]"
    assert "5550100" not in line and "secret" not in line
    assert event["request_id"] == "r-1" and event["event"] == "sent"


def test_identity_labels_are_unique_and_masked() -> None:
    from worker.observe.exposition import identity_label

    a, b = identity_label("+12065550100"), identity_label("+13105550100")
    assert a != b and a.startswith("+1***00#") and b.startswith("+1***00#")
    assert identity_label("+12065550100") == a  # stable
    assert identity_label("pool-abc") == "pool-abc"  # not personal data: as it is
    bare = identity_label("12065550100")  # a number given without its '+'
    assert bare.startswith("***00#") and "2065550100" not in bare


def test_numbers_written_with_separators_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    get_logger("t").warning(
        "send_failed",
        detail="to +1 (206) 555-0100, +44 7911 123456 and +33 6.12.34.56.78",
        request_id="r-00000001",
    )
    event = json.loads(capsys.readouterr().err.strip())
    assert event["detail"] == "to +1***00, +44***56 and +33***78"
    assert event["request_id"] == "r-00000001"  # our own ids are not phone numbers


def test_identity_labels_stay_distinct_when_short_hashes_collide() -> None:
    from worker.observe.exposition import identity_label, identity_labels

    seen: dict[str, str] = {}
    for n in range(100_000):  # two numbers with the same mask and the same 16-bit hash
        number = f"+1206{n:05d}00"
        twin = seen.setdefault(identity_label(number), number)
        if twin != number:
            break
    labels = identity_labels([number, twin, "pool-abc"])
    assert len(set(labels.values())) == 3
    assert labels[min(number, twin)] == identity_label(min(number, twin))  # the first keeps it
    assert labels[max(number, twin)].startswith("+1***00#")
