"""The SMS channel through the worker: every rule of the contract accepted and refused,
asserted on the status table, the sandbox's record of sends and the queue, on both
transports of the hot path (the lean JSON client and aiobotocore)."""

from __future__ import annotations

from typing import Any

import pytest
from sms_cases import ACCEPTED, REJECTED, sms
from support import (
    Aws,
    Env,
    Sandbox,
    enqueue,
    make_settings,
    queue_depth,
    request,
    running_worker,
    table_items,
    wait_for,
)

from worker.model.rules import RESERVED_CONTEXT_KEY

FINAL = {"SENT", "FAILED", "EXPIRED"}


@pytest.fixture(autouse=True, params=["lean", "aiobotocore"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each test with the hot path on the JSON API client and on aiobotocore."""
    monkeypatch.setenv("SMS_WORKER_FAST_PATH", "true" if request.param == "lean" else "false")
    return str(request.param)


async def settled(aws: Aws, env: Env, expected: set[str]) -> dict[str, dict[str, Any]]:
    async def check() -> dict[str, dict[str, Any]] | None:
        items = await table_items(aws.ddb, env.table)
        if not expected <= items.keys() or any(items[r]["Status"] not in FINAL for r in expected):
            return None
        return None if await queue_depth(aws.sqs, env.queue_url) else items

    result: dict[str, dict[str, Any]] = await wait_for(check, timeout_s=60)
    return result


async def test_every_sms_rule_accepted_and_refused(aws: Aws, env: Env, sandbox: Sandbox) -> None:
    accepted = [sms(n, **fields) for n, (_, fields) in enumerate(ACCEPTED, start=1)]
    rejected = [sms(n, **fields) for n, (_, fields, _) in enumerate(REJECTED, start=101)]
    mms = request(900)  # an MMS beside them: no Channel key
    await enqueue(aws.sqs, env.queue_url, [*accepted, *rejected, mms])
    async with running_worker(make_settings(env)):
        items = await settled(aws, env, {b["RequestId"] for b in [*accepted, *rejected, mms]})

    sends = {s["destination"]: s for s in await sandbox.sends()}
    assert len(sends) == len(accepted) + 1  # every accepted SMS and the MMS, each once
    for body in accepted:
        item, send = items[body["RequestId"]], sends[body["DestinationPhoneNumber"]]
        assert item["Status"] == "SENT", (body, item)
        assert item["MessageId"] == send["message_id"]
        assert (item["Channel"], send["channel"]) == ("SMS", "SMS")
        assert item["ReservedParts"] == send["parts"] >= 1
        assert item["Attempts"] == 1
        assert item.get("OriginationIdentity") == body.get("OriginationIdentity")
        # Sent as given, less the envelope, plus the reserved Context key naming the request.
        sent = {k: v for k, v in body.items() if k not in ("Channel", "RequestId")}
        sent["Context"] = {**sent.get("Context", {}), RESERVED_CONTEXT_KEY: body["RequestId"]}
        assert send["params"] == sent
    parts = {name: sends[body["DestinationPhoneNumber"]]["parts"]
             for (name, _), body in zip(ACCEPTED, accepted, strict=True)}  # fmt: skip
    assert parts["body of 1600"] == 11  # 1600 septets in parts of 153
    assert parts["unicode body"] == 1 and parts["minimal, no identity"] == 1
    for body, (name, _, reason) in zip(rejected, REJECTED, strict=True):
        item = items[body["RequestId"]]
        assert (item["Status"], item["ErrorCode"], item["ErrorReason"]) == (
            "FAILED",
            "INVALID_REQUEST",
            reason,
        ), (name, item)
        assert item["Attempts"] == 0
        assert body.get("DestinationPhoneNumber") not in sends
    mms_item = items[mms["RequestId"]]
    assert (mms_item["Status"], mms_item["Channel"], mms_item["ReservedParts"]) == (
        "SENT",
        "MMS",
        1,
    )
    assert sends[mms["DestinationPhoneNumber"]]["channel"] == "MMS"
    assert (await sandbox.stats())["parts_by_channel"]["SMS"] == sum(
        items[b["RequestId"]]["ReservedParts"] for b in accepted
    )
