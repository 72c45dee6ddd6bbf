"""One vocabulary for what an AWS call's failure means, used by every caller.

``error_code`` reads the API's error code the one way botocore puts it; ``is_unavailable``
tells a dependency that did not answer usefully (no connection, a timeout, 5xx, throttling
that outlasted the client's own retries) from one that answered no (a refused condition, a
validation error): the first is worth waiting out, the second is not.
"""

from __future__ import annotations

import asyncio

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

# Throttling as the three services spell it (botocore's standard retry mode knows these too).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "LimitExceededException",
        "SlowDown",
    }
)
CONDITION_FAILED = "ConditionalCheckFailedException"
#: A DynamoDB transaction refused whole (a conflicting write to one of its items, throttling).
TRANSACTION_CANCELED = "TransactionCanceledException"
#: The queue (SQS) or the table (DynamoDB) named in the call does not exist.
QUEUE_MISSING_CODES = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
TABLE_MISSING = "ResourceNotFoundException"
#: The caller is not allowed this call on this resource (IAM): a permission to grant.
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
# Credentials that are missing, wrong or expired, as the services and botocore name it: no
# call would succeed until someone fixes them.
CREDENTIAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSecurity",
        "AuthFailure",
        "NoCredentialsError",
        "PartialCredentialsError",
    }
)


def error_field(exc: ClientError, name: str) -> str | None:
    """A member of the error's ``Error`` structure (``Code``, ``Message``, ``Reason``, ...)."""
    value = exc.response.get("Error", {}).get(name)
    return str(value) if value else None


def error_code(exc: BaseException) -> str | None:
    """The API error code of a ``ClientError`` (``None`` for anything else)."""
    if isinstance(exc, ClientError):
        return error_field(exc, "Code") or "UnknownError"
    return None


def error_message(exc: BaseException) -> str:
    """The API error message of a ``ClientError`` (the exception's text otherwise)."""
    if isinstance(exc, ClientError):
        return error_field(exc, "Message") or str(exc)
    return str(exc)


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def is_throttling(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


def is_unavailable(exc: BaseException) -> bool:
    """True when the dependency did not answer usefully: worth waiting out, not a verdict."""
    if isinstance(exc, ClientError):
        return is_throttling(exc) or http_status(exc) >= 500
    return isinstance(
        exc, BotoCoreError | aiohttp.ClientError | asyncio.TimeoutError | TimeoutError | OSError
    )


def describe(exc: BaseException) -> str:
    """A short name for logs and metrics labels: the error code, else the exception class."""
    return error_code(exc) or type(exc).__name__


def is_ambiguous(exc: BaseException) -> bool:
    """Did a call fail *after* its request may have been written, so that the service may
    have acted on it without our seeing the answer? A read timeout, a connection closed or
    reset after it was made, the caller's own deadline. Not a connect failure or a connect
    timeout (nothing was written), nor any answer (an error the service sent is an answer)."""
    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError):
        return False
    if isinstance(exc, ReadTimeoutError | ConnectionClosedError | asyncio.TimeoutError):
        return True
    return isinstance(
        exc,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ServerTimeoutError,
    )
