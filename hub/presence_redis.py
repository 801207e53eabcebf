"""Presence in Redis, shared by every hub process (keeps the promises of `hub.presence`).

Per room, five keys (all under the deployment's key prefix), sharing the hash tag
`{<room>}` so that Redis Cluster keeps them on one slot and every script below touches
one slot only:

- `<p>presence:{<room>}:conns`: sorted set of `member_key \\x1f node_id \\x1f conn_id`
  (connection ids are only unique within a process), scored by the
  time (Redis server clock, ms) at which the connection's entry expires;
- `<p>presence:{<room>}:counts`: hash member_key → live connection count;
- `<p>presence:{<room>}:info`: hash member_key → the member's info (JSON);
- `<p>presence:{<room>}:participants` and `…:staff`: sorted sets of the present members
  of each kind scored by the time they became present, so the participant count is
  one ZCARD (the cap is checked inside the join script) and `roster` reads the first
  few members without touching the rest of the room.

and `<p>presence-room-index`, every room some process registered entries in, so that a
room whose only process died is still reaped by the others (they do not serve it, so
would not know it). The index lives on a slot of its own, so no script can keep it in
step with the rooms atomically; instead a process enters a room in the index *before*
its first entry there, enters all its rooms again at every refresh, and an index entry
is dropped only once nobody entered it for the rooms' key TTL, when the room's keys have
expired. So the index may list an empty room for a while (`rooms` filters those out)
but never misses one holding an entry.

User slots (the per-user connection limit): per account and user one sorted set,
`<p>presence-user:<len(account)>:<account>:<user>` (the length keeps every pair apart
whatever characters ids contain), of `node_id \x1f conn_id` scored by expiry like the
room entries. The claim script drops expired entries before counting, so a dead
process's slots need no reaper: they stop counting once expired.

Every change runs as one Lua script, so `add` answers True to exactly one connection
however many processes race, `remove` and `reap` likewise, and a room's keys never
disagree. With `cluster=True` the client is redis-py's `RedisCluster` (scripts and
pipelines routed by slot, MOVED/ASK and failovers followed); the key layout is the same
on a single Redis. Expiry uses the Redis server's clock, so hub hosts need no
synchronised clocks (the index uses its own node's clock, only against itself).

Liveness: an entry lives `ttl * 2/3` past its last refresh and the hub refreshes (and
reaps) every `ttl / 3`; a dead process's members are therefore reaped at most `ttl`
after it died, while a live process has `ttl / 3` of slack for a late refresh. Whole
room keys expire after `4 * ttl` without any refresh, so abandoned rooms leave nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .presence import Admission, PresenceUnavailable, Roster, counts_as_participant

log = logging.getLogger("hub.presence")

SEP = "\x1f"

# KEYS: conns, counts, info, participants, staff.
# ARGV: field, member_key, info json, life ms, key ttl ms, participant (1/0), limit (-1: none)
# Returns {admitted, first, participant count}.
_JOIN = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local participant = ARGV[6] == '1'
local limit = tonumber(ARGV[7])
if participant and limit >= 0 and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then
  local count = redis.call('ZCARD', KEYS[4])
  if count >= limit then return {0, 0, count} end
end
local first = 0
if redis.call('ZADD', KEYS[1], now + ARGV[4], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
    -- Scored in microseconds: joins within one millisecond keep their order.
    redis.call('ZADD', participant and KEYS[4] or KEYS[5], t[1] * 1000000 + t[2], ARGV[2])
    first = 1
  end
end
for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
return {1, first, redis.call('ZCARD', KEYS[4])}
"""

# KEYS: conns, counts, info, participants, staff. ARGV: field, member_key
_REMOVE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('ZREM', KEYS[4], ARGV[2])
  redis.call('ZREM', KEYS[5], ARGV[2])
  return 1
