"""docker-compose.yml: valid per the compose specification, and a stack that works.

The schema is a vendored copy (see README.md beside this file): no download at test time.
"""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from deploy_support import (
    CAMPAIGN_CSV,
    COMPOSE,
    HERE,
    ROOT,
    compose_duration_s,
    metrics_port_default,
    require_subcommand,
    settings_from,
    shutdown_budget_s,
    unknown_settings,
)

from worker.cli import build_parser
from worker.model import CONTRACT_KEYS, ParsedRequest, parse_request

SCHEMA = HERE / "compose-spec.schema.json"
PROJECT_IMAGE = "sms-worker:local"
ONE_SHOTS = ("init", "demo-producer")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(document: Any) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in _validator().iter_errors(document)
    ]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _project_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("image") == PROJECT_IMAGE}


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


# --- the specification --------------------------------------------------------------------


def test_the_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert _errors(compose) == []


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        (("services", "worker"), "stop_grace_perod", "40s"),
        (("services", "worker", "depends_on", "init"), "condition", "service_done"),
        (("services", "worker"), "restart", ["always"]),
    ],
)
def test_the_schema_rejects_a_broken_file(
    compose: dict[str, Any], where: tuple[str, ...], key: str, value: Any
) -> None:
    broken = copy.deepcopy(compose)
    node = broken
    for part in where:
        node = node[part]
    node[key] = value
    assert _errors(broken), f"the schema accepted {key}: {value!r} under {'/'.join(where)}"


def test_no_obsolete_top_level_version(compose: dict[str, Any]) -> None:
    assert "version" not in compose


def test_the_stack_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"moto", "sandbox", "init", "worker", "demo-producer"}
    assert set(_project_services(services)) == {"sandbox", "init", "worker", "demo-producer"}


def test_the_project_image_is_built_from_this_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in _project_services(services).items():
        build = service["build"]
        assert (ROOT / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).is_file(), name
        assert "entrypoint" not in service, f"{name}: commands must go to the sms-worker entrypoint"


def test_moto_is_pinned_to_the_version_the_tests_use(services: dict[str, dict[str, Any]]) -> None:
    image = services["moto"]["image"]
    repository, _, tag = image.partition(":")
    assert repository == "motoserver/moto"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"pin moto to a release, not {tag!r}"
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    )
    assert tag == pins["moto"], "keep the compose moto in step with constraints.txt"


# --- the commands against sms-worker's own parser -----------------------------------------


