"""In-process broker: the default when REDIS_URL is unset (one hub process).

Several `MemoryBroker`s may share one `MemoryBus`, which lets tests run two hub
instances in one process against the same contract as the Redis broker.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence

from .broker import MessageHandler, ReconnectedCallback, ResubscribedCallback

log = logging.getLogger("hub.broker")


class MemoryBus:
    def __init__(self) -> None:
        self.subscribers: dict[str, dict[str, MessageHandler]] = defaultdict(dict)


class MemoryBroker:
    def __init__(self, bus: MemoryBus | None = None, node_id: str | None = None):
        self.bus = bus or MemoryBus()
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self._callbacks: list[ResubscribedCallback] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for handlers in self.bus.subscribers.values():
            handlers.pop(self.node_id, None)

    async def subscribe(self, channel: str, handler: MessageHandler) -> None:
        self.bus.subscribers[channel][self.node_id] = handler

    async def unsubscribe(self, channel: str) -> None:
        handlers = self.bus.subscribers.get(channel)
        if handlers is not None:
            handlers.pop(self.node_id, None)
            if not handlers:
                del self.bus.subscribers[channel]

    async def publish(self, channel: str, seq: int, payload: bytes) -> None:
        self._deliver(channel, seq, payload)

    async def publish_many(self, messages: Sequence[tuple[str, int, bytes]]) -> None:
        # Synchronously, message by message: no coroutine per message on the commit path.
        for channel, seq, payload in messages:
            self._deliver(channel, seq, payload)

    def _deliver(self, channel: str, seq: int, payload: bytes) -> None:
        for handler in list(self.bus.subscribers.get(channel, {}).values()):
            try:
                handler(self.node_id, seq, payload)
            except Exception:  # a handler must not raise; if one does, the others still get it
                log.exception("broker handler failed", extra={"channel": channel})

    def on_resubscribed(self, callback: ResubscribedCallback) -> None:
        self._callbacks.append(callback)

    def on_reconnected(self, callback: ReconnectedCallback) -> None:
        return None  # never disconnects

    def healthy(self) -> bool:
        return True

    def last_error(self) -> str | None:
        return None
