"""The worker's one settings object: validated and frozen at start-up.

Every field is an environment variable with the ``SMS_WORKER_`` prefix and a command-line
option of ``sms-worker run`` (see :mod:`worker.cli`). Nothing deeper in the package reads
``os.environ``; AWS endpoints, region and credentials come from the standard AWS chain,
which botocore reads itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.model.rate_limits import DEFAULT_IDENTITY_KEY, parse_rate_limits, quota_for

ENV_PREFIX = "SMS_WORKER_"
#: Variables with the prefix that are not settings (the test suite's own).
NOT_SETTINGS = frozenset({"SMS_WORKER_TEST_LOGS", "SMS_WORKER_FAULT_CELLS"})


class Settings(BaseSettings):
    """What ``sms-worker run`` needs. Units are in the names."""

    model_config = SettingsConfigDict(
        env_prefix="SMS_WORKER_",
        frozen=True,
        extra="forbid",
        env_ignore_empty=True,
        populate_by_name=True,
    )

    queue_url: str = Field(description="URL of the SQS queue of send requests (required).")
    table: str = Field(description="Name of the DynamoDB status table (required).")

    region: str | None = Field(
        None,
        validation_alias=AliasChoices("SMS_WORKER_REGION", "AWS_REGION"),
        description=(
            "AWS region; default: AWS_REGION, then botocore's chain "
            "(AWS_DEFAULT_REGION, the profile)."
        ),
    )
    max_in_flight: int = Field(
        64,
        ge=1,
        le=10_000,
        description=(
            "Most messages held (received, not yet acknowledged) per queue: the send queue's, "
            "and as many again from the events queue when `run` drains both."
        ),
    )
    pollers: int = Field(2, ge=1, le=64, description="Concurrent ReceiveMessage long polls.")
    wait_time_s: int = Field(20, ge=0, le=20, description="Long-poll wait of each receive.")
    visibility_timeout_s: int = Field(
        120, ge=10, le=43_200, description="Visibility timeout asked for on each receive."
    )
    rate_limits: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: {DEFAULT_IDENTITY_KEY: 20.0},
        description=(
            "Messages per second per origination identity, as 'default=20,IDENTITY=MPS,...'; "
            "'IDENTITY/SMS=MPS' or 'IDENTITY/MMS=MPS' sets one channel's (SMS in message "
            "parts per second); 'default' applies to identities not listed (and to an SMS "
            "without an identity)."
        ),
    )
    rate_sharing: Literal["dynamodb", "none"] = Field(
        "dynamodb",
        description=(
            "How workers on one table share each identity's quota: dynamodb (rate-share "
            "leases in the status table: the fleet together keeps to SMS_WORKER_RATE_LIMITS, "
            "however many workers run) or none (each worker paces itself at the whole quota "
            "and several converge by throttling)."
        ),
    )
    rate_sharing_renew_max_s: float = Field(
        10.0,
        ge=1.0,
        le=60.0,
        description=(
            "With rate sharing, the longest a worker waits between renewals of its rate share "
            "(the period is sized for 0.025 lease writes per message, within 1 s and this). "
            "Lower it for faster joins and hand-backs at more writes: a joining worker gets "
            "its share within one period, a killed one's comes back within three (its lease "
            "is two periods and a second)."
        ),
    )
    rate_burst_s: float = Field(
        0.1, gt=0, le=10, description="Token bucket depth, in seconds of the identity's rate."
    )
    max_token_wait_s: float = Field(
        30.0,
        gt=0,
        description=(
            "A message whose identity's next token is further away than this is handed back "
            "(visible again when its turn comes) instead of held."
        ),
    )
    send_timeout_s: float = Field(10.0, gt=0, le=120, description="Read timeout of one send.")
    connect_timeout_s: float = Field(3.0, gt=0, le=60, description="Connect timeout of a call.")
    retry_attempts: int = Field(
        5, ge=1, le=20, description="Send calls per receive before the request goes RETRYING."
    )
    retry_budget_s: float = Field(
        30.0, gt=0, description="Total time of the in-process retries of one receive."
    )
    retry_backoff_base_s: float = Field(0.2, gt=0, description="First backoff ceiling.")
    retry_backoff_max_s: float = Field(5.0, gt=0, description="Backoff cap (full jitter).")
    redelivery_base_delay_s: int = Field(
        30, ge=0, le=43_200, description="Visibility delay after the first RETRYING."
    )
    redelivery_max_delay_s: int = Field(
        900, ge=0, le=43_200, description="Cap of the growing RETRYING delay."
    )
    max_receive_count: int | None = Field(
        None,
        ge=1,
        description=(
            "Last allowed receive; default: the queue's redrive policy maxReceiveCount, "
            "or 10 when the queue has none."
        ),
    )
    cooldown_s: float = Field(
        60.0, gt=0, description="Pause after an account-wide error (AccessDenied, quota)."
    )
    spend_limit_probe_s: float = Field(
        300.0,
        gt=0,
        description=(
            "A channel whose monthly spend limit is reached (ServiceQuotaExceededException "
            "MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT/_FOR_MEDIA) pauses; every this many seconds "
            "one real send probes it, and a success resumes the channel."
        ),
    )
    lease_s: float = Field(
        60.0, gt=0, description="How long a claim (SENDING) keeps other workers off."
    )
    dependency_unready_s: float = Field(
        30.0,
        gt=0,
        description=(
            "A dependency (DynamoDB, SQS, the SMS API) failing for longer than this makes "
            "/readyz answer 503 until it answers again."
        ),
    )
    shutdown_grace_s: float = Field(
        25.0, ge=0, description="On SIGTERM: how long in-flight sends may finish."
    )
    shutdown_hard_s: float = Field(
        5.0, gt=0, description="After the grace: most time to write statuses and flush acks."
    )
    hold_ahead_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description=(
            "Pollers receive no more messages than could get their tokens within this many "
            "seconds (the most over the identities sent to in the last 10 s; at most "
            "max_token_wait_s): a worker paced at a small share of a quota holds what it sends "
            "in these seconds, not max_in_flight messages, and the rest stay in the queue for "
            "workers with quota to spare."
        ),
    )
    receive_linger_ms: int = Field(
        5_000,
        ge=0,
        le=20_000,
        description=(
            "While other messages are held and fewer than a batch of slots are free, how "
            "long a poller waits for a batch before receiving, so receives come ten at a time "
            "(0: receive at once). It waits only while at least half of its slots are busy."
        ),
    )
    ack_flush_ms: int = Field(
        3_000,
        ge=1,
        le=10_000,
        description=(
            "Longest a delete or visibility change waits to batch (ten go at once; at most a "
            "tenth of visibility_timeout_s); a worker killed meanwhile leaves its messages to "
            "come back as duplicates, skipped."
        ),
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto",
        description="The event loop of `run`: auto (uvloop when installed), uvloop, asyncio.",
    )
    fast_path: bool = Field(
        True,
        description=(
            "Make the per-message calls (receive, claim, send, status write, delete) with the "
            "signed JSON API client instead of aiobotocore (same requests, a fraction of the "
            "CPU); false sends every call through aiobotocore."
        ),
    )
    tracing: Literal["off", "otel"] = Field(
        "off",
        description=(
            "otel: a span per message (the otel extra; exporter from the OTEL_* variables), "
            "continuing the producer's trace from traceparent or AWSTraceHeader."
        ),
    )
    campaign_counters_flush_s: float = Field(
        5.0,
        ge=0,
        description=(
            "Period of the per-campaign counter writes (one UpdateItem per campaign per "
            "period by every worker: the fleet's writes grow with its size, not its rate; "
            "0 disables the counters)."
        ),
    )
    record_ttl_days: int = Field(30, ge=1, description="Status records expire after this.")
    events_queue_url: str | None = Field(
        None,
        description=(
            "URL of the SQS queue of delivery events (a configuration set's event "
            "destination: SNS raw or enveloped, or EventBridge); `run` drains it too, "
            "`events` drains only it. Unset: no events consumer."
        ),
    )
    default_configuration_set: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9_:/-]+$",
        description=(
            "ConfigurationSetName sent with every request that names none, so that its "
            "delivery events exist (a send names a configuration set or has no events)."
        ),
    )
    reclaim_policy: Literal["resend", "confirm", "never"] | None = Field(
        None,
        description=(
            "What a later delivery of an ambiguous request (a send that may have gone out "
            "unseen) does: resend at once; confirm: wait reclaim_confirm_s for a delivery "
            "event, then resend; never: FAILED/AMBIGUOUS unless an event shows it was sent. "
            "Default: confirm with events_queue_url set, else resend (set confirm yourself "
            "when `sms-worker events` runs apart from the senders)."
        ),
    )
    reclaim_confirm_s: float = Field(
        600.0,
        gt=0,
        le=43_200,
        description=(
            "confirm: how long after an ambiguous attempt a request waits for a delivery "
            "event before it is sent again (one visibility delay: at most 12 hours)."
        ),
    )
    metrics_port: int = Field(
        9102, ge=0, le=65_535, description="Port of /metrics, /healthz, /readyz (0 disables)."
    )
    metrics_host: str = Field("0.0.0.0", description="Address the HTTP endpoint listens on.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="'auto': console on a terminal, JSON otherwise."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    progress_interval_s: float = Field(
        10.0, ge=0, description="Period of the 'progress' log event (0 disables)."
    )

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _parse_rate_limits(cls, value: object) -> dict[str, float]:
        if isinstance(value, str | dict):
            return parse_rate_limits(value)
        raise ValueError("rate_limits must be 'IDENTITY=MPS,...'")

    @field_validator("queue_url", "events_queue_url")
    @classmethod
    def _check_queue_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError(
                f"queue_url {value!r} is not a queue URL; use the QueueUrl that "
                "CreateQueue/GetQueueUrl returns (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
            )
        return value

    @model_validator(mode="after")
    def _check_budgets(self) -> Settings:
        longest_hold = (
            self.retry_budget_s
            + self.retry_backoff_max_s
            + self.send_timeout_s
            + self.connect_timeout_s
        )
        if self.lease_s < longest_hold:
            raise ValueError(
                f"lease_s ({self.lease_s}) must cover retry_budget_s + retry_backoff_max_s + "
                f"send_timeout_s + connect_timeout_s ({longest_hold}); raise lease_s or lower "
                "the budgets"
            )
        if self.visibility_timeout_s < self.lease_s:
            raise ValueError(
                f"visibility_timeout_s ({self.visibility_timeout_s}) must be >= lease_s "
                f"({self.lease_s}), or a message is redelivered while its claim is live"
            )
        if self.max_token_wait_s > self.visibility_timeout_s / 2:
            raise ValueError(
                f"max_token_wait_s ({self.max_token_wait_s}) must be at most half of "
                f"visibility_timeout_s ({self.visibility_timeout_s})"
            )
        if self.redelivery_max_delay_s < self.redelivery_base_delay_s:
            raise ValueError("redelivery_max_delay_s must be >= redelivery_base_delay_s")
        return self

    @property
    def effective_reclaim_policy(self) -> Literal["resend", "confirm", "never"]:
        """``reclaim_policy``, or its default: confirm when an events queue is configured
        (an event can settle the question), resend otherwise (nothing would)."""
        if self.reclaim_policy is not None:
            return self.reclaim_policy
        return "confirm" if self.events_queue_url else "resend"

    @property
    def ack_linger_ms(self) -> int:
        """``ack_flush_ms``, at most a tenth of the visibility timeout: a visibility extension
        is queued a third of the timeout before it runs out, and must land well before."""
        return max(1, min(self.ack_flush_ms, self.visibility_timeout_s * 100))

    @property
    def receive_batch_target(self) -> int:
        """The batch a busy poller waits for (``receive_linger_ms``): ten, or half of its
        part of ``max_in_flight`` if that is less, so the other half stays at work."""
        return max(1, min(10, self.max_in_flight // (2 * self.pollers)))

    @property
    def receive_hold_ahead_s(self) -> float:
        """What the receive gate holds ahead: ``hold_ahead_s``, at most ``max_token_wait_s``
        (what it let in beyond that would be handed back, deferred)."""
        return min(self.hold_ahead_s, self.max_token_wait_s)

    @property
    def connection_pool_size(self) -> int:
        """Connections each client may keep: one per message that can be held at once
        (``max_in_flight`` per queue drained: the send queue's and, when set, the events
        queue's, whose consumer ``run`` hosts too), one per poller, and ten spare."""
        queues = 2 if self.events_queue_url else 1
        return queues * (self.max_in_flight + self.pollers) + 10

    def rate_for(self, key: str) -> float:
        """The quota of a rate-limit key (see :func:`worker.model.rate_limits.quota_for`)."""
        return quota_for(self.rate_limits, key)


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each ``SMS_WORKER_*`` variable set in ``environ`` that is not a setting (a misspelled
    one would be ignored silently), with the closest setting's variable (``None``: none
    close)."""
    known = {name.upper(): ENV_PREFIX + name.upper() for name in Settings.model_fields}
    found: list[tuple[str, str | None]] = []
    for variable in sorted(environ):
        upper = variable.upper()  # the settings read their variables case-insensitively
        if not upper.startswith(ENV_PREFIX) or not environ[variable]:
            continue
        suffix = upper.removeprefix(ENV_PREFIX)
        if suffix in known or upper in NOT_SETTINGS:
            continue
        close = difflib.get_close_matches(suffix, known, n=1, cutoff=0.6)
        found.append((variable, known[close[0]] if close else None))
    return found