end
return 0
"""

# KEYS: conns, counts, info, participants, staff.
# ARGV: life ms, key ttl ms, then (field, member_key, info, participant 1/0)*
# Extends this process's entries; one that was reaped meanwhile (the process stalled
# past its TTL) is registered again, since its connection is in fact alive.
_REFRESH = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expires = now + ARGV[1]
for i = 3, #ARGV, 4 do
  if redis.call('ZADD', KEYS[1], expires, ARGV[i]) == 1 then
    if redis.call('HINCRBY', KEYS[2], ARGV[i + 1], 1) == 1 then
      redis.call('HSET', KEYS[3], ARGV[i + 1], ARGV[i + 2])
      redis.call('ZADD', ARGV[i + 3] == '1' and KEYS[4] or KEYS[5], t[1] * 1000000 + t[2], ARGV[i + 1])
    end
  end
end
for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return 0
"""

# KEYS: conns, counts, info, participants, staff.
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
    redis.call('ZREM', KEYS[4], member)
    redis.call('ZREM', KEYS[5], member)
    if info then table.insert(gone, info) end
  end
end
return gone
"""

# KEYS: participants, staff, info. ARGV: limit.
# Returns {participant count, first `limit` participants' info, first `limit` staff's info}.
_ROSTER = """
local limit = tonumber(ARGV[1])
local out = {redis.call('ZCARD', KEYS[1])}
for k = 1, 2 do
  local infos = {}
  if limit > 0 then
    local keys = redis.call('ZRANGE', KEYS[k], 0, limit - 1)
    if #keys > 0 then infos = redis.call('HMGET', KEYS[3], unpack(keys)) end
  end
  table.insert(out, infos)
