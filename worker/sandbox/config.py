"""The sandbox's behaviour knobs: one frozen dataclass, built from the CLI or patched as JSON.

The admin API (``POST /_sandbox/config``) takes a *partial* JSON object of the same fields:
sets are written as JSON lists, ``mps`` as an object ``{identity: mps}`` (it replaces the
whole map), and ``null`` clears an optional field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from worker.model.rate_limits import rate_entries

ACCOUNT_ERRORS = ("AccessDeniedException", "ServiceQuotaExceededException")
#: Channels whose monthly spend limit the sandbox can say is reached (``spend_limit_reached``).
SPEND_LIMIT_CHANNELS = ("MMS", "SMS")
#: How a delivery event reaches the events queue: the event itself (an SNS subscription with
#: RawMessageDelivery), inside an SNS notification, or inside an EventBridge event.
EVENT_ENVELOPES = ("raw", "sns", "eventbridge")
#: The outcomes ``events_outcomes`` may weight; the last three only ever apply to media sends.
EVENT_OUTCOMES = (
    "delivered",
    "accepted_only",
    "blocked",
    "carrier_blocked",
    "spam",
    "unreachable",
    "carrier_unreachable",
    "ttl_expired",
    "unknown",
    "invalid",
    "protect_blocked",
    "media_file_inaccessible",
    "media_file_type_unsupported",
    "media_file_size_exceeded",
)


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How the sandbox answers ``SendMediaMessage``. Units are in the names.

    ``default_mps`` applies to identities not in ``mps``; ``None`` means unlimited. Each
    identity gets a token bucket per channel holding ``max(1, burst_s * rate)`` tokens; an
    SMS takes one token per message part. ``mps`` keys are ``IDENTITY`` (both channels) or
    ``IDENTITY/SMS``, ``IDENTITY/MMS`` (one channel); an SMS with no identity is ``default``.
    A channel in ``spend_limit_reached`` answers ServiceQuotaExceededException
    MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT (SMS) or _FOR_MEDIA (MMS) to every send. Destinations in
    ``opted_out`` get ConflictException; destinations starting with one of
    ``blocked_prefixes`` (e.g. ``+44``) get ValidationException DESTINATION_COUNTRY_BLOCKED.

    With ``events_queue_url`` set, every accepted send (not a dry run) publishes its delivery
    events to that SQS queue (planned by :mod:`worker.sandbox.event_plan`, published by
    :mod:`worker.sandbox.events`): the outcome drawn from the
    ``events_outcomes`` weights, ``events_delay_ms`` ± ``events_jitter_ms`` from the send to
    the last event, each event twice with probability ``events_duplicate_rate``, a message's
    events in shuffled order with ``events_reorder``. ``cut_after_accept_rate`` is the
    fraction of sends accepted (recorded, events published) whose HTTP connection is then
    dropped without an answer.
    """

    default_mps: float | None = None
    mps: Mapping[str, float] = field(default_factory=dict)
    burst_s: float = 1.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    fault_rate: float = 0.0
    opted_out: AbstractSet[str] = frozenset()
    blocked_prefixes: AbstractSet[str] = frozenset()
    known_identities: AbstractSet[str] | None = None
    account_error: str | None = None
    spend_limit_reached: AbstractSet[str] = frozenset()
    record_path: str | None = None
    seed: int | None = None
    events_queue_url: str | None = None
    events_envelope: str = "raw"
    events_outcomes: Mapping[str, float] = field(default_factory=lambda: {"delivered": 1.0})
    events_delay_ms: float = 0.0
    events_jitter_ms: float = 0.0
    events_duplicate_rate: float = 0.0
    events_reorder: bool = False
    cut_after_accept_rate: float = 0.0

    def __post_init__(self) -> None:
        # Freeze the containers so a config can be shared and compared safely.
        object.__setattr__(self, "mps", dict(self.mps))
        object.__setattr__(self, "events_outcomes", dict(self.events_outcomes))
        object.__setattr__(self, "opted_out", frozenset(self.opted_out))
        object.__setattr__(self, "blocked_prefixes", frozenset(self.blocked_prefixes))
        object.__setattr__(self, "spend_limit_reached", frozenset(self.spend_limit_reached))
        if self.known_identities is not None:
            object.__setattr__(self, "known_identities", frozenset(self.known_identities))
        _check_config(self)

    def rate_for(self, identity: str, channel: str | None = None) -> float | None:
        """Messages (SMS: parts) per second allowed for ``identity`` on ``channel``
        (``None``: unlimited): ``IDENTITY/CHANNEL``, else ``IDENTITY``, else the default."""
        if channel is not None and f"{identity}/{channel}" in self.mps:
            return self.mps[f"{identity}/{channel}"]
        return self.mps.get(identity, self.default_mps)


