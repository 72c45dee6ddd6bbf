"""Fresh local servers for one benchmark run, and CPU/RSS readings from /proc."""

from __future__ import annotations

import asyncio
import os
import shutil
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aiobotocore.session import get_session

from worker.devstack.stack import (
    ServerProcess,
    aws_env,
    free_port,
    moto_argv,
    sandbox_argv,
    sandbox_env,
    start_server,
)

DYNALITE = Path(__file__).resolve().parents[1] / ".bench-tools/node_modules/.bin/dynalite"
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStats:
    cpu_s: float  # user + system
    peak_rss_mb: float


def proc_stats(pid: int) -> ProcStats:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / _TICKS
    peak_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    return ProcStats(cpu_s, peak_kb / 1024)


class Servers:
    """moto (SQS), a DynamoDB server and the sandbox, each its own process."""

    def __init__(self, dynamo: str, sandbox_options: list[str], logs: Path) -> None:
        self._dynamo = dynamo
        self._sandbox_options = sandbox_options
        self._logs = logs
        self._stack = AsyncExitStack()
        self.procs: dict[str, int] = {}
        self.moto_url = self.dynamo_url = self.sandbox_url = ""

    @staticmethod
    def dynamo_kind() -> str:
        # dynalite (npm, installed by `make bench`) is the faster server; moto spends ~10 ms of
        # CPU per conditional write and is the bottleneck on two cores. BENCH_DYNAMO=moto asks
        # for moto anyway.
        wanted = os.environ.get("BENCH_DYNAMO", "dynalite")
        if wanted == "dynalite" and DYNALITE.exists() and shutil.which("node"):
            return "dynalite"
        return "moto"

    async def __aenter__(self) -> Servers:
        log: IO[Any] = (self._logs / "servers.log").open("ab")
        self._stack.callback(log.close)
        moto = await self._start(start_server("moto", moto_argv(), "moto_ready", log=log))
        self.moto_url = self.dynamo_url = moto.url
        sandbox = await self._start(
            start_server(
                "sandbox",
                sandbox_argv(*self._sandbox_options),
                "sandbox_ready",
                log=log,
                # Its delivery events (the events scenarios) go to moto's SQS.
                env={**os.environ, **sandbox_env(moto.url)},
            )
        )
        self.sandbox_url = sandbox.url
        if self._dynamo == "dynalite":
            port = free_port()
            process = await asyncio.create_subprocess_exec(
                str(DYNALITE),
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--createTableMs",
                "0",
                stdout=log,
                stderr=log,
            )
            server = ServerProcess("dynalite", process, f"http://127.0.0.1:{port}")
            self._stack.push_async_callback(server.stop)
            self.procs["dynalite"] = process.pid
            self.dynamo_url = server.url
            await self._wait_dynamo()
        return self

    async def _start(self, starting: Any) -> ServerProcess:
        server: ServerProcess = await starting
        self._stack.push_async_callback(server.stop)
        self.procs[server.name] = server.process.pid
        return server

    async def _wait_dynamo(self) -> None:
        env = self.aws_env()
        async with get_session().create_client(
            "dynamodb",
            endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id="x",
            aws_secret_access_key="x",
        ) as ddb:
            for _ in range(100):
                try:
                    await ddb.list_tables()
                    return
                except Exception:
                    await asyncio.sleep(0.1)
        raise RuntimeError("the DynamoDB server did not start")

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    def aws_env(self) -> dict[str, str]:
        env = aws_env(self.moto_url, self.sandbox_url)
        env["AWS_ENDPOINT_URL_DYNAMODB"] = self.dynamo_url
        return env

    def cpu_s(self) -> dict[str, float]:
        return {name: proc_stats(pid).cpu_s for name, pid in self.procs.items()}
