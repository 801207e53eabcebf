"""Redis Cluster topology, as the hub's subscriber side needs it: which master serves a slot.

Commands (publishing, presence scripts) go through redis-py's `RedisCluster`, which
follows MOVED/ASK and refreshes its own view. Sharded subscriptions cannot: they live on
long-lived connections this hub speaks itself (`hub.redis_link`), so the broker keeps
its own `SlotMap`, asked of any reachable node with `CLUSTER SLOTS` and asked again
whenever a node says the map is stale (a MOVED reply, a server-side `sunsubscribe` when
a slot moves away, a lost connection) and every few seconds.

Keys: a slot is computed from the whole name unless it holds a hash tag (`{...}`), as
Redis does; everything one Lua script touches shares a tag (see `hub.presence_redis`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import ssl
from collections.abc import Iterable
from typing import Any

from redis.crc import key_slot as _crc_key_slot

from .redis_link import RedisAddress, RedisReplyError, encode_command, parse_reply

SLOTS = 16384


def key_slot(name: str | bytes) -> int:
    return int(_crc_key_slot(name.encode() if isinstance(name, str) else name))


class SlotMoved(Exception):
    """A node answered MOVED/ASK/CLUSTERDOWN/TRYAGAIN: ask for the topology again."""


def redirect_slot(error: RedisReplyError) -> int | None:
    """The slot a cluster redirection names (`MOVED 3999 host:port`), if it is one;
    -1 for errors that concern every slot of the node (CLUSTERDOWN, TRYAGAIN)."""
    words = str(error).split()
    if not words:
        return None
    if words[0] in ("MOVED", "ASK") and len(words) >= 2 and words[1].isdigit():
        return int(words[1])
    if words[0] in ("CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN"):
        return -1
    return None


class SlotMap:
    """Slot ranges and the master serving each, from one node's `CLUSTER SLOTS`."""

    def __init__(self, ranges: Iterable[tuple[int, int, RedisAddress]], nodes: Iterable[RedisAddress]):
        self._ranges = sorted(ranges, key=lambda r: r[0])
        self._starts = [low for low, _, _ in self._ranges]
        self.nodes = list(dict.fromkeys(nodes))  # masters and replicas: where to ask next time

    def owner(self, slot: int) -> RedisAddress | None:
        i = bisect.bisect_right(self._starts, slot) - 1
        if i >= 0:
            low, high, node = self._ranges[i]
            if low <= slot <= high:
                return node
        return None

    def masters(self) -> set[RedisAddress]:
        return {node for _, _, node in self._ranges}

    def covered(self) -> int:
        return sum(high - low + 1 for low, high, _ in self._ranges)

    def signature(self) -> tuple[tuple[int, int, str, int], ...]:
        return tuple((low, high, n.host, n.port) for low, high, n in self._ranges)


def parse_cluster_slots(reply: Any, asked: RedisAddress) -> SlotMap:
    """`CLUSTER SLOTS`: [[low, high, [ip, port, id, ...] (master), [replica]...], ...].
    Credentials and TLS of the node asked carry over to every node it names."""

    def node(entry: list[Any]) -> RedisAddress:
        host = entry[0].decode() if isinstance(entry[0], bytes) else str(entry[0] or "")
        if host in ("", "?"):
            host = asked.host  # "unknown endpoint": the node we asked, by the address we used
        return dataclasses.replace(asked, host=host, port=int(entry[1]))

    ranges: list[tuple[int, int, RedisAddress]] = []
    nodes: list[RedisAddress] = []
    for row in reply:
        members = [node(entry) for entry in row[2:]]
        ranges.append((int(row[0]), int(row[1]), members[0]))
        nodes.extend(members)
    return SlotMap(ranges, nodes)


async def query(address: RedisAddress, *command: str, timeout: float = 2.0) -> Any:
    """One command on a short-lived connection (the topology is asked rarely)."""
    context = ssl.create_default_context() if address.tls else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(address.host, address.port, ssl=context), timeout
    )
    try:
        commands: list[tuple[str, ...]] = []
        if address.password is not None:
            auth = (address.username, address.password) if address.username else (address.password,)
            commands.append(("AUTH", *auth))
        commands.append(command)
        writer.write(b"".join(encode_command(*c) for c in commands))
        buffer = bytearray()
        replies: list[Any] = []

        async def read_all() -> None:
            while len(replies) < len(commands):
                parsed = parse_reply(buffer, 0)
                if parsed is None:
                    chunk = await reader.read(1 << 16)
                    if not chunk:
                        raise ConnectionError("connection closed by Redis")
                    buffer.extend(chunk)
                    continue
                value, end = parsed
                del buffer[:end]
                replies.append(value)

        await asyncio.wait_for(read_all(), timeout)
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                raise reply
        return replies[-1]
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def fetch_slot_map(seeds: Iterable[RedisAddress], timeout: float = 2.0) -> SlotMap:
    """The map from the first seed that answers with every slot served; raises the last
    error when none does (all unreachable, or the cluster is mid-failover)."""
    error: Exception = ConnectionError("no Redis Cluster node to ask")
    for seed in dict.fromkeys(seeds):
        try:
            slot_map = parse_cluster_slots(await query(seed, "CLUSTER", "SLOTS", timeout=timeout), seed)
        except (OSError, TimeoutError, ConnectionError, RedisReplyError) as exc:
            error = exc
            continue
        if slot_map.covered() == SLOTS:
            return slot_map
        error = SlotMoved(f"{seed.host}:{seed.port} sees {slot_map.covered()} of {SLOTS} slots served")
    raise error
