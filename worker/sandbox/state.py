"""What the sandbox knows: its config, the sends it accepted and its counters.

:meth:`SandboxState.handle` decides the answer to one API call, synchronously (so the
per-identity token buckets need no lock); the HTTP layer adds latency and serializes.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import uuid
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import structlog

from worker.masking import mask_identity, mask_phone
from worker.model import segments
from worker.model.channels import BY_OPERATION, Channel
from worker.sandbox import errors
from worker.sandbox.bucket import Clock, RateLimiter
from worker.sandbox.config import SandboxConfig
from worker.sandbox.events import EventPublisher
from worker.sandbox.validation import VALIDATORS, Validator

TARGET_PREFIX = "PinpointSMSVoiceV2."
#: X-Amz-Target -> the validator of that operation: one per registered channel.
HANDLERS: dict[str, Validator] = {TARGET_PREFIX + op: check for op, check in VALIDATORS.items()}

log = structlog.get_logger("worker.sandbox")


@dataclass(slots=True)
class SandboxCounters:
    """Outcome counts since start (or the last reset)."""

    calls: int = 0
    accepted: int = 0
    dry_runs: int = 0
    throttled: int = 0
    faults: int = 0
    validation_errors: int = 0
    conflicts: int = 0
    not_found: int = 0
    blocked: int = 0
    account_errors: int = 0
    spend_limited: int = 0
    unknown_operations: int = 0
    cut_after_accept: int = 0  # accepted, then the connection dropped without an answer
    in_flight: int = 0
    max_in_flight: int = 0
    accepted_by_identity: dict[str, int] = field(default_factory=dict)
    accepted_by_channel: dict[str, int] = field(default_factory=dict)
    parts_by_channel: dict[str, int] = field(default_factory=dict)  # message parts accepted

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class SendRecord:
    """One accepted send (or dry run). ``params`` is the full request JSON."""

    message_id: str
    received_at: float
    identity: str
    destination: str
    dry_run: bool
    params: dict[str, Any]
    channel: str = "MMS"
    parts: int = 1  # message parts (an SMS body's segments; an MMS is 1)
    operation: str = ""
    cut: bool = False  # accepted, but the caller never got the answer (cut_after_accept_rate)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class AnswerCut(Exception):
    """The send was accepted (recorded, its events planned); drop the connection unanswered."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"send {message_id} accepted, answer cut (cut_after_accept_rate)")
        self.message_id = message_id


