"""The log stream never raises into the caller: a broken pipe, a full disk, a closed stream."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import structlog

from worker.logs import SafeStream, configure_logging, dropped_log_lines, get_logger


@pytest.fixture(autouse=True)
def _reset_structlog() -> object:
    yield
    structlog.reset_defaults()


def test_a_broken_pipe_is_counted_and_the_descriptor_quietened() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream:
        safe = SafeStream(stream)
        safe.write("one\n")
        assert os.read(read_end, 100) == b"one\n"
        os.close(read_end)  # the reader is gone
        safe.write("two\n")
        safe.write("three\n")
        assert safe.dropped == 2 and safe.gone
        os.write(stream.fileno(), b"a last traceback\n")  # now /dev/null: does not fail


def test_a_full_disk_is_counted_and_writing_goes_on() -> None:
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    with open("/dev/full", "w") as stream:  # every write: ENOSPC
        safe = SafeStream(stream)
        safe.write("one\n")
        safe.write("two\n")
        assert safe.dropped == 2 and not safe.gone  # a disk can have room again


def test_a_closed_stream_is_counted() -> None:
    stream = io.StringIO()
    safe = SafeStream(stream)
    safe.write("one\n")
    stream.close()
    safe.write("two\n")
    assert safe.dropped == 1 and safe.gone


def test_a_log_call_on_a_closed_stream_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", "json")
    get_logger("t").info("first")
    assert '"first"' in stream.getvalue()
    stream.close()
    get_logger("t").info("second", detail="x")  # no exception
    get_logger("t").error("third")
    assert dropped_log_lines() == 2
