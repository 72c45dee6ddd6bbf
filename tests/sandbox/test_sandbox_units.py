"""Pure parts: token buckets, config parsing, masking, the state's decisions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sandbox_support import DEST, ORIGIN, SEND_TARGET, dumps, send_args

from worker.masking import mask_identity, mask_phone
from worker.sandbox import SandboxConfig, SandboxState, config_from_json, config_to_json
from worker.sandbox.bucket import RateLimiter, TokenBucket
from worker.sandbox.errors import ApiError
from worker.sandbox.server import url_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_starts_full_and_refills_at_rate() -> None:
    bucket = TokenBucket(rate=2.0, capacity=2.0, now=0.0)
    assert [bucket.try_take(0.0) for _ in range(3)] == [True, True, False]
    assert not bucket.try_take(0.4)  # 0.8 tokens
    assert bucket.try_take(0.5)  # 1.0 token
    assert bucket.tokens(100.0) == 2.0  # capped at capacity


def test_rate_limiter_capacity_is_burst_times_rate_but_at_least_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(SandboxConfig(default_mps=10.0, burst_s=0.5, mps={"slow": 0.5}), clock)
    assert sum(limiter.try_acquire("fast") for _ in range(10)) == 5
    assert [limiter.try_acquire("slow") for _ in range(2)] == [True, False]
    clock.now += 2.0
    assert limiter.try_acquire("slow")
    assert RateLimiter(SandboxConfig(), clock).try_acquire("anyone")  # unlimited


def test_config_json_round_trip_and_partial_patch() -> None:
    config = SandboxConfig(
        default_mps=5, mps={ORIGIN: 1}, opted_out={DEST}, known_identities={ORIGIN}, seed=3
    )
    as_json = config_to_json(config)
    assert json.loads(json.dumps(as_json)) == as_json
    assert config_from_json(as_json) == config
    patched = config_from_json({"latency_ms": 25, "default_mps": None}, config)
    assert patched.latency_ms == 25.0
    assert patched.default_mps is None
    assert patched.mps == {ORIGIN: 1}


def test_config_containers_are_frozen_copies() -> None:
    opted_out = {DEST}
    config = SandboxConfig(opted_out=opted_out)
    opted_out.add("+12065550111")
    assert config.opted_out == frozenset({DEST})
    assert isinstance(config.opted_out, frozenset)


@pytest.mark.parametrize(
    "fields",
    [
        {"burst_s": 0},
        {"latency_ms": -1},
        {"latency_jitter_ms": -1},
        {"fault_rate": -0.1},
        {"mps": {"": 1.0}},
        {"blocked_prefixes": {""}},
        {"account_error": "nope"},
    ],
)
def test_bad_config_raises(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 -- each field has its own message
        SandboxConfig(**fields)


def test_mask() -> None:
    assert mask_phone("+12065550100") == "+1***00"
    assert mask_phone("+1206") == "+***"
    assert mask_identity("+18005550100") == "+1***00"
    assert mask_identity("pool-abc") == "pool-abc"


def test_url_for() -> None:
    assert url_for("127.0.0.1", 1) == "http://127.0.0.1:1"
    assert url_for("0.0.0.0", 2) == "http://127.0.0.1:2"
    assert url_for("::", 3) == "http://[::1]:3"
    assert url_for("localhost", 4) == "http://localhost:4"


def test_latency_is_mean_plus_jitter_never_negative() -> None:
    state = SandboxState(SandboxConfig(latency_ms=10, latency_jitter_ms=30, seed=1))
    draws = [state.latency_s() for _ in range(500)]
    assert min(draws) == 0.0
    assert max(draws) <= 0.040
    assert SandboxState(SandboxConfig(latency_ms=5)).latency_s() == 0.005


def test_state_rate_changes_refill_but_other_changes_do_not() -> None:
    clock = FakeClock()
    state = SandboxState(SandboxConfig(default_mps=1.0), clock=clock)
    state.handle(SEND_TARGET, dumps(send_args()))
    with pytest.raises(ApiError, match="ThrottlingException"):
        state.handle(SEND_TARGET, dumps(send_args()))
    state.update_config(SandboxConfig(default_mps=1.0, latency_ms=1))
    with pytest.raises(ApiError, match="ThrottlingException"):
        state.handle(SEND_TARGET, dumps(send_args()))
    state.update_config(SandboxConfig(default_mps=2.0))
    state.handle(SEND_TARGET, dumps(send_args()))
    assert state.counters.throttled == 2
    state.reset()
    assert state.counters.calls == 0
    assert state.sends == []


def test_error_bodies_carry_code_message_and_members() -> None:
    state = SandboxState(SandboxConfig(opted_out={DEST}))
    with pytest.raises(ApiError) as caught:
        state.handle(SEND_TARGET, dumps(send_args()))
    body = caught.value.body()
    assert caught.value.status == 400
    assert body["__type"] == "ConflictException"
    assert body["message"] == body["Message"]
    assert body["Reason"] == "DESTINATION_PHONE_NUMBER_OPTED_OUT"
