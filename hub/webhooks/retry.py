"""The retry schedule: exponential backoff with jitter, then the event is given up.

After failed attempt n (1, 2, …) the next waits `base × 3^(n−1)` seconds, at most an
hour, each delay drawn at random within ±25 % so that endpoints that failed together do
not retry together. With the default base (`HUB_WEBHOOK_RETRY_BASE=5`) and 8 attempts
(`HUB_WEBHOOK_MAX_ATTEMPTS`): 5 s, 15 s, 45 s, 2¼ min, 6¾ min, 20¼ min, 1 h, then the
event is marked failed (about 1 h 30 min after the first attempt) and the next event of
the session goes out. `docs/integration.md` shows the same table.
"""

from __future__ import annotations

import random

FACTOR = 3.0
MAX_DELAY = 3600.0
JITTER = 0.25


def nominal_delay(attempt: int, base: float) -> float:
    """The delay after failed attempt `attempt` (1-based), before jitter."""
    return min(base * FACTOR ** (attempt - 1), MAX_DELAY)


def retry_delay(attempt: int, base: float, rng: random.Random | None = None) -> float:
    spread = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return nominal_delay(attempt, base) * spread


def schedule(base: float, max_attempts: int) -> list[float]:
    """Nominal delays between the attempts of one event (one fewer than the attempts)."""
    return [nominal_delay(n, base) for n in range(1, max_attempts)]
