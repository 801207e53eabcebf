"""Redis Cluster broker: sharded pub/sub routed to the master serving each channel's slot.

Keeps the promises of `hub.broker` exactly as `hub.broker_redis.RedisBroker` does, on a
cluster (`HUB_REDIS_CLUSTER=1`, `REDIS_URL` naming any node):

- **Publishing** is `SPUBLISH` through redis-py's `RedisCluster` (`RedisPublisher`), which
  routes by slot and follows MOVED/ASK and failovers by itself. A publish that fails
  (the slot's master just died) raises `BrokerUnavailable`; subscribers repair from the log.
- **Subscribing** needs one connection per master serving a slot of a subscribed
  channel: `SSUBSCRIBE` is accepted only by the slot's own shard. Each is a
  `SubscriberLink` (so every loss is seen here) with a reader task. One manager task
  owns the placement: it asks the cluster for its slot map (`hub.redis_cluster`), opens
  the links it needs, subscribes each channel on its slot's master and closes links no
  longer needed. It runs again whenever a link is lost, a node answers MOVED (or
  CLUSTERDOWN) to an `SSUBSCRIBE`, or a node unsubscribes a channel by itself (Redis
  does this when the channel's slot migrates away), and every `refresh_interval` seconds.
- **Repair.** Every channel the manager (re)subscribes is reported to `on_resubscribed`,
  so the hub reads what was published meanwhile from the log; each lost link that is
  restored counts once in `on_reconnected`. A failover therefore costs latency for the
  channels of the dead master's slots (until its replica is promoted and the manager
  subscribes there), never an event.
- **Health.** `healthy()` is False while the slot map is unknown, any needed link is down
  or any channel is not subscribed where it should be; `last_error()` says why.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from .broker import MessageHandler, ReconnectedCallback, ResubscribedCallback
from .broker_redis import RedisBrokerCommon, RedisPublisher, dispatch_message
from .redis_cluster import SlotMap, SlotMoved, fetch_slot_map, key_slot, redirect_slot
from .redis_link import RedisAddress, RedisReplyError, SubscriberLink

log = logging.getLogger("hub.broker")


@dataclass
class _Shard:
    """The subscriber connection to one master, and its reader."""

    address: RedisAddress
    link: SubscriberLink | None = None
    reader: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self.link is not None and self.link.connected

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
            self.reader = None
        if self.link is not None:
            await self.link.close()
            self.link = None


class RedisClusterBroker(RedisBrokerCommon):
    def __init__(
        self,
        url: str,
        prefix: str = "hub:",
        node_id: str | None = None,
        backoff_min: float = 0.05,
        backoff_max: float = 1.0,
        health_interval: float = 5.0,
        subscribe_timeout: float = 2.0,
        refresh_interval: float = 5.0,
    ):
        self.node_id = node_id or uuid.uuid4().hex[:12]
        if "\n" in self.node_id:
            raise ValueError("node id must not contain a newline")
        self.url = url
        self.prefix = prefix
        self.sharded = True
        self._seed = RedisAddress.from_url(url)
        self._publisher = RedisPublisher(self.node_id, prefix, "SPUBLISH")
        self._backoff = (backoff_min, backoff_max)
        self._health_interval = health_interval
        self._subscribe_timeout = subscribe_timeout
        self._refresh_interval = refresh_interval
        self._handlers: dict[str, MessageHandler] = {}  # full Redis channel name -> handler
        self._awaited: set[str] = set()  # placed for a `subscribe` still waiting: no repair
        self._resubscribed: list[ResubscribedCallback] = []
        self._reconnected: list[ReconnectedCallback] = []
        self._shards: dict[RedisAddress, _Shard] = {}
        self._slots: SlotMap | None = None
        self._stale = True  # ask the cluster for its slot map before placing anything
        self._settled = False  # every channel subscribed on its slot's master
        self._lost = 0  # links lost since the last time everything was placed
        self._wake = asyncio.Event()
        self._pass_done = asyncio.Event()  # replaced after each pass of the manager
        self._task: asyncio.Task[None] | None = None
        self._error: str | None = None
        self._mapped_once = asyncio.Event()
        self.reconnects = 0
        self.client_name = f"hub-sub-{self.node_id}".replace(" ", "_")

    # life cycle

    async def start(self, connect_timeout: float = 3.0) -> None:
        """Start the manager and wait briefly for a slot map; a cluster that is down is not fatal."""
        client = RedisCluster.from_url(self.url, socket_connect_timeout=2.0, socket_timeout=2.0)
        try:
            # Now rather than lazily: redis-py's RedisCluster (8.1) breaks when first
            # commands race to initialise it. Unreachable now: the first publish retries.
            await asyncio.wait_for(client.initialize(), connect_timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._error = f"{type(exc).__name__}: {exc}"
        self._publisher.client = client
        self._task = asyncio.create_task(self._manage_forever(), name="broker-cluster-manager")
        self._task.add_done_callback(self._manager_done)
        try:
            await asyncio.wait_for(self._mapped_once.wait(), connect_timeout)
        except TimeoutError:
            log.warning(
                "redis cluster not reachable at start; retrying in the background",
                extra={"error": self._error},
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for shard in self._shards.values():
            await shard.close()
        self._shards.clear()
        self._handlers.clear()
        client, self._publisher.client = self._publisher.client, None
        if client is not None:
            await client.aclose()

    # the Broker protocol

    async def subscribe(self, channel: str, handler: MessageHandler) -> None:
        name = self.prefix + channel
        self._handlers[name] = handler
        shard = self._shard_serving(name)
        if shard is not None and shard.link is not None and shard.up:
            try:
                await shard.link.subscribe(name, self._subscribe_timeout)
                return  # confirmed where it belongs: nothing to repair
            except SlotMoved:
                self._stale = True
            except (OSError, TimeoutError, ConnectionError) as exc:
                log.warning("subscribe not confirmed", extra={"channel": name, "error": repr(exc)})
        # Still registered: the manager places it (and reports it to `on_resubscribed`,
        # so the hub repairs whatever was published meanwhile); wait a little for that.
        self._wake.set()
        self._awaited.add(name)
        try:
            async with asyncio.timeout(self._subscribe_timeout):
                while not self._placed(name):
                    await self._pass_done.wait()
        except TimeoutError:
            log.warning("subscribe not placed yet; the manager keeps trying", extra={"channel": name})
        finally:
            self._awaited.discard(name)

    async def unsubscribe(self, channel: str) -> None:
        name = self.prefix + channel
        if self._handlers.pop(name, None) is None:
            return
        for shard in self._shards.values():
            if shard.link is not None and shard.up and name.encode() in shard.link.subscribed:
                try:
                    shard.link.unsubscribe(name)
                except (OSError, ConnectionError):
                    pass  # the connection is going away; its subscriptions go with it

    def healthy(self) -> bool:
        manager_alive = self._task is not None and not self._task.done()
        return manager_alive and self._slots is not None and self._settled

    # the manager

    async def _manage_forever(self) -> None:
        attempt = 0
        while True:
            self._wake.clear()
            try:
                self._settled = await self._place_everything()
            except Exception as exc:  # anything: log it, back off, try again
                self._settled = False
                self._stale = True
                self._note_error(exc)
            if self._settled:
                attempt = 0
                self._error = None
                timeout = self._refresh_interval
            else:
                attempt += 1
                timeout = self._delay(attempt)
            self._pass_done.set()
            self._pass_done = asyncio.Event()
            try:
                # Not `wait_for`: on 3.11 it can swallow a cancel that meets a set event.
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                self._stale = True  # periodically, or after a failure: ask the cluster again

    async def _place_everything(self) -> bool:
        if self._stale or self._slots is None:
            seeds = [self._seed, *(self._slots.nodes if self._slots else ())]
            fresh = await fetch_slot_map(seeds)
            if self._slots is not None and fresh.signature() != self._slots.signature():
                log.info("redis cluster topology changed", extra={"masters": len(fresh.masters())})
            self._slots, self._stale = fresh, False
            self._mapped_once.set()
        slots = self._slots
        wanted: dict[RedisAddress, list[str]] = {}
        for name in self._handlers:
            owner = slots.owner(key_slot(name))
            if owner is None:
                raise SlotMoved(f"no master serves the slot of {name}")
            wanted.setdefault(owner, []).append(name)
        for address in [a for a in self._shards if a not in wanted]:
            await self._shards.pop(address).close()
        placed_all = True
        restored: list[str] = []
        for address, names in wanted.items():
            shard = self._shards.setdefault(address, _Shard(address))
            if not shard.up:
                try:
                    await self._connect(shard)
                except (OSError, TimeoutError, ConnectionError, RedisReplyError) as exc:
                    self._note_error(exc, address)
                    placed_all = False
                    continue
            restored.extend(await self._subscribe_missing(shard, names))
            subscribed = shard.link.subscribed if shard.link is not None else set()
            placed_all = placed_all and all(n.encode() in subscribed for n in names)
        # A channel still subscribed on a master that no longer serves its slot: drop it there.
        for address, shard in self._shards.items():
            if shard.link is None or not shard.up:
                continue
            for raw in list(shard.link.subscribed):
                name = raw.decode()
                if name not in self._handlers or slots.owner(key_slot(name)) != address:
                    shard.link.unsubscribe(name)
        self._report(restored, placed_all)
        return placed_all

    async def _connect(self, shard: _Shard) -> None:
        await shard.close()
        link = SubscriberLink(
            shard.address,
            True,
            self._dispatch,
            self._health_interval,
            name=self.client_name,
            on_error=self._on_link_error,
            on_unsubscribed=self._on_link_unsubscribed,
        )
        await link.connect()
        shard.link = link
        shard.reader = asyncio.create_task(self._read(shard, link), name="broker-cluster-reader")

    async def _read(self, shard: _Shard, link: SubscriberLink) -> None:
        try:
            await link.run()
            error: BaseException = ConnectionError("subscriber connection closed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        await link.close()
        if shard.link is link:  # not replaced or closed on purpose meanwhile
            self._lost += 1
            self._stale = True
            self._settled = False
            self._note_error(error, shard.address, level=logging.WARNING)
            self._wake.set()

    async def _subscribe_missing(self, shard: _Shard, names: list[str]) -> list[str]:
        link = shard.link
        assert link is not None
        missing = [n for n in names if n.encode() not in link.subscribed]
        if not missing:
            return []
        results = await asyncio.gather(
            *(link.subscribe(n, self._subscribe_timeout) for n in missing), return_exceptions=True
        )
        done = [n for n, r in zip(missing, results, strict=True) if r is None]
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            self._note_error(failed[0], shard.address)
        return done

    def _report(self, restored: list[str], placed_all: bool) -> None:
        if placed_all and self._lost:
            lost, self._lost = self._lost, 0
            for _ in range(lost):
                self.reconnects += 1
                for callback in self._reconnected:
                    try:
                        callback()
                    except Exception:
                        log.exception("reconnect callback failed")
            log.warning(
                "redis cluster subscriptions restored; repairing",
                extra={"channels": len(self._handlers), "reconnects": self.reconnects},
            )
        for name in restored:
            if name not in self._handlers or name in self._awaited:
                continue
            channel = name[len(self.prefix) :]
            for resubscribed in self._resubscribed:
                try:
                    resubscribed(channel)
                except Exception:
                    log.exception("resubscribe callback failed", extra={"channel": name})

    # what the links tell us

    def _on_link_error(self, link: SubscriberLink, error: RedisReplyError) -> None:
        slot = redirect_slot(error)
        moved = SlotMoved(str(error))
        if slot is None or slot < 0:
            link.fail_pending(lambda name: True, moved)
        else:
            link.fail_pending(lambda name: key_slot(name) == slot, moved)
        self._error = f"{link.address.host}:{link.address.port}: {error}"
        self._stale = True
        self._settled = False
        self._wake.set()

    def _on_link_unsubscribed(self, link: SubscriberLink, name: bytes) -> None:
        if name.decode() in self._handlers:  # not ours to drop: its slot moved away
            self._stale = True
            self._settled = False
            self._wake.set()

    def _dispatch(self, name: bytes, raw: bytes) -> None:
        dispatch_message(self._handlers.get(name.decode()), name, raw)

    # helpers

    def _placed(self, name: str) -> bool:
        shard = self._shard_serving(name)
        return shard is not None and shard.link is not None and name.encode() in shard.link.subscribed

    def _shard_serving(self, name: str) -> _Shard | None:
        if self._slots is None:
            return None
        owner = self._slots.owner(key_slot(name))
        return self._shards.get(owner) if owner is not None else None

    def _note_error(
        self, exc: BaseException, address: RedisAddress | None = None, level: int = logging.INFO
    ) -> None:
        where = f"{address.host}:{address.port}: " if address is not None else ""
        self._error = f"{where}{type(exc).__name__}: {exc}"
        log.log(level, "redis cluster subscriber not placed; retrying", extra={"error": self._error})

    def _delay(self, attempt: int) -> float:
        low, high = self._backoff
        ceiling = min(high, low * 2 ** min(attempt, 16))
        return random.uniform(ceiling / 2, ceiling)  # jitter: processes don't retry in step

    def _manager_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._error = f"manager stopped: {task.exception()!r}"
            log.error("redis cluster broker manager stopped", exc_info=task.exception())