end
return out
"""

# KEYS: index. ARGV: key ttl ms, then rooms. Enters the rooms, stamped with this node's clock (s).
_ENTER_ROOMS = """
local now = tonumber(redis.call('TIME')[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
"""

# KEYS: index. ARGV: key ttl ms. Drops rooms nobody entered for that long (their keys have
# expired by then), answers the rest.
_INDEXED_ROOMS = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - math.ceil(ARGV[1] / 1000) - 1)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# User slots need no hash tag: each script touches one user's key only.
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


class RedisPresence:
    def __init__(
        self, url: str, prefix: str = "hub:", node_id: str = "", ttl: float = 15.0, cluster: bool = False
    ):
        self.prefix = prefix
        self.node_id = node_id
        self.ttl = ttl
        self._life_ms = max(int(ttl * 1000 * 2 / 3), 1)
        self._key_ttl_ms = int(ttl * 4000)
        self._index_key = f"{prefix}presence-room-index"
        self._client: Any = (RedisCluster if cluster else aioredis.Redis).from_url(
            url, socket_connect_timeout=2.0, socket_timeout=5.0
        )
        # redis-py's RedisCluster (8.1) breaks when its first commands race to initialise
        # it (a connection used before it is connected): initialise it once, first.
        self._initialised = not cluster
        self._init_lock = asyncio.Lock()
        self._enter_rooms = self._client.register_script(_ENTER_ROOMS)
        self._indexed_rooms = self._client.register_script(_INDEXED_ROOMS)
        self._join = self._client.register_script(_JOIN)
        self._roster = self._client.register_script(_ROSTER)
        self._remove = self._client.register_script(_REMOVE)
        self._refresh = self._client.register_script(_REFRESH)
        self._reap = self._client.register_script(_REAP)
        self._claim = self._client.register_script(_CLAIM)
        self._refresh_slots = self._client.register_script(_REFRESH_SLOTS)
        # What this process registered: room -> field -> (member_key, info json, participant)
        self._mine: dict[str, dict[str, tuple[str, str, str]]] = {}
        # A remove must not land between a refresh's snapshot of `_mine` and its write to
        # Redis, or the refresh writes the removed entry back (a ghost member, reaped later
        # into a second participant_left). Held by a refresh for one round trip.
        self._entries_lock = asyncio.Lock()
        # User slots this process holds: slots key -> fields. Recorded only once a claim
        # answered, so a claim whose answer was lost is never refreshed and expires.
        self._my_slots: dict[str, set[str]] = {}

    async def _ready(self) -> None:
        if not self._initialised:
            async with self._init_lock:
                if not self._initialised:
                    await self._client.initialize()
                    self._initialised = True

    async def _retry(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """One retry on a connection error: after a Redis restart the first command on
        each pooled connection meets a closed socket. (A script whose reply was lost
        runs twice; the scripts are idempotent for the same connection entry.)"""
        await self._ready()
        try:
            return await call(*args, **kwargs)
        except RedisConnectionError:
            return await call(*args, **kwargs)

    def _field(self, member_key: str, conn_id: str) -> str:
        return f"{member_key}{SEP}{self.node_id}{SEP}{conn_id}"

    def _keys(self, room: str) -> list[str]:
        base = f"{self.prefix}presence:{{{room}}}:"
        return [base + "conns", base + "counts", base + "info", base + "participants", base + "staff"]

    @staticmethod
    def _queue(pipe: Any, script: Any, keys: list[str], args: list[Any]) -> None:
        """A script in a pipeline, sent whole: EVALSHA in a pipeline fails on a node that
        has not cached the script yet (a replica promoted a moment ago)."""
        pipe.eval(script.script, len(keys), *keys, *args)

    async def add(self, room: str, member_key: str, conn_id: str, info: dict[str, Any]) -> bool:
        return (await self.join(room, member_key, conn_id, info, None)).first

    async def join(
        self, room: str, member_key: str, conn_id: str, info: dict[str, Any], participant_limit: int | None
    ) -> Admission:
        field = self._field(member_key, conn_id)
        encoded = orjson.dumps(info).decode()
        participant = "1" if counts_as_participant(info) else "0"
        limit = -1 if participant_limit is None else participant_limit
        args: list[Any] = [field, member_key, encoded, self._life_ms, self._key_ttl_ms, participant, limit]
        try:
            if room not in self._mine:
                # Indexed before the first entry (see the module doc); later, by refresh.
                await self._retry(self._enter_rooms, keys=[self._index_key], args=[self._key_ttl_ms, room])
            # Recorded before the call: a join whose answer is lost may still have registered
            # (its refresh keeps it alive, its leave removes it).
            mine = self._mine.setdefault(room, {})
            mine[field] = (member_key, encoded, participant)
            admitted, first, count = await self._retry(self._join, keys=self._keys(room), args=args)
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        if not admitted:
            mine.pop(field, None)
            if not mine:
                self._mine.pop(room, None)
        return Admission(bool(admitted), bool(first), int(count))

    async def roster(self, room: str, limit: int) -> Roster:
        keys = self._keys(room)
        try:
            count, participants, staff = await self._retry(
                self._roster, keys=[keys[3], keys[4], keys[2]], args=[max(limit, 0)]
            )
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        return Roster(
            int(count),
            [orjson.loads(info) for info in participants if info],
            [orjson.loads(info) for info in staff if info],
        )

    async def remove(self, room: str, member_key: str, conn_id: str) -> bool:
        field = self._field(member_key, conn_id)
        async with self._entries_lock:
            mine = self._mine.get(room)
            if mine is not None:
                mine.pop(field, None)
                if not mine:
                    del self._mine[room]
            try:
                args = [field, member_key]
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
            await self._ready()
            async with self._entries_lock, self._client.pipeline(transaction=False) as pipe:
                if self._mine:
                    rooms = [self._key_ttl_ms, *self._mine]
                    self._queue(pipe, self._enter_rooms, [self._index_key], rooms)
                for room, entries in list(self._mine.items()):
                    args: list[Any] = [self._life_ms, self._key_ttl_ms]
                    for field, (member_key, info, participant) in entries.items():
                        args.extend((field, member_key, info, participant))
                    self._queue(pipe, self._refresh, self._keys(room), args)
                for key, fields in slots.items():
                    self._queue(pipe, self._refresh_slots, [key], [self._life_ms, self._key_ttl_ms, *fields])
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
            indexed = await self._retry(self._indexed_rooms, keys=[self._index_key], args=[self._key_ttl_ms])
            rooms = [_text(room) for room in indexed]
            if not rooms:
                return []
            async with self._client.pipeline(transaction=False) as pipe:
                for room in rooms:
                    pipe.zcard(self._keys(room)[0])
                sizes = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        return [room for room, size in zip(rooms, sizes, strict=True) if size]

    async def reap(self, room: str) -> list[dict[str, Any]]:
        try:
            gone = await self._retry(self._reap, keys=self._keys(room))
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        if gone:
            log.info("presence entries expired", extra={"room": room, "members": len(gone)})
        return [orjson.loads(info) for info in gone]

    async def close(self) -> None:
        self._mine.clear()
        self._my_slots.clear()
        await self._client.aclose()
