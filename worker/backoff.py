"""The one backoff formula: capped exponential growth with full jitter.

Every retry loop in the worker (status writes held through an outage, acknowledgements, receive
failures, redelivery delays) draws its delay here, so the shape is the same everywhere and a
test of this function covers all of them. (The send's in-process retries use tenacity's
``wait_random_exponential``, which is this formula; the JSON API client uses botocore's own.)
"""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_ceiling_s(attempt: int, base_s: float, max_s: float) -> float:
    """``min(max_s, base_s * 2 ** (attempt - 1))`` for attempt 1, 2, ...; never negative."""
    exponent = min(max(0, attempt - 1), 62)  # 2**62 already dwarfs any cap
    return max(0.0, min(max_s, base_s * 2.0**exponent))


def compute_backoff_s(
    attempt: int,
    base_s: float,
    max_s: float,
    *,
    jitter: bool = True,
    rand: Callable[[], float] = random.random,
) -> float:
    """The delay before retry ``attempt``: full jitter (uniform in 0..ceiling) by default."""
    ceiling = backoff_ceiling_s(attempt, base_s, max_s)
    return rand() * ceiling if jitter else ceiling
