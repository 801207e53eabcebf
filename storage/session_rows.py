"""A `hub_sessions` row as the hub sees it: the columns every session read selects, and
the `SessionRecord` they make. Shared by the core store and the records store."""

from __future__ import annotations

from typing import Any

from hub.store import SessionRecord

SESSION_COLUMNS = (
    "id, account_id, session_id, title, session_type, status, instructor, max_participants,"
    " head_seq, retained_from, current_technique, scheduled_start, started_at, ended_at,"
    " created_at, updated_at, attributes, audience"
)


def session_from_row(row: Any) -> SessionRecord:
    """`row` holds the `SESSION_COLUMNS` (an asyncpg record or a mapping)."""
    return SessionRecord(
        pk=row["id"],
        account_id=row["account_id"],
        session_id=row["session_id"],
        title=row["title"],
        session_type=row["session_type"],
        status=row["status"],
        instructor=row["instructor"],
        max_participants=row["max_participants"],
        head_seq=row["head_seq"],
        retained_from=row["retained_from"],
        current_technique=row["current_technique"],
        scheduled_start=row["scheduled_start"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        attributes=row["attributes"] or {},
        audience=row["audience"] or {},
    )
