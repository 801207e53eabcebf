"""The records projection in PostgreSQL: checkpoints, catch-up, rebuild.

`catch_up` runs the pure projector (`hub.records.projector.apply`) over the events after a
session's checkpoint and writes the rows it returns, in one transaction with the new
checkpoint. The checkpoint row is locked first, so concurrent catch-ups of one session
(from this process's worker, an HTTP read, or another hub process) run one after the
other, and each row is written with ON CONFLICT DO NOTHING on its (session, seq) key.
This is the projection half of `hub.records.store.RecordsStore`; `.store` adds the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from hub.records.projector import (
    PROJECTED_TYPES,
    FeedbackRow,
    InteractionRow,
    NoteRow,
    ProjectionState,
    SummaryDue,
    Write,
    apply,
)
from hub.records.summaries import SummaryContext, render
from hub.store import StoredEvent

_PAGE = 500
_TYPES = sorted(PROJECTED_TYPES)


class PgProjectionStore:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def checkpoint(self, session_pk: int) -> int:
        value = await self.pool.fetchval(
            "SELECT projected_seq FROM hub_projections WHERE session_pk = $1", session_pk
        )
        return int(value or 0)

    async def projection_state(self, session_pk: int) -> ProjectionState:
        raw = await self.pool.fetchval("SELECT state FROM hub_projections WHERE session_pk = $1", session_pk)
        return ProjectionState.from_json(raw)

    async def catch_up(self, session_pk: int) -> int:
        row = await self.pool.fetchrow(
            "SELECT s.head_seq, coalesce(p.projected_seq, 0) AS projected FROM hub_sessions s"
            " LEFT JOIN hub_projections p ON p.session_pk = s.id WHERE s.id = $1",
            session_pk,
        )
        if row is None or row["projected"] >= row["head_seq"]:
            return int(row["projected"]) if row else 0  # the common case: nothing to do
        async with self.pool.acquire() as conn, conn.transaction():
            return await self._catch_up(conn, session_pk)

    async def rebuild(self, session_pk: int) -> int:
        """Forget every log-derived row of the session and project its whole log again."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await self._lock(conn, session_pk) is None:
                return 0
            for table in ("hub_interactions", "hub_summaries"):
                await conn.execute(f"DELETE FROM {table} WHERE session_pk = $1", session_pk)
            for table in ("hub_notes", "hub_feedback"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE session_pk = $1 AND seq IS NOT NULL", session_pk
                )
            await conn.execute(
                "UPDATE hub_projections SET projected_seq = 0, state = '{}' WHERE session_pk = $1",
                session_pk,
            )
            return await self._catch_up(conn, session_pk)

    async def summary_context(self, session_pk: int, at: datetime | None) -> SummaryContext:
        return await summary_context(self.pool, session_pk, at)

    async def behind(self, limit: int) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT s.id FROM hub_sessions s LEFT JOIN hub_projections p ON p.session_pk = s.id"
            " WHERE s.head_seq > coalesce(p.projected_seq, 0) ORDER BY s.id LIMIT $1",
            limit,
        )
        return [row["id"] for row in rows]

    async def _lock(self, conn: asyncpg.Connection, session_pk: int) -> asyncpg.Record | None:
        await conn.execute(
            "INSERT INTO hub_projections (session_pk) SELECT id FROM hub_sessions WHERE id = $1"
            " ON CONFLICT DO NOTHING",
            session_pk,
        )
        return await conn.fetchrow(
            "SELECT projected_seq, state FROM hub_projections WHERE session_pk = $1 FOR UPDATE",
            session_pk,
        )

    async def _catch_up(self, conn: asyncpg.Connection, session_pk: int) -> int:
        locked = await self._lock(conn, session_pk)
        if locked is None:
            return 0
        seq = int(locked["projected_seq"])
        state = ProjectionState.from_json(locked["state"])
        # Every event up to the head is committed (the head moves in the same transaction).
        # Only the projected types are read: the others leave the projection as it is, and
        # a class streaming HRV or announcements would otherwise be read back whole.
        head = int(await conn.fetchval("SELECT head_seq FROM hub_sessions WHERE id = $1", session_pk) or 0)
        after = seq
        while True:
            rows = await conn.fetch(
                "SELECT seq, type, ts, actor, data FROM hub_events WHERE session_pk = $1 AND seq > $2"
                " AND seq <= $3 AND type = ANY($4::text[]) ORDER BY seq LIMIT $5",
                session_pk,
                after,
                head,
                _TYPES,
                _PAGE,
            )
            for row in rows:
                event = StoredEvent(
                    session_pk, row["seq"], row["type"], row["ts"], row["actor"], row["data"] or {}
                )
                for write in apply(state, event):
                    await self._write(conn, session_pk, write)
                after = event.seq
            if len(rows) < _PAGE:
                break
        seq = max(seq, head)
        await conn.execute(
            "UPDATE hub_projections SET projected_seq = $2, state = $3, updated_at = now()"
            " WHERE session_pk = $1",
            session_pk,
            seq,
            state.to_json(),
        )
        return seq

    async def _write(self, conn: asyncpg.Connection, session_pk: int, write: Write) -> None:
        if isinstance(write, InteractionRow):
            actor = write.actor
            await conn.execute(
                "INSERT INTO hub_interactions (session_pk, seq, interaction_sequence, interaction_type,"
                " content, prompt_category, response_method, prompt_seq, topic, duration_seconds,"
                " actor_user_id, actor_name, actor_role, ts)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                " ON CONFLICT DO NOTHING",
                session_pk,
                write.seq,
                write.interaction_sequence,
                write.interaction_type,
                write.content,
                write.prompt_category,
                write.response_method,
                write.prompt_seq,
                write.topic,
                write.duration_seconds,
                actor.get("user_id"),
                actor.get("name"),
                actor.get("role"),
                write.ts,
            )
        elif isinstance(write, NoteRow):
            await conn.execute(
                "INSERT INTO hub_notes (session_pk, seq, note_type, note_content,"
                " noted_at_interaction_sequence, is_important, requires_followup, noted_by,"
                " noted_by_role, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                " ON CONFLICT DO NOTHING",
                session_pk,
                write.seq,
                write.note_type,
                write.note_content,
                write.noted_at_interaction_sequence,
                write.is_important,
                write.requires_followup,
                write.actor.get("user_id"),
                write.actor.get("role"),
                write.ts,
            )
        elif isinstance(write, FeedbackRow):
            await conn.execute(
                "INSERT INTO hub_feedback (session_pk, seq, message_seq, user_id, feedback_type,"
                " comment, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                session_pk,
                write.seq,
                write.message_seq,
                write.user_id,
                write.feedback_type,
                write.comment,
                write.ts,
            )
        else:
            await self._summary(conn, session_pk, write)

    async def _summary(self, conn: asyncpg.Connection, session_pk: int, due: SummaryDue) -> None:
        context = await summary_context(conn, session_pk, due.ts)
        duration = due.duration_seconds
        started = due.facts.get("started_at")
        if duration is None and isinstance(started, str):
            duration = int((due.ts - datetime.fromisoformat(started.replace("Z", "+00:00"))).total_seconds())
        text, plan, outline = render(due.facts, context, due.kind, duration)
        inserted = await conn.fetchval(
            "INSERT INTO hub_summaries (session_pk, seq, kind, response_count, summary_text,"
            " next_plan_text, outline, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT DO NOTHING RETURNING seq",
            session_pk,
            due.seq,
            due.kind,
            due.facts.get("responses", 0),
            text,
            plan,
            outline,
            due.ts,
        )
        if inserted is None:
            return
        # Seed 002 keeps the latest summary and plan on the session itself.
        fields: dict[str, Any] = {"summary": text, "next_plan": plan}
        if due.kind == "final" and duration is not None:
            fields["actual_duration_minutes"] = round(duration / 60)
        await conn.execute(
            "UPDATE hub_sessions SET attributes = attributes || $2 WHERE id = $1", session_pk, fields
        )


async def summary_context(
    conn: asyncpg.Pool | asyncpg.Connection, session_pk: int, at: datetime | None
) -> SummaryContext:
    """The record fields a summary speaks about, and what existed at `at` (None: now)."""
    row = await conn.fetchrow(
        "SELECT s.title, s.attributes,"
        " (SELECT count(*) FROM hub_artifacts a WHERE a.session_pk = s.id"
        "   AND ($2::timestamptz IS NULL OR a.created_at <= $2)) AS artifacts,"
        " (SELECT coalesce(array_agg(t.name ORDER BY st.is_primary_focus DESC, t.name), '{}')"
        "   FROM hub_session_topics st JOIN hub_topics t ON t.id = st.topic_id"
        "   WHERE st.session_pk = s.id AND ($2::timestamptz IS NULL OR st.created_at <= $2)) AS topics"
        " FROM hub_sessions s WHERE s.id = $1",
        session_pk,
        at,
    )
    if row is None:
        return SummaryContext(title="")
    return SummaryContext.from_attributes(
        row["title"], row["attributes"] or {}, int(row["artifacts"]), tuple(row["topics"])
    )
