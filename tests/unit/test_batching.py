"""The linger batcher: when batches leave, what shares one, flush and close (pure asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest
from structlog.testing import capture_logs

from worker.batching import LingerBatcher


class Recorder(LingerBatcher[str]):
    """Items ``"<lane>:<key>"``; sends are recorded, and wait for ``gate`` when it is set."""

    def __init__(self, *, max_batch: int = 3, linger_s: float = 10.0, dedupe: bool = False) -> None:
        super().__init__("recorder", max_batch=max_batch, linger_s=linger_s)
        self.sent: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.dedupe = dedupe

    def add(self, item: str) -> None:
        self._add(item)

    def _lane(self, item: str) -> Hashable:
        return item.split(":")[0]

    def _take(self, queued: list[str]) -> tuple[list[str], list[str]]:
        if not self.dedupe:
            return super()._take(queued)
        batch: list[str] = []
        rest: list[str] = []
        for item in queued:
            (rest if item in batch or len(batch) == self.max_batch else batch).append(item)
        return batch, rest

    async def _send(self, batch: list[str]) -> None:
        self.sent.append(batch)
        if self.gate is not None:
            await self.gate.wait()


async def test_a_full_batch_leaves_at_once() -> None:
    batcher = Recorder(max_batch=3)
    for n in range(4):
        batcher.add(f"a:{n}")
    assert batcher.queued == 1 and batcher.in_flight == 1  # no linger for a full batch
    await asyncio.sleep(0)
    assert batcher.sent == [["a:0", "a:1", "a:2"]]
    await batcher.close()
    assert batcher.sent == [["a:0", "a:1", "a:2"], ["a:3"]]


async def test_a_partial_batch_waits_at_most_the_linger_from_its_first_item() -> None:
    batcher = Recorder(linger_s=0.2)
    batcher.add("a:0")
    await asyncio.sleep(0.1)
    assert batcher.sent == [] and batcher.queued == 1
    batcher.add("a:1")  # joins the batch: the linger counts from the first item
    await asyncio.sleep(0.15)  # 0.25 s after the first item, 0.15 s after the second
    assert batcher.queued == 0
    await batcher.flush()
    assert batcher.sent == [["a:0", "a:1"]]
    await batcher.close()


async def test_no_linger_sends_each_item_at_once() -> None:
    batcher = Recorder(linger_s=0)
    batcher.add("a:0")
    batcher.add("a:1")
    assert batcher.queued == 0 and batcher.in_flight == 2
    await batcher.close()
    assert batcher.sent == [["a:0"], ["a:1"]]


async def test_lanes_never_share_a_batch_and_fill_on_their_own() -> None:
    batcher = Recorder(max_batch=2)
    for item in ("a:0", "b:0", "a:1", "b:1", "a:2"):
        batcher.add(item)
    await asyncio.sleep(0)
    assert batcher.sent == [["a:0", "a:1"], ["b:0", "b:1"]]  # each lane full on its own
    await batcher.flush()
    assert batcher.sent[-1] == ["a:2"]


async def test_an_item_held_back_by_take_goes_in_a_later_batch_even_without_linger() -> None:
    batcher = Recorder(max_batch=3, linger_s=0, dedupe=True)
    batcher.gate = asyncio.Event()
    batcher.add("a:x")
    batcher.add("a:x")  # the same key again: the first batch is one item, this one later
    await asyncio.sleep(0.01)
    assert batcher.queued == 0
    batcher.gate.set()
    await batcher.close()
    assert batcher.sent == [["a:x"], ["a:x"]]


async def test_flush_and_close_wait_for_batches_in_flight() -> None:
    batcher = Recorder()
    batcher.gate = asyncio.Event()
    async with batcher:
        batcher.add("a:0")
        batcher.add("b:0")
        assert batcher.pending == 2  # queued
        flushing = asyncio.create_task(batcher.flush())
        await asyncio.sleep(0.01)
        assert not flushing.done() and batcher.queued == 0 and batcher.pending == 2  # in flight
        batcher.gate.set()
        await flushing
        assert batcher.pending == 0
        batcher.gate.clear()
        batcher.add("a:1")  # left for close
        closing = asyncio.create_task(batcher.close())
        await asyncio.sleep(0.01)
        assert not closing.done()
        batcher.gate.set()
        await closing
    assert sorted(map(tuple, batcher.sent)) == [("a:0",), ("a:1",), ("b:0",)]
    await batcher.close()  # idempotent


async def test_an_item_queued_after_close_is_still_sent() -> None:
    batcher = Recorder(linger_s=0.01)
    await batcher.close()
    batcher.add("a:late")
    await asyncio.sleep(0.05)
    assert batcher.sent == [["a:late"]]


async def test_a_failing_send_is_logged_and_the_batcher_goes_on() -> None:
    class Broken(Recorder):
        async def _send(self, batch: list[str]) -> None:
            await super()._send(batch)
            if batch == ["a:0"]:
                raise RuntimeError("send bug")

    batcher = Broken(linger_s=0)
    with capture_logs() as logs:
        batcher.add("a:0")
        await batcher.flush()
        batcher.add("a:1")
        await batcher.close()
    assert batcher.sent == [["a:0"], ["a:1"]]
    [failed] = [e for e in logs if e["event"] == "background_task_failed"]
    assert failed["task"] == "recorder-batch" and "send bug" in failed["error"]


async def test_a_take_that_picks_nothing_is_a_bug_said_at_once() -> None:
    class Stuck(Recorder):
        def _take(self, queued: list[str]) -> tuple[list[str], list[str]]:
            return [], queued

    stuck = Stuck(linger_s=0)
    with pytest.raises(RuntimeError, match="picked no item"):
        stuck.add("a:0")
    assert stuck.queued == 1  # not lost on the way


async def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Recorder(max_batch=0)
    with pytest.raises(ValueError, match="linger_s"):
        Recorder(linger_s=-1)
