"""Settings, the command line and the settings table of docs/operating.md stay in step."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.cli import explain_settings_error
from worker.settings import Settings

OPERATING = Path(__file__).parents[2] / "docs" / "operating.md"
QUEUE = "http://localhost/000000000000/q"


def _settings_table() -> str:
    """The "## Settings" section of the operating page, where every setting has its row."""
    text = OPERATING.read_text()
    start = text.index("\n## Settings\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_every_setting_is_documented_in_the_operating_page_and_the_help() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "worker", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = _settings_table()
    for name in Settings.model_fields:
        env, option = f"SMS_WORKER_{name.upper()}", "--" + name.replace("_", "-")
        assert f"| `{env}` / `{option}` |" in table, name
        assert option in help_text and env in help_text, name


def test_the_settings_table_lists_only_real_settings() -> None:
    rows = re.findall(r"^\| `SMS_WORKER_(\w+)` / `--([\w-]+)` \|", _settings_table(), re.M)
    assert rows
    for env, option in rows:
        assert env.lower() in Settings.model_fields, env
        assert option == env.lower().replace("_", "-"), (env, option)
    assert len(rows) == len({env for env, _ in rows}), "a setting has two rows"


def test_environment_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_WORKER_QUEUE_URL", QUEUE)
    monkeypatch.setenv("SMS_WORKER_TABLE", "t")
    monkeypatch.setenv("SMS_WORKER_RATE_LIMITS", "default=5, +18005550100=3,pool-abc=100")
    settings = Settings(max_in_flight=7)
    assert settings.rate_limits == {"default": 5.0, "+18005550100": 3.0, "pool-abc": 100.0}
    assert settings.rate_for("pool-abc") == 100.0
    assert settings.rate_for("other") == 5.0
    assert settings.max_in_flight == 7
    with pytest.raises(ValidationError):
        settings.max_in_flight = 8  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"rate_limits": "default=0"}, "must be > 0"),
        ({"rate_limits": "fast"}, "is not IDENTITY=MPS"),
        ({"lease_s": 10}, "lease_s (10.0) must cover"),
        ({"visibility_timeout_s": 30}, "must be >= lease_s"),
        ({"queue_url": "my-queue"}, "is not a queue URL"),
    ],
)
def test_bad_settings_say_what_to_do(overrides: dict[str, object], needle: str) -> None:
    values: dict[str, object] = {"queue_url": QUEUE, "table": "t"} | overrides
    with pytest.raises(ValidationError) as error:
        Settings(**values)
    assert needle in explain_settings_error(error.value)


def test_missing_required_settings_exit_2_naming_them() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "worker", "run"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2
    assert "--queue-url / SMS_WORKER_QUEUE_URL: is required" in result.stderr
    assert "--table / SMS_WORKER_TABLE: is required" in result.stderr


async def test_aws_region_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore alone ignores AWS_REGION; the worker's clients must not."""
    from contextlib import AsyncExitStack

    from worker.aws.clients import open_clients

    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    settings = Settings(queue_url=QUEUE, table="t")
    async with AsyncExitStack() as stack:
        clients = await open_clients(stack, settings)
        regions = {c.meta.region_name for c in (clients.sqs, clients.dynamodb, clients.sms)}
    assert regions == {"eu-west-3"}


def test_a_busy_metrics_port_is_a_clear_configuration_error_exit_78() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "us-east-1",
            "SMS_WORKER_QUEUE_URL": QUEUE,
            "SMS_WORKER_TABLE": "t",
            "SMS_WORKER_METRICS_HOST": "127.0.0.1",
            "SMS_WORKER_METRICS_PORT": str(port),
        }
        result = subprocess.run(
            [sys.executable, "-m", "worker", "run"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert result.returncode == 78, result.stderr  # EX_CONFIG
    assert "startup_failed" in result.stderr
    assert "SMS_WORKER_METRICS_PORT" in result.stderr and "Traceback" not in result.stderr


def test_batching_waits_stay_inside_what_the_visibility_timeout_and_the_slots_allow() -> None:
    """Acks linger at most a tenth of the visibility timeout (an extension is queued a third
    of it before it runs out); a busy poller waits for ten slots, or half its part."""
    base = Settings(queue_url=QUEUE, table="t")
    assert (base.ack_linger_ms, base.receive_batch_target) == (3_000, 10)
    short = Settings(
        queue_url=QUEUE,
        table="t",
        visibility_timeout_s=10,
        lease_s=8,
        max_token_wait_s=4,
        retry_budget_s=3,
        retry_backoff_max_s=0.5,
        send_timeout_s=2,
        connect_timeout_s=1,
    )
    assert short.ack_linger_ms == 1_000
    few = Settings(queue_url=QUEUE, table="t", max_in_flight=4, pollers=2)
    assert few.receive_batch_target == 1
