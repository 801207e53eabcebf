"""The retention job's database side (implements `hub.retention.RetentionStore`).

Trimming deletes whole sessions' events in short batches (`delete_log`) from the one
`hub_events` table, rather than detaching partitions: see docs/operations.md
("Retention", "Why batched deletes") for the measurement behind that choice.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from hub.retention import ArchivedEvent, ArchivedLog, ArchiveEntry, ArchiveFile, RetentionPolicy
from hub.store import SessionRecord

from .pg_store import delete_log
from .session_rows import SESSION_COLUMNS, session_from_row

_LOCK_KEY = 0x5E55_0060  # the retention job's advisory lock: one process at a time
_DAY = 86_400.0

_ENTRY_COLUMNS = (
    "a.session_pk, s.account_id, s.session_id, a.location, a.sha256, a.event_count, a.first_seq,"
    " a.last_seq, a.metrics, a.archived_at, a.trimmed_at, a.restored_at"
)


def _entry(row: Any) -> ArchiveEntry:
    return ArchiveEntry(**dict(row))


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None


class PgRetentionStore:
    def __init__(self, pool: asyncpg.Pool, delete_batch: int = 5000):
        self.pool = pool
        self.delete_batch = delete_batch

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[bool]:
        # A session-level advisory lock on a connection held for the run: if this process
        # dies, its connection closes and the lock goes with it. (asyncpg's reset on
        # release unlocks too, should the unlock below not get through.)
        async with self.pool.acquire() as conn:
            held = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY))
            try:
                yield held
            finally:
                if held:
                    with contextlib.suppress(Exception):
                        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)

    async def due(self, policy: RetentionPolicy, limit: int) -> list[int]:
        overrides = policy.overrides()
        shortest = min([policy.default_days, *overrides.values()])
        rows = await self.pool.fetch(
            "SELECT s.id FROM hub_sessions s"
            " LEFT JOIN hub_archives a ON a.session_pk = s.id"
            " LEFT JOIN hub_projections p ON p.session_pk = s.id"
            " LEFT JOIN unnest($1::text[], $2::float8[]) AS o(account_id, days)"
            " ON o.account_id = s.account_id"
            " WHERE s.ended_at < now() - make_interval(secs => $3)"  # the index's bound
            " AND s.ended_at < now() - make_interval(secs => coalesce(o.days, $4) * $5)"
            " AND a.session_pk IS NULL AND s.head_seq >= s.retained_from"
            " AND coalesce(p.projected_seq, 0) >= s.head_seq"
            # Webhooks deliver from the log: not before every endpoint is served (or gave up).
            " AND NOT EXISTS (SELECT 1 FROM hub_webhook_cursors c"
            " WHERE c.session_pk = s.id AND c.delivered_seq < s.head_seq)"
            " AND s.account_id <> ALL($6::text[])"
            " ORDER BY s.ended_at LIMIT $7",
            list(overrides),
            list(overrides.values()),
            shortest * _DAY,
            policy.default_days,
            _DAY,
            policy.never(),
            limit,
        )
        return [row["id"] for row in rows]

    async def unfinished(self) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT session_pk FROM hub_archives WHERE trimmed_at IS NULL AND restored_at IS NULL"
        )
        return [row["session_pk"] for row in rows]

    async def read_log(self, session_pk: int) -> tuple[SessionRecord, list[ArchivedEvent]] | None:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            row = await conn.fetchrow(f"SELECT {SESSION_COLUMNS} FROM hub_sessions WHERE id = $1", session_pk)
            if row is None:
                return None
            events = await conn.fetch(
                "SELECT seq, type, ts, actor, data, dedupe_key FROM hub_events"
                " WHERE session_pk = $1 ORDER BY seq",
                session_pk,
            )
        return session_from_row(row), [ArchivedEvent(**dict(e)) for e in events]

    async def record(
        self,
        record: SessionRecord,
        file: ArchiveFile,
        events: Sequence[ArchivedEvent],
        metrics: dict[str, Any],
    ) -> bool:
        first = events[0].seq if events else record.head_seq + 1
        async with self.pool.acquire() as conn, conn.transaction():
            moved = await conn.fetchval(
                "UPDATE hub_sessions SET retained_from = head_seq + 1"
                " WHERE id = $1 AND head_seq = $2 AND ended_at IS NOT NULL RETURNING id",
                record.pk,
                record.head_seq,
            )
            if moved is None:
                return False  # the log moved since it was read: the next run takes it again
            await conn.execute(
                "INSERT INTO hub_archives"
                " (session_pk, location, sha256, event_count, first_seq, last_seq, metrics)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (session_pk) DO UPDATE SET location = $2, sha256 = $3, event_count = $4,"
                " first_seq = $5, last_seq = $6, metrics = $7, archived_at = now(),"
                " trimmed_at = NULL, restored_at = NULL",
                record.pk,
                file.location,
                file.sha256,
                len(events),
                first,
                record.head_seq,
                metrics,
            )
        return True

    async def trim(self, session_pk: int) -> int:
        last = await self.pool.fetchval("SELECT last_seq FROM hub_archives WHERE session_pk = $1", session_pk)
        if last is None:
            return 0
        deleted = await delete_log(self.pool, session_pk, last + 1, self.delete_batch)
        await self.pool.execute(
            "UPDATE hub_archives SET trimmed_at = now() WHERE session_pk = $1", session_pk
        )
        return deleted

    async def archive_of(self, session_pk: int) -> ArchiveEntry | None:
        row = await self.pool.fetchrow(
            f"SELECT {_ENTRY_COLUMNS} FROM hub_archives a JOIN hub_sessions s ON s.id = a.session_pk"
            " WHERE a.session_pk = $1",
            session_pk,
        )
        return _entry(row) if row else None

    async def archives(self, account_id: str | None, limit: int) -> list[ArchiveEntry]:
        rows = await self.pool.fetch(
            f"SELECT {_ENTRY_COLUMNS} FROM hub_archives a JOIN hub_sessions s ON s.id = a.session_pk"
            " WHERE ($1::text IS NULL OR s.account_id = $1) ORDER BY a.archived_at, a.session_pk LIMIT $2",
            account_id,
            limit,
        )
        return [_entry(row) for row in rows]

    async def restore(self, archived: ArchivedLog) -> tuple[int, int]:
        session, events = archived.header["session"], archived.events
        first = events[0].seq if events else int(session["head_seq"]) + 1
        async with self.pool.acquire() as conn, conn.transaction():
            pk = await conn.fetchval(
                "SELECT id FROM hub_sessions WHERE account_id = $1 AND session_id = $2 FOR UPDATE",
                session["account_id"],
                session["session_id"],
            )
            if pk is None:  # another deployment, or a session deleted since: make it again
                pk = await self._recreate(conn, session, first)
            status = await conn.execute(
                "INSERT INTO hub_events (session_pk, seq, type, ts, actor, data, dedupe_key)"
                " SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::timestamptz[], $5::jsonb[],"
                " $6::jsonb[], $7::text[]) ON CONFLICT DO NOTHING",
                pk,
                [e.seq for e in events],
                [e.type for e in events],
                [e.ts for e in events],
                [e.actor for e in events],
                [e.data for e in events],
                [e.dedupe_key for e in events],
            )
            await conn.execute(
                "UPDATE hub_sessions SET retained_from = LEAST(retained_from, $2),"
                " head_seq = GREATEST(head_seq, $3) WHERE id = $1",
                pk,
                first,
                events[-1].seq if events else 0,
            )
            await conn.execute("UPDATE hub_archives SET restored_at = now() WHERE session_pk = $1", pk)
        return pk, int(status.split()[-1])

    @staticmethod
    async def _recreate(conn: asyncpg.Connection, session: dict[str, Any], first: int) -> int:
        await conn.execute(
            "INSERT INTO hub_accounts (account_id) VALUES ($1) ON CONFLICT DO NOTHING", session["account_id"]
        )
        pk: int = await conn.fetchval(
            "INSERT INTO hub_sessions (account_id, session_id, title, session_type, status, instructor,"
            " max_participants, head_seq, retained_from, current_technique, scheduled_start, started_at,"
            " ended_at, created_at, attributes)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, coalesce($14, now()), $15)"
            " RETURNING id",
            session["account_id"],
            session["session_id"],
            session["title"],
            session["session_type"],
            session["status"],
            session["instructor"],
            session["max_participants"],
            session["head_seq"],
            first,
            session["current_technique"],
            _when(session["scheduled_start"]),
            _when(session["started_at"]),
            _when(session["ended_at"]),
            _when(session["created_at"]),
            session["attributes"] or {},
        )
        return pk
