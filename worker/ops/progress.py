"""The progress math of ``sms-worker campaign``: pure functions of counter reads."""

from __future__ import annotations

from dataclasses import dataclass

from worker.status.counters import CampaignProgress
from worker.status.model import Status

SENT, FAILED, EXPIRED = Status.SENT, Status.FAILED, Status.EXPIRED

MIN_AVERAGE_SPAN_S = 1.0


@dataclass(frozen=True, slots=True)
class ProgressView:
    done: int
    expected: int | None
    remaining: int | None  # None: the expected total is unknown
    percent: float | None
    sent_per_s: float | None  # None: not enough reads to tell
    done_per_s: float | None
    eta_s: float | None  # None: unknown (no expected total, or no progress to extrapolate)
    finished: bool
    rate_basis: str  # "interval" (two reads), "average" (StartedAt..UpdatedAt) or ""


def compute_progress(
    current: CampaignProgress,
    previous: CampaignProgress | None = None,
    elapsed_s: float | None = None,
) -> ProgressView:
    """Where a campaign stands.

    Rates come from the deltas between ``previous`` and ``current``, read ``elapsed_s``
    apart; without them, from the average between the counters' first and last flush
    (``StartedAt``..``UpdatedAt``). The ETA extrapolates the rate of *all* outcomes (sent,
    failed, expired), since all of them reduce what remains.
    """
    done = current.done
    expected = current.expected
    remaining = max(expected - done, 0) if expected is not None else None
    percent = min(100.0, 100.0 * done / expected) if expected else None
    if expected == 0:
        percent = 100.0
    sent_per_s = done_per_s = None
    basis = ""
    if previous is not None and elapsed_s is not None and elapsed_s > 0:
        sent_delta, done_delta = current.sent - previous.sent, done - previous.done
        if sent_delta >= 0 and done_delta >= 0:  # a negative delta: the item was reset
            sent_per_s, done_per_s = sent_delta / elapsed_s, done_delta / elapsed_s
            basis = "interval"
    elif current.started_at is not None and current.updated_at is not None:
        span_s = (current.updated_at - current.started_at).total_seconds()
        if span_s >= MIN_AVERAGE_SPAN_S:
            sent_per_s, done_per_s = current.sent / span_s, done / span_s
            basis = "average"
    eta_s: float | None = None
    if remaining == 0:
        eta_s = 0.0
    elif remaining is not None and done_per_s:
        eta_s = remaining / done_per_s
    return ProgressView(
        done=done,
        expected=expected,
        remaining=remaining,
        percent=percent,
        sent_per_s=sent_per_s,
        done_per_s=done_per_s,
        eta_s=eta_s,
        finished=expected is not None and done >= expected,
        rate_basis=basis,
    )


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86_400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86_400}d{s % 86_400 // 3600:02d}h"


def _rate(view: ProgressView) -> str:
    if view.sent_per_s is None or view.done_per_s is None:
        return "rate: not known yet"
    label = " (average)" if view.rate_basis == "average" else ""
    return f"{view.sent_per_s:.1f} sent/s{label}, {view.done_per_s:.1f} done/s"


def _eta(view: ProgressView) -> str:
    if view.finished:
        return "done"
    if view.expected is None:
        return "ETA: unknown (no expected total recorded)"
    if view.eta_s is None:
        if view.done_per_s is None:
            return "ETA: unknown (rate not known yet)"
        return "ETA: unknown (no progress)"
    return f"ETA {format_duration(view.eta_s)}"


def _errors(progress: CampaignProgress) -> str:
    top = sorted(progress.errors.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{code} {count}" for code, count in top)


def _total(view: ProgressView) -> str:
    if view.expected is None:
        return f"{view.done} done (expected total unknown)"
    percent = f" ({view.percent:.1f}%)" if view.percent is not None else ""
    return f"{view.done} of {view.expected} done{percent}, {view.remaining} remaining"


def format_block(progress: CampaignProgress, view: ProgressView, *, age_s: float | None) -> str:
    """The multi-line report (a single read, and the live view)."""
    width = max(len(str(progress.counts.get(s, 0))) for s in (SENT, FAILED, EXPIRED))
    updated = ""
    if progress.updated_at is not None:
        when = progress.updated_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        updated = f"  (counters updated {when}"
        updated += f", {format_duration(age_s)} ago)" if age_s is not None else ")"
    lines = [f"campaign {progress.campaign_id}{updated}"]
    for status in (SENT, FAILED, EXPIRED):
        line = f"  {status:<8} {progress.counts.get(status, 0):>{width}}"
        if status == FAILED and progress.errors:
            line += f"   {_errors(progress)}"
        lines.append(line)
    lines.append(f"  {_total(view)}")
    lines.append(f"  {_rate(view)}; {_eta(view)}")
    if _has_delivery(progress):
        lines.append(f"  {format_delivery(progress)}")
    return "\n".join(lines)


def _has_delivery(progress: CampaignProgress) -> bool:
    return bool(progress.delivered or progress.undelivered or progress.price_usd)


def format_delivery(progress: CampaignProgress) -> str:
    """Delivery from the events: delivered, undelivered by event type, pending (sent, no final
    event yet), the delivery rate (delivered / sent) and the total cost."""
    rate = progress.delivery_rate
    rate_text = f"{100 * rate:.1f}%" if rate is not None else "n/a"
    undelivered = ""
    if progress.undelivered:
        top = sorted(progress.undelivered.items(), key=lambda kv: (-kv[1], kv[0]))
        undelivered = " (" + ", ".join(f"{kind} {n}" for kind, n in top) + ")"
    return (
        f"delivered {progress.delivered}, undelivered {progress.undelivered_total}"
        f"{undelivered}, pending {progress.delivery_pending}; delivery rate {rate_text}; "
        f"cost ${progress.price_usd:.5f}"
    )


def format_line(progress: CampaignProgress, view: ProgressView) -> str:
    """One line per refresh (``--watch`` when the output is not a terminal)."""
    counts = " ".join(f"{s}={progress.counts.get(s, 0)}" for s in (SENT, FAILED, EXPIRED))
    errors = f" [{_errors(progress)}]" if progress.errors else ""
    delivery = f"; {format_delivery(progress)}" if _has_delivery(progress) else ""
    line = f"{progress.campaign_id}: {_total(view)}; {counts}{errors}; {_rate(view)}; {_eta(view)}"
    return line + delivery
