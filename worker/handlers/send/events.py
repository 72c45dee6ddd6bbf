"""The outcome event and its listeners: metrics, logs and campaign counters observe the send
handler through one event instead of living inside its flow (dramatiq's ``emit_after``).

The handler emits an :class:`OutcomeEvent` once it has done what a decision asked (a status
written, an acknowledgement queued). A listener that raises (a broken log pipe) never changes
what the handler does: :meth:`Listeners.emit` contains it.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.handlers.send.decide import RETRIES_EXHAUSTED, Kind
from worker.logs import get_logger
from worker.metrics import Metrics
from worker.status.counters import CampaignCounters
from worker.status.model import Outcome, RecordFields, Status

log = get_logger("worker.handlers.send")


@dataclass(frozen=True, slots=True)
class OutcomeEvent:
    kind: Kind
    fields: RecordFields | None = None
    outcome: Outcome | None = None  # the status written, if one was
    detail: dict[str, Any] = field(default_factory=dict)  # the log line's own keys
    #: The delivery re-opened a FAILED/RETRIES_EXHAUSTED record (a replay): on CLAIMED, or on
    #: EXPIRED written over it.
    reopened: bool = False


class Listener(Protocol):
    def on_outcome(self, event: OutcomeEvent) -> None: ...


class Listeners:
    def __init__(self, *listeners: Listener) -> None:
        self._listeners = listeners

    def emit(self, event: OutcomeEvent) -> None:
        for listener in self._listeners:
            try:
                listener.on_outcome(event)
            except Exception as exc:  # an observer's failure never changes the flow
                with suppress(Exception):
                    log.error(
                        "listener_failed",
                        listener=type(listener).__name__,
                        kind=event.kind.value,
                        error=repr(exc)[:200],
                    )


class MetricsListener:
    _COUNTERS = {
        Kind.SENT: "sent",
        Kind.EXPIRED: "expired",
        Kind.DUPLICATE: "duplicates",
        Kind.LEASE_BUSY: "lease_busy",
        Kind.DEFERRED: "deferred",
        Kind.STORE_UNAVAILABLE: "store_errors",
        Kind.KEPT: "kept_last_receive",
        Kind.CHANNEL_PAUSED: "channel_paused",
        Kind.SENT_ABANDONED: "sent_abandoned",
        Kind.UNSETTLED: "unsettled",
    }

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_outcome(self, event: OutcomeEvent) -> None:
        m = self._metrics
        name = self._COUNTERS.get(event.kind)
        if name is not None:
            setattr(m, name, getattr(m, name) + 1)
        fields = event.fields
        if event.kind is Kind.SENT and fields is not None and fields.channel is not None:
            m.sent_by_channel[fields.channel] += 1
            m.parts_by_channel[fields.channel] += fields.message_parts or 1
        elif event.kind is Kind.FAILED:
            code = event.outcome.error_code if event.outcome else None
            m.failed[code or Status.FAILED] += 1
        elif event.kind is Kind.EXHAUSTED:
            m.failed[RETRIES_EXHAUSTED] += 1
        elif event.kind is Kind.RETRYING and event.outcome is not None:
            m.retrying[event.outcome.error_code or "unknown"] += 1


class CountersListener:
    """A campaign's progress counts each final status once, when it was written. A replay
    un-counts the ``FAILED``/``RETRIES_EXHAUSTED`` it re-opened (the request is not done
    again until its new final status is counted), so a replayed request is counted once."""

    _FINAL = frozenset({Kind.SENT, Kind.FAILED, Kind.EXHAUSTED, Kind.EXPIRED})

    def __init__(self, counters: CampaignCounters) -> None:
        self._counters = counters

    def on_outcome(self, event: OutcomeEvent) -> None:
        campaign_id = event.fields.campaign_id if event.fields is not None else None
        if campaign_id is None:
            return
        if event.reopened:
            self._counters.reopened(campaign_id)
        if event.kind in self._FINAL and event.outcome is not None:
            self._counters.record(campaign_id, event.outcome.status, event.outcome.error_code)


class LogListener:
    """One log line per outcome, with fixed keys (the request's ids are bound already)."""

    #: kind -> (level, event name, static keys)
    _LINES: dict[Kind, tuple[str, str, dict[str, str]]] = {
        Kind.CLAIMED: ("info", "claimed", {}),
        Kind.SENT: ("info", "sent", {}),
        Kind.FAILED: ("info", "failed", {}),
        Kind.EXHAUSTED: ("warning", "failed", {}),
        Kind.EXPIRED: ("info", "expired", {}),
        Kind.RETRYING: ("info", "retrying", {}),
        Kind.DUPLICATE: ("info", "duplicate_skipped", {}),
        Kind.LEASE_BUSY: ("info", "lease_busy", {}),
        Kind.LEASE_LOST: (
            "warning",
            "lease_lost",
            {"action": "raise lease_s above the longest send (retry budget + timeouts)"},
        ),
        Kind.DEFERRED: ("info", "deferred", {}),
        Kind.STORE_UNAVAILABLE: (
            "error",
            "store_unavailable",
            {"action": "the message is handed back and delivered again; check DynamoDB"},
        ),
        Kind.KEPT: ("info", "kept_on_last_receive", {}),
        Kind.CHANNEL_PAUSED: ("info", "channel_paused_handed_back", {}),
        Kind.SENT_ABANDONED: ("warning", "let_go", {"reason": "sent_abandoned"}),
        Kind.UNSETTLED: ("error", "unsettled_message", {"effect": "handed back"}),
    }

    def on_outcome(self, event: OutcomeEvent) -> None:
        line = self._LINES.get(event.kind)
        if line is None:
            return
        level, name, static = line
        keys = dict(event.detail)
        if event.fields is not None and event.fields.channel is not None:
            keys.setdefault("channel", event.fields.channel)
            if event.fields.channel != "MMS":
                keys.setdefault("message_parts", event.fields.message_parts)
        outcome = event.outcome
        if outcome is not None and outcome.error_code is not None:
            keys.setdefault("error_code", outcome.error_code)
            keys.setdefault("error_reason", outcome.error_reason)
            if event.kind is Kind.FAILED:
                keys.setdefault("error_message", outcome.error_message)
        getattr(log, level)(name, **keys, **static)
