"""Presence in Redis, shared by every hub process (keeps the promises of `hub.presence`).

Per room, seven keys (all under the deployment's key prefix), sharing the hash tag
`{<room>}` so that Redis Cluster keeps them on one slot and every room script touches
one slot only:

- `<p>presence:{<room>}:conns`: sorted set of `member_key \\x1f node_id \\x1f conn_id`
  (connection ids are only unique within a process), scored by the
  time (Redis server clock, ms) at which the connection's entry expires;
- `<p>presence:{<room>}:counts`: hash member_key → live connection count;
- `<p>presence:{<room>}:info`: hash member_key → the member's info (JSON);
- `<p>presence:{<room>}:departing`: sorted set of departing member keys (their
  participant_left is being written), scored by expiry like the connections;
- `<p>presence:{<room>}:departed`: hash member_key → info of each member whose last
  presence event in the log is its participant_left (being written, or written);
- `<p>presence:{<room>}:participants` and `…:staff`: sorted sets of the present members
  of each kind scored by the time they became present, so the participant count is
  one ZCARD (the cap is checked inside the join script) and `roster` reads the first
  few members without touching the rest of the room;

and `<p>presence-room-index`, every room some process registered entries or departures
in, so that a room whose only process died is still reaped by the others (they do not
serve it, so would not know it). The index lives on a slot of its own, so no script can
keep it in step with the rooms atomically; instead a process enters a room in the index
*before* its first entry there, enters all its rooms again at every refresh, and an
index entry is dropped only once nobody entered it for the rooms' key TTL, when the
room's keys have expired. So the index may list an empty room for a while (`rooms`
filters those out) but never misses one holding an entry or a departure.

User slots (the per-user connection limit): per account and user one sorted set,
`<p>presence-user:{<len(account)>:<account>}:<user>` (the length keeps every pair apart
whatever characters ids contain; the account's hash tag keeps a user's pool and its
account's on one slot, so one script claims a connection's slot in both), of
`node_id \x1f conn_id` scored by expiry like the room entries. The claim script drops
expired entries before counting, so a dead process's slots need no reaper: they stop
counting once expired.

Every change runs as one Lua script (`hub.presence_redis_lua`), so `join` answers first
to exactly one connection however many processes race, `remove` and `reap` likewise,
and the keys never disagree. With `cluster=True` the clients are redis-py's
`RedisCluster` (scripts and pipelines routed by slot, MOVED/ASK and failovers followed);
the key layout is the same on a single Redis. Expiry uses the Redis server's clock, so
hub hosts need no synchronised clocks (the index uses its own node's clock, only
against itself).

Liveness: an entry lives `ttl * 2/3` past its last refresh; the hub refreshes every
`ttl / 6` and reaps every `ttl / 3`, so a dead process's members are reaped at most `ttl`
after it died, while a live process has `ttl / 2` of slack for a late refresh. An entry
added between refreshes takes the expiry of the process's others (its lease), so a dead
process's entries and user slots all expire at the same moment. The refresh has a
connection of its own, so a storm of joins and leaves cannot delay it. Whole room keys
expire after `4 * ttl` without any refresh, so abandoned rooms leave nothing.

Load: commands share a pool of `pool_size` connections; a call that finds them all busy
waits up to `pool_timeout` seconds for one (redis-py's default pool would raise at once).
On a cluster, `RedisCluster` keeps up to `pool_size` connections per node.
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

from . import presence_redis_lua as lua
from .presence import Admission, MemberChange, PresenceUnavailable, Roster, counts_as_participant

log = logging.getLogger("hub.presence")

SEP = "\x1f"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _client(url: str, size: int, timeout: float, cluster: bool) -> Any:
    if cluster:  # `size` connections per node; `RedisPresence` bounds the calls in flight
        return RedisCluster.from_url(
            url, max_connections=size, socket_connect_timeout=2.0, socket_timeout=5.0
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=size, timeout=timeout, socket_connect_timeout=2.0, socket_timeout=5.0
    )
    return aioredis.Redis.from_pool(pool)


def _queue(pipe: Any, script: Any, keys: list[str], args: list[Any]) -> None:
    """A script in a pipeline, sent whole: EVALSHA in a pipeline fails on a node that has
    not cached the script yet (on a cluster: a replica promoted a moment ago)."""
    pipe.eval(script.script, len(keys), *keys, *args)


class RedisPresence:
    def __init__(
        self,
        url: str,
        prefix: str = "hub:",
        node_id: str = "",
        ttl: float = 15.0,
        pool_size: int = 50,
        pool_timeout: float = 10.0,
        cluster: bool = False,
    ):
        self.prefix = prefix
        self.node_id = node_id
        self.ttl = ttl
        self._life_ms = max(int(ttl * 1000 * 2 / 3), 1)
        # When this process's entries expire (Redis clock, ms): new entries take the same
        # expiry, so those of a process that dies all expire at once (see the scripts).
        self._lease_ms = 0
        self._key_ttl_ms = int(ttl * 4000)
        self._index_key = f"{prefix}presence-room-index"
        self._client = _client(url, pool_size, pool_timeout, cluster)
        self._upkeep = _client(url, 1, pool_timeout, cluster)  # the refresh's own connection(s)
        # redis-py's RedisCluster (8.1) breaks when its first commands race to initialise
        # it (a connection used before it is connected): initialise it once, first.
        self._initialised = not cluster
        self._init_lock = asyncio.Lock()
        # RedisCluster raises at once when a node's connections are all busy; waiting up to
        # `pool_timeout` for one, as the single-Redis pool does, is this gate's job.
        self._pool_timeout = pool_timeout
        self._gate = asyncio.Semaphore(pool_size) if cluster else None
        self._enter_rooms = self._client.register_script(lua.ENTER_ROOMS)
        self._indexed_rooms = self._client.register_script(lua.INDEXED_ROOMS)
        self._join = self._client.register_script(lua.JOIN)
        self._roster = self._client.register_script(lua.ROSTER)
        self._remove = self._client.register_script(lua.REMOVE)
        self._settle = self._client.register_script(lua.SETTLE)
        self._extend = self._client.register_script(lua.EXTEND)
        self._restore = self._client.register_script(lua.RESTORE)
        self._reap = self._client.register_script(lua.REAP)
        self._claim = self._client.register_script(lua.CLAIM)
        self._release = self._client.register_script(lua.RELEASE)
        self._refresh_slots = self._client.register_script(lua.REFRESH_SLOTS)
        # What this process registered: room -> field -> (member_key, info json, participant)
        self._mine: dict[str, dict[str, tuple[str, str, str]]] = {}
        # Fields of `_mine` whose join has not answered: the refresh extends them if they
        # are in Redis but never registers them (their join does, and answers `first`: a
        # refresh that registered one first would leave a new member's join unwritten).
        self._joining: set[str] = set()
        # Departures this process writes (refreshed until settled): room -> member keys
        self._departures: dict[str, set[str]] = {}
        # A remove must not land between a refresh's snapshot of `_mine` and its write to
        # Redis, or the refresh writes the removed entry back (a ghost member, reaped later
        # into a second participant_left). Set while a refresh is in flight: one round trip
        # on its own connection (two when it registers entries again). Removes do not
        # exclude each other.
        self._refreshing: asyncio.Future[None] | None = None
        # User slots this process holds: slots key -> fields. Recorded only once a claim
        # answered, so a claim whose answer was lost is never refreshed and expires.
        self._my_slots: dict[str, set[str]] = {}

    async def _ready(self) -> None:
        if not self._initialised:
            async with self._init_lock:
                if not self._initialised:
                    await self._client.initialize()
                    await self._upkeep.initialize()
                    self._initialised = True

    async def _retry(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """One retry on a connection error: after a Redis restart the first command on
        each pooled connection meets a closed socket. (A script whose reply was lost
        runs twice; the scripts are idempotent for the same connection entry.) Not when
        the pool had no connection free in time: that is an answer, not a stale socket."""
        await self._ready()
        if self._gate is None:
            return await self._call(call, *args, **kwargs)
        try:
            async with asyncio.timeout(self._pool_timeout):
                await self._gate.acquire()
        except TimeoutError:
            raise PresenceUnavailable(f"no Redis connection free within {self._pool_timeout} s") from None
        try:
            return await self._call(call, *args, **kwargs)
        finally:
            self._gate.release()

    @staticmethod
    async def _call(call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await call(*args, **kwargs)
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                raise
            return await call(*args, **kwargs)

    def _field(self, member_key: str, conn_id: str) -> str:
        return f"{member_key}{SEP}{self.node_id}{SEP}{conn_id}"

    def _keys(self, room: str) -> list[str]:
        base = f"{self.prefix}presence:{{{room}}}:"
        names = ("conns", "counts", "info", "departing", "departed", "participants", "staff")
        return [base + n for n in names]

    async def _run(self, script: Any, room: str, *args: Any) -> Any:
        try:
            return await self._retry(script, keys=self._keys(room), args=[room, *args])
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc

    async def add(self, room: str, member_key: str, conn_id: str, info: dict[str, Any]) -> bool:
        return (await self.join(room, member_key, conn_id, info, None)).first

    async def join(
        self, room: str, member_key: str, conn_id: str, info: dict[str, Any], participant_limit: int | None
    ) -> Admission:
        field = self._field(member_key, conn_id)
        encoded = orjson.dumps(info).decode()
        participant = "1" if counts_as_participant(info) else "0"
        limit = -1 if participant_limit is None else participant_limit
        if room not in self._mine and room not in self._departures:
            # Indexed before the first entry (see the module doc); later, by every refresh.
            try:
                await self._retry(self._enter_rooms, keys=[self._index_key], args=[self._key_ttl_ms, room])
            except (RedisError, OSError) as exc:
                raise PresenceUnavailable(str(exc)) from exc
        # Recorded before the call: a join whose answer is lost may still have registered
        # (its refresh keeps it alive, its leave removes it).
        mine = self._mine.setdefault(room, {})
        mine[field] = (member_key, encoded, participant)
        self._joining.add(field)
        args = (
            field,
            member_key,
            encoded,
            self._life_ms,
            self._key_ttl_ms,
            self._lease_ms,
            participant,
            limit,
        )
        admitted, first, expires, count = await self._run(self._join, room, *args)
        self._joining.discard(field)  # answered: registered, or refused and not registered
        if not admitted:
            mine.pop(field, None)
            if not mine:
                self._mine.pop(room, None)
            return Admission(False, False, int(count))
        self._lease_ms = max(self._lease_ms, int(expires))
        return Admission(True, bool(first), int(count))

    async def roster(self, room: str, limit: int) -> Roster:
        keys = self._keys(room)
        try:
            count, participants, staff = await self._retry(
                self._roster, keys=[keys[5], keys[6], keys[2]], args=[max(limit, 0)]
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
        while self._refreshing is not None:
            await asyncio.shield(self._refreshing)
        mine = self._mine.get(room)
        if mine is not None:
            mine.pop(field, None)
            if not mine:
                del self._mine[room]
        self._joining.discard(field)
        gone = bool(await self._run(self._remove, room, field, member_key, self._life_ms))
        if gone:
            self._departures.setdefault(room, set()).add(member_key)
        return gone

    async def settle(self, room: str, member_key: str) -> dict[str, Any] | None:
        # Forget it first: even if the call below fails, it is no longer refreshed, so it
        # expires and a reaper settles it.
        departing = self._departures.get(room)
        if departing is not None:
            departing.discard(member_key)
            if not departing:
                del self._departures[room]
        back = await self._run(self._settle, room, member_key)
        return orjson.loads(back) if back else None

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
        # The account in a hash tag: its pools share one Cluster slot, so that one script
        # claims a connection's slots in all of them (the length keeps every pair apart
        # whatever characters ids contain; a `}` in the account ends the tag early, but at
        # the same place for all its pools).
        return f"{self.prefix}presence-user:{{{len(account)}:{account}}}:{user}"

    async def claim_slots(self, account: str, conn_id: str, limits: dict[str, int]) -> str | None:
        pools = list(limits)
        keys = [self._slot_key(account, user) for user in pools]
        field = f"{self.node_id}{SEP}{conn_id}"
        args = [field, self._life_ms, self._key_ttl_ms, self._lease_ms, *(limits[user] for user in pools)]
        try:
            expires, full = await self._retry(self._claim, keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        if int(full):
            return pools[int(full) - 1]
        self._lease_ms = max(self._lease_ms, int(expires))
        for key in keys:
            self._my_slots.setdefault(key, set()).add(field)
        return None

    async def release_slots(self, account: str, users: list[str], conn_id: str) -> None:
        keys = [self._slot_key(account, user) for user in dict.fromkeys(users)]
        field = f"{self.node_id}{SEP}{conn_id}"
        # Forget them first: even if the call below fails, they are no longer refreshed.
        for key in keys:
            mine = self._my_slots.get(key)
            if mine is not None:
                mine.discard(field)
                if not mine:
                    del self._my_slots[key]
        try:
            await self._retry(self._release, keys=keys, args=[field])
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc

    async def refresh(self) -> list[MemberChange]:
        """Extends this process's entries by their fields alone (no info: a storm's
        thousands of entries cost a few bytes each), then registers again, with their
        info, the few that Redis no longer held."""
        rooms = sorted(set(self._mine) | set(self._departures))
        slots = {key: sorted(fields) for key, fields in self._my_slots.items()}
        accounts: dict[str, list[str]] = {}  # slot keys by hash tag: one script each
        for key in slots:
            accounts.setdefault(key[: key.index("}", len(self.prefix)) + 1], []).append(key)
        gate = self._refreshing = asyncio.get_running_loop().create_future()
        try:
            await self._ready()
            async with self._upkeep.pipeline(transaction=False) as pipe:
                for room in rooms:
                    departing = sorted(self._departures.get(room, ()))
                    args: list[Any] = [room, self._life_ms, self._key_ttl_ms, len(departing), *departing]
                    args.extend(self._mine.get(room, ()))
                    _queue(pipe, self._extend, self._keys(room), args)
                for keys in accounts.values():
                    args = [self._life_ms, self._key_ttl_ms]
                    for key in keys:
                        args.append(len(slots[key]))
                        args.extend(slots[key])
                    _queue(pipe, self._refresh_slots, keys, args)
                if rooms:  # last, so the results above keep their places
                    _queue(pipe, self._enter_rooms, [self._index_key], [self._key_ttl_ms, *rooms])
                results = await pipe.execute()
            room_results = results[: len(rooms)]
            back = await self._restore_lost(rooms, room_results)
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        finally:
            self._refreshing = None
            gate.set_result(None)
        await self._drop_released_slots(slots)
        slot_results = results[len(rooms) : len(rooms) + len(accounts)]
        expiries = [int(found[0]) for found in room_results] + [int(e) for e in slot_results]
        if expiries:
            self._lease_ms = max(expiries)
        if back:
            log.warning("presence entries registered again after a stall", extra={"members": len(back)})
        return back

    async def _restore_lost(self, rooms: list[str], extended: list[Any]) -> list[MemberChange]:
        """Registers again the entries EXTEND found missing (not those of joins in flight:
        they register themselves); answers the members whose departure had been written."""
        lost: dict[str, list[Any]] = {}
        for room, found in zip(rooms, extended, strict=True):
            mine = self._mine.get(room, {})
            for raw in found[1:]:
                field = _text(raw)
                if field in mine and field not in self._joining:
                    lost.setdefault(room, [room, self._life_ms]).extend((field, *mine[field]))
        if not lost:
            return []
        async with self._upkeep.pipeline(transaction=False) as pipe:
            for room, args in lost.items():
                _queue(pipe, self._restore, self._keys(room), args)
            restored = await pipe.execute()
        return [
            MemberChange(room, _text(found[i]), orjson.loads(found[i + 1]), present=True)
            for room, found in zip(lost, restored, strict=True)
            for i in range(0, len(found), 2)
        ]

    async def _drop_released_slots(self, refreshed: dict[str, list[str]]) -> None:
        """A slot released while the refresh was in flight may have been written back by
        it: remove it again, or the user would stay a connection short until it expired."""
        stale = [
            (key, field)
            for key, fields in refreshed.items()
            for field in fields
            if field not in self._my_slots.get(key, ())
        ]
        if not stale:
            return
        try:
            async with self._upkeep.pipeline(transaction=False) as pipe:
                for key, field in stale:
                    pipe.zrem(key, field)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc

    async def rooms(self) -> list[str]:
        """Indexed rooms that hold an entry or a departure now."""
        try:
            indexed = await self._retry(self._indexed_rooms, keys=[self._index_key], args=[self._key_ttl_ms])
            rooms = [_text(room) for room in indexed]
            busy = await self._retry(self._busy, rooms) if rooms else []
        except (RedisError, OSError) as exc:
            raise PresenceUnavailable(str(exc)) from exc
        return [room for room, in_use in zip(rooms, busy, strict=True) if in_use]

    async def _busy(self, rooms: list[str]) -> list[bool]:
        async with self._client.pipeline(transaction=False) as pipe:
            for room in rooms:
                keys = self._keys(room)
                pipe.zcard(keys[0])  # entries
                pipe.zcard(keys[3])  # departures
            sizes = await pipe.execute()
        return [bool(sizes[2 * i] or sizes[2 * i + 1]) for i in range(len(rooms))]

    async def reap(self, room: str, limit: int) -> list[MemberChange]:
        found = await self._run(self._reap, room, limit, self._life_ms)
        changes = [
            MemberChange(room, _text(found[i + 1]), orjson.loads(found[i + 2]), present=bool(found[i]))
            for i in range(0, len(found), 3)
        ]
        for change in changes:
            if not change.present:  # this process writes the departure now
                self._departures.setdefault(room, set()).add(change.member_key)
        if changes:
            log.info("presence entries expired", extra={"room": room, "members": len(changes)})
        return changes

    async def close(self) -> None:
        self._mine.clear()
        self._joining.clear()
        self._departures.clear()
        self._my_slots.clear()
        await self._client.aclose()
        await self._upkeep.aclose()
