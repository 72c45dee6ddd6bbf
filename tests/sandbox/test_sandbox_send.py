"""Accepted sends through a REAL aiobotocore client: answers, records, dry runs, latency."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sandbox_support import DEST, ORIGIN, ClientFactory, SandboxFactory, send_args

from worker.sandbox import RunningSandbox


async def test_accepted_send_returns_message_id_and_is_recorded(
    box: RunningSandbox, client: Any
) -> None:
    request = send_args(Context={"order": "42"}, TimeToLive=300, MaxPrice="0.05")
    response = await client.send_media_message(**request)

    message_id = response["MessageId"]
    assert uuid.UUID(message_id)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ResponseMetadata"]["RequestId"]
    [record] = box.state.sends
    assert record.message_id == message_id
    assert record.identity == ORIGIN
    assert record.destination == DEST
    assert record.dry_run is False
    assert record.params == request
    assert abs(record.received_at - time.time()) < 60
    counters = box.state.counters
    assert (counters.calls, counters.accepted, counters.dry_runs) == (1, 1, 0)
    assert counters.accepted_by_identity == {ORIGIN: 1}


async def test_body_only_and_media_only_sends_are_accepted(
    box: RunningSandbox, client: Any
) -> None:
    await client.send_media_message(**send_args(MediaUrls=None))
    await client.send_media_message(**send_args(MessageBody=None))
    assert box.state.counters.accepted == 2


async def test_dry_run_is_recorded_with_dry_run_true(box: RunningSandbox, client: Any) -> None:
    response = await client.send_media_message(**send_args(DryRun=True))

    [record] = box.state.sends
    assert record.message_id == response["MessageId"]
    assert record.dry_run is True
    assert box.state.counters.dry_runs == 1
    assert box.state.counters.accepted == 1


async def test_record_path_appends_json_lines(
    make_sandbox: SandboxFactory, make_client: ClientFactory, tmp_path: Path
) -> None:
    path = tmp_path / "sends.jsonl"
    box = await make_sandbox(record_path=str(path))
    client = await make_client(box.url)
    ids = [(await client.send_media_message(**send_args()))["MessageId"] for _ in range(3)]

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["message_id"] for line in lines] == ids
    assert set(lines[0]) == {
        "message_id",
        "received_at",
        "identity",
        "destination",
        "dry_run",
        "params",
        "channel",
        "parts",
        "operation",
        "cut",
    }
    assert lines[0]["operation"] == "SendMediaMessage" and lines[0]["cut"] is False
    assert lines[0]["params"]["DestinationPhoneNumber"] == DEST


async def test_endpoint_from_environment_variable(
    box: RunningSandbox, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2", box.url)
    client = await make_client(None)
    await client.send_media_message(**send_args())
    assert box.state.counters.accepted == 1


async def test_latency_delays_answers_and_errors(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(latency_ms=150, latency_jitter_ms=20, seed=1)
    client = await make_client(box.url)
    started = time.monotonic()
    await client.send_media_message(**send_args())
    assert time.monotonic() - started >= 0.125

    started = time.monotonic()
    with pytest.raises(client.exceptions.ValidationException):
        await client.send_media_message(**send_args(MessageBody=None, MediaUrls=None))
    assert time.monotonic() - started >= 0.125
