"""The broker seam: carries committed events between hub processes.

A broker moves `(seq, payload)` messages on one channel per session. It is a fast path,
not the source of truth: the event log in PostgreSQL is. The hub is correct with any
broker that keeps these promises, and no stronger ones are assumed:

- **At most once.** A message may be lost (Redis pub/sub drops messages when a
  subscriber disconnects or falls behind). The hub detects the missing seq and repairs it
  from the log, so a lost message costs latency, never an event.
- **Per-publisher order.** Messages published by one process on one channel reach a
  subscriber in publish order. Different publishers interleave arbitrarily; the hub
  orders by seq.
- **Origin.** Every message carries the publishing node's id, so a node can skip its own
  messages (it delivered them locally already).
- **Subscription.** Messages published before `subscribe` returns may or may not arrive.
  After a reconnect the broker resubscribes every channel it held and calls the
  `on_resubscribed` callback for each, so the hub can repair what was published while it
  was away. `on_reconnected` callbacks run once per reconnect (the hub counts them).
- **Failure.** `publish` raises `BrokerUnavailable` when it cannot hand the message over;
  the caller counts it and relies on repair. `healthy()` says whether the broker is
  connected now; background failures are logged and surface in `/readyz`.
- **Handlers** are called on the event loop, must not block and must not raise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from .errors import Unavailable

MessageHandler = Callable[[str, int, bytes], None]  # (origin node id, seq, payload)
ResubscribedCallback = Callable[[str], None]  # channel
ReconnectedCallback = Callable[[], None]


class BrokerUnavailable(Unavailable):
    pass


class Broker(Protocol):
    node_id: str

    async def start(self) -> None:
        """Connect and start background work."""
        ...

    async def close(self) -> None:
        """Stop background work and drop every subscription."""
        ...

    async def subscribe(self, channel: str, handler: MessageHandler) -> None:
        """Deliver the channel's messages to `handler` until `unsubscribe`."""
        ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(self, channel: str, seq: int, payload: bytes) -> None:
        """Hand one message to every subscriber of `channel`, this node's included."""
        ...

    async def publish_many(self, messages: Sequence[tuple[str, int, bytes]]) -> None:
        """`publish` each `(channel, seq, payload)` in order, in one round trip if it can."""
        ...

    def on_resubscribed(self, callback: ResubscribedCallback) -> None: ...

    def on_reconnected(self, callback: ReconnectedCallback) -> None: ...

    def healthy(self) -> bool: ...

    def last_error(self) -> str | None: ...


def session_channel(session_pk: int) -> str:
    return f"session:{session_pk}"
