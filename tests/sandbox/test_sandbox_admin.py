"""The admin API under /_sandbox/: health, config, sends, stats and reset."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sandbox_support import DEST, ORIGIN, send_args

from worker.sandbox import RunningSandbox


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def _post(http: aiohttp.ClientSession, url: str, body: Any = None) -> tuple[int, Any]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


async def test_health(box: RunningSandbox, http: aiohttp.ClientSession) -> None:
    assert await _get(http, f"{box.url}/_sandbox/health") == (200, {"ok": True})


async def test_config_get_and_partial_post(
    box: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    status, config = await _get(http, f"{box.url}/_sandbox/config")
    assert status == 200
    assert config["default_mps"] is None
    assert config["burst_s"] == 1.0
    assert config["opted_out"] == []
    assert config["known_identities"] is None

    patch = {"mps": {ORIGIN: 5}, "opted_out": [DEST], "fault_rate": 0.25, "seed": 3}
    status, config = await _post(http, f"{box.url}/_sandbox/config", patch)
    assert status == 200
    assert config["mps"] == {ORIGIN: 5.0}
    assert config["opted_out"] == [DEST]
    assert config["fault_rate"] == 0.25
    assert config["burst_s"] == 1.0  # untouched
    assert box.state.config.opted_out == frozenset({DEST})
    assert (await _get(http, f"{box.url}/_sandbox/config"))[1] == config

    status, config = await _post(http, f"{box.url}/_sandbox/config", {"known_identities": []})
    assert config["known_identities"] == []
    status, config = await _post(http, f"{box.url}/_sandbox/config", {"known_identities": None})
    assert config["known_identities"] is None


@pytest.mark.parametrize(
    "patch",
    [
        {"nope": 1},
        {"fault_rate": 2},
        {"fault_rate": "0.5"},
        {"default_mps": 0},
        {"mps": {ORIGIN: -1}},
        {"opted_out": DEST},
        {"account_error": "ThrottlingException"},
        {"seed": 1.5},
        [],
    ],
)
async def test_bad_config_is_rejected(
    box: RunningSandbox, http: aiohttp.ClientSession, patch: Any
) -> None:
    before = box.state.config
    status, body = await _post(http, f"{box.url}/_sandbox/config", patch)
    assert status == 400
    assert body["error"]
    assert box.state.config == before


async def test_config_changes_apply_to_the_next_call(
    box: RunningSandbox, client: Any, http: aiohttp.ClientSession
) -> None:
    await _post(http, f"{box.url}/_sandbox/config", {"account_error": "AccessDeniedException"})
    with pytest.raises(client.exceptions.AccessDeniedException):
        await client.send_media_message(**send_args())
    await _post(http, f"{box.url}/_sandbox/config", {"account_error": None})
    await client.send_media_message(**send_args())

    await _post(http, f"{box.url}/_sandbox/config", {"default_mps": 1, "burst_s": 1})
    await client.send_media_message(**send_args())
    with pytest.raises(client.exceptions.ThrottlingException):
        await client.send_media_message(**send_args())


async def test_sends_stats_and_reset(
    box: RunningSandbox, client: Any, http: aiohttp.ClientSession
) -> None:
    await _post(http, f"{box.url}/_sandbox/config", {"opted_out": ["+12065550199"]})
    ids = [(await client.send_media_message(**send_args()))["MessageId"] for _ in range(3)]
    with pytest.raises(client.exceptions.ConflictException):
        await client.send_media_message(**send_args(DestinationPhoneNumber="+12065550199"))
    await client.send_media_message(**send_args(DryRun=True, OriginationIdentity="pool-1"))

    status, body = await _get(http, f"{box.url}/_sandbox/sends")
    assert status == 200
    assert [s["message_id"] for s in body["sends"][:3]] == ids
    assert body["next"] == 4
    first = body["sends"][0]
    assert set(first) == {
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
    assert (first["identity"], first["destination"], first["dry_run"]) == (ORIGIN, DEST, False)
    assert first["params"] == send_args()
    assert body["sends"][3]["dry_run"] is True

    _, page = await _get(http, f"{box.url}/_sandbox/sends?since=2&limit=1")
    assert [s["message_id"] for s in page["sends"]] == [ids[2]]
    assert page["next"] == 3
    _, page = await _get(http, f"{box.url}/_sandbox/sends?since=4")
    assert page == {"sends": [], "next": 4}
    status, _ = await _get(http, f"{box.url}/_sandbox/sends?since=x")
    assert status == 400

    status, stats = await _get(http, f"{box.url}/_sandbox/stats")
    assert status == 200
    assert stats["calls"] == 5
    assert stats["accepted"] == 4
    assert stats["dry_runs"] == 1
    assert stats["conflicts"] == 1
    assert stats["throttled"] == stats["faults"] == stats["validation_errors"] == 0
    assert stats["accepted_by_identity"] == {ORIGIN: 3, "pool-1": 1}

    assert await _post(http, f"{box.url}/_sandbox/reset") == (200, {"ok": True})
    _, stats = await _get(http, f"{box.url}/_sandbox/stats")
    assert stats["calls"] == stats["accepted"] == 0
    assert stats["accepted_by_identity"] == {}
    assert (await _get(http, f"{box.url}/_sandbox/sends"))[1] == {"sends": [], "next": 0}
    _, config = await _get(http, f"{box.url}/_sandbox/config")
    assert config["opted_out"] == ["+12065550199"]  # reset keeps the config


async def test_unknown_admin_path_is_404(box: RunningSandbox, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{box.url}/_sandbox/nope") as response:
        assert response.status == 404


async def test_every_field_can_be_patched_at_once(
    box: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    patch: dict[str, Any] = {
        "default_mps": None, "mps": {}, "burst_s": 2, "latency_ms": 0, "latency_jitter_ms": 0,
        "fault_rate": 0, "opted_out": [], "blocked_prefixes": ["+44"], "known_identities": None,
        "account_error": None, "record_path": None, "seed": None, "spend_limit_reached": [],
        "events_queue_url": "http://127.0.0.1:1/123456789012/events", "events_envelope": "sns",
        "events_outcomes": {"delivered": 3, "spam": 1}, "events_delay_ms": 50,
        "events_jitter_ms": 10, "events_duplicate_rate": 0.1, "events_reorder": True,
        "cut_after_accept_rate": 0.05,
    }  # fmt: skip
    status, config = await _post(http, f"{box.url}/_sandbox/config", patch)
    assert status == 200
    assert set(config) == set(patch)
    assert config["blocked_prefixes"] == ["+44"]
    assert config["events_outcomes"] == {"delivered": 3.0, "spam": 1.0}
    assert config["events_reorder"] is True and config["events_envelope"] == "sns"
    assert box.state.config.cut_after_accept_rate == 0.05
