"""The shipped JSON Schema (schema/send-request.schema.json) matches the model, and says of a
few bodies what the worker says of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from worker.model import InvalidRequest, parse_request
from worker.producer.requests import prepare_request
from worker.producer.schema import SCHEMA_FILE, schema_text

ROOT = Path(__file__).parents[2]
SHIPPED = ROOT / SCHEMA_FILE
REGENERATE = f"python -m worker.producer.schema > {SCHEMA_FILE}"

BASE = {"DestinationPhoneNumber": "+12065550100", "OriginationIdentity": "pool-abc"}
VALID: list[dict[str, Any]] = [
    {**BASE, "MessageBody": "hello"},
    {**BASE, "MediaUrls": ["s3://my-media/a.png"]},
    {
        **BASE,
        "MessageBody": "hello",
        "MediaUrls": ["s3://my-media/label.PDF"],
        "ConfigurationSetName": "cs-1",
        "MaxPrice": "0.05",
        "TimeToLive": 3600,
        "Context": {"orderId": "o-1"},
        "DryRun": True,
        "MessageFeedbackEnabled": False,
        "RequestId": "order-1234-shipped",
        "CampaignId": "black-friday",
        "NotAfter": "2026-12-01T18:00:00Z",
    },
]
INVALID: list[dict[str, Any]] = [
    {**BASE},  # neither MessageBody nor MediaUrls
    {"OriginationIdentity": "pool-abc", "MessageBody": "x"},  # no destination
    {**BASE, "MessageBody": "x", "Colour": "red"},  # unknown key
    {**BASE, "MessageBody": "x", "TimeToLive": "3600"},  # a string, not an integer
    {**BASE, "MessageBody": "x", "TimeToLive": 4},  # below the minimum
    {**BASE, "MessageBody": "x", "DryRun": None},  # null is not a value
    {**BASE, "MediaUrls": ["s3://my-media/a.png", "s3://my-media/b.png"]},  # two URLs
    {**BASE, "MediaUrls": ["s3://my-media/a.avi"]},  # not an MMS type
    {**BASE, "MessageBody": "   "},  # only white space
    {**BASE, "MessageBody": "x", "Context": {f"k{n}": "v" for n in range(5)}},  # 5: one is ours
    {**BASE, "MessageBody": "x", "Context": {"sms-worker:RequestId": "r-1"}},  # reserved key
    {**BASE, "MessageBody": "x", "RequestId": "has space"},
    {**BASE, "DestinationPhoneNumber": "2065550100", "MessageBody": "x"},  # no '+'
]


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SHIPPED.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_shipped_schema_is_the_models() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == schema_text(), (
        f"{SCHEMA_FILE} is out of date with worker.model; regenerate it: {REGENERATE}"
    )


def test_the_regeneration_command_prints_the_file() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "worker.producer.schema"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert printed == SHIPPED.read_text(encoding="utf-8")


@pytest.mark.parametrize("body", VALID)
def test_valid_bodies(validator: jsonschema.protocols.Validator, body: dict[str, Any]) -> None:
    assert list(validator.iter_errors(body)) == []
    assert not isinstance(parse_request(json.dumps(body), sqs_message_id="m"), InvalidRequest)
    # what the producer puts on the queue is valid against the schema too
    assert list(validator.iter_errors(json.loads(prepare_request(body).body))) == []


@pytest.mark.parametrize("body", INVALID)
def test_invalid_bodies(validator: jsonschema.protocols.Validator, body: dict[str, Any]) -> None:
    assert list(validator.iter_errors(body)) != []
    assert isinstance(parse_request(json.dumps(body), sqs_message_id="m"), InvalidRequest)