@pytest.mark.parametrize("name", ["sandbox", "init", "worker", "demo-producer"])
def test_each_command_is_one_sms_worker_accepts(
    services: dict[str, dict[str, Any]], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = [str(part) for part in services[name]["command"]]
    parser = build_parser()
    require_subcommand(parser, command[0])
    try:
        parser.parse_args(command)
    except SystemExit as exc:
        pytest.fail(f"sms-worker rejects {command}: {capsys.readouterr().err.strip()} ({exc})")


def test_the_sandbox_listens_on_every_interface_of_its_container(
    services: dict[str, dict[str, Any]],
) -> None:
    args = build_parser().parse_args([str(p) for p in services["sandbox"]["command"]])
    assert args.sandbox_host == "0.0.0.0"
    assert args.sandbox_port == 4599
    assert urlsplit(_environment(services["worker"])["AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2"]) == (
        urlsplit("http://sandbox:4599")
    )


def test_the_worker_runs_and_its_settings_are_valid(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert [str(p) for p in worker.get("command", ["run"])] == ["run"]
    env = _environment(worker)
    assert unknown_settings(env) == set()
    settings = settings_from(env)
    assert settings.table == "sms-status"
    assert settings.region == env["AWS_REGION"]
    assert settings.metrics_port == metrics_port_default()


# --- one queue, one table, everywhere -------------------------------------------------------


def test_init_worker_and_producer_agree_on_the_queue_and_the_table(
    services: dict[str, dict[str, Any]],
) -> None:
    init = [str(p) for p in services["init"]["command"]]
    producer = [str(p) for p in services["demo-producer"]["command"]]
    worker_env = _environment(services["worker"])
    account = _environment(services["moto"])["MOTO_ACCOUNT_ID"]
    queue_url = f"http://moto:5000/{account}/{_option(init, '--queue-name')}"
    assert queue_url == "http://moto:5000/000000000000/sms-requests"
    assert worker_env["SMS_WORKER_QUEUE_URL"] == queue_url
    assert _option(producer, "--queue-url") == queue_url
    assert worker_env["SMS_WORKER_TABLE"] == _option(init, "--table")


@pytest.mark.parametrize("name", ["init", "worker", "demo-producer"])
def test_aws_calls_go_to_moto_and_the_sandbox_with_dummy_credentials(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = _environment(services[name])
    assert env["AWS_ENDPOINT_URL_SQS"] == "http://moto:5000"
    assert env["AWS_ENDPOINT_URL_DYNAMODB"] == "http://moto:5000"
    assert env["AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2"] == "http://sandbox:4599"
    assert env["AWS_REGION"]
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"


# --- scaling, ordering, shutdown, health ----------------------------------------------------


def test_the_worker_scales(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker, "a container_name would stop --scale worker=3"
    assert "ports" not in worker, "a fixed host port would stop --scale worker=3"


def test_the_worker_has_time_to_shut_down(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    grace = compose_duration_s(worker["stop_grace_period"])
    assert grace > shutdown_budget_s() >= 30


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    def conditions(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in services[name]["depends_on"].items()}

    assert conditions("init")["moto"] in ("service_healthy", "service_started")
    assert conditions("worker") == {
        "init": "service_completed_successfully",
        "moto": "service_healthy",
        "sandbox": "service_healthy",
    }
    assert conditions("demo-producer")["init"] == "service_completed_successfully"
    for name, service in services.items():
        for dependency, condition in conditions(name).items() if "depends_on" in service else ():
            assert dependency in services
            if condition == "service_healthy":
                check = services[dependency].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), dependency


@pytest.mark.parametrize("name", ONE_SHOTS)
def test_one_shots_run_once(services: dict[str, dict[str, Any]], name: str) -> None:
    assert services[name]["restart"] == "no"
    assert services[name]["healthcheck"] == {"disable": True}


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("moto", "http://127.0.0.1:5000/moto-api/"),
        ("sandbox", "http://127.0.0.1:4599/_sandbox/health"),
        ("worker", "http://127.0.0.1:9102/healthz"),
    ],
)
def test_healthchecks_ask_over_http_with_python(
    services: dict[str, dict[str, Any]], name: str, url: str
) -> None:
    test = [str(p) for p in services[name]["healthcheck"]["test"]]
    assert test[:3] == ["CMD", "python", "-c"], "exec form, python (no curl in slim images)"
    code = test[3]
    compile(code, f"<{name} healthcheck>", "exec")
    assert "urllib.request.urlopen" in code
    assert f"'{url}'" in code


# --- the demo campaign --------------------------------------------------------------------


def test_the_demo_csv_is_mounted_read_only(services: dict[str, dict[str, Any]]) -> None:
    producer = services["demo-producer"]
    command = [str(p) for p in producer["command"]]
    assert command[0] == "enqueue"
    assert "--skip-invalid" in command
    assert _option(command, "--campaign-id") == "demo"
    (volume,) = producer["volumes"]
    assert volume["type"] == "bind"
    assert (ROOT / volume["source"]).resolve() == CAMPAIGN_CSV
    assert volume["target"] == command[1]
    assert volume["read_only"] is True


def _csv_rows() -> tuple[list[str], list[dict[str, str]]]:
    with CAMPAIGN_CSV.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _request_body(row: dict[str, str]) -> dict[str, Any]:
    """A row as the producer turns it into a body: empty cells absent, MediaUrls one URL."""
    body: dict[str, Any] = {k: v for k, v in row.items() if v != ""}
    if "MediaUrls" in body:
        body["MediaUrls"] = [body["MediaUrls"]]
    body["CampaignId"] = "demo"
    return body


def test_the_demo_csv_header_is_contract_keys() -> None:
    header, _ = _csv_rows()
    assert set(header) <= set(CONTRACT_KEYS)
    assert {"RequestId", "DestinationPhoneNumber", "OriginationIdentity", "MessageBody"} <= set(
        header
    )


def test_the_demo_csv_has_about_fifty_valid_rows_and_a_couple_of_invalid_ones() -> None:
    _, rows = _csv_rows()
    ids = [row["RequestId"] for row in rows]
    assert len(ids) == len(set(ids))
    valid, invalid = [], []
    for row in rows:
        parsed = parse_request(json.dumps(_request_body(row)), sqs_message_id="m-1")
        (valid if isinstance(parsed, ParsedRequest) else invalid).append(row["RequestId"])
    assert 45 <= len(valid) <= 60
    assert 1 <= len(invalid) <= 2
    assert all("invalid" in request_id for request_id in invalid), invalid
    assert not any("invalid" in request_id for request_id in valid), valid
    destinations = [row["DestinationPhoneNumber"] for row in rows if row["RequestId"] in valid]
    assert all(re.fullmatch(r"\+1206555\d{4}", d) for d in destinations)


def test_the_producer_reads_the_demo_csv_the_same_way() -> None:
    files = pytest.importorskip("worker.producer.files")
    if not hasattr(files, "read_rows"):
        pytest.skip("worker.producer.files.read_rows is not there yet")
    _, rows = _csv_rows()
    expected = {row["RequestId"]: _request_body(row) for row in rows}
    seen = 0
    for raw in files.read_rows(Path(CAMPAIGN_CSV), "csv"):
        if raw.data is None:
            continue
        data = dict(raw.data) | {"CampaignId": "demo"}
        assert data == expected[data["RequestId"]]
        seen += 1
    assert seen == len(rows)
