"""A worker paced well below what it could send (a small share of a quota) still receives and
deletes about ten messages per SQS call: while it has work in hand a poller waits for a batch
of free slots (``receive_linger_ms``), and deletes wait (``ack_flush_ms``) for ten.

Counts, not timings: the calls the worker made, from its own counters (each an answered
ReceiveMessage or DeleteMessageBatch against moto)."""

from __future__ import annotations

from support import Aws, Env, Sandbox, enqueue, make_settings, request, running_worker, wait_for


async def test_a_paced_worker_receives_and_deletes_in_batches(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    n = 60
    # 10 MPS and 20 held: the slots free one at a time, a tenth of a second apart; the old
    # 250-ms linger made that 2-3 messages per receive and per delete batch.
    settings = make_settings(
        env,
        rate_limits="default=10",
        max_in_flight=20,
        pollers=1,
        receive_linger_ms=5_000,
        ack_flush_ms=3_000,
    )
    assert settings.receive_batch_target == 10
    await enqueue(aws.sqs, env.queue_url, [request(i) for i in range(n)])
    async with running_worker(settings) as worker:
        await wait_for(lambda: sandbox.sent_at_least(n), timeout_s=60)
    m = worker.metrics
    assert m.received == m.deleted == n
    # Every receive but the empty long polls at the end (one a second) carries ten.
    assert m.received / m.receive_calls >= 5, (m.received, m.receive_calls)
    assert m.deleted / m.ack_calls >= 5, (m.deleted, m.ack_calls)


async def test_a_rate_bound_worker_holds_what_it_sends_in_hold_ahead_s(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    """At 5 MPS with 64 slots, a worker that took every message it could would hold all 60
    and wait 12 s for the last token; with ``hold_ahead_s`` 2 its pollers wait while the
    next token is more than 2 s away, so it holds about 10 plus the batch or two in flight,
    and the rest stay in the queue (for a worker with quota to spare)."""
    n = 60
    settings = make_settings(env, rate_limits="default=5", max_in_flight=64, hold_ahead_s=2.0)
    await enqueue(aws.sqs, env.queue_url, [request(i) for i in range(n)])
    held: list[int] = []
    async with running_worker(settings) as worker:

        async def sent_all() -> bool:
            held.append(worker.metrics.in_flight)
            return await sandbox.sent_at_least(n)

        await wait_for(sent_all, timeout_s=60, interval_s=0.05)
    m = worker.metrics
    assert m.received == m.deleted == n
    assert m.receive_waits > 0
    assert max(held) <= 5 * 2.0 + 2 * 10 + 2, max(held)


async def test_a_slow_identity_does_not_keep_a_mixed_queue_waiting(
    aws: Aws, env: Env, sandbox: Sandbox
) -> None:
    """The gate knows only the identities sent to lately: behind 20 messages for one paced at
    1 MPS, it would let one in a second and find the 10 for a fast identity after the slow
    ones (20 s). It lets a batch in every ``hold_ahead_s`` whatever the pace, so the fast
    ones are found and sent while most of the slow ones still wait (those beyond
    ``max_token_wait_s`` handed back, deferred). Order, not time: what had been sent for the
    slow identity when the last fast one was."""
    slow, fast = "+18005550100", "+18005550199"
    settings = make_settings(
        env, rate_limits=f"{slow}=1,default=50", max_in_flight=40, hold_ahead_s=2.0
    )
    await enqueue(aws.sqs, env.queue_url, [request(i) for i in range(20)])
    await enqueue(
        aws.sqs, env.queue_url, [request(100 + i, OriginationIdentity=fast) for i in range(10)]
    )
    async with running_worker(settings):

        async def fast_ones_sent() -> bool:
            sends = await sandbox.sends()
            return sum(s["identity"] == fast for s in sends) >= 10

        await wait_for(fast_ones_sent, timeout_s=60, interval_s=0.1)
        slow_sent = sum(s["identity"] == slow for s in await sandbox.sends())
    assert slow_sent <= 12, slow_sent  # (19 when the gate let in one a second)
