"""Whether a queue URL's host is the SQS endpoint a client calls.

Every SQS call goes to the client's endpoint (from the region, or ``AWS_ENDPOINT_URL_SQS``);
the queue URL is only a parameter. A queue URL of another region or host then names a queue
the endpoint may not have, or not the one meant.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_AWS_SQS_HOSTS = (
    re.compile(r"sqs(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"),
    re.compile(r"([a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?"),  # the legacy form
    re.compile(r".+\.sqs\.([a-z0-9-]+)\.vpce\.amazonaws\.com"),  # an interface VPC endpoint
)


def _aws_region(host: str) -> str | None:
    """The region of an AWS SQS host name (``None``: not one)."""
    if host == "queue.amazonaws.com":
        return "us-east-1"
    for pattern in _AWS_SQS_HOSTS:
        match = pattern.fullmatch(host)
        if match:
            return match.group(1)
    return None


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port


def endpoint_mismatch(queue_url: str, endpoint_url: str) -> str | None:
    """Why the queue URL's host is not the SQS endpoint the worker sends its calls to (the
    queue URL is only a parameter of each call), or ``None`` when it is. Two AWS hosts are the
    same endpoint when their regions are (``queue.amazonaws.com``, a VPC endpoint)."""
    (queue_host, queue_port), (host, port) = _host_port(queue_url), _host_port(endpoint_url)
    queue_region, region = _aws_region(queue_host), _aws_region(host)
    if queue_region is not None and region is not None:
        if queue_region == region:
            return None
        return (
            f"the queue URL is in {queue_region} but the worker calls SQS in {region} "
            f"({endpoint_url}): set AWS_REGION={queue_region} (or SMS_WORKER_REGION), or use "
            f"the queue URL of {region}"
        )
    if (queue_host, queue_port) == (host, port):
        return None
    return (
        f"the queue URL's host {urlsplit(queue_url).netloc} is not the SQS endpoint the worker "
        f"calls ({endpoint_url}): every call goes to that endpoint; set AWS_ENDPOINT_URL_SQS "
        "(or AWS_REGION) to the queue's endpoint, or use the queue URL that endpoint returns"
    )