def _check_config(config: SandboxConfig) -> None:
    if config.default_mps is not None and not config.default_mps > 0:
        raise ValueError("default_mps must be > 0 (or null for unlimited)")
    for identity, rate in config.mps.items():
        if not identity:
            raise ValueError("mps keys must be non-empty origination identities")
        if not rate > 0:
            raise ValueError(f"mps for {identity!r} must be > 0")
    if not config.burst_s > 0:
        raise ValueError("burst_s must be > 0")
    if config.latency_ms < 0 or config.latency_jitter_ms < 0:
        raise ValueError("latency_ms and latency_jitter_ms must be >= 0")
    if not 0.0 <= config.fault_rate <= 1.0:
        raise ValueError("fault_rate must be between 0 and 1")
    if any(not prefix for prefix in config.blocked_prefixes):
        raise ValueError("blocked_prefixes must be non-empty strings, e.g. '+44'")
    unknown = sorted(set(config.spend_limit_reached) - set(SPEND_LIMIT_CHANNELS))
    if unknown:
        raise ValueError(
            f"spend_limit_reached names unknown channels {unknown}; "
            f"use {list(SPEND_LIMIT_CHANNELS)}"
        )
    if config.account_error is not None and config.account_error not in ACCOUNT_ERRORS:
        raise ValueError(f"account_error must be one of {', '.join(ACCOUNT_ERRORS)} or null")
    _check_events(config)


