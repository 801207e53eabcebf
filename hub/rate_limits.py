"""Rate limits per user and per account, beside the per-connection ones.

A connection's own token bucket (`HUB_RATE_LIMIT`) stops one socket from flooding, but a
user may hold `HUB_MAX_CONNECTIONS_PER_USER` sockets and an account many users. Here are
the token buckets keyed by who is asking, so that the sum over a user's (or an account's)
sockets or requests is capped too:

- `Bucket`: a token bucket that takes any cost and says how long until a refused cost
  would fit (the `Retry-After` of HTTP).
- `BucketTable`: buckets by key, bounded in memory: a bucket that has refilled is the same
  as none, so it is forgotten when the table grows.
- `KeyedLimits`: one table per user and one per account; a cost is taken from both or
  from neither.
- `FrameLimits`: inbound WebSocket frames of a connection against its own bucket, its
  user's and its account's (`HUB_USER_RATE_LIMIT`, `HUB_ACCOUNT_RATE_LIMIT`).

The buckets live in this process: with several hub processes a user may send up to the
limit on each process it is connected to (connection counts, by contrast, are shared
through the presence; see `docs/auth.md`). A refusal costs one dictionary lookup and no
I/O, so a flood is refused as cheaply as possible.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .config import Settings


class Bucket:
    """`capacity` tokens, refilled at `rate` a second."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float | None = None):
        self.rate = rate
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic() if now is None else now

    def refill(self, now: float) -> float:
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.capacity:  # not min(): this runs for every frame, three times
            tokens = self.capacity
        self.tokens = tokens
        self.stamp = now
        return tokens

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` fits (0: it fits now); a cost above the capacity is
        treated as the whole capacity, so that it fits once the bucket is full."""
        missing = min(cost, self.capacity) - self.refill(now)
        return 0.0 if missing <= 0 else missing / self.rate

    def has_one(self, now: float) -> bool:
        """`wait(1.0, now) <= 0` (refilled, one token is there), for the per-frame check
        without the division and the extra calls of `wait`."""
        tokens = self.refill(now)
        return tokens >= 1.0 or tokens >= self.capacity

    def take(self, cost: float = 1.0, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.wait(cost, now) > 0:
            return False
        self.tokens -= cost
        return True

    def full(self, now: float) -> bool:
        return self.refill(now) >= self.capacity - 1


class BucketTable:
    """Buckets by key, created full on first use. At most `max_keys` are kept: when the
    table grows past it, the buckets that have refilled (the same as absent) are dropped,
    then, if that is not enough, the oldest (which only ever makes a limit more lenient)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000):
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[object, Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def get(self, key: object, now: float) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            bucket = self._buckets[key] = Bucket(self.rate, self.burst, now)
        return bucket

    def _prune(self, now: float) -> None:
        for key in [key for key, bucket in self._buckets.items() if bucket.full(now)]:
            del self._buckets[key]
        excess = len(self._buckets) - self.max_keys // 2
        for key in list(self._buckets)[: max(excess, 0)]:
            del self._buckets[key]


@dataclass(frozen=True)
class Refused:
    """Which limit refused (`scope` "user" or "account", and its setting) and how long
    until the same cost would be taken."""

    scope: str
    setting: str
    retry_after: float


class KeyedLimits:
    """A user's bucket and its account's: a cost is taken from both, or from neither."""

    def __init__(
        self,
        user: tuple[float, float],
        account: tuple[float, float],
        settings: tuple[str, str] = ("user", "account"),
    ):
        self.users = BucketTable(*user)
        self.accounts = BucketTable(*account)
        self.settings = settings

    def buckets(self, account: str, user: str, now: float) -> tuple[Bucket, Bucket]:
        return self.users.get((account, user), now), self.accounts.get(account, now)

    def take(self, account: str, user: str, cost: float = 1.0, now: float | None = None) -> Refused | None:
        now = time.monotonic() if now is None else now
        user_bucket, account_bucket = self.buckets(account, user, now)
        return take_all(
            ((user_bucket, "user", self.settings[0]), (account_bucket, "account", self.settings[1])),
            cost,
            now,
        )


def take_all(buckets: tuple[tuple[Bucket, str, str], ...], cost: float, now: float) -> Refused | None:
    """Take `cost` from every bucket if each has it; else the refusal of the one that
    makes the caller wait longest, and nothing taken."""
    worst: Refused | None = None
    for bucket, scope, setting in buckets:
        wait = bucket.wait(cost, now)
        if wait > 0 and (worst is None or wait > worst.retry_after):
            worst = Refused(scope, setting, wait)
    if worst is None:
        for bucket, _, _ in buckets:
            bucket.tokens -= cost
    return worst


class FrameLimits:
    """Inbound WebSocket frames: each takes one token from the connection's bucket, its
    user's and its account's (on this process)."""

    def __init__(self, settings: Settings):
        assert settings.user_rate_limit is not None and settings.user_rate_burst is not None
        assert settings.account_rate_limit is not None and settings.account_rate_burst is not None
        self.keyed = KeyedLimits(
            (settings.user_rate_limit, settings.user_rate_burst),
            (settings.account_rate_limit, settings.account_rate_burst),
            ("HUB_USER_RATE_LIMIT", "HUB_ACCOUNT_RATE_LIMIT"),
        )

    def take(self, connection: Bucket, account: str, user: str, now: float | None = None) -> Refused | None:
        now = time.monotonic() if now is None else now
        user_bucket, account_bucket = self.keyed.buckets(account, user, now)
        # Every frame comes here: the common case (all three have a token) builds nothing.
        if connection.has_one(now) and user_bucket.has_one(now) and account_bucket.has_one(now):
            connection.tokens -= 1.0
            user_bucket.tokens -= 1.0
            account_bucket.tokens -= 1.0
            return None
        return take_all(
            (
                (connection, "connection", "HUB_RATE_LIMIT"),
                (user_bucket, "user", "HUB_USER_RATE_LIMIT"),
                (account_bucket, "account", "HUB_ACCOUNT_RATE_LIMIT"),
            ),
            1.0,
            now,
        )

    def rested(self, connection: Bucket, account: str, user: str) -> bool:
        """Whether every bucket the connection draws on has refilled: it slowed down."""
        now = time.monotonic()
        return all(bucket.full(now) for bucket in (connection, *self.keyed.buckets(account, user, now)))
