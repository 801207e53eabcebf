"""Reconnect delays: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int, base: float = 0.5, cap: float = 30.0, rand: Callable[[], float] = random.random
) -> float:
    """A uniform delay in [0, min(cap, base * 2**attempt)) seconds.

    Full jitter spreads a crowd of clients that lost the same server over the whole
    window instead of sending them back in waves (the AWS architecture blog's analysis).
    """
    ceiling: float = min(cap, base * 2.0 ** min(attempt, 30))
    return rand() * ceiling
