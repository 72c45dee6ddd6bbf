"""Put send requests on the queue from Python: :class:`Enqueuer` and :func:`enqueue`.

Requests are validated with the worker's own model before anything is sent, packed ten to a
``SendMessageBatch`` call, and sent by ``concurrency`` tasks; at most ``2 * concurrency + 1``
batches are held at any time, so feeding a million requests keeps memory flat. The library
reads nothing from the environment itself: endpoints, credentials and (unless given) the
region come from botocore's standard chain.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterable, Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from types import TracebackType
from typing import Any

from worker.aws.clients import ConfigurationError, aws_client
from worker.model import SendRequest, SmsRequest
from worker.producer.batch import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    BatchOutcome,
    Entry,
    RetryPolicy,
    send_batch,
)
from worker.producer.outcomes import EnqueueResult, EntryFailure, QueueUnavailable, unavailable
from worker.producer.requests import InvalidSendRequest, PreparedRequest, prepare_request

Request = SendRequest | SmsRequest | Mapping[str, Any] | PreparedRequest
#: ``https://sqs.us-east-1.amazonaws.com/...`` and the legacy ``us-east-1.queue.amazonaws.com``.
_REGION_IN_URL = re.compile(
    r"https://(?:sqs(?:-fips)?\.([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?/"
)
KEEP_FAILURES = 1000


def region_of(queue_url: str) -> str | None:
    """The region named in an AWS queue URL, or None (a local endpoint names none)."""
    found = _REGION_IN_URL.match(queue_url)
    return (found.group(1) or found.group(2)) if found else None


class Enqueuer:
    """Validate send requests and put them on the queue, in batches, concurrently.

    ``async with Enqueuer(queue_url) as q: await q.put(request)``. ``put`` returns once the
    request is validated and queued for sending; leaving the block sends what is left and
    waits for every batch. ``result`` counts what was enqueued and what failed (with the
    ``tag`` given to ``put``). An invalid request raises :class:`InvalidSendRequest` from
    ``put`` and nothing of it is sent; :class:`QueueUnavailable` (missing queue, refused
    credentials) is raised by the next ``put`` or on leaving the block.

    ``client``: an aiobotocore SQS client to use (not closed here); by default one is opened
    with ``region_name``, else the region of an AWS queue URL, else botocore's chain.
    ``on_sent(n)`` and ``on_failure(failure)`` are called as batches complete.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        client: Any = None,
        region_name: str | None = None,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        on_sent: Callable[[int], None] | None = None,
        on_failure: Callable[[EntryFailure], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.queue_url = queue_url
        self.result = EnqueueResult()
        self._client = client
        self._region = region_name or region_of(queue_url)
        self._concurrency = concurrency
        self._retry = retry or RetryPolicy()
        self._on_sent = on_sent
        self._on_failure = on_failure
        self._batches: asyncio.Queue[list[Entry] | None] = asyncio.Queue(concurrency)
        self._senders: list[asyncio.Task[None]] = []
        self._pending: list[Entry] = []
        self._pending_bytes = 0
        self._fatal: QueueUnavailable | None = None
        self._error: BaseException | None = None
        self._stack = AsyncExitStack()
        self._state = "new"
        self._started = 0.0

    async def __aenter__(self) -> Enqueuer:
        if self._state != "new":
            raise RuntimeError("an Enqueuer can be entered once; make a new one")
        if self._client is None:
            config: dict[str, Any] = {
                "retries": {"mode": "standard", "total_max_attempts": 1},  # send_batch retries
                "max_pool_connections": self._concurrency + 2,
                "connect_timeout": 5,
                "read_timeout": 30,
            }
            try:
                self._client = await self._stack.enter_async_context(
                    aws_client("sqs", region=self._region, **config)
                )
            except ConfigurationError:
                raise unavailable("NoRegionError", "") from None
        self._senders = [
            asyncio.create_task(self._sender(), name=f"enqueue-sender-{n}")
            for n in range(self._concurrency)
        ]
        self._state = "open"
        self._started = time.monotonic()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None or issubclass(exc_type, Exception):
                await self._drain()
        finally:
            for task in self._senders:
                task.cancel()
            await asyncio.gather(*self._senders, return_exceptions=True)
            await self._stack.aclose()
            self._state = "closed"
            self.result.elapsed_s = time.monotonic() - self._started
        if exc_type is None:
            self._raise_if_stopped()

    async def put(self, request: Request, *, tag: Hashable = None) -> None:
        """Validate ``request`` and queue it for sending; ``tag`` names it in failures."""
        self._check_open()
        prepared = prepare_request(request)
        await self._add(Entry(prepared.body, prepared.request_id, tag))

    async def put_many(self, requests: Iterable[Request] | AsyncIterable[Request]) -> int:
        """``put`` each request (tagged with its position); returns how many were put.

        The first invalid request raises :class:`InvalidSendRequest` naming its position;
        the ones before it are enqueued. To enqueue all or nothing, validate first with
        :func:`prepare_request` (as :func:`enqueue` does for a list).
        """
        count = 0
        if isinstance(requests, AsyncIterable):
            async for request in requests:
                await self._put_at(request, count)
                count += 1
        else:
            for request in requests:
                await self._put_at(request, count)
                count += 1
        return count

    async def flush(self) -> None:
        """Wait until every request put so far is enqueued or has failed."""
        self._check_open()
        await self._hand_over()
        await self._batches.join()
        self._raise_if_stopped()

    async def _put_at(self, request: Request, index: int) -> None:
        self._check_open()
        try:
            prepared = prepare_request(request)
        except InvalidSendRequest as exc:
            raise exc.at(index) from None
        await self._add(Entry(prepared.body, prepared.request_id, index))

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError("use the Enqueuer inside 'async with Enqueuer(...) as q:'")
        self._raise_if_stopped()

    def _raise_if_stopped(self) -> None:
        if self._fatal is not None:
            error = QueueUnavailable(str(self._fatal), self._fatal.code)
            error.result = self.result
            raise error
        if self._error is not None:
            raise RuntimeError("enqueueing stopped on an unexpected error") from self._error

    async def _add(self, entry: Entry) -> None:
        if self._pending and self._pending_bytes + entry.size > MAX_BATCH_BYTES:
            await self._hand_over()
        self._pending.append(entry)
        self._pending_bytes += entry.size
        if len(self._pending) >= MAX_BATCH_ENTRIES:
            await self._hand_over()

    async def _hand_over(self) -> None:
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        if batch:
            await self._batches.put(batch)  # waits while `concurrency` batches are queued
            await asyncio.sleep(0)  # let the senders run even when the caller never waits

    async def _drain(self) -> None:
        await self._hand_over()
        for _ in self._senders:
            await self._batches.put(None)
        await asyncio.gather(*self._senders)

    async def _sender(self) -> None:
        while True:
            batch = await self._batches.get()
            try:
                if batch is None:
                    return
                self._record(await self._send(batch))
            except Exception as exc:  # a caller's callback failed: stop, report it
                if self._error is None:
                    self._error = exc
            finally:
                self._batches.task_done()

    async def _send(self, batch: list[Entry]) -> BatchOutcome:
        if self._fatal is not None or self._error is not None:
            code = self._fatal.code if self._fatal is not None else "Stopped"
            reason = "not sent: enqueueing had stopped (see the error raised)"
            return BatchOutcome(failures=[_failure(entry, code, reason) for entry in batch])
        try:
            outcome = await send_batch(self._client, self.queue_url, batch, self._retry)
        except Exception as exc:  # pragma: no cover - send_batch classifies every error
            reason = f"unexpected {type(exc).__name__}; report this"
            return BatchOutcome(
                failures=[_failure(e, "Unexpected", reason, stopped=False) for e in batch]
            )
        if outcome.fatal is not None:
            self._fatal = self._fatal or outcome.fatal
            outcome.failures = [replace(failure, stopped=True) for failure in outcome.failures]
        return outcome

    def _record(self, outcome: BatchOutcome) -> None:
        self.result.enqueued += outcome.sent
        self.result.failed += len(outcome.failures)
        room = KEEP_FAILURES - len(self.result.failures)
        self.result.failures.extend(outcome.failures[: max(room, 0)])
        if outcome.sent and self._on_sent is not None:
            self._on_sent(outcome.sent)
        if self._on_failure is not None:
            for failure in outcome.failures:
                self._on_failure(failure)


def _failure(entry: Entry, code: str, reason: str, *, stopped: bool = True) -> EntryFailure:
    return EntryFailure(entry.tag, entry.request_id, code, reason, 0, stopped=stopped)


async def enqueue(
    queue_url: str,
    requests: Iterable[Request] | AsyncIterable[Request],
    *,
    client: Any = None,
    region_name: str | None = None,
    concurrency: int = 8,
    retry: RetryPolicy | None = None,
) -> EnqueueResult:
    """Enqueue ``requests``; returns the counts (check ``result.ok``).

    A list (any sequence) is validated whole first: if one request is invalid,
    :class:`InvalidSendRequest` names its position and nothing is sent. Other iterables
    stream: requests before an invalid one are enqueued. Failure tags are positions.
    """
    if isinstance(requests, str | bytes | Mapping):
        raise TypeError("requests must be an iterable of requests; for one, pass [request]")
    source: Iterable[Request] | AsyncIterable[Request] = requests
    if isinstance(requests, Sequence):
        prepared: list[PreparedRequest] = []
        for index, request in enumerate(requests):
            try:
                prepared.append(prepare_request(request))
            except InvalidSendRequest as exc:
                raise exc.at(index) from None
        source = prepared
    enqueuer = Enqueuer(
        queue_url, client=client, region_name=region_name, concurrency=concurrency, retry=retry
    )
    async with enqueuer:
        await enqueuer.put_many(source)
    return enqueuer.result
