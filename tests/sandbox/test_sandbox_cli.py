"""``python -m worker.sandbox`` as a child process, and the option parsing."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from sandbox_support import DEST, ORIGIN, ClientFactory, SandboxFactory, send_args

from worker.sandbox import SandboxConfig, add_arguments, config_from_args

REPO_ROOT = Path(__file__).resolve().parents[2]


async def _spawn(*options: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.sandbox", *options,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _ready(process: asyncio.subprocess.Process) -> tuple[str, int]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    event = json.loads(line)
    port = event["port"]
    expected = {"event": "sandbox_ready", "url": f"http://127.0.0.1:{port}", "port": port}
    assert line.decode() == json.dumps(expected) + "\n"
    return str(event["url"]), int(port)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_subprocess_serves_until_signalled(
    make_client: ClientFactory, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    record = tmp_path / "sends.jsonl"
    process = await _spawn(
        "--port", "0", "--opted-out", "+12065550199,+12065550198", "--log-requests",
        "--record-path", str(record),
    )  # fmt: skip
    try:
        url, port = await _ready(process)
        assert port > 0
        client = await make_client(url)
        response = await client.send_media_message(**send_args())
        with pytest.raises(client.exceptions.ConflictException):
            await client.send_media_message(**send_args(DestinationPhoneNumber="+12065550198"))
    finally:
        if process.returncode is None:
            process.send_signal(stop_signal)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 0
    assert stdout == b""  # the ready line was the only one
    logs = stderr.decode()
    assert "sandbox_started" in logs
    assert "+1***00" in logs
    assert "+1***98" in logs
    for number in (DEST, "+12065550198", ORIGIN):
        assert number not in logs
    [line] = record.read_text().splitlines()
    assert json.loads(line)["message_id"] == response["MessageId"]


async def test_bad_option_exits_2() -> None:
    process = await _spawn("--port", "0", "--fault-rate", "2")
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert stdout == b""
    assert b"fault_rate" in stderr


async def test_port_in_use_exits_1(make_sandbox: SandboxFactory) -> None:
    box = await make_sandbox()
    process = await _spawn("--port", str(box.port))
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert stdout == b""


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults() -> None:
    args = _parse()
    assert (args.sandbox_host, args.sandbox_port) == ("127.0.0.1", 4599)
    assert config_from_args(args) == SandboxConfig()


def test_every_option_reaches_the_config() -> None:
    args = _parse(
        "--host", "0.0.0.0", "--port", "0", "--mps", "20",
        "--rate", "+18005550100=3,pool-a=10", "--rate", "pool-b=1.5", "--burst-s", "0.5",
        "--latency-ms", "40", "--latency-jitter-ms", "10", "--fault-rate", "0.1",
        "--opted-out", "+12065550199", "--opted-out", "+12065550198,",
        "--blocked-prefixes", "+44,+33", "--known-identities", "+18005550100,pool-a",
        "--record-path", "/tmp/x.jsonl", "--seed", "9",
    )  # fmt: skip
    assert (args.sandbox_host, args.sandbox_port) == ("0.0.0.0", 0)
    assert config_from_args(args) == SandboxConfig(
        default_mps=20.0,
        mps={"+18005550100": 3.0, "pool-a": 10.0, "pool-b": 1.5},
        burst_s=0.5,
        latency_ms=40.0,
        latency_jitter_ms=10.0,
        fault_rate=0.1,
        opted_out={"+12065550199", "+12065550198"},
        blocked_prefixes={"+44", "+33"},
        known_identities={"+18005550100", "pool-a"},
        record_path="/tmp/x.jsonl",
        seed=9,
    )


def test_every_events_option_reaches_the_config() -> None:
    args = _parse(
        "--events-queue-url", "http://127.0.0.1:5000/123456789012/events",
        "--events-envelope", "eventbridge", "--events-outcomes", "delivered=8,spam=1",
        "--events-outcomes", "media_file_inaccessible=1", "--events-delay-ms", "250",
        "--events-jitter-ms", "50", "--events-duplicate-rate", "0.2", "--events-reorder",
        "--cut-after-accept-rate", "0.05",
    )  # fmt: skip
    assert config_from_args(args) == SandboxConfig(
        events_queue_url="http://127.0.0.1:5000/123456789012/events",
        events_envelope="eventbridge",
        events_outcomes={"delivered": 8.0, "spam": 1.0, "media_file_inaccessible": 1.0},
        events_delay_ms=250.0,
        events_jitter_ms=50.0,
        events_duplicate_rate=0.2,
        events_reorder=True,
        cut_after_accept_rate=0.05,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--events-outcomes", "delivered"), "OUTCOME=WEIGHT"),
        (("--events-outcomes", "delivered=lots"), "not a number"),
        (("--events-outcomes", "lost=1"), "unknown outcome"),
        (("--events-outcomes", "delivered=0"), "at least one outcome"),
        (("--events-queue-url", "events"), "SQS queue URL"),
        (("--events-duplicate-rate", "2"), "between 0 and 1"),
        (("--cut-after-accept-rate", "-0.1"), "between 0 and 1"),
        (("--events-delay-ms", "-5"), ">= 0"),
    ],
)
def test_bad_events_values_say_what_is_wrong(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_args(_parse(*argv))


@pytest.mark.parametrize(
    "argv",
    [("--rate", "pool-a"), ("--rate", "pool-a=fast"), ("--rate", "pool-a=0"), ("--mps", "-1")],
)
def test_bad_values_raise_value_error(argv: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"rate|mps"):
        config_from_args(_parse(*argv))
