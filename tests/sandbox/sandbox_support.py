"""Helpers shared by the sandbox tests (a unique name, so it never clashes on sys.path)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiobotocore.config import AioConfig

from worker.sandbox import RunningSandbox

ORIGIN = "+18005550100"
DEST = "+12065550100"
SEND_TARGET = "PinpointSMSVoiceV2.SendMediaMessage"
AMZ_JSON = "application/x-amz-json-1.0"

SandboxFactory = Callable[..., Awaitable[RunningSandbox]]
ClientFactory = Callable[..., Awaitable[Any]]


def client_config(*, validate: bool = True) -> AioConfig:
    return AioConfig(
        retries={"total_max_attempts": 1, "mode": "standard"}, parameter_validation=validate
    )


def send_args(**overrides: Any) -> dict[str, Any]:
    """A valid SendMediaMessage request, with ``overrides`` applied (None removes a key)."""
    args: dict[str, Any] = {
        "DestinationPhoneNumber": DEST,
        "OriginationIdentity": ORIGIN,
        "MessageBody": "Your order shipped",
        "MediaUrls": ["s3://media-bucket/pics/cat.jpg"],
    }
    args.update(overrides)
    return {k: v for k, v in args.items() if v is not None}


def amz_headers(target: str = SEND_TARGET) -> dict[str, str]:
    """Headers of a hand-made AWS JSON 1.0 call (for bodies botocore will not serialize)."""
    return {"X-Amz-Target": target, "Content-Type": AMZ_JSON}


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()
