"""AWS Signature Version 4 for the hot path's requests: ``POST /`` with a JSON body.

It computes what botocore's ``SigV4Auth`` computes for that one request shape (a test checks
the two agree header for header), without building an ``AWSRequest``: the signing key depends
only on the secret, the day, the region and the service, so it is derived once a day and
reused, and a request costs two SHA-256 digests and one HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Protocol

ALGORITHM = "AWS4-HMAC-SHA256"


class Credentials(Protocol):
    """Frozen credentials: botocore's ``ReadOnlyCredentials`` (or any object with these)."""

    @property
    def access_key(self) -> str: ...

    @property
    def secret_key(self) -> str: ...

    @property
    def token(self) -> str | None: ...


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def canonical_host(scheme: str, host: str, port: int | None) -> str:
    """The ``host`` header as signed (and as aiohttp sends it): lower-case, an IPv6 literal in
    brackets, the port only when it is not the scheme's default; as botocore's
    ``auth._host_from_url``."""
    host = host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return host if port in (None, default) else f"{host}:{port}"


class SigV4Signer:
    def __init__(self, region: str, service: str) -> None:
        self._region = region
        self._service = service
        self._key_for: tuple[str, str] | None = None  # (secret, day) of the cached key
        self._key = b""

    def _signing_key(self, secret: str, day: str) -> bytes:
        if self._key_for != (secret, day):
            key = _hmac(("AWS4" + secret).encode(), day)
            key = _hmac(key, self._region)
            key = _hmac(key, self._service)
            self._key = _hmac(key, "aws4_request")
            self._key_for = (secret, day)
        return self._key

    def sign(
        self,
        credentials: Credentials,
        host: str,
        headers: dict[str, str],
        body: bytes,
        now: datetime | None = None,
    ) -> dict[str, str]:
        """The headers to add to a ``POST /`` with ``headers`` (lower-case names, all signed)
        and ``body``: ``X-Amz-Date``, ``Authorization`` and, with a session token,
        ``X-Amz-Security-Token``."""
        amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        signed = {**headers, "host": host, "x-amz-date": amz_date}
        if credentials.token:
            signed["x-amz-security-token"] = credentials.token
        names = sorted(signed)
        canonical_headers = "".join(f"{name}:{' '.join(signed[name].split())}\n" for name in names)
        signed_names = ";".join(names)
        canonical_request = (
            f"POST\n/\n\n{canonical_headers}\n{signed_names}\n{hashlib.sha256(body).hexdigest()}"
        )
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        string_to_sign = (
            f"{ALGORITHM}\n{amz_date}\n{scope}\n"
            f"{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        )
        signature = hmac.new(
            self._signing_key(credentials.secret_key, day),
            string_to_sign.encode(),
            hashlib.sha256,
        ).hexdigest()
        added = {
            "X-Amz-Date": amz_date,
            "Authorization": f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}",
        }
        if credentials.token:
            added["X-Amz-Security-Token"] = credentials.token
        return added
