"""Redis pub/sub broker: one channel per session, shared by every hub process.

Keeps the promises of `hub.broker` (at most once, per-publisher order, origin, resubscribe
after reconnect) and nothing more; the event log repairs whatever Redis drops.

- **Channels.** `<prefix><channel>`, e.g. `hub:session:42`. Subscribed while this process
  has a room open for the session (the hub subscribes in `Rooms.open` and unsubscribes when
  the room is released). With `sharded=True` the broker uses Redis 7 sharded pub/sub
  (`SSUBSCRIBE`/`SPUBLISH`) on this one node; on a Redis Cluster, where each channel lives
  on its slot's shard, `hub.broker_redis_cluster.RedisClusterBroker` is the broker.
- **Message.** `<origin node id>\\n<seq>\\n<payload>`: a receiver learns the origin and the
  seq from the first two lines without decoding the JSON payload.
- **Subscriber connection.** One dedicated connection speaks RESP itself (`SubscriberLink`),
  so that every reconnect is seen and handled here rather than hidden by a client
  library. A listener task owns it: on any failure it marks the broker unhealthy, waits a
  jittered, growing backoff, reconnects, resubscribes every channel, then reports the
  reconnect (`on_reconnected`) and calls `on_resubscribed` for each channel so the hub
  repairs what was published meanwhile. The task catches everything but cancellation, so
  it cannot die silently; `healthy()` is False while it is not connected.
- **Publishing** goes through a redis-py client (its own pool, `RedisPublisher`, shared
  with the Redis Cluster broker); a failure raises `BrokerUnavailable` and the
  subscribers repair from the log.

Nothing here queues: messages are dispatched to handlers as they are read.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .broker import BrokerUnavailable, MessageHandler, ReconnectedCallback, ResubscribedCallback
from .redis_link import RedisAddress, SubscriberLink

log = logging.getLogger("hub.broker")


def encode_message(origin: str, seq: int, payload: bytes) -> bytes:
    return b"%s\n%d\n%s" % (origin.encode(), seq, payload)


def decode_message(raw: bytes) -> tuple[str, int, bytes]:
    origin, seq, payload = raw.split(b"\n", 2)
    return origin.decode(), int(seq), payload


def dispatch_message(handler: MessageHandler | None, name: bytes, raw: bytes) -> None:
    """Decode one message read from Redis and hand it over; nothing escapes."""
    if handler is None:
        return  # a message that raced our unsubscribe
    try:
        origin, seq, payload = decode_message(raw)
    except ValueError:
        log.warning("malformed broker message dropped", extra={"channel": name.decode()})
        return
    try:
        handler(origin, seq, payload)
    except Exception:
        log.exception("broker handler failed", extra={"channel": name.decode()})


class RedisPublisher:
    """Publishing through a redis-py client: a `Redis`, or a `RedisCluster` that routes
    each `SPUBLISH` to the master serving its channel's slot and follows redirections."""

    def __init__(self, node_id: str, prefix: str, command: str):
        self.node_id = node_id
        self.prefix = prefix
        self.command = command
        self.client: Any = None  # set by the broker's start, cleared by its close

    async def publish(self, channel: str, seq: int, payload: bytes) -> None:
        if self.client is None:
            raise BrokerUnavailable("broker not started")
        message = encode_message(self.node_id, seq, payload)
        try:
            try:
                await self.client.execute_command(self.command, self.prefix + channel, message)
            except RedisConnectionError:
                # A pooled connection left over from before a Redis restart: try a fresh
                # one once. Publishing twice is harmless (receivers drop seqs they have).
                await self.client.execute_command(self.command, self.prefix + channel, message)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def publish_many(self, messages: Sequence[tuple[str, int, bytes]]) -> None:
        """One pipelined round trip (per node): under load the publisher never waits per event."""
        if self.client is None:
            raise BrokerUnavailable("broker not started")

        async def send() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for channel, seq, payload in messages:
                    message = encode_message(self.node_id, seq, payload)
                    pipe.execute_command(self.command, self.prefix + channel, message)
                await pipe.execute()

        try:
            try:
                await send()
            except RedisConnectionError:
                await send()  # a stale pooled connection after a restart; see `publish`
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc


class RedisBrokerCommon:
    """What both Redis brokers (one server, a cluster) do alike: publish through a
    `RedisPublisher`, keep callbacks, the last error and the subscribed channels."""

    prefix: str
    _publisher: RedisPublisher
    _handlers: dict[str, MessageHandler]
    _resubscribed: list[ResubscribedCallback]
    _reconnected: list[ReconnectedCallback]
    _error: str | None

    async def publish(self, channel: str, seq: int, payload: bytes) -> None:
        await self._publisher.publish(channel, seq, payload)

    async def publish_many(self, messages: Sequence[tuple[str, int, bytes]]) -> None:
        await self._publisher.publish_many(messages)

    def on_resubscribed(self, callback: ResubscribedCallback) -> None:
        self._resubscribed.append(callback)

    def on_reconnected(self, callback: ReconnectedCallback) -> None:
        self._reconnected.append(callback)

    def last_error(self) -> str | None:
        return self._error

    def channels(self) -> list[str]:
        """Channels (without prefix) this process is subscribed to."""
        return [name[len(self.prefix) :] for name in self._handlers]


