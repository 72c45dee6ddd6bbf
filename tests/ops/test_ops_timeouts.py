"""``status`` and ``campaign`` against an endpoint that accepts and never answers end within
``--timeout`` and say what they waited for; ``campaign --watch`` gives up on an unknown
campaign after ``--wait-s``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ops_support import cli, run_cli
from support import Env


@asynccontextmanager
async def silent_endpoint() -> AsyncIterator[str]:
    """A real TCP server that accepts connections, reads, and never replies."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_status_and_campaign_give_up_within_the_timeout(servers: dict[str, str]) -> None:
    async with silent_endpoint() as url:
        env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": url}
        for command in (("status", "r-1"), ("campaign", "spring"), ("campaign", "x", "--watch")):
            started = time.monotonic()
            run = await run_cli(*command, "--table", "t", "--timeout", "2", env=env)
            took = time.monotonic() - started
            assert run.code == 1 and run.out == "", (command, run)
            assert took < 6, (command, took)
            lines = run.err.splitlines()
            waiting = f"sms-worker: waiting for DynamoDB at {url}... (up to 2s; --timeout S)"
            assert lines[0] == waiting, (command, run.err)
            assert f"no answer from DynamoDB at {url} within 2s" in lines[-1], run.err
            assert "Traceback" not in run.err


async def test_a_bad_timeout_is_a_usage_error(servers: dict[str, str]) -> None:
    run = await run_cli("status", "r-1", "--table", "t", "--timeout", "0")
    assert run.code == 2 and "out of range" in run.err


async def test_watch_gives_up_on_an_unknown_campaign(env: Env) -> None:
    started = time.monotonic()
    run = await cli(
        *("campaign", "no-such-campaign", "--table", env.table, "--watch"),
        *("--interval-s", "0.2", "--wait-s", "1"),
    )
    assert run.code == 1, run
    assert time.monotonic() - started < 15
    assert run.out.startswith("no-such-campaign: no counts yet; waiting")
    assert "no counters for campaign 'no-such-campaign'" in run.err
    assert "after 1s" in run.err and "--wait-s" in run.err
