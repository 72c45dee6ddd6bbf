"""The ``dynamodb`` limiter backend: the workers on one table divide each key's quota.

The rules are pure functions in :mod:`worker.sending.sharing` (leases that expire, grants
that grow only into free quota, max-min fair by demand, a shared AIMD); this module is their
executor. Per rate-limit key it keeps this worker's grant, paces the key's sends locally at
that grant (a :class:`~worker.sending.paced_share.PacedShare`, GCRA on the monotonic
clock: no DynamoDB call per message) and renews the lease in the key's item
(``RequestId = "rateshare#<key>"``) every few seconds with one conditional ``UpdateItem``.

If a renewal fails or takes longer than ``sharing.RENEW_TIMEOUT_S``, the key falls back to a
conservative local share, the quota divided by the workers last seen live (never above the
quota), until a renewal succeeds again: a ``rate_sharing_fallback`` warning, the
``sms_worker_rate_sharing_fallback`` gauge and a ``/readyz`` reason say so. On close the
worker gives its grants back at once (a SIGTERM'd worker's share is free immediately; a
SIGKILL'd one's when its lease expires).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace

from worker.aws.errors import describe
from worker.health import DYNAMODB, DependencyHealth
from worker.lifecycle import BackgroundService
from worker.logs import get_logger
from worker.masking import mask_identity
from worker.sending import sharing as sh
from worker.sending.limiter import (
    ROOM_RECENT_S,
    KeyShare,
    LimiterContext,
    Room,
    SharingView,
)
from worker.sending.paced_share import MIN_GRANT_MPS, PacedShare
from worker.sending.share_table import ShareTable
from worker.settings import Settings
from worker.status.model import KeyFamily

log = get_logger(__name__)

#: A key unused for this long gives its lease back and is forgotten.
IDLE_S = 60.0
#: The longest the upkeep sleeps: it wakes when the soonest renewal or idle key is due, or
#: when a send, a throttle or a finished renewal pokes it, and at least this often.
UPKEEP_MAX_S = 5.0
#: A renewal that moves the grant by this part of the quota logs ``rate_share_changed``.
LOG_CHANGE_FRACTION = 0.05


def worker_id() -> str:
    """Unique per process: the host, the pid and a random part (a restarted pid is another)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class SharedLimiter(BackgroundService):
    """The ``dynamodb`` backend of :class:`worker.sending.limiter.Limiter`."""

    def __init__(
        self,
        settings: Settings,
        table: ShareTable,
        health: DependencyHealth | None = None,
        *,
        worker: str | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__("rate_sharing")
        self._s = settings
        self._table = table
        self._health = health
        self._wall = wall
        self.worker = worker or worker_id()
        self._shares: dict[str, PacedShare] = {}
        self._upkeep = self.every(UPKEEP_MAX_S, self._tick, name="rate_sharing", returns_due_s=True)

    @classmethod
    def from_context(cls, ctx: LimiterContext) -> SharedLimiter:
        if ctx.clients is None:
            raise ValueError("the dynamodb rate limiter needs the AWS clients open")
        # the renewals on the fast path when it is open (each worker's, every period)
        ddb = ctx.fast_path.dynamodb if ctx.fast_path is not None else ctx.clients.dynamodb
        limiter = cls(ctx.settings, ShareTable(ddb, ctx.settings.table), ctx.health)
        limiter.start()
        ctx.stack.push_async_callback(limiter.close)
        log.info("rate_sharing_started", backend="dynamodb", worker=limiter.worker)
        return limiter

    def _now_ms(self) -> int:
        return int(self._wall() * 1000)

    def _share(self, key: str) -> PacedShare:
        share = self._shares.get(key)
        now = time.monotonic()
        if share is None:
            # renewed by the next tick, in the loop's task (not in the caller's log context)
            share = PacedShare(self._s.rate_for(key), self._s.rate_burst_s, now)
            self._shares[key] = share
            self._upkeep.poke()
        share.last_used = now
        return share

    # -- the Limiter interface --------------------------------------------------------------
    def next_wait_s(self, key: str, tokens: int = 1) -> float:
        return self._share(key).next_wait_s(tokens)

    async def reserve(self, key: str, tokens: int = 1) -> float:
        share = self._share(key)
        started = time.monotonic()
        # The demand a renewal reports: the tokens handed out since the last one, and
        # whether sends waited for them, or wait now. (Counting the calls as they come in
        # would miss a worker whose sends all came in before the renewal and still wait:
        # it asked for nothing and lost its share.)
        share.waiters += 1
        try:
            while True:
                changed = share.changed
                if share.grant_mps < MIN_GRANT_MPS:
                    share.waited = True  # no grant yet (or none free): the renewals bring one
                    share.ask_again()
                    self._upkeep.poke()
                    await _wait(changed, sh.RENEW_MIN_S)
                    continue
                slot = share.bucket.book(tokens)
                if slot.wait_s <= 0:
                    break
                share.waited = True
                woken = await _wait(changed, slot.wait_s)
                if not woken and share.bucket.released(slot):
                    break
        finally:
            share.waiters -= 1
        share.used_tokens += tokens
        return time.monotonic() - started

    def on_throttle(self, key: str) -> None:
        share = self._share(key)
        share.bucket.on_throttle()  # this worker at once; the others through the item
        view = share.view
        if view is None:
            return
        now_ms = self._now_ms()
        lowered = sh.decreased_rate(view, share.quota_mps, now_ms)
        if lowered is None:
            return
        share.view = replace(view, rate_mmps=lowered, rate_at_ms=now_ms)
        share.decrease = (lowered, now_ms, view)  # written by the next tick
        share.next_renew = time.monotonic()  # the grant follows the lower rate now
        self._upkeep.poke()

    def rate_mps(self, key: str) -> float:
        return self._share(key).rate_mps

    def room(self, within_s: float, recent_s: float = ROOM_RECENT_S) -> Room | None:
        since = time.monotonic() - recent_s
        # a key whose sends still wait for their tokens is in use, however long ago they came
        shares = self._shares.values()
        rooms = [s.room(within_s) for s in shares if s.last_used >= since or s.waiters]
        return max(rooms, default=None)

    def most_recent(self, limit: int) -> list[tuple[str, PacedShare]]:
        ranked = sorted(self._shares.items(), key=lambda kv: kv[1].last_used, reverse=True)
        return ranked[: max(0, limit)]

    def sharing(self) -> SharingView:
        now_ms, now = self._now_ms(), time.monotonic()
        keys = tuple(
            KeyShare(
                key=key,
                quota_mps=share.quota_mps,
                share_mps=share.rate_mps,
                shared_rate_mps=sh.shared_rate_mps(share.view, share.quota_mps, now_ms)
                if share.view is not None
                else share.quota_mps,
                live_workers=share.live_workers,
                fallback_s=max(1e-3, now - share.fallback_since)
                if share.fallback_since is not None
                else 0.0,
            )
            for key, share in self._shares.items()
        )
        return SharingView("dynamodb", self._table.writes, self._table.refused, keys)

    # -- the background part ----------------------------------------------------------------
    def _tick(self) -> float:
        """Start what is due (decreases to write, renewals, idle keys to give back); the
        seconds until the next thing is due."""
        now = time.monotonic()
        due_s = UPKEEP_MAX_S
        for key, share in list(self._shares.items()):
            if share.decrease is not None:
                lowered, at_ms, seen = share.decrease
                share.decrease = None
                self.spawn(self._decrease(key, lowered, at_ms, seen), name="rate_share_decrease")
            if share.renewing:
                continue  # it pokes the upkeep when it ends
            if now - share.last_used > IDLE_S and not share.waiters:
                del self._shares[key]
                if share.lease is not None:
                    self.spawn(self._release(key, share.lease), name="rate_share_release")
                continue
            if now >= share.next_renew:
                self._spawn_renewal(key, share)
                continue
            due_s = min(due_s, share.next_renew - now)
            if not share.waiters:
                due_s = min(due_s, share.last_used + IDLE_S - now)
        return due_s

    def _spawn_renewal(self, key: str, share: PacedShare) -> None:
        share.renewing = True
        self.spawn(self._renew(key, share), name="rate_share_renew")

    async def _renew(self, key: str, share: PacedShare) -> None:
        try:
            async with asyncio.timeout(sh.RENEW_TIMEOUT_S):
                await self._renew_once(key, share)
        except Exception as exc:  # timeouts included: the fallback, said once
            self._fall_back(key, share, exc)
        finally:
            share.renewing = False
            self._upkeep.poke()  # the next renewal's time is set

    async def _renew_once(self, key: str, share: PacedShare) -> None:
        now = time.monotonic()
        share.last_attempt = now
        elapsed_s = max(1e-3, now - share.last_renew)
        waited = share.waited or share.waiters > 0
        want = sh.want_mps(share.used_tokens / elapsed_s, waited, share.quota_mps, share.grant_mps)
        if share.view is None:
            share.view = await self._table.ensure(key)
            want = share.quota_mps  # first use: demand unknown, ask for an equal part
        renew_max_s = self._s.rate_sharing_renew_max_s

        jitter = random.uniform(sh.JITTER_MIN, 1.0)

        def plan(view: sh.ShareItem) -> sh.Plan:
            return sh.plan(
                view,
                self.worker,
                want,
                share.quota_mps,
                self._now_ms(),
                renew_max_s=renew_max_s,
                jitter=jitter,
            )

        p = plan(share.view)
        for _attempt in range(3):
            if p.grant_mps < share.grant_mps:
                share.set_grant(p.grant_mps)  # a decrease applies before its write
            try:
                share.view = await self._table.write(key, p)
            except sh.Refused:
                share.view = await self._table.read(key)
                p = plan(share.view)
                continue
            self._renewed(key, share, p, want, now)
            capacity_mps = sh.shared_rate_mps(share.view, share.quota_mps, self._now_ms())
            follow = sh.correction(p, plan(share.view), capacity_mps)
            if follow is None:
                return
            p = follow  # others joined since the view: shrink now, not a period later
        share.next_renew = now + sh.RENEW_MIN_S  # refused: others are busy writing

    def _renewed(self, key: str, share: PacedShare, p: sh.Plan, want: float, now: float) -> None:
        before_mps = share.lease.grant_mmps / sh.MILLI if share.lease is not None else 0.0
        if abs(p.grant_mps - before_mps) >= LOG_CHANGE_FRACTION * share.quota_mps:
            log.info(
                "rate_share_changed",
                key=_masked(key),
                share_mps=round(p.grant_mps, 3),
                was_mps=round(before_mps, 3),
                fair_mps=p.fair_mmps / sh.MILLI,
                wanted_mps=round(want, 3),
                live_workers=p.live_workers,
                short=p.lease.short,
            )
        share.lease = p.lease
        share.wanted_mps = want
        share.live_workers = p.live_workers
        share.set_grant(p.grant_mps)
        share.used_tokens, share.waited, share.last_renew = 0, False, now
        share.next_renew = now + p.next_renew_s
        if share.fallback_since is not None:
            share.fallback_since = None
            log.info("rate_sharing_recovered", key=_masked(key), share_mps=p.grant_mps)
        if self._health is not None:
            self._health.ok(DYNAMODB)

    def _fall_back(self, key: str, share: PacedShare, exc: BaseException) -> None:
        code = describe(exc)
        if self._health is not None:
            self._health.count(DYNAMODB, "rate_share", code)
        share.next_renew = time.monotonic() + sh.RENEW_MIN_S
        local = sh.fallback_mps(share.quota_mps, share.live_workers)
        share.set_grant(local)
        if share.fallback_since is None:
            share.fallback_since = time.monotonic()
            log.warning(
                "rate_sharing_fallback",
                key=_masked(key),
                error=code,
                share_mps=round(local, 3),
                live_workers=share.live_workers,
                effect="this worker paces the key at the quota divided by the workers last "
                "seen until the table answers; check DynamoDB and that the worker may "
                f"UpdateItem/GetItem items with RequestId {KeyFamily.RATE_SHARE.value}*",
            )

    async def _decrease(self, key: str, lowered: int, now_ms: int, seen: sh.ShareItem) -> None:
        try:
            await self._table.decrease(key, lowered, now_ms, seen)
        except sh.Refused:
            pass  # another worker's decrease came first: one per window
        except Exception as exc:
            self._fall_back(key, self._share(key), exc)
            self._upkeep.poke()

    async def _release(self, key: str, lease: sh.Lease) -> None:
        try:
            await self._table.release(key, self.worker, lease)
        except sh.Refused:
            pass  # already reclaimed by another worker
        except Exception as exc:  # it expires by itself
            log.info("rate_share_release_failed", key=_masked(key), error=describe(exc))

    async def _drain(self) -> None:
        """On close: give every grant back at once (a SIGTERM'd worker's share is free now)."""
        leases = [(key, s.lease) for key, s in self._shares.items() if s.lease is not None]
        self._shares.clear()
        await super()._drain()
        if leases:
            with suppress(TimeoutError):  # what is not released expires by itself
                async with asyncio.timeout(sh.RENEW_TIMEOUT_S):
                    await asyncio.gather(*(self._release(key, x) for key, x in leases))
        log.info(
            "rate_sharing_finished",
            writes=self._table.writes,
            refused=self._table.refused,
            released=len(leases),
        )


async def _wait(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait for ``event`` at most ``timeout_s``; whether it was set."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _masked(key: str) -> str:
    return mask_identity(key)
