"""What a session's log left behind, read back; and the notes and feedback written over
HTTP (rows without a seq: they are not in the log and survive a rebuild):
`hub.records.store.ContentStore` on PostgreSQL."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.records.store import FeedbackExists, MessageNotFound, Page, Row, Rows

from .paging import Where, as_row, fetch_page

MESSAGE_TYPES = ("prompt", "response")  # what feedback may be given on

_INTERACTION_COLUMNS = (
    "seq, interaction_sequence, interaction_type, content, prompt_category, response_method,"
    " prompt_seq, topic, duration_seconds, actor_user_id, actor_name, actor_role, ts"
)
_NOTE_COLUMNS = (
    "id, seq, note_type, note_content, noted_at_interaction_sequence, is_important,"
    " requires_followup, noted_by, noted_by_role, created_at"
)
_FEEDBACK_COLUMNS = "id, seq, message_seq, user_id, feedback_type, comment, created_at"
_SUMMARY_COLUMNS = "seq, kind, response_count, summary_text, next_plan_text, outline, created_at"


class PgContentStore:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def interactions(self, session_pk: int, page: Page) -> Rows:
        where = Where().add("session_pk = {0}", session_pk).add_if("interaction_type = {0}", page.type)
        return await fetch_page(
            self.pool,
            f"SELECT {_INTERACTION_COLUMNS} FROM hub_interactions",
            where,
            "interaction_sequence",
            page,
            "ts",
        )

    async def add_note(self, session_pk: int, fields: dict[str, Any], user_id: str, role: str) -> Row:
        row = await self.pool.fetchrow(
            "INSERT INTO hub_notes (session_pk, note_type, note_content, noted_at_interaction_sequence,"
            " is_important, requires_followup, noted_by, noted_by_role)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_NOTE_COLUMNS}",
            session_pk,
            fields.get("note_type") or "observation",
            fields["note_content"],
            fields.get("noted_at_interaction_sequence"),
            bool(fields.get("is_important")),
            bool(fields.get("requires_followup")),
            user_id,
            role,
        )
        return as_row(row)

    async def notes(self, session_pk: int, page: Page) -> Rows:
        where = Where().add("session_pk = {0}", session_pk).add_if("note_type = {0}", page.type)
        where.flag(page.status, {"important": "is_important", "followup": "requires_followup"})
        return await fetch_page(self.pool, f"SELECT {_NOTE_COLUMNS} FROM hub_notes", where, "id", page)

    async def add_feedback(
        self, session_pk: int, message_seq: int, user_id: str, feedback_type: str, comment: str | None
    ) -> Row:
        found = await self.pool.fetchval(
            "SELECT type FROM hub_events WHERE session_pk = $1 AND seq = $2", session_pk, message_seq
        )
        if found not in MESSAGE_TYPES:
            raise MessageNotFound(found)
        row = await self.pool.fetchrow(
            "INSERT INTO hub_feedback (session_pk, message_seq, user_id, feedback_type, comment)"
            f" VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {_FEEDBACK_COLUMNS}",
            session_pk,
            message_seq,
            user_id,
            feedback_type,
            comment,
        )
        if row is None:
            raise FeedbackExists(feedback_type)
        return as_row(row)

    async def feedback(self, session_pk: int, page: Page, message_seq: int | None = None) -> Rows:
        where = Where().add("session_pk = {0}", session_pk).add_if("feedback_type = {0}", page.type)
        where.add_if("message_seq = {0}", message_seq)
        return await fetch_page(self.pool, f"SELECT {_FEEDBACK_COLUMNS} FROM hub_feedback", where, "id", page)

    async def summaries(self, session_pk: int, page: Page) -> Rows:
        where = Where().add("session_pk = {0}", session_pk).add_if("kind = {0}", page.type)
        return await fetch_page(
            self.pool, f"SELECT {_SUMMARY_COLUMNS} FROM hub_summaries", where, "seq", page
        )

    async def latest_summary(self, session_pk: int) -> Row | None:
        row = await self.pool.fetchrow(
            f"SELECT {_SUMMARY_COLUMNS} FROM hub_summaries WHERE session_pk = $1 ORDER BY seq DESC LIMIT 1",
            session_pk,
        )
        return None if row is None else as_row(row)

    async def counts(self, session_pk: int) -> dict[str, int]:
        row = await self.pool.fetchrow(
            "SELECT"
            " (SELECT count(*) FROM hub_interactions WHERE session_pk = $1) AS interactions,"
            " (SELECT count(*) FROM hub_interactions WHERE session_pk = $1"
            "   AND interaction_type = 'response') AS responses,"
            " (SELECT count(*) FROM hub_notes WHERE session_pk = $1) AS notes,"
            " (SELECT count(*) FROM hub_artifacts WHERE session_pk = $1) AS artifacts,"
            " (SELECT count(*) FROM hub_artifacts WHERE session_pk = $1 AND is_approved) AS approved,"
            " (SELECT count(*) FROM hub_feedback WHERE session_pk = $1) AS feedback,"
            " (SELECT count(*) FROM hub_session_topics WHERE session_pk = $1) AS topics",
            session_pk,
        )
        return {key: int(row[key]) for key in row.keys()}

    async def snapshot(self, session_pk: int) -> dict[str, list[dict[str, Any]]]:
        """Every log-derived row of the session, for comparing a rebuild with the live build."""
        tables = {
            "interactions": f"SELECT {_INTERACTION_COLUMNS} FROM hub_interactions WHERE session_pk = $1"
            " ORDER BY seq",
            "notes": "SELECT seq, note_type, note_content, noted_at_interaction_sequence, is_important,"
            " requires_followup, noted_by, created_at FROM hub_notes WHERE session_pk = $1"
            " AND seq IS NOT NULL ORDER BY seq",
            "feedback": "SELECT seq, message_seq, user_id, feedback_type, comment, created_at"
            " FROM hub_feedback WHERE session_pk = $1 AND seq IS NOT NULL ORDER BY seq",
            "summaries": f"SELECT {_SUMMARY_COLUMNS} FROM hub_summaries WHERE session_pk = $1 ORDER BY seq",
        }
        return {
            name: [dict(row) for row in await self.pool.fetch(sql, session_pk)]
            for name, sql in tables.items()
        }
