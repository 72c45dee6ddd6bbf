"""The hot path's SigV4 signer against botocore's, header for header."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from botocore.credentials import ReadOnlyCredentials as Credentials

from worker.aws.sigv4 import SigV4Signer, canonical_host

BODY = b'{"TableName":"t","Key":{"RequestId":{"S":"r-1"}}}'


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzE//session+token=="])
@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://dynamodb.eu-west-1.amazonaws.com/", "dynamodb.eu-west-1.amazonaws.com"),
        ("http://127.0.0.1:45123/", "127.0.0.1:45123"),
    ],
)
@pytest.mark.parametrize("service", ["dynamodb", "sms-voice"])
def test_signature_matches_botocore(token: str | None, url: str, host: str, service: str) -> None:
    headers = {
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "DynamoDB_20120810.UpdateItem",
        "x-amzn-query-mode": "true",
    }
    boto_request = AWSRequest(method="POST", url=url, data=BODY, headers=dict(headers))
    SigV4Auth(
        BotoCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token), service, "eu-west-1"
    ).add_auth(boto_request)
    amz_date = boto_request.headers["X-Amz-Date"]
    now = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    signer = SigV4Signer("eu-west-1", service)
    ours = signer.sign(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token), host, headers, BODY, now
    )

    assert ours["Authorization"] == boto_request.headers["Authorization"]
    assert ours["X-Amz-Date"] == amz_date
    assert ours.get("X-Amz-Security-Token") == boto_request.headers.get("X-Amz-Security-Token")


def test_signing_key_follows_the_day_and_the_secret() -> None:
    signer = SigV4Signer("us-east-1", "sqs")
    headers = {"content-type": "application/x-amz-json-1.0"}
    day1 = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    day2 = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    creds = Credentials("AKID", "secret-1", None)
    first = signer.sign(creds, "sqs.us-east-1.amazonaws.com", headers, b"{}", day1)
    second = signer.sign(creds, "sqs.us-east-1.amazonaws.com", headers, b"{}", day2)
    rotated = signer.sign(
        Credentials("AKID", "secret-2", None), "sqs.us-east-1.amazonaws.com", headers, b"{}", day2
    )
    assert "20261130/us-east-1/sqs" in first["Authorization"]
    assert "20261201/us-east-1/sqs" in second["Authorization"]
    assert second["Authorization"] != rotated["Authorization"]
    fresh = SigV4Signer("us-east-1", "sqs").sign(
        creds, "sqs.us-east-1.amazonaws.com", headers, b"{}", day2
    )
    assert fresh == second  # the cached key is the key the day and secret give


@pytest.mark.parametrize(
    ("scheme", "port", "expected"),
    [
        ("https", None, "h"),
        ("https", 443, "h"),
        ("http", 80, "h"),
        ("http", 4566, "h:4566"),
        ("https", 80, "h:80"),
    ],
)
def test_canonical_host(scheme: str, port: int | None, expected: str) -> None:
    assert canonical_host(scheme, "h", port) == expected
