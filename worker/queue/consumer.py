"""Long-poll loops: receive only while there is room under the in-flight bound.

Each poller takes one slot of the in-flight semaphore (waiting for it), then as many more as
are free right now, up to 10, and asks SQS for exactly that many messages. Each message is
handed on as soon as the batch arrives, so processing never waits for a batch to finish.

While DynamoDB or the SMS API is failing (no connection, timeouts, 5xx) every message would
only be handed back, a receive burnt toward the dead-letter queue, so the pollers pause,
letting one message through every ``PROBE_INTERVAL_S`` as a probe; they resume in full as soon
as the dependency answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from worker.aws.errors import describe
from worker.backoff import compute_backoff_s
from worker.health import DYNAMODB, SMS, SQS, DependencyHealth
from worker.logs import get_logger
from worker.metrics import Metrics
from worker.queue.message import QueueMessage
from worker.sending.cooldown import Cooldown
from worker.sending.limiter import UNBOUNDED, Room

log = get_logger(__name__)

MAX_BATCH = 10
#: The longest and shortest a poller waits before it looks at the room ahead again.
ROOM_RECHECK_S = 1.0
ROOM_RECHECK_MIN_S = 0.05
PROBE_INTERVAL_S = 5.0
PAUSE_WHILE_FAILING = (DYNAMODB, SMS)
# SentTimestamp: the age of the oldest message held, sampled by worker.observe.queues.
RECEIVE_ATTRIBUTES = ["ApproximateReceiveCount"]


class Consumer:
    def __init__(
        self,
        client: Any,
        queue_url: str,
        *,
        wait_time_s: int,
        visibility_timeout_s: int,
        slots: asyncio.Semaphore,
        spawn: Callable[[QueueMessage], None],
        cooldown: Cooldown,
        stopping: asyncio.Event,
        metrics: Metrics,
        health: DependencyHealth | None = None,
        busy: Callable[[], bool] = lambda: False,
        batch_linger_s: float = 0.05,
        batch_target: int = MAX_BATCH,
        room: Callable[[float], Room | None] | None = None,
        hold_ahead_s: float = 5.0,
        system_attributes: Sequence[str] = (),
        message_attributes: Sequence[str] = (),
    ) -> None:
        # What each ReceiveMessage asks for besides the receive count (tracing's headers).
        self._attributes: dict[str, Any] = {
            "MessageSystemAttributeNames": [*RECEIVE_ATTRIBUTES, *system_attributes]
        }
        if message_attributes:
            self._attributes["MessageAttributeNames"] = list(message_attributes)
        self._client = client
        self._queue_url = queue_url
        self._wait_time_s = wait_time_s
        self._visibility_timeout_s = visibility_timeout_s
        self._slots = slots
        self._spawn = spawn
        self._cooldown = cooldown
        self._stopping = stopping
        self._metrics = metrics
        self._health = health or DependencyHealth()
        self._busy = busy
        self._batch_linger_s = batch_linger_s
        self._batch_target = max(1, min(MAX_BATCH, batch_target))
        self._taking = asyncio.Lock()
        # None: a route whose messages book no token receives as its slots allow
        self._room = room or _unpaced
        self._hold_ahead_s = hold_ahead_s
        self._gate = asyncio.Lock()
        self._pending = 0  # messages the receives in progress asked for
        self._unpaced = 0  # received while the room was not known, and it still is not
        self._intake = 0  # messages the gate let in since _intake_since
        self._intake_since = time.monotonic()
        self._received = asyncio.Event()  # set (and replaced) as each receive is done

    async def _room_ahead(self, most: int) -> tuple[int, bool]:
        """How many messages this poller may receive (at most ``most``), waiting while none:
        no more than can get their tokens within ``hold_ahead_s`` (``room``, the limiter's),
        less what the receives in progress asked for. What a rate-bound worker receives
        beyond that only waits in its memory, its visibility extended, while a worker with
        quota to spare (one that just joined) finds the queue empty; and at a campaign's end
        each worker's tail is that long, not ``max_in_flight`` messages at its share. It
        waits for room for a batch (``most``, or half of what the pace allows in the time),
        so a worker paced at a few MPS still receives several messages per call.

        While the room is not known (no key used lately: the worker just started, or was
        idle), one poller receives at a time: its messages book their tokens, and the next
        one goes by the room left. Otherwise every poller of a worker that starts on a deep
        queue takes a full batch at once, and what cannot be sent within
        ``max_token_wait_s`` is handed back, deferred. One poller at a time looks (the lock),
        again as each receive is done and at least every ``ROOM_RECHECK_S`` (a grant, a
        throttle or the clock move the schedule). Messages that book no token (duplicates,
        expired or bad requests) leave it unknown: then the pollers receive side by side.

        It lets at least a batch in every ``hold_ahead_s``: the keys it knows may be
        slow, but the queue may hold messages for others behind theirs (what such a batch
        brings for the slow ones is held, up to ``max_token_wait_s``, then deferred), so a
        slow identity paces the intake of a queue that mixes identities no lower than ten
        messages per ``hold_ahead_s``.
        Returns the messages to ask for, and whether the room was not known; 0 once
        stopping."""
        # The messages just received book their tokens when their tasks first run: let them.
        await asyncio.sleep(0)
        async with self._gate:
            while not self._stopping.is_set():
                room = self._room(self._hold_ahead_s)
                wait_s = ROOM_RECHECK_S
                if room is None:
                    unpaced = self._pending == 0 or self._unpaced > 0
                    free, batch = (most if unpaced else 0), 1
                else:
                    self._unpaced = 0
                    free = room.free - self._pending
                    batch = min(most, max(1, room.full // 2))
                    if room.full > 0:  # until the pace frees room for the batch
                        wait_s = (batch - free) * self._hold_ahead_s / room.full
                    if free < most and self._intake_short(most):
                        free = batch = most
                if free >= batch:
                    taken = min(most, free)
                    self._count_intake(taken)
                    self._pending += taken
                    return taken, room is None
                self._metrics.receive_waits += 1
                done = self._received
                with suppress(TimeoutError):
                    async with asyncio.timeout(
                        min(max(wait_s, ROOM_RECHECK_MIN_S), ROOM_RECHECK_S)
                    ):
                        await done.wait()
                await asyncio.sleep(0)  # the messages it spawned book their tokens first
        return 0, False

    def _intake_short(self, most: int) -> bool:
        """Fewer than ``most`` messages let in over the last ``hold_ahead_s`` (or longer)."""
        elapsed_s = time.monotonic() - self._intake_since
        return elapsed_s >= self._hold_ahead_s and self._intake < most

    def _count_intake(self, taken: int) -> None:
        now = time.monotonic()
        if now - self._intake_since >= self._hold_ahead_s:
            self._intake, self._intake_since = 0, now
        self._intake += taken

    def _receive_done(self, asked: int, got: int, unknown: bool) -> None:
        self._pending -= asked
        if unknown:
            self._unpaced += got
        self._received.set()
        self._received = asyncio.Event()

    async def _take_slots(self, most: int = MAX_BATCH) -> int:
        """Wait for a free slot, then take every free one up to ``most``. When the worker is
        busy (other messages held, so it has work in hand), wait up to ``batch_linger_s``
        for ``batch_target`` slots: otherwise a steady trickle of completions becomes one
        ReceiveMessage per message, and a worker paced at a small share of its identity's
        quota receives (and deletes) a message at a time. The target leaves at least half of
        a poller's part of the slots busy, so lingering never idles the worker; an idle
        worker receives at once. The pollers take their slots one at a time (the lock), so
        two lingering pollers do not split the slots that free."""
        async with self._taking:
            await self._slots.acquire()
            taken = 1
            try:
                taken = await self._grab(taken, most)
                target = min(most, self._batch_target)
                if taken < target and self._busy() and self._batch_linger_s > 0:
                    with suppress(TimeoutError):
                        async with asyncio.timeout(self._batch_linger_s):
                            while taken < target:
                                await self._slots.acquire()
                                taken = await self._grab(taken + 1, most)
            except BaseException:
                self._release_slots(taken)
                raise
            return taken

    async def _grab(self, taken: int, most: int) -> int:
        """Take the slots free right now (each ``acquire`` returns without waiting)."""
        while taken < most and not self._slots.locked():
            await self._slots.acquire()
            taken += 1
        return taken

    async def poll(self, poller: int) -> None:
        """One long-poll loop; runs until cancelled."""
        failures = 0
        paused: str | None = None  # the dependency the pause is for
        while not self._stopping.is_set():
            await self._cooldown.wait_clear(self._stopping)
            most = MAX_BATCH
            failing = self._failing()
            if failing is not None:
                if paused != failing:
                    paused = failing
                    log.warning(
                        "receiving_paused",
                        poller=poller,
                        dependency=failing,
                        probe_every_s=PROBE_INTERVAL_S,
                        effect="one message per probe until it answers again",
                    )
                await self._health.wait_recovered(failing, PROBE_INTERVAL_S)
                if self._failing() is not None:
                    most = 1  # a probe: one message, whose handling tells if it is back
            elif paused:
                log.info("receiving_resumed", poller=poller, dependency=paused)
                paused = None
            asked, unknown = await self._room_ahead(most)
            got, failed = 0, None
            try:
                if self._stopping.is_set():
                    return
                got, failed = await self._receive(asked)
            finally:
                self._receive_done(asked, got, unknown)
            if failed is None:
                failures = 0
                continue
            failures += 1
            backoff_s = round(0.5 + compute_backoff_s(failures, 1.0, 30.0), 2)
            log.error(
                "receive_failed",
                poller=poller,
                error=describe(failed),
                detail=str(failed)[:300],
                retry_in_s=backoff_s,
                action="check the queue URL, the SQS endpoint and the credentials",
            )
            await asyncio.sleep(backoff_s)

    async def _receive(self, most: int) -> tuple[int, Exception | None]:
        """Take slots, receive up to that many messages and hand each to its handler: how
        many came, or the error if the receive failed."""
        taken = await self._take_slots(most)
        try:
            response = await self._client.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=taken,
                WaitTimeSeconds=self._wait_time_s,
                VisibilityTimeout=self._visibility_timeout_s,
                **self._attributes,
            )
        except asyncio.CancelledError:
            self._release_slots(taken)
            raise
        except Exception as exc:
            self._release_slots(taken)
            self._health.count(SQS, "receive", describe(exc))
            self._health.failed(SQS, describe(exc))
            return 0, exc
        self._health.ok(SQS)
        messages = [QueueMessage.from_sqs(raw) for raw in response.get("Messages") or []]
        self._release_slots(taken - len(messages))
        self._metrics.received += len(messages)
        self._metrics.receive_calls += 1
        for message in messages:
            # Even one that arrives after shutdown began goes to its handler: it hands it
            # straight back, minding the receive count (see Holding.hand_back).
            self._spawn(message)
        return len(messages), None

    def _failing(self) -> str | None:
        return next((d for d in PAUSE_WHILE_FAILING if self._health.failing(d)), None)

    def _release_slots(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()


def _unpaced(within_s: float) -> Room | None:
    return UNBOUNDED
