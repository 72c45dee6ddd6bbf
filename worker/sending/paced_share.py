"""One rate-limit key as this worker paces it under the ``dynamodb`` limiter: its grant,
its bucket (GCRA at the grant, on the monotonic clock), its view of the key's item and
lease, and the demand its next renewal reports. What a send would wait, and how much the
receive gate may let in, are read here; :mod:`worker.sending.shared` renews it."""

from __future__ import annotations

import asyncio
import time

from worker.sending import sharing as sh
from worker.sending.limiter import Room
from worker.sending.ratelimit import IdentityBucket

#: The least a send waiting for a renewal counts on (the renewal's round trip to the table).
RENEWAL_MIN_WAIT_S = 0.2
#: The smallest grant paced by the bucket (the leases' resolution); below it, sends wait for
#: a renewal.
MIN_GRANT_MPS = 1 / sh.MILLI


class PacedShare:
    """One key as this worker paces it: its grant, its bucket, its view of the item."""

    def __init__(self, quota_mps: float, burst_s: float, now: float) -> None:
        self.quota_mps = quota_mps
        self.bucket = IdentityBucket(quota_mps, burst_s)
        self.grant_mps = 0.0
        self.view: sh.ShareItem | None = None
        self.lease: sh.Lease | None = None  # as last written
        self.wanted_mps = quota_mps  # what the last lease asked for
        self.decrease: tuple[int, int, sh.ShareItem] | None = None  # a throttle's, to write
        self.live_workers = 1
        self.next_renew = now  # monotonic
        self.renewing = False
        self.fallback_since: float | None = None  # monotonic; None: not on the fallback
        self.used_tokens = 0  # handed out since the last renewal
        self.waited = False  # a send waited for its token since the last renewal
        self.waiters = 0  # sends waiting for their token now
        self.last_renew = now  # the last renewal written
        self.last_attempt = now  # the last renewal begun (written, refused or failed)
        self.last_used = now
        self.changed = asyncio.Event()

    # KeyRate, for metrics and the progress line
    @property
    def rate_mps(self) -> float:
        return self.grant_mps and self.bucket.rate_mps

    @property
    def ceiling_mps(self) -> float:
        return self.quota_mps

    def next_wait_s(self, tokens: int = 1) -> float:
        renewal_at = self.next_renew
        if self.grant_mps < MIN_GRANT_MPS and self.idle:
            renewal_at = self.last_attempt + sh.RENEW_MIN_S  # what a waiting send asks for
        renewal_s = max(RENEWAL_MIN_WAIT_S, renewal_at - time.monotonic())
        if self.grant_mps < MIN_GRANT_MPS:  # no grant yet: until the renewal that brings one
            return renewal_s
        waited_s = self.bucket.next_wait_s(tokens)
        if self.short:
            # Less than its fair share, the others hold the rest until their renewals: a
            # grant of a few milli-MPS would put the next token hours away, and the
            # message handed back for that long. The grant grows at its next renewal.
            return min(waited_s, renewal_s)
        return waited_s

    def room(self, within_s: float) -> Room:
        """How many more of this worker's sends for the key could get their tokens within
        ``within_s``: at the grant; below the fair share (a short lease, whose grant grows to
        it at the renewal), what is booked at the fair share; with no grant yet (its first
        renewal pending), at the share it may expect, less the sends already waiting."""
        if self.grant_mps >= MIN_GRANT_MPS:
            booked_s = self.bucket.next_wait_s()
            if self.lease is None or not self.short:
                return Room.of(booked_s, self.bucket.rate_mps, within_s)
            fair_mps = self.lease.fair_mmps / sh.MILLI
            return Room.of(booked_s * self.bucket.rate_mps / fair_mps, fair_mps, within_s)
        expected_mps = self.quota_mps / max(1, self.live_workers)
        if self.lease is not None and self.lease.fair_mmps > 0:
            expected_mps = self.lease.fair_mmps / sh.MILLI
        return Room.of(self.next_wait_s(), expected_mps, within_s, waiting=self.waiters)

    @property
    def short(self) -> bool:
        return self.lease is not None and self.lease.short

    @property
    def idle(self) -> bool:
        """Granted nothing because the last renewal asked for nothing."""
        lease = self.lease
        return lease is not None and lease.want_mmps == 0 and not lease.short

    def ask_again(self) -> None:
        """A send waits, and the grant is nothing because the last renewal asked for nothing
        (the worker was idle): renew as soon as the renewals' floor allows, not a period
        later (up to 10 s: a message sent to an idle worker would wait that long). A grant
        that is nothing for want of free quota (a short lease) renews just after the
        others' renewals already."""
        if self.idle:  # (at most one attempt a second, refused or not)
            self.next_renew = min(self.next_renew, self.last_attempt + sh.RENEW_MIN_S)

    def set_grant(self, grant_mps: float) -> None:
        if grant_mps == self.grant_mps:
            return
        self.grant_mps = grant_mps
        if grant_mps >= MIN_GRANT_MPS:
            self.bucket.set_ceiling(grant_mps)
        self.changed.set()  # wake the waiters: their slots are void
        self.changed = asyncio.Event()
