"""``SMS_WORKER_RATE_LIMITS``: its syntax, and which entry is a rate-limit key's quota."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

DEFAULT_IDENTITY_KEY = "default"
#: The channel names a rate-limit key may end with (``IDENTITY/SMS``).
CHANNEL_SUFFIXES = frozenset({"SMS", "MMS"})


def rate_entries(raw: str) -> Iterator[tuple[str, float]]:
    """The ``IDENTITY=MPS`` entries of ``"default=20,+18005550100=3"``, in order (the
    worker's setting and the sandbox's ``--rate`` share the syntax)."""
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.rpartition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"rate limit entry {part!r} is not IDENTITY=MPS; "
                "write e.g. 'default=20,+18005550100=3'"
            )
        yield key.strip(), entry_mps(key.strip(), value.strip())


def entry_mps(key: str, raw_mps: object) -> float:
    try:
        return float(str(raw_mps))
    except ValueError:
        raise ValueError(f"rate limit for {key!r} is {raw_mps!r}, not a number") from None


def parse_rate_limits(raw: str | dict[str, float]) -> dict[str, float]:
    """Parse ``"default=20,+18005550100=3,pool-abc=100"`` into ``{identity: mps}``."""
    if isinstance(raw, dict):
        items = [(key, entry_mps(key, value)) for key, value in raw.items()]
    else:
        items = list(rate_entries(raw))
    limits: dict[str, float] = {}
    for key, mps in items:
        if not mps > 0:
            raise ValueError(f"rate limit for {key!r} must be > 0 messages per second")
        limits[key] = mps
    limits.setdefault(DEFAULT_IDENTITY_KEY, 20.0)
    return limits


def quota_for(limits: Mapping[str, float], key: str) -> float:
    """The quota (per second: messages, or an SMS's message parts) of a rate-limit key:
    ``IDENTITY`` (an MMS's) or ``IDENTITY/SMS`` (an SMS's, ``default/SMS`` without an
    identity). The first configured of: the channel's entry (``IDENTITY/MMS`` for a bare
    identity), the identity's, then ``default``. The one place a key's quota is decided."""
    identity, _, channel = key.rpartition("/")  # an ARN identity holds '/' itself
    if channel in CHANNEL_SUFFIXES:
        candidates: tuple[str, ...] = (key, identity)
    else:
        candidates = (f"{key}/MMS", key)
    for candidate in candidates:
        if candidate in limits:
            return limits[candidate]
    return limits[DEFAULT_IDENTITY_KEY]
