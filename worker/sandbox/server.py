"""Run the sandbox in-process: ``async with await start_sandbox(config) as sandbox: ...``."""

from __future__ import annotations

import ipaddress

import structlog
from aiohttp import web

from worker.sandbox.app import build_app
from worker.sandbox.config import SandboxConfig
from worker.sandbox.state import SandboxState

log = structlog.get_logger("worker.sandbox")


def url_for(host: str, port: int) -> str:
    """The URL a client on this machine should use (wildcard hosts become loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a host name
    return f"http://{host}:{port}"


class RunningSandbox:
    """A listening sandbox. ``state`` holds its config, sends and counters."""

    def __init__(self, runner: web.AppRunner, state: SandboxState, host: str, port: int) -> None:
        self._runner: web.AppRunner | None = runner
        self.state = state
        self.host = host
        self.port = port
        self.url = url_for(host, port)

    async def close(self) -> None:
        """Stop listening and close open connections; safe to call more than once."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("sandbox_stopped", url=self.url)

    async def __aenter__(self) -> RunningSandbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def start_sandbox(
    config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSandbox:
    """Start serving on ``host:port`` (port 0: a free port) and return once listening."""
    state = SandboxState(config or SandboxConfig())
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
    except BaseException:
        await runner.cleanup()
        raise
    sandbox = RunningSandbox(runner, state, host, bound_port)
    log.info("sandbox_started", url=sandbox.url)
    return sandbox
