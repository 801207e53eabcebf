"""PostgreSQL implementation of the store seam (`hub.store.Store`) on asyncpg."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import asyncpg
import orjson

from hub.store import (
    AppendRequest,
    AppendResult,
    SessionExists,
    SessionRecord,
    StoredEvent,
    StoreUnavailable,
)

from .migrate import apply_migrations
from .pool_reset import fetchrow_read_only, reset_unless_read_only
from .session_rows import SESSION_COLUMNS, session_from_row
from .statements import ensure_account, insert_returning

log = logging.getLogger("hub.storage")

_new_tuple = tuple.__new__  # AppendResult is a named tuple: built from a row without its __new__

# Errors that say "the database is not there", as opposed to "this data is wrong".
UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)

_SESSION_FIELDS = (
    "session_id",
    "title",
    "session_type",
    "instructor",
    "max_participants",
    "scheduled_start",
    "attributes",
    "created_by",
    "audience",
)
_INSERT_SESSION = insert_returning("hub_sessions", ("account_id", *_SESSION_FIELDS), SESSION_COLUMNS)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary jsonb: a version byte, then the JSON text; orjson on both sides.
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: b"\x01" + orjson.dumps(value),
        decoder=lambda raw: orjson.loads(raw[1:]),
        schema="pg_catalog",
        format="binary",
    )


class PgStore:
    """Sessions and the event log in PostgreSQL; one pool per hub process."""

    def __init__(self, pool: asyncpg.Pool, dsn: str):
        self.pool = pool
        self._dsn = dsn
        # The log writers keep their own connections: a pool acquire/release per batch
        # costs a reset round trip, more than the append itself. The committer runs one
        # batch per lane at a time; each takes an idle writer connection or opens one.
        self._idle_writers: list[Any] = []
        self._writers: set[Any] = set()

    @classmethod
    async def connect(cls, dsn: str, min_size: int = 2, max_size: int = 10) -> PgStore:
        conn = await asyncpg.connect(dsn)
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=reset_unless_read_only,
            command_timeout=30,
            timeout=5,
        )
        return cls(pool, dsn)

    async def close(self) -> None:
        await self._drop_writer()
        await self.pool.close()

    async def _take_writer(self) -> Any:
        while self._idle_writers:
            writer = self._idle_writers.pop()
            if not writer.is_closed():
                return writer
            self._writers.discard(writer)
        writer = await asyncpg.connect(self._dsn, timeout=5)
        await _init_connection(writer)
        self._writers.add(writer)
        return writer

    async def _drop_writer(self, writer: Any = None) -> None:
        """Drop one writer connection (a fresh one next time), or all of them."""
        doomed = [writer] if writer is not None else list(self._writers)
        for conn in doomed:
            self._writers.discard(conn)
            if conn in self._idle_writers:
                self._idle_writers.remove(conn)
            conn.terminate()

    async def ping(self) -> None:
        async with self.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1", timeout=2)

    # sessions

    async def create_session(
        self, account_id: str, fields: dict[str, Any], _registering: bool = False
    ) -> SessionRecord:
        defaults = {"session_type": "live", "max_participants": 100, "attributes": {}, "audience": {}}
        values = [
            fields.get(name) if fields.get(name) is not None else defaults.get(name)
            for name in _SESSION_FIELDS
        ]
        try:
            row = await self.pool.fetchrow(_INSERT_SESSION, account_id, *values)
        except asyncpg.UniqueViolationError:
            session_id = fields.get("session_id")
            raise SessionExists(f"session '{session_id}' already exists") from None
        except asyncpg.ForeignKeyViolationError as exc:
            # First session of an account nobody has registered yet: register it, once.
            # Any other reference (a parent session, say) is the caller's error to see.
            if exc.constraint_name != "hub_sessions_account_id_fkey" or _registering:
                raise
            await ensure_account(self.pool, account_id)
            return await self.create_session(account_id, fields, _registering=True)
        return session_from_row(row)

    async def get_session(self, account_id: str, session_id: str) -> SessionRecord | None:
        row = await fetchrow_read_only(
            self.pool,
            f"SELECT {SESSION_COLUMNS} FROM hub_sessions WHERE account_id = $1 AND session_id = $2",
            account_id,
            session_id,
        )
        return session_from_row(row) if row else None

    async def get_session_by_pk(self, pk: int) -> SessionRecord | None:
        row = await fetchrow_read_only(
            self.pool, f"SELECT {SESSION_COLUMNS} FROM hub_sessions WHERE id = $1", pk
        )
        return session_from_row(row) if row else None

    async def list_sessions(
        self,
        account_id: str | None,
        statuses: Sequence[str] | None = None,
        session_type: str | None = None,
        limit: int = 100,
        after_pk: int | None = None,
    ) -> list[SessionRecord]:
        rows = await self.pool.fetch(
            f"SELECT {SESSION_COLUMNS} FROM hub_sessions"
            " WHERE ($1::text IS NULL OR account_id = $1)"
            " AND ($2::text[] IS NULL OR status = ANY($2))"
            " AND ($3::text IS NULL OR session_type = $3)"
            " AND ($4::bigint IS NULL OR id > $4)"
            " ORDER BY id LIMIT $5",
            account_id,
            list(statuses) if statuses is not None else None,
            session_type,
            after_pk,
            limit,
        )
        return [session_from_row(row) for row in rows]

    # the log

    async def append_batch(self, items: Sequence[AppendRequest]) -> list[AppendResult]:
        if not items:
            return []
        try:
            return await self._append(items)
        except UNREACHABLE as exc:
            raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _append(self, items: Sequence[AppendRequest]) -> list[AppendResult]:
        writer = await self._take_writer()
        try:
            # One row of arrays rather than a row per item: far less to decode per event.
            # The requests are tuples: their columns come out of one C-level transpose.
            pks, types, datas, actors, keys = zip(*items, strict=True)
            row = await writer.fetchrow(
                "SELECT array_agg(r.out_seq ORDER BY r.n), array_agg(r.out_ts ORDER BY r.n),"
                " array_agg(r.out_data ORDER BY r.n), array_agg(r.out_duplicate ORDER BY r.n),"
                " array_agg(r.out_error ORDER BY r.n), array_agg(r.out_status ORDER BY r.n)"
                " FROM hub_append_events($1::bigint[], $2::text[], $3::jsonb, $4::jsonb, $5::text[])"
                " WITH ORDINALITY AS r(out_seq, out_ts, out_data, out_duplicate, out_error, out_status, n)",
                pks,
                types,
                actors,  # one JSON array each (storage/sql/append.sql)
                datas,
                keys,
            )
        except UNREACHABLE:
            await self._drop_writer(writer)  # a fresh connection next time
            raise
        except asyncpg.PostgresError:
            self._idle_writers.append(writer)  # a data error leaves the connection usable
            raise
        except BaseException:
            await self._drop_writer(writer)  # cancelled mid-query: its state is unknown
            raise
        self._idle_writers.append(writer)
        seqs, stamps, stored, duplicates, errors, statuses = row
        # `out_data` is NULL where the event was stored with the item's own data.
        stored = [(data or {}) if out is None else out for data, out in zip(datas, stored, strict=True)]
        # Results built by C-level calls only (tuple.__new__ over the zipped columns).
        return list(
            map(
                _new_tuple,
                repeat(AppendResult),
                zip(seqs, stamps, stored, duplicates, errors, statuses, strict=True),
            )
        )

    async def read_events(
        self, session_pk: int, after_seq: int, limit: int, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        rows = await self.pool.fetch(
            "SELECT seq, type, ts, actor, data FROM hub_events"
            " WHERE session_pk = $1 AND seq > $2 AND ($3::bigint IS NULL OR seq <= $3)"
            " ORDER BY seq LIMIT $4",
            session_pk,
            after_seq,
            upto_seq,
            limit,
        )
        return [
            StoredEvent(session_pk, row["seq"], row["type"], row["ts"], row["actor"], row["data"])
            for row in rows
        ]

    async def read_typed(
        self, session_pk: int, types: Sequence[str], after_seq: int, limit: int, newest_first: bool = False
    ) -> list[StoredEvent]:
        order = "DESC" if newest_first else "ASC"
        rows = await self.pool.fetch(
            "SELECT seq, type, ts, actor, data FROM hub_events"
            f" WHERE session_pk = $1 AND seq > $2 AND type = ANY($3) ORDER BY seq {order} LIMIT $4",
            session_pk,
            after_seq,
            list(types),
            limit,
        )
        return [
            StoredEvent(session_pk, row["seq"], row["type"], row["ts"], row["actor"], row["data"])
            for row in rows
        ]

    async def latest_seq_of(
        self, session_pk: int, types: Sequence[str], after_seq: int, upto_seq: int
    ) -> int:
        seq = await self.pool.fetchval(
            "SELECT seq FROM hub_events WHERE session_pk = $1 AND seq > $2 AND seq <= $3"
            " AND type = ANY($4) ORDER BY seq DESC LIMIT 1",
            session_pk,
            after_seq,
            upto_seq,
            list(types),
        )
        return int(seq or 0)

    async def latest_audience_change(self, session_pk: int, upto_seq: int) -> StoredEvent | None:
        # The predicate is spelled as in the partial index (migration 040) so it is used.
        row = await self.pool.fetchrow(
            "SELECT seq, type, ts, actor, data FROM hub_events WHERE session_pk = $1 AND seq <= $2"
            " AND type = 'session_update' AND data ? 'audience' ORDER BY seq DESC LIMIT 1",
            session_pk,
            upto_seq,
        )
        if row is None:
            return None
        return StoredEvent(session_pk, row["seq"], row["type"], row["ts"], row["actor"], row["data"])

    async def count_events(self, session_pk: int) -> int:
        count = await self.pool.fetchval("SELECT count(*) FROM hub_events WHERE session_pk = $1", session_pk)
        return int(count)

    async def heads(self, session_pks: Sequence[int]) -> dict[int, int]:
        rows = await self.pool.fetch(
            "SELECT id, head_seq FROM hub_sessions WHERE id = ANY($1)", list(session_pks)
        )
        return {row["id"]: row["head_seq"] for row in rows}

    async def trim_log(self, session_pk: int, before_seq: int) -> int:
        await self.pool.execute(
            "UPDATE hub_sessions SET retained_from = GREATEST(retained_from, $2) WHERE id = $1",
            session_pk,
            before_seq,
        )
        return await delete_log(self.pool, session_pk, before_seq)


async def delete_log(pool: asyncpg.Pool, session_pk: int, before_seq: int, batch: int = 5000) -> int:
    """Delete a session's events below `before_seq`, `batch` seqs per statement, each its own
    short transaction: row locks on a few thousand rows of a session nobody writes to any
    more, so appenders to other sessions never wait, and vacuum can reclaim each batch
    while the next runs. (Readers must already know: `retained_from` moved first.)"""
    deleted = 0
    low = await pool.fetchval(
        "SELECT min(seq) FROM hub_events WHERE session_pk = $1 AND seq < $2", session_pk, before_seq
    )
    while low is not None and low < before_seq:
        high = min(low + batch, before_seq)
        status = await pool.execute(
            "DELETE FROM hub_events WHERE session_pk = $1 AND seq >= $2 AND seq < $3", session_pk, low, high
        )
        deleted += int(status.split()[-1])
        low = high
    return deleted
