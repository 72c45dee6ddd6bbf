"""Replays in the status store, against moto: a FAILED/RETRIES_EXHAUSTED record is re-opened by
one conditional write (``Replays`` + 1), by one delivery only; every other final record, and
an invalid copy of an exhausted request, are refused."""

from __future__ import annotations

import asyncio

from support import Aws, Env, table_items

from worker.status.model import (
    RETRIES_EXHAUSTED,
    Claim,
    ClaimRefused,
    Outcome,
    Recorded,
    RecordFields,
    Status,
)
from worker.status.store import StatusStore

EXHAUSTED = Outcome(
    Status.FAILED, error_code=RETRIES_EXHAUSTED, error_reason="InternalServerException"
)


async def _final(store: StatusStore, request_id: str, outcome: Outcome) -> RecordFields:
    info = RecordFields(request_id, "m-1", 3, campaign_id="c-1")
    claim = await store.claim(info)
    assert isinstance(claim, Claim)
    assert await store.write_outcome(claim, info, outcome, 2) is None
    return RecordFields(request_id, "m-2", 1, campaign_id="c-1")


async def test_an_exhausted_record_is_reopened_once_by_concurrent_deliveries(
    aws: Aws, env: Env
) -> None:
    store = StatusStore(aws.ddb, env.table, lease_s=30, ttl_days=1)
    again = await _final(store, "ex-1", EXHAUSTED)
    results = await asyncio.gather(*(store.claim(again) for _ in range(8)))
    claims = [r for r in results if isinstance(r, Claim)]
    assert len(claims) == 1 and claims[0].reopened and claims[0].attempts == 3
    refused = [r for r in results if isinstance(r, ClaimRefused)]
    assert len(refused) == 7
    assert all(r.status is Status.SENDING and not r.is_duplicate for r in refused)
    item = (await table_items(aws.ddb, env.table))["ex-1"]
    assert item["Status"] == "SENDING" and item["Replays"] == 1
    assert "ErrorCode" not in item and "ErrorReason" not in item
    assert item["SqsMessageId"] == "m-2"
    # Exhausted again and replayed again: Replays counts every re-opening.
    assert await store.write_outcome(claims[0], again, EXHAUSTED, 1) is None
    second = await store.claim(again)
    assert isinstance(second, Claim) and second.reopened
    assert (await table_items(aws.ddb, env.table))["ex-1"]["Replays"] == 2


async def test_final_records_that_are_not_exhausted_stay_final(aws: Aws, env: Env) -> None:
    store = StatusStore(aws.ddb, env.table, lease_s=30, ttl_days=1)
    refused_by_api = Outcome(Status.FAILED, error_code="ValidationException", error_reason="X")
    invalid = Outcome(Status.FAILED, error_code="INVALID_REQUEST", error_reason="MessageBody")
    again = await _final(store, "perm-1", refused_by_api)
    claim = await store.claim(again)
    assert isinstance(claim, ClaimRefused) and claim.is_duplicate
    assert await store.record_without_call(RecordFields("inv-1", "m-1", 1), invalid) == Recorded()
    claim = await store.claim(RecordFields("inv-1", "m-2", 1))
    assert isinstance(claim, ClaimRefused) and claim.is_duplicate
    items = await table_items(aws.ddb, env.table)
    assert "Replays" not in items["perm-1"] and "Replays" not in items["inv-1"]
    assert items["perm-1"]["ErrorCode"] == "ValidationException"


async def test_an_invalid_copy_never_overwrites_an_exhausted_record_an_expiry_does(
    aws: Aws, env: Env
) -> None:
    store = StatusStore(aws.ddb, env.table, lease_s=30, ttl_days=1)
    again = await _final(store, "ex-2", EXHAUSTED)
    invalid = Outcome(Status.FAILED, error_code="INVALID_REQUEST", error_reason="MessageBody")
    refused = await store.record_without_call(again, invalid)
    assert isinstance(refused, ClaimRefused) and refused.is_duplicate
    item = (await table_items(aws.ddb, env.table))["ex-2"]
    assert (item["Status"], item["ErrorCode"]) == ("FAILED", RETRIES_EXHAUSTED)
    expired = Outcome(Status.EXPIRED, error_message="NotAfter passed")
    assert await store.record_without_call(again, expired) == Recorded(reopened=True)
    item = (await table_items(aws.ddb, env.table))["ex-2"]
    assert item["Status"] == "EXPIRED" and item["Replays"] == 1 and "ErrorCode" not in item
    # EXPIRED is final: nothing re-opens it.
    claim = await store.claim(again)
    assert isinstance(claim, ClaimRefused) and claim.is_duplicate
