"""The pure parts of the start-up checks: the queue URL against the SQS endpoint, the
table's key, unknown ``SMS_WORKER_*`` variables."""

from __future__ import annotations

from typing import Any

import pytest

from worker.aws.endpoints import endpoint_mismatch
from worker.runtime.startup import wrong_key
from worker.settings import unknown_variables

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/mms"


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://sqs.us-east-1.amazonaws.com",
        "https://sqs.us-east-1.amazonaws.com:443/",
        "https://SQS.us-east-1.amazonaws.com",
        "https://sqs-fips.us-east-1.amazonaws.com",
        "https://vpce-0abc-xyz.sqs.us-east-1.vpce.amazonaws.com",
    ],
)
def test_the_same_endpoint_is_no_mismatch(endpoint: str) -> None:
    assert endpoint_mismatch(QUEUE, endpoint) is None


def test_legacy_queue_urls_are_their_region() -> None:
    assert endpoint_mismatch("https://queue.amazonaws.com/1/q", QUEUE.rsplit("/", 2)[0]) is None
    legacy = "https://eu-west-1.queue.amazonaws.com/1/q"
    assert endpoint_mismatch(legacy, "https://sqs.eu-west-1.amazonaws.com") is None


def test_another_region_says_which_to_set() -> None:
    problem = endpoint_mismatch(QUEUE, "https://sqs.eu-west-1.amazonaws.com")
    assert problem is not None
    assert "in us-east-1" in problem and "in eu-west-1" in problem
    assert "AWS_REGION=us-east-1" in problem


def test_another_host_names_the_endpoint_variable() -> None:
    problem = endpoint_mismatch(QUEUE, "http://localhost:4566")
    assert problem is not None
    assert "sqs.us-east-1.amazonaws.com" in problem and "http://localhost:4566" in problem
    assert "AWS_ENDPOINT_URL_SQS" in problem
    local = "http://127.0.0.1:4566/000000000000/q"
    assert endpoint_mismatch(local, "http://127.0.0.1:4566") is None
    assert endpoint_mismatch(local, "http://127.0.0.1:4567") is not None


def _table(keys: list[tuple[str, str]], types: dict[str, str]) -> dict[str, Any]:
    return {
        "KeySchema": [{"AttributeName": n, "KeyType": k} for n, k in keys],
        "AttributeDefinitions": [
            {"AttributeName": n, "AttributeType": t} for n, t in types.items()
        ],
    }


def test_the_status_tables_key() -> None:
    assert wrong_key(_table([("RequestId", "HASH")], {"RequestId": "S"})) is None
    assert wrong_key(_table([("RequestId", "HASH")], {"RequestId": "N"})) == "RequestId (N, HASH)"
    assert wrong_key(_table([("id", "HASH")], {"id": "S"})) == "id (S, HASH)"
    with_sort = _table([("RequestId", "HASH"), ("At", "RANGE")], {"RequestId": "S", "At": "N"})
    assert wrong_key(with_sort) == "RequestId (S, HASH), At (N, RANGE)"


def test_unknown_variables_name_the_closest_setting() -> None:
    environ = {
        "SMS_WORKER_RATE_LIMIT": "default=1",
        "SMS_WORKER_RATE_LIMITS": "default=2",
        "sms_worker_pollers": "3",  # a setting: the variables are read case-insensitively
        "SMS_WORKER_QUEUE_UR": "x",
        "SMS_WORKER_ZZZ": "1",
        "SMS_WORKER_EMPTY_TYPO": "",  # empty: ignored, as empty settings are
        "SMS_WORKER_TEST_LOGS": "/tmp/x",  # the test suite's own
        "AWS_REGION": "us-east-1",
    }
    assert unknown_variables(environ) == [
        ("SMS_WORKER_QUEUE_UR", "SMS_WORKER_QUEUE_URL"),
        ("SMS_WORKER_RATE_LIMIT", "SMS_WORKER_RATE_LIMITS"),
        ("SMS_WORKER_ZZZ", None),
    ]
