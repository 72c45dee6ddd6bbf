"""Open the SQS, DynamoDB and PinpointSMSVoiceV2 clients once, in one place.

Endpoints, region and credentials come from the standard AWS configuration chain
(``AWS_REGION``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_SQS``, ...), which
botocore reads itself. Each client gets a connection pool at least as large as the in-flight
bound, and the send client has botocore's retries turned off: tenacity owns send retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import NoRegionError

from worker.settings import Settings

SMS_SERVICE = "pinpoint-sms-voice-v2"


class ConfigurationError(RuntimeError):
    """The AWS configuration chain cannot produce a usable client."""


@dataclass(frozen=True, slots=True)
class AwsClients:
    sqs: Any
    dynamodb: Any
    sms: Any
    session: Any  # the aiobotocore session: credentials and configuration


@asynccontextmanager
async def aws_client(
    service: str, *, region: str | None = None, session: Any = None, **config: Any
) -> AsyncIterator[Any]:
    """One aiobotocore client from the standard AWS chain, ``config`` its ``AioConfig``: the
    one way the project opens a client (the worker, the operator tools, the producer)."""
    kwargs: dict[str, Any] = {"region_name": region} if region else {}
    if config:
        kwargs["config"] = AioConfig(**config)
    try:
        async with (session or get_session()).create_client(service, **kwargs) as client:
            yield client
    except NoRegionError:
        raise ConfigurationError(
            "no AWS region is configured: set AWS_REGION (or a region in your AWS profile)"
        ) from None


async def open_clients(stack: AsyncExitStack, settings: Settings) -> AwsClients:
    """Create the clients; ``stack`` closes them (idempotently) when it unwinds."""
    session = get_session()
    # botocore reads AWS_DEFAULT_REGION and the profile but not AWS_REGION (which other SDKs,
    # ECS and Lambda use); the settings take it, so both work.
    pool = settings.connection_pool_size
    common: dict[str, Any] = {
        "connect_timeout": settings.connect_timeout_s,
        "max_pool_connections": pool,
    }
    sqs_config = dict(
        read_timeout=settings.wait_time_s + 10,
        retries={"mode": "standard", "total_max_attempts": 3},
        **common,
    )
    # The request model and the store build every parameter; botocore checking them again on
    # every call is pure CPU on the hot path (about 7% of it).
    ddb_config = dict(
        read_timeout=10,
        retries={"mode": "standard", "total_max_attempts": 3},
        parameter_validation=False,
        **common,
    )
    # ``total_max_attempts`` is the number of calls. botocore's ``max_attempts`` counts
    # *retries* (1 means two calls), so ``{"max_attempts": 1}`` would double every send.
    sms_config = dict(
        read_timeout=settings.send_timeout_s,
        retries={"mode": "standard", "total_max_attempts": 1},
        parameter_validation=False,
        **common,
    )
    opened = [
        await stack.enter_async_context(
            aws_client(service, region=settings.region, session=session, **config)
        )
        for service, config in (
            ("sqs", sqs_config),
            ("dynamodb", ddb_config),
            (SMS_SERVICE, sms_config),
        )
    ]
    sqs, ddb, sms = opened
    return AwsClients(sqs=sqs, dynamodb=ddb, sms=sms, session=session)