class SandboxState:
    """The sandbox's mutable state; swap the config with :meth:`update_config`."""

    def __init__(
        self, config: SandboxConfig, clock: Clock = time.monotonic, wall: Clock = time.time
    ) -> None:
        self._config = config
        self._clock = clock
        self._wall = wall
        self._limiter = RateLimiter(config, clock)
        self._rng = random.Random(config.seed)
        self.sends: list[SendRecord] = []
        self.counters = SandboxCounters()
        self.events = EventPublisher(config.seed)

    @property
    def config(self) -> SandboxConfig:
        return self._config

    def update_config(self, config: SandboxConfig) -> None:
        """Use ``config`` from now on. Rate changes refill the buckets; a new seed reseeds."""
        old, self._config = self._config, config
        rates = (config.default_mps, config.mps, config.burst_s)
        if (old.default_mps, old.mps, old.burst_s) != rates:
            self._limiter = RateLimiter(config, self._clock)
        if old.seed != config.seed:
            self._rng.seed(config.seed)
            self.events.reseed(config.seed)
        log.info("sandbox_config_updated")

    def reset(self) -> None:
        """Forget sends and counters, refill the buckets and reseed; keep the config."""
        in_flight = self.counters.in_flight
        self.sends.clear()
        self.counters = SandboxCounters(in_flight=in_flight, max_in_flight=in_flight)
        self._limiter = RateLimiter(self._config, self._clock)
        self._rng.seed(self._config.seed)
        self.events.reseed(self._config.seed)
        self.events.reset_stats()
        log.info("sandbox_reset")

    def latency_s(self) -> float:
        """Seconds to wait before answering: ``latency_ms`` ± uniform jitter, at least 0."""
        mean, jitter = self._config.latency_ms, self._config.latency_jitter_ms
        if jitter > 0:
            mean += self._rng.uniform(-jitter, jitter)
        return max(0.0, mean) / 1000.0

    def handle(self, target: str, raw: bytes) -> dict[str, Any]:
        """The success body for one call, or raises :class:`errors.ApiError`."""
        counters, config = self.counters, self._config
        counters.calls += 1
        check = HANDLERS.get(target)
        if check is None:
            counters.unknown_operations += 1
            raise errors.unknown_operation(target)
        if config.fault_rate > 0 and self._rng.random() < config.fault_rate:
            counters.faults += 1
            raise errors.internal(str(uuid.uuid4()))
        try:
            params = json.loads(raw or b"{}")
        except ValueError:
            counters.validation_errors += 1
            raise errors.serialization("The request body is not valid JSON") from None
        invalid = check(params)
        if invalid is not None:
            counters.validation_errors += 1
            log.debug(
                "sandbox_send_invalid", reason=invalid[0], fields=[e.name for e in invalid[1]]
            )
            raise errors.validation_error(*invalid)
        return self._send(params, BY_OPERATION[target.removeprefix(TARGET_PREFIX)])

    def _send(self, params: dict[str, Any], channel: Channel) -> dict[str, Any]:
        counters, config = self.counters, self._config
        # An SMS may name no identity (the service picks one): its bucket is "default".
        identity: str = params.get("OriginationIdentity") or "default"
        destination: str = params["DestinationPhoneNumber"]
        body = params.get("MessageBody")
        parts = segments.parts(body) if channel.name == "SMS" and isinstance(body, str) else 1
        outcome = "accepted"
        try:
            if config.account_error is not None:
                outcome = "account_error"
                counters.account_errors += 1
                raise errors.account_error(config.account_error)
            if channel.name in config.spend_limit_reached:
                outcome = "spend_limit"
                counters.spend_limited += 1
                raise errors.spend_limit(channel.name)
            if config.known_identities is not None and identity not in config.known_identities:
                outcome = "not_found"
                counters.not_found += 1
                raise errors.not_found(identity)
            prefix = _blocked_prefix(destination, config.blocked_prefixes)
            if prefix is not None:
                outcome = "blocked"
                counters.blocked += 1
                raise errors.blocked(prefix)
            if not self._limiter.try_acquire(identity, channel.name, parts):
                outcome = "throttled"
                counters.throttled += 1
                raise errors.throttled()
            if destination in config.opted_out:
                outcome = "opted_out"
                counters.conflicts += 1
                raise errors.opted_out(destination)
        finally:
            log.debug(
                "sandbox_send",
                outcome=outcome,
                channel=channel.name,
                parts=parts,
                identity=mask_identity(identity),
                destination=mask_phone(destination),
            )
        dry_run = bool(params.get("DryRun", False))
        record = SendRecord(
            message_id=str(uuid.uuid4()),
            received_at=self._wall(),
            identity=identity,
            destination=destination,
            dry_run=dry_run,
            params=params,
            channel=channel.name,
            parts=parts,
            operation=channel.operation,
            cut=not dry_run and self._cut_answer(),
        )
        self._record(record)
        self.events.publish(record, channel.operation, config)
        if record.cut:
            raise AnswerCut(record.message_id)
        return {"MessageId": record.message_id}

    def _cut_answer(self) -> bool:
        rate = self._config.cut_after_accept_rate
        if rate > 0 and self._rng.random() < rate:
            self.counters.cut_after_accept += 1
            return True
        return False

    def _record(self, record: SendRecord) -> None:
        counters = self.counters
        counters.accepted += 1
        counters.dry_runs += int(record.dry_run)
        by_identity = counters.accepted_by_identity
        by_identity[record.identity] = by_identity.get(record.identity, 0) + 1
        by_channel, parts = counters.accepted_by_channel, counters.parts_by_channel
        by_channel[record.channel] = by_channel.get(record.channel, 0) + 1
        parts[record.channel] = parts.get(record.channel, 0) + record.parts
        self.sends.append(record)
        path = self._config.record_path
        if path is None:
            return
        try:
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record.to_json()) + "\n")
        except OSError as exc:
            log.warning("sandbox_record_write_failed", error=type(exc).__name__)


def _blocked_prefix(destination: str, prefixes: AbstractSet[str]) -> str | None:
    return next((p for p in sorted(prefixes) if destination.startswith(p)), None)
