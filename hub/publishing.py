"""Events a client writes, whether over its WebSocket or by HTTP publish: one set of rules.

Both paths parse with `hub.events.parse_event`, build the append request here, and rate
limit with the same numbers (`HUB_RATE_LIMIT` per second, `HUB_RATE_BURST`). The
idempotency key is the sender's user id and its client id, so the same `id` sent by the
same user over a socket and over HTTP is one event.
"""

from __future__ import annotations

from collections import OrderedDict

from .connection import Principal
from .events import ClientEvent
from .lifecycle import ACTIONS
from .rate_limits import Bucket
from .store import AppendRequest

_KEY_SEPARATOR = "\x1f"  # cannot occur in a user id or client id a token or frame can carry


def dedupe_key(user_id: str, client_id: str | None) -> str | None:
    """The store's idempotency key for an event a user sent with `client_id`."""
    if client_id is None:
        return None
    return f"{user_id}{_KEY_SEPARATOR}{client_id}"


def client_append(session_pk: int, event: ClientEvent, principal: Principal) -> AppendRequest:
    """The append request for a validated client event, the same for every path."""
    data = event.data
    if event.type == ACTIONS["end"].event_type:
        data = {**data, **ACTIONS["end"].data}  # clients end a session; cancelling is HTTP's
    return AppendRequest(
        session_pk,
        event.type,
        data,
        principal.actor,
        dedupe_key=dedupe_key(principal.user_id, event.client_id),
    )


class PublishLimiter:
    """Per-user token buckets for HTTP publishing, as a WebSocket connection has its own.

    Bounded: the least recently seen users are forgotten first (a forgotten user starts
    again with a full bucket, which only ever errs on the generous side).
    """

    def __init__(self, rate: float, burst: int, max_users: int = 10_000):
        self.rate = rate
        self.burst = burst
        self.max_users = max_users
        self._buckets: OrderedDict[tuple[str, str], Bucket] = OrderedDict()

    def take(self, principal: Principal, count: int = 1) -> bool:
        """Take `count` tokens at once, or none: a batch is accepted or refused whole."""
        key = (principal.account_id, principal.user_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Bucket(self.rate, self.burst)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_users:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(count)

    def retry_after(self, principal: Principal, count: int = 1) -> float:
        """Seconds until `count` tokens are there again."""
        bucket = self._buckets.get((principal.account_id, principal.user_id))
        if bucket is None or self.rate <= 0:
            return 1.0
        missing = min(float(count), bucket.capacity) - bucket.tokens
        return max(0.0, missing / self.rate)
