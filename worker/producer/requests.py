"""Turn a send request (a ``SendRequest`` or a dict) into the exact SQS body the worker accepts.

Every body is checked with the worker's own parser (:func:`worker.model.parse_request`) after
it has been serialised, so what goes on the queue is exactly what was validated. Bodies are
compact, ASCII-only JSON: SQS rejects some Unicode characters in message bodies (for example
U+0000 or U+FFFE), and escaped they all arrive intact.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.model import ChannelRequest, InvalidRequest, SendRequest, SmsRequest, parse_request

#: Stands in for the SQS MessageId while a body is validated before it has one.
PLACEHOLDER_MESSAGE_ID = "00000000-0000-0000-0000-000000000000"

SCHEMA_HINT = "the contract is in README.md and schema/send-request.schema.json"


class InvalidSendRequest(ValueError):
    """A request the worker would reject; nothing about it was enqueued.

    ``field`` is the first invalid key (``"body"`` when the request is not an object of
    contract keys), ``reason`` says what is wrong and what a valid value is. Neither ever
    holds a value of the request (it may be a phone number or a message body).
    """

    def __init__(self, field: str, reason: str, *, index: int | None = None) -> None:
        self.field = field
        self.reason = reason
        self.index = index
        where = "the send request" if index is None else f"send request #{index}"
        super().__init__(f"{where} is invalid: {field}: {reason} ({SCHEMA_HINT})")

    def at(self, index: int) -> InvalidSendRequest:
        """The same problem, naming the request's position in a sequence."""
        return InvalidSendRequest(self.field, self.reason, index=index)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A validated request, serialised: the SQS message body and its RequestId (if any).

    Get one from :func:`prepare_request`; :class:`~worker.producer.Enqueuer` accepts it as is.
    """

    body: str
    request_id: str | None


def dump_body(data: Mapping[str, Any]) -> str:
    """Compact ASCII JSON; ``TypeError``/``ValueError`` for values JSON cannot hold."""
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def check_body(body: str | bytes) -> PreparedRequest | InvalidRequest:
    """Validate a serialised body with the worker's parser."""
    result = parse_request(body, sqs_message_id=PLACEHOLDER_MESSAGE_ID)
    if isinstance(result, InvalidRequest):
        return result
    text = body if isinstance(body, str) else body.decode("utf-8")
    return PreparedRequest(body=text, request_id=result.payload.RequestId)


def request_data(request: ChannelRequest) -> dict[str, Any]:
    """The keys a ``SendRequest`` (any channel's model) was given, as plain JSON data in
    contract order."""
    data: dict[str, Any] = request.model_dump(exclude_unset=True, exclude_none=True)
    return data


def prepare_request(
    request: SendRequest | SmsRequest | Mapping[str, Any] | PreparedRequest,
) -> PreparedRequest:
    """Validate ``request`` and serialise it; :class:`InvalidSendRequest` if the worker would
    reject it, ``TypeError`` if it is neither a ``SendRequest`` nor a mapping."""
    if isinstance(request, PreparedRequest):
        return request
    if isinstance(request, SendRequest | SmsRequest):
        data = request_data(request)
    elif isinstance(request, Mapping):
        data = dict(request)
    else:
        raise TypeError(
            "a send request must be a worker.model.SendRequest or a dict of contract keys (or "
            "a worker.model.SmsRequest), "
            f"not {type(request).__name__}"
        )
    if not all(isinstance(key, str) for key in data):
        raise InvalidSendRequest("body", "every key must be a string naming a contract key")
    try:
        body = dump_body(data)
    except (TypeError, ValueError):
        raise InvalidSendRequest(
            "body",
            "a value is not JSON data (only str, int, bool, lists and dicts of them, no NaN); "
            "convert it before enqueueing",
        ) from None
    result = check_body(body)
    if isinstance(result, InvalidRequest):
        raise InvalidSendRequest(result.field, result.message)
    return result


def validate_request(
    request: SendRequest | SmsRequest | Mapping[str, Any],
) -> SendRequest | SmsRequest:
    """The request model (``SendRequest`` for MMS, ``SmsRequest`` for SMS) the worker will
    read from ``request``; raises :class:`InvalidSendRequest` for an invalid one."""
    prepared = prepare_request(request)
    result = parse_request(prepared.body, sqs_message_id=PLACEHOLDER_MESSAGE_ID)
    if isinstance(result, InvalidRequest):  # pragma: no cover - prepare_request checked it
        raise InvalidSendRequest(result.field, result.message)
    payload = result.payload
    if not isinstance(payload, SendRequest | SmsRequest):  # pragma: no cover - a new channel
        raise TypeError(f"a {result.channel.name} request has no producer model yet")
    return payload