def _check_events(config: SandboxConfig) -> None:
    if config.events_queue_url is not None and not config.events_queue_url.startswith(
        ("http://", "https://")
    ):
        raise ValueError(
            "events_queue_url must be an SQS queue URL (http(s)://...), as "
            "'aws sqs get-queue-url' prints it, or null to publish no events"
        )
    if config.events_envelope not in EVENT_ENVELOPES:
        raise ValueError(f"events_envelope must be one of {', '.join(EVENT_ENVELOPES)}")
    unknown = sorted(set(config.events_outcomes) - set(EVENT_OUTCOMES))
    if unknown:
        raise ValueError(
            f"events_outcomes has unknown outcome(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(EVENT_OUTCOMES)}"
        )
    if any(not 0 <= weight < math.inf for weight in config.events_outcomes.values()):
        raise ValueError("events_outcomes weights must be finite numbers >= 0")
    if not sum(config.events_outcomes.values()) > 0:
        raise ValueError("events_outcomes needs at least one outcome with a weight > 0")
    if config.events_delay_ms < 0 or config.events_jitter_ms < 0:
        raise ValueError("events_delay_ms and events_jitter_ms must be >= 0")
    for name in ("events_duplicate_rate", "cut_after_accept_rate"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")


def config_to_json(config: SandboxConfig) -> dict[str, Any]:
    """The config as plain JSON (sets as sorted lists)."""
    return {
        "default_mps": config.default_mps,
        "mps": dict(config.mps),
        "burst_s": config.burst_s,
        "latency_ms": config.latency_ms,
        "latency_jitter_ms": config.latency_jitter_ms,
        "fault_rate": config.fault_rate,
        "opted_out": sorted(config.opted_out),
        "blocked_prefixes": sorted(config.blocked_prefixes),
        "known_identities": (
            None if config.known_identities is None else sorted(config.known_identities)
        ),
        "account_error": config.account_error,
        "spend_limit_reached": sorted(config.spend_limit_reached),
        "record_path": config.record_path,
        "seed": config.seed,
        "events_queue_url": config.events_queue_url,
        "events_envelope": config.events_envelope,
        "events_outcomes": dict(config.events_outcomes),
        "events_delay_ms": config.events_delay_ms,
        "events_jitter_ms": config.events_jitter_ms,
        "events_duplicate_rate": config.events_duplicate_rate,
        "events_reorder": config.events_reorder,
        "cut_after_accept_rate": config.cut_after_accept_rate,
    }


def _number(name: str, value: object, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number{' or null' if optional else ''}")
    return float(value)


def _strings(name: str, value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return frozenset(value)


def _optional_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value


def _parse_field(name: str, value: object) -> object:
    if name in ("default_mps",):
        return _number(name, value, optional=True)
    if name in (
        "burst_s",
        "latency_ms",
        "latency_jitter_ms",
        "fault_rate",
        "events_delay_ms",
        "events_jitter_ms",
        "events_duplicate_rate",
        "cut_after_accept_rate",
    ):
        return _number(name, value)
    if name == "mps":
        if not isinstance(value, dict):
            raise ValueError("mps must be an object of {identity: messages per second}")
        return {str(k): _number(f"mps[{k}]", v) for k, v in value.items()}
    if name in ("opted_out", "blocked_prefixes", "spend_limit_reached"):
        return _strings(name, value)
    if name == "known_identities":
        return None if value is None else _strings(name, value)
    if name in ("account_error", "record_path", "events_queue_url"):
        return _optional_str(name, value)
    if name == "events_envelope":
        if not isinstance(value, str):
            raise ValueError(f"events_envelope must be one of {', '.join(EVENT_ENVELOPES)}")
        return value
    if name == "events_outcomes":
        if not isinstance(value, dict):
            raise ValueError("events_outcomes must be an object of {outcome: weight}")
        return {str(k): _number(f"events_outcomes[{k}]", v) for k, v in value.items()}
    if name == "events_reorder":
        if not isinstance(value, bool):
            raise ValueError("events_reorder must be true or false")
        return value
    if name == "seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("seed must be an integer or null")
        return value
    raise ValueError(f"unknown config field {name!r}")


def config_from_json(patch: object, base: SandboxConfig | None = None) -> SandboxConfig:
    """Apply a partial JSON object to ``base`` (default: the defaults). Raises ValueError."""
    if not isinstance(patch, dict):
        raise ValueError("config must be a JSON object")
    changes: dict[str, Any] = {
        str(name): _parse_field(str(name), value) for name, value in patch.items()
    }
    return dataclasses.replace(base or SandboxConfig(), **changes)


def parse_rates(entries: Iterable[str]) -> dict[str, float]:
    """Parse ``["+18005550100=3", "pool-a=10,pool-b=20"]`` into ``{identity: mps}``."""
    return {key: mps for entry in entries for key, mps in rate_entries(entry)}


def parse_outcomes(entries: Iterable[str]) -> dict[str, float]:
    """Parse ``["delivered=0.9,spam=0.1"]`` into ``{outcome: weight}`` (empty: no entries)."""
    weights: dict[str, float] = {}
    for entry in entries:
        for part in entry.split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, raw = part.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"outcome {part!r} is not OUTCOME=WEIGHT, e.g. 'delivered=0.9'")
            try:
                weights[name.strip()] = float(raw)
            except ValueError:
                raise ValueError(f"weight of {name.strip()!r} is {raw!r}, not a number") from None
    return weights


def parse_list(entries: Iterable[str]) -> frozenset[str]:
    """Parse repeated and/or comma-separated values into a set."""
    return frozenset(p.strip() for entry in entries for p in entry.split(",") if p.strip())
