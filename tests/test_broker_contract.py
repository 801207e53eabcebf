"""The broker contract (hub/broker.py), run against the in-memory and the Redis broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from hub.broker import BrokerUnavailable
from hub.broker_memory import MemoryBroker, MemoryBus
from hub.broker_redis import RedisBroker, decode_message, encode_message
from hub.broker_redis_cluster import RedisClusterBroker
from hub.redis_link import RedisAddress, SubscriberLink
from tests.redis_tools import PrivateRedis, kill_subscribers, private_redis_server
from tests.support import free_port

Received = list[tuple[str, int, bytes]]

# Hangs fail fast: these tests take seconds, a stuck one must not eat the suite budget.
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    yield from private_redis_server()


@pytest.fixture(params=["memory", "redis", "redis-sharded", "redis-cluster"])
async def nodes(request: Any) -> AsyncIterator[Callable[[], Any]]:
    """A factory of brokers that share one bus: each is a 'process'."""
    made: list[Any] = []
    bus = MemoryBus()

    async def make() -> Any:
        if request.param == "memory":
            broker: Any = MemoryBroker(bus)
        elif request.param == "redis-cluster":
            url = request.getfixturevalue("redis_cluster_url")
            broker = RedisClusterBroker(url, prefix=request.getfixturevalue("redis_prefix"))
        else:
            base = request.getfixturevalue("redis_base")
            prefix = request.getfixturevalue("redis_prefix")
            broker = RedisBroker(base, prefix=prefix, sharded=request.param == "redis-sharded")
        await broker.start()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.close()


def collector() -> tuple[Received, Callable[[str, int, bytes], None]]:
    got: Received = []
    return got, lambda origin, seq, payload: got.append((origin, seq, payload))


async def until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def test_every_subscriber_gets_the_message_with_origin_and_seq(nodes):
    a, b = await nodes(), await nodes()
    got_a, handler_a = collector()
    got_b, handler_b = collector()
    await a.subscribe("session:1", handler_a)
    await b.subscribe("session:1", handler_b)
    assert a.healthy() and b.healthy() and a.node_id != b.node_id
    await a.publish("session:1", 7, b'{"type":"note","n":"\\n"}')
    await until(lambda: len(got_a) == 1 and len(got_b) == 1)
    assert got_a == got_b == [(a.node_id, 7, b'{"type":"note","n":"\\n"}')]


async def test_one_publisher_order_is_kept_and_channels_are_separate(nodes):
    a, b = await nodes(), await nodes()
    got, handler = collector()
    other, other_handler = collector()
    await b.subscribe("session:1", handler)
    await b.subscribe("session:2", other_handler)
    for seq in range(1, 201):
        await a.publish("session:1", seq, b"x")
    await until(lambda: len(got) == 200)
    assert [seq for _, seq, _ in got] == list(range(1, 201))
    assert other == []


async def test_publish_many_keeps_order_across_channels(nodes):
    a, b = await nodes(), await nodes()
    got, handler = collector()
    await b.subscribe("session:1", handler)
    await b.subscribe("session:2", handler)
    batch = [(f"session:{1 + seq % 2}", seq, b"p%d" % seq) for seq in range(1, 301)]
    await a.publish_many(batch)
    await until(lambda: len(got) == 300)
    if isinstance(a, RedisClusterBroker):
        # The promise is per channel; channels of different slots travel on connections
        # to different masters, so only a single-connection broker keeps the order across.
        for channel in ("session:1", "session:2"):
            mine = {seq for c, seq, _ in batch if c == channel}
            assert [s for _, s, _ in got if s in mine] == sorted(mine)
        return
    assert [(seq, payload) for _, seq, payload in got] == [(seq, p) for _, seq, p in batch]


async def test_unsubscribe_and_close_stop_delivery(nodes):
    a, b = await nodes(), await nodes()
    got, handler = collector()
    await b.subscribe("session:1", handler)
    await a.publish("session:1", 1, b"x")
    await until(lambda: len(got) == 1)
    await b.unsubscribe("session:1")
    await b.unsubscribe("session:1")  # twice is harmless
    await a.publish("session:1", 2, b"x")
    await asyncio.sleep(0.1)
    await b.subscribe("session:1", handler)
    await a.publish("session:1", 3, b"x")
    await until(lambda: len(got) == 2)
    await b.close()
    await a.publish("session:1", 4, b"x")
    await asyncio.sleep(0.1)
    assert [seq for _, seq, _ in got] == [1, 3]


async def test_a_raising_handler_does_not_stop_the_others(nodes):
    a, b = await nodes(), await nodes()
    got, handler = collector()

    def bad(origin: str, seq: int, payload: bytes) -> None:
        raise RuntimeError("handler bug")

    await a.subscribe("session:1", bad)
    await b.subscribe("session:1", handler)
    await a.publish("session:1", 1, b"x")
    await a.publish("session:1", 2, b"x")
    await until(lambda: len(got) == 2)
    assert a.healthy()


def test_message_format_carries_origin_and_seq_before_the_payload():
    raw = encode_message("node-a", 42, b'{"a":"b\\nc"}')
    assert raw.startswith(b"node-a\n42\n")
    assert decode_message(raw) == ("node-a", 42, b'{"a":"b\\nc"}')


@pytest.mark.parametrize("sharded", [False, True])
async def test_redis_subscriber_killed_reconnects_resubscribes_and_reports(redis_base, redis_prefix, sharded):
    node = f"{redis_prefix}n{uuid.uuid4().hex[:4]}"
    broker = RedisBroker(redis_base, prefix=redis_prefix, sharded=sharded, node_id=node)
    publisher = RedisBroker(redis_base, prefix=redis_prefix, sharded=sharded)
    await broker.start()
    await publisher.start()
    resubscribed: list[str] = []
    reconnects: list[int] = []
    broker.on_resubscribed(resubscribed.append)
    broker.on_reconnected(lambda: reconnects.append(1))
    got, handler = collector()
    await broker.subscribe("session:1", handler)
    await broker.subscribe("session:2", handler)
    try:
        assert kill_subscribers(redis_base, broker.client_name) == 1
        await until(lambda: len(reconnects) == 1)
        assert sorted(resubscribed) == ["session:1", "session:2"]
        assert broker.healthy() and broker.last_error() is None
        await publisher.publish("session:2", 5, b"after")
        await until(lambda: len(got) == 1)
        assert got[0][1:] == (5, b"after")
    finally:
        await broker.close()
        await publisher.close()


async def test_redis_down_is_unhealthy_then_recovers_by_itself(private_redis, redis_prefix):
    server = private_redis
    broker = RedisBroker(server.url, prefix=redis_prefix, backoff_max=0.3)
    try:
        await broker.start()
        reconnects: list[int] = []
        broker.on_reconnected(lambda: reconnects.append(1))
        got, handler = collector()
        await broker.subscribe("session:1", handler)
        server.stop()
        await until(lambda: not broker.healthy())
        assert broker.last_error()
        with pytest.raises(BrokerUnavailable):
            await broker.publish("session:1", 1, b"x")
        server.start()
        await until(lambda: broker.healthy(), timeout=5)
        assert reconnects == [1]
        await broker.publish("session:1", 2, b"x")
        await until(lambda: [seq for _, seq, _ in got] == [2])
    finally:
        await broker.close()


async def test_redis_unreachable_at_start_is_not_fatal(redis_prefix):
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0", prefix=redis_prefix)
    try:
        await broker.start(connect_timeout=0.3)
        assert not broker.healthy() and broker.last_error()
        await broker.subscribe("session:1", lambda *a: None)  # kept for when it connects
        assert broker.channels() == ["session:1"]
    finally:
        await broker.close()


async def test_a_silent_redis_is_detected_and_dropped():
    """A peer that stops answering (no FIN: a partition) must not look connected forever."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n")  # CLIENT SETNAME: answer it, then never again
        await reader.read(200)
        writer.write(b"+OK\r\n")
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = SubscriberLink(
        RedisAddress.from_url(f"redis://127.0.0.1:{port}"), False, lambda c, m: None, 0.1, name="x"
    )
    try:
        await link.connect()
        started = time.monotonic()
        with pytest.raises((ConnectionError, OSError)):
            await asyncio.wait_for(link.run(), 5)
        assert time.monotonic() - started < 1.0
    finally:
        await link.close()
        server.close()