class RedisBroker(RedisBrokerCommon):
    def __init__(
        self,
        url: str,
        prefix: str = "hub:",
        sharded: bool = False,
        node_id: str | None = None,
        backoff_min: float = 0.05,
        backoff_max: float = 2.0,
        health_interval: float = 5.0,
        subscribe_timeout: float = 2.0,
    ):
        self.node_id = node_id or uuid.uuid4().hex[:12]
        if "\n" in self.node_id:
            raise ValueError("node id must not contain a newline")
        self.url = url
        self.prefix = prefix
        self.sharded = sharded
        self._address = RedisAddress.from_url(url)
        self._publisher = RedisPublisher(self.node_id, prefix, "SPUBLISH" if sharded else "PUBLISH")
        self._backoff = (backoff_min, backoff_max)
        self._health_interval = health_interval
        self._subscribe_timeout = subscribe_timeout
        self._handlers: dict[str, MessageHandler] = {}  # full Redis channel name -> handler
        self._resubscribed: list[ResubscribedCallback] = []
        self._reconnected: list[ReconnectedCallback] = []
        self._link: SubscriberLink | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: str | None = None
        self._connected_once = asyncio.Event()
        self.reconnects = 0
        self.client_name = f"hub-sub-{self.node_id}".replace(" ", "_")

    # life cycle

    async def start(self, connect_timeout: float = 3.0) -> None:
        """Start the listener and wait briefly for it; a Redis that is down is not fatal."""
        self._publisher.client = aioredis.Redis.from_url(
            self.url, socket_connect_timeout=2.0, socket_timeout=5.0
        )
        self._task = asyncio.create_task(self._listen_forever(), name="broker-listener")
        self._task.add_done_callback(self._listener_done)
        try:
            await asyncio.wait_for(self._connected_once.wait(), connect_timeout)
        except TimeoutError:
            log.warning(
                "redis not reachable at start; retrying in the background", extra={"error": self._error}
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._link is not None:
            await self._link.close()
            self._link = None
        self._handlers.clear()
        client, self._publisher.client = self._publisher.client, None
        if client is not None:
            await client.aclose()

    # the Broker protocol

    async def subscribe(self, channel: str, handler: MessageHandler) -> None:
        name = self.prefix + channel
        self._handlers[name] = handler
        link = self._link
        if link is None or not link.connected:
            return  # the listener subscribes it on (re)connect and the hub repairs then
        try:
            await link.subscribe(name, self._subscribe_timeout)
        except (OSError, TimeoutError, ConnectionError) as exc:
            # Still registered: the next connection subscribes it, then `on_resubscribed`.
            log.warning("subscribe not confirmed", extra={"channel": name, "error": repr(exc)})

    async def unsubscribe(self, channel: str) -> None:
        name = self.prefix + channel
        if self._handlers.pop(name, None) is None:
            return
        link = self._link
        if link is not None and link.connected:
            try:
                link.unsubscribe(name)
            except (OSError, ConnectionError):
                pass  # the connection is going away; its subscriptions go with it

    def healthy(self) -> bool:
        link = self._link
        task_alive = self._task is not None and not self._task.done()
        return task_alive and link is not None and link.connected

    # the listener

    async def _listen_forever(self) -> None:
        attempt = 0
        while True:
            link = SubscriberLink(
                self._address,
                self.sharded,
                self._dispatch,
                self._health_interval,
                name=self.client_name,
            )
            try:
                await link.connect()
                self._link = link
                await self._resubscribe_all(link)
                self._error = None
                attempt = 0
                if self._connected_once.is_set():
                    self._report_reconnect()
                self._connected_once.set()
                await link.run()  # returns or raises when the connection is lost
                raise ConnectionError("subscriber connection closed")
            except asyncio.CancelledError:
                await link.close()
                raise
            except Exception as exc:  # anything: log it, back off, reconnect
                self._error = f"{type(exc).__name__}: {exc}"
                was_up = link.connected
                await link.close()
                attempt += 1
                delay = self._delay(attempt)
                level = logging.WARNING if was_up or attempt == 1 else logging.INFO
                log.log(
                    level,
                    "redis subscriber connection lost; reconnecting",
                    extra={"error": self._error, "attempt": attempt, "retry_in": round(delay, 3)},
                )
                await asyncio.sleep(delay)

    async def _resubscribe_all(self, link: SubscriberLink) -> None:
        names = list(self._handlers)
        if names:
            await link.subscribe_many(names, timeout=max(self._subscribe_timeout, 5.0))

    def _report_reconnect(self) -> None:
        self.reconnects += 1
        names = list(self._handlers)
        log.warning(
            "redis subscriber reconnected; resubscribed and repairing",
            extra={"channels": len(names), "reconnects": self.reconnects},
        )
        for callback in self._reconnected:
            try:
                callback()
            except Exception:
                log.exception("reconnect callback failed")
        for name in names:
            channel = name[len(self.prefix) :]
            for resubscribed in self._resubscribed:
                try:
                    resubscribed(channel)
                except Exception:
                    log.exception("resubscribe callback failed", extra={"channel": name})

    def _delay(self, attempt: int) -> float:
        low, high = self._backoff
        ceiling = min(high, low * 2 ** min(attempt, 16))
        return random.uniform(ceiling / 2, ceiling)  # jitter: processes don't reconnect in step

    def _dispatch(self, name: bytes, raw: bytes) -> None:
        dispatch_message(self._handlers.get(name.decode()), name, raw)

    def _listener_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._error = f"listener stopped: {task.exception()!r}"
            log.error("redis listener stopped", exc_info=task.exception())
