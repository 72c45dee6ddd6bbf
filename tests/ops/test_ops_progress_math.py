"""The progress math of ``sms-worker campaign`` (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.ops.progress import compute_progress, format_block, format_duration, format_line
from worker.status.counters import CampaignProgress

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def progress(
    sent: int,
    failed: int = 0,
    expired: int = 0,
    *,
    expected: int | None = None,
    span_s: float = 0,
    errors: dict[str, int] | None = None,
) -> CampaignProgress:
    return CampaignProgress(
        "c1",
        found=True,
        counts={"SENT": sent, "FAILED": failed, "EXPIRED": expired},
        errors=errors or {},
        expected=expected,
        started_at=T0,
        updated_at=T0 + timedelta(seconds=span_s),
    )


def test_rate_and_eta_from_two_reads() -> None:
    before = progress(100, 10, expected=500)
    now = progress(150, 18, 2, expected=500)
    view = compute_progress(now, before, elapsed_s=10)
    assert view.done == 170 and view.remaining == 330
    assert view.percent == pytest.approx(34.0)
    assert view.sent_per_s == pytest.approx(5.0)  # the SENT delta over the interval
    assert view.done_per_s == pytest.approx(6.0)  # every outcome reduces what remains
    assert view.eta_s == pytest.approx(55.0)
    assert not view.finished and view.rate_basis == "interval"


def test_single_read_uses_the_average_between_first_and_last_flush() -> None:
    view = compute_progress(progress(300, 0, 0, expected=600, span_s=60))
    assert view.sent_per_s == pytest.approx(5.0) and view.rate_basis == "average"
    assert view.eta_s == pytest.approx(60.0)
    # One flush so far (StartedAt == UpdatedAt): no rate, no ETA.
    view = compute_progress(progress(3, expected=600))
    assert view.sent_per_s is None and view.eta_s is None and view.rate_basis == ""


def test_done_when_every_expected_request_has_an_outcome() -> None:
    view = compute_progress(progress(90, 8, 2, expected=100), progress(90, 8, 1), 2)
    assert view.finished and view.remaining == 0 and view.eta_s == 0
    assert view.percent == 100.0
    over = compute_progress(progress(101, expected=100))  # a redelivered duplicate counted
    assert over.finished and over.remaining == 0 and over.percent == 100.0


def test_unknown_total_and_stalled_campaigns() -> None:
    view = compute_progress(progress(10), progress(5), 5)
    assert view.expected is None and view.remaining is None and view.percent is None
    assert view.eta_s is None and not view.finished and view.sent_per_s == 1.0
    stalled = compute_progress(progress(10, expected=20), progress(10, expected=20), 5)
    assert stalled.sent_per_s == 0 and stalled.eta_s is None
    reset = compute_progress(progress(1, expected=20), progress(10, expected=20), 5)
    assert reset.sent_per_s is None  # the item was recreated: no negative rates


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.4, "42s"), (185, "3m05s"), (7620, "2h07m"), (273_600, "3d04h")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_formatting() -> None:
    now = progress(150, 18, 2, expected=500, errors={"ConflictException": 12, "X": 6})
    view = compute_progress(now, progress(100, 10, expected=500), elapsed_s=10)
    line = format_line(now, view)
    assert "170 of 500 done (34.0%), 330 remaining" in line
    assert "SENT=150 FAILED=18 EXPIRED=2" in line and "[ConflictException 12, X 6]" in line
    assert "5.0 sent/s" in line and "ETA 55s" in line
    block = format_block(now, view, age_s=3)
    assert block.splitlines()[0] == "campaign c1  (counters updated 2026-01-01T00:00:00Z, 3s ago)"
    assert "  FAILED    18   ConflictException 12, X 6" in block.splitlines()
    unknown = format_line(progress(5), compute_progress(progress(5)))
    assert "expected total unknown" in unknown and "rate: not known yet" in unknown
