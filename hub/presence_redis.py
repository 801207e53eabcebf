"""Presence in Redis, shared by every hub process (keeps the promises of `hub.presence`).

Per room, three keys (all under the deployment's key prefix):

- `<p>presence:<room>:conns`: sorted set of `member_key \\x1f node_id \\x1f conn_id`
  (connection ids are only unique within a process), scored by the
  time (Redis server clock, ms) at which the connection's entry expires;
- `<p>presence:<room>:counts`: hash member_key → live connection count;
- `<p>presence:<room>:info`: hash member_key → the member's info (JSON).

and `<p>presence-rooms`, the set of rooms holding any entry, so that a room whose only
process died is still reaped by the others (they do not serve it, so would not know it).

User slots (the per-user connection limit): per account and user one sorted set,
`<p>presence-user:<len(account)>:<account>:<user>` (the length keeps every pair apart
whatever characters ids contain), of `node_id \x1f conn_id` scored by expiry like the
room entries. The claim script drops expired entries before counting, so a dead
process's slots need no reaper: they stop counting once expired.

Every change runs as one Lua script, so `add` answers True to exactly one connection
however many processes race, `remove` and `reap` likewise, and the three keys never
disagree. (The scripts touch keys of several slots: a single Redis or a primary with
replicas, not Redis Cluster.) Expiry uses the Redis server's clock, so hub hosts need no synchronised clocks.

Liveness: an entry lives `ttl * 2/3` past its last refresh and the hub refreshes (and
reaps) every `ttl / 3`; a dead process's members are therefore reaped at most `ttl`
after it died, while a live process has `ttl / 3` of slack for a late refresh. Whole
room keys expire after `4 * ttl` without any refresh, so abandoned rooms leave nothing.

Load: commands share a pool of `pool_size` connections; a call that finds them all busy
waits up to `pool_timeout` seconds for one (redis-py's default pool would raise at once).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .presence import PresenceUnavailable

log = logging.getLogger("hub.presence")

SEP = "\x1f"

# KEYS: conns, counts, info, rooms. ARGV: field, member_key, info json, life ms, key ttl ms, room
_ADD = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local added = redis.call('ZADD', KEYS[1], now + ARGV[4], ARGV[1])
local first = 0
if added == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
    first = 1
  end
end
redis.call('SADD', KEYS[4], ARGV[6])
-- The room list too: it outlives no process that keeps refreshing it.
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return first
"""

# KEYS: conns, counts, info, rooms. ARGV: field, member_key, room
_REMOVE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[3]) end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return 1
end
return 0
"""

# KEYS: conns, counts, info, rooms. ARGV: life ms, key ttl ms, room, then (field, member_key, info)*
# Extends this process's entries; one that was reaped meanwhile (the process stalled
# past its TTL) is registered again, since its connection is in fact alive.
_REFRESH = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expires = now + ARGV[1]
for i = 4, #ARGV, 3 do
  if redis.call('ZADD', KEYS[1], expires, ARGV[i]) == 1 then
    if redis.call('HINCRBY', KEYS[2], ARGV[i + 1], 1) == 1 then
      redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
    end
  end
end
redis.call('SADD', KEYS[4], ARGV[3])
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return 0
"""

