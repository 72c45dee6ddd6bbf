"""Fixtures for the sandbox tests: in-process sandboxes and REAL aiobotocore clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiobotocore.session import get_session
from sandbox_support import ClientFactory, SandboxFactory, client_config

from worker.sandbox import RunningSandbox, SandboxConfig, start_sandbox


@pytest.fixture
async def make_sandbox() -> AsyncIterator[SandboxFactory]:
    """``await make_sandbox(**SandboxConfig fields)`` starts one on a free port."""
    async with AsyncExitStack() as stack:

        async def make(**fields: Any) -> RunningSandbox:
            sandbox = await start_sandbox(SandboxConfig(**fields))
            stack.push_async_callback(sandbox.close)
            return sandbox

        yield make


@pytest.fixture
async def box(make_sandbox: SandboxFactory) -> RunningSandbox:
    return await make_sandbox()


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """``await make_client(url, validate=False)``: a real pinpoint-sms-voice-v2 client."""
    session = get_session()
    async with AsyncExitStack() as stack:

        async def make(url: str | None, *, validate: bool = True) -> Any:
            kwargs: dict[str, Any] = {} if url is None else {"endpoint_url": url}
            creator = session.create_client(
                "pinpoint-sms-voice-v2",
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=client_config(validate=validate),
                **kwargs,
            )
            return await stack.enter_async_context(creator)

        yield make


@pytest.fixture
async def client(box: RunningSandbox, make_client: ClientFactory) -> Any:
    return await make_client(box.url)


@pytest.fixture
async def raw_client(box: RunningSandbox, make_client: ClientFactory) -> Any:
    """A client with botocore's client-side parameter validation off, to send bad data."""
    return await make_client(box.url, validate=False)
