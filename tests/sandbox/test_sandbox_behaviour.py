"""Configured behaviour through a REAL aiobotocore client: rates, faults, opt-outs, errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sandbox_support import DEST, ORIGIN, ClientFactory, SandboxFactory, send_args

from worker.sandbox import SandboxConfig


async def _outcomes(client: Any, calls: int, **overrides: Any) -> list[str]:
    """Send ``calls`` requests one after another; the error code of each ("ok" if none)."""
    codes = []
    for _ in range(calls):
        try:
            await client.send_media_message(**send_args(**overrides))
            codes.append("ok")
        except client.exceptions.ClientError as exc:
            codes.append(exc.response["Error"]["Code"])
    return codes


async def test_throttling_at_low_mps(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(default_mps=2.0)  # burst_s 1.0: 2 tokens
    client = await make_client(box.url)
    started = time.monotonic()
    codes = await _outcomes(client, 10)
    elapsed = time.monotonic() - started

    accepted = codes.count("ok")
    assert codes.count("ThrottlingException") == 10 - accepted > 0
    assert 2 <= accepted <= 2 + 2.0 * elapsed + 1e-9
    counters = box.state.counters
    assert (counters.accepted, counters.throttled, counters.calls) == (accepted, 10 - accepted, 10)
    assert len(box.state.sends) == accepted  # throttled calls are not recorded


async def test_throttling_raises_the_modeled_exception(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(default_mps=1.0, burst_s=0.001)  # at least 1 token
    client = await make_client(box.url)
    await client.send_media_message(**send_args())
    with pytest.raises(client.exceptions.ThrottlingException) as caught:
        await client.send_media_message(**send_args())
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_rates_are_per_identity_and_refill(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(mps={ORIGIN: 2.0}, burst_s=0.5)  # 1 token, refill in 500 ms
    client = await make_client(box.url)
    assert await _outcomes(client, 2) == ["ok", "ThrottlingException"]
    assert await _outcomes(client, 5, OriginationIdentity="pool-unlimited") == ["ok"] * 5
    await asyncio.sleep(0.55)
    assert (await _outcomes(client, 1)) == ["ok"]
    assert box.state.counters.accepted_by_identity == {ORIGIN: 2, "pool-unlimited": 5}


async def test_dry_runs_are_throttled_like_sends(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(default_mps=1.0)
    client = await make_client(box.url)
    assert await _outcomes(client, 2, DryRun=True) == ["ok", "ThrottlingException"]


async def test_fault_rate_one_is_internal_server_exception(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(fault_rate=1.0)
    client = await make_client(box.url)
    with pytest.raises(client.exceptions.InternalServerException) as caught:
        await client.send_media_message(**send_args())
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert response["Error"]["Code"] == "InternalServerException"
    assert response["RequestId"]
    assert box.state.counters.faults == 1
    assert box.state.sends == []


async def test_seeded_faults_repeat(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    runs = []
    for _ in range(2):
        box = await make_sandbox(fault_rate=0.5, seed=7)
        runs.append(await _outcomes(await make_client(box.url), 20))
    assert runs[0] == runs[1]
    assert {"ok", "InternalServerException"} == set(runs[0])


async def test_opted_out_destination_is_conflict(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(opted_out={DEST})
    client = await make_client(box.url)
    with pytest.raises(client.exceptions.ConflictException) as caught:
        await client.send_media_message(**send_args())
    response = caught.value.response
    assert response["Error"]["Code"] == "ConflictException"
    assert response["Reason"] == "DESTINATION_PHONE_NUMBER_OPTED_OUT"
    assert (response["ResourceType"], response["ResourceId"]) == ("opt-out-list", DEST)
    assert box.state.counters.conflicts == 1
    assert await _outcomes(client, 1, DestinationPhoneNumber="+12065550101") == ["ok"]


async def test_blocked_prefix_is_validation_exception(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(blocked_prefixes={"+44"})
    client = await make_client(box.url)
    with pytest.raises(client.exceptions.ValidationException) as caught:
        await client.send_media_message(**send_args(DestinationPhoneNumber="+447700900123"))
    assert caught.value.response["Reason"] == "DESTINATION_COUNTRY_BLOCKED"
    assert box.state.counters.blocked == 1
    assert await _outcomes(client, 1) == ["ok"]


async def test_unknown_identity_is_resource_not_found(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(known_identities={ORIGIN})
    client = await make_client(box.url)
    assert await _outcomes(client, 1) == ["ok"]
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        await client.send_media_message(**send_args(OriginationIdentity="+18005550111"))
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert (response["ResourceType"], response["ResourceId"]) == ("phone-number", "+18005550111")
    assert box.state.counters.not_found == 1


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("AccessDeniedException", 403, "ACCOUNT_DISABLED"),
        # Account-wide: no spend-limit Reason (that one is per channel: spend_limit_reached).
        ("ServiceQuotaExceededException", 402, None),
    ],
)
async def test_account_error_answers_every_send(
    make_sandbox: SandboxFactory,
    make_client: ClientFactory,
    code: str,
    status: int,
    reason: str | None,
) -> None:
    box = await make_sandbox(account_error=code)
    client = await make_client(box.url)
    for identity in (ORIGIN, "pool-2"):
        with pytest.raises(getattr(client.exceptions, code)) as caught:
            await client.send_media_message(**send_args(OriginationIdentity=identity))
        response = caught.value.response
        assert response["Error"]["Code"] == code
        assert response["ResponseMetadata"]["HTTPStatusCode"] == status
        assert response.get("Reason") == reason
    assert box.state.counters.account_errors == 2

    box.state.update_config(SandboxConfig())
    assert await _outcomes(client, 1) == ["ok"]


async def test_concurrency_is_counted(
    make_sandbox: SandboxFactory, make_client: ClientFactory
) -> None:
    box = await make_sandbox(latency_ms=100)
    client = await make_client(box.url)
    await asyncio.gather(*(client.send_media_message(**send_args()) for _ in range(5)))
    assert box.state.counters.max_in_flight >= 2
    assert box.state.counters.in_flight == 0


async def test_botocore_retries_throttling_and_faults(
    make_sandbox: SandboxFactory,
) -> None:
    """botocore's standard mode sees both answers as retryable (``max_attempts`` counts
    *retries*: 1 means 2 calls; ``total_max_attempts`` counts calls)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    box = await make_sandbox(fault_rate=1.0)
    config = AioConfig(retries={"max_attempts": 1, "mode": "standard"})
    async with get_session().create_client(
        "pinpoint-sms-voice-v2",
        region_name="us-east-1",
        endpoint_url=box.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    ) as client:
        with pytest.raises(client.exceptions.InternalServerException):
            await client.send_media_message(**send_args())
        assert box.state.counters.faults == 2

        box.state.update_config(SandboxConfig(default_mps=0.01))  # 1 token, no refill
        await client.send_media_message(**send_args())
        with pytest.raises(client.exceptions.ThrottlingException):
            await client.send_media_message(**send_args())
        assert box.state.counters.throttled == 2  # the call and its one retry