# KEYS: conns, counts, info, rooms. ARGV: room.
# Returns the info of every member whose last entry expired.
_REAP = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = {}
for _, field in ipairs(expired) do
  redis.call('ZREM', KEYS[1], field)
  local member = string.sub(field, 1, string.find(field, '\\31', 1, true) - 1)
  if redis.call('HINCRBY', KEYS[2], member, -1) <= 0 then
    redis.call('HDEL', KEYS[2], member)
    local info = redis.call('HGET', KEYS[3], member)
    redis.call('HDEL', KEYS[3], member)
    if info then table.insert(gone, info) end
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
return gone
"""

# KEYS: slots. ARGV: field, limit, life ms, key ttl ms. 1: admitted, 0: the user is full.
# A field already present is admitted again (a retried claim must not count twice).
_CLAIM = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('ZADD', KEYS[1], now + ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: slots. ARGV: life ms, key ttl ms, then fields. Like _REFRESH, it registers again
# a slot that expired meanwhile: its connection is alive (a stall, a Redis restart).
_REFRESH_SLOTS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], now + ARGV[1], ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _client(url: str, size: int, timeout: float) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=size, timeout=timeout, socket_connect_timeout=2.0, socket_timeout=5.0
    )
    return aioredis.Redis.from_pool(pool)


class RedisPresence:
    def __init__(
        self,
        url: str,
        prefix: str = "hub:",
        node_id: str = "",
        ttl: float = 15.0,
        pool_size: int = 50,
        pool_timeout: float = 10.0,
    ):
        self.prefix = prefix
        self.node_id = node_id
        self.ttl = ttl
        self._life_ms = max(int(ttl * 1000 * 2 / 3), 1)
        self._key_ttl_ms = int(ttl * 4000)
        self._rooms_key = f"{prefix}presence-rooms"  # rooms holding any entry
        self._client = _client(url, pool_size, pool_timeout)
        self._add = self._client.register_script(_ADD)
        self._remove = self._client.register_script(_REMOVE)
        self._refresh = self._client.register_script(_REFRESH)
        self._reap = self._client.register_script(_REAP)
        self._claim = self._client.register_script(_CLAIM)
        self._refresh_slots = self._client.register_script(_REFRESH_SLOTS)
        # What this process registered: room -> field -> (member_key, info json)
        self._mine: dict[str, dict[str, tuple[str, str]]] = {}
        # A remove must not land between a refresh's snapshot of `_mine` and its write to
        # Redis, or the refresh writes the removed entry back (a ghost member, reaped later
        # into a second participant_left). Held by a refresh for one round trip.
        self._entries_lock = asyncio.Lock()
        # User slots this process holds: slots key -> fields. Recorded only once a claim
        # answered, so a claim whose answer was lost is never refreshed and expires.
        self._my_slots: dict[str, set[str]] = {}

    @staticmethod
    async def _retry(call: Any, *args: Any, **kwargs: Any) -> Any:
        """One retry on a connection error: after a Redis restart the first command on
        each pooled connection meets a closed socket. (A script whose reply was lost
        runs twice; the scripts are idempotent for the same connection entry.) Not when
        the pool had no connection free in time: that is an answer, not a stale socket."""
        try:
            return await call(*args, **kwargs)
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                raise
            return await call(*args, **kwargs)

    def _field(self, member_key: str, conn_id: str) -> str:
        return f"{member_key}{SEP}{self.node_id}{SEP}{conn_id}"

    def _keys(self, room: str) -> list[str]:
        base = f"{self.prefix}presence:{room}:"
        return [base + "conns", base + "counts", base + "info", self._rooms_key]

    async def add(self, room: str, member_key: str, conn_id: str, info: dict[str, Any]) -> bool:
        field = self._field(member_key, conn_id)
        encoded = orjson.dumps(info).decode()
        self._mine.setdefault(room, {})[field] = (member_key, encoded)
        args: list[Any] = [field, member_key, encoded, self._life_ms, self._key_ttl_ms, room]
        try:
            return bool(await self._retry(self._add, keys=self._keys(room), args=args))
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc

    async def remove(self, room: str, member_key: str, conn_id: str) -> bool:
        field = self._field(member_key, conn_id)
        async with self._entries_lock:
            mine = self._mine.get(room)
            if mine is not None:
                mine.pop(field, None)
                if not mine:
                    del self._mine[room]
            try:
                args = [field, member_key, room]
                return bool(await self._retry(self._remove, keys=self._keys(room), args=args))
            except (RedisError, OSError) as exc:
                raise PresenceUnavailable(str(exc)) from exc

    async def connection_count(self, room: str, member_key: str) -> int:
        try:
            raw = await self._retry(self._client.hget, self._keys(room)[1], member_key)
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        return max(int(raw), 0) if raw is not None else 0

    async def members(self, room: str) -> dict[str, dict[str, Any]]:
        try:
            raw = await self._retry(self._client.hgetall, self._keys(room)[2])
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        return {_text(key): orjson.loads(value) for key, value in raw.items()}

    def _slot_key(self, account: str, user: str) -> str:
        return f"{self.prefix}presence-user:{len(account)}:{account}:{user}"

    async def claim_user_slot(self, account: str, user: str, conn_id: str, limit: int) -> bool:
        key = self._slot_key(account, user)
        field = f"{self.node_id}{SEP}{conn_id}"
        args = [field, limit, self._life_ms, self._key_ttl_ms]
        try:
            admitted = bool(await self._retry(self._claim, keys=[key], args=args))
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        if admitted:
            self._my_slots.setdefault(key, set()).add(field)
        return admitted

    async def release_user_slot(self, account: str, user: str, conn_id: str) -> None:
        key = self._slot_key(account, user)
        field = f"{self.node_id}{SEP}{conn_id}"
        # Forget it first: even if the ZREM below fails, it is no longer refreshed.
        mine = self._my_slots.get(key)
        if mine is not None:
            mine.discard(field)
            if not mine:
                del self._my_slots[key]
        try:
            await self._retry(self._client.zrem, key, field)
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc

    async def refresh(self) -> None:
        slots = {key: sorted(fields) for key, fields in self._my_slots.items()}
        try:
            async with self._entries_lock, self._client.pipeline(transaction=False) as pipe:
                for room, entries in list(self._mine.items()):
                    args: list[Any] = [self._life_ms, self._key_ttl_ms, room]
                    for field, (member_key, info) in entries.items():
                        args.extend((field, member_key, info))
                    await self._refresh(keys=self._keys(room), args=args, client=pipe)
                for key, fields in slots.items():
                    await self._refresh_slots(
                        keys=[key], args=[self._life_ms, self._key_ttl_ms, *fields], client=pipe
                    )
                await pipe.execute()
            # A slot released while the pipeline was in flight may have been written back
            # by it: remove it again, or the user would stay a connection short until it expired.
            stale = [
                (key, field)
                for key, fields in slots.items()
                for field in fields
                if field not in self._my_slots.get(key, ())
            ]
            if stale:
                async with self._client.pipeline(transaction=False) as pipe:
                    for key, field in stale:
                        pipe.zrem(key, field)
                    await pipe.execute()
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc

    async def rooms(self) -> list[str]:
        try:
            return [_text(room) for room in await self._retry(self._client.smembers, self._rooms_key)]
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc

    async def reap(self, room: str) -> list[dict[str, Any]]:
        try:
            gone = await self._retry(self._reap, keys=self._keys(room), args=[room])
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        if gone:
            log.info("presence entries expired", extra={"room": room, "members": len(gone)})
        return [orjson.loads(info) for info in gone]

    async def close(self) -> None:
        self._mine.clear()
        self._my_slots.clear()
        await self._client.aclose()
