"""PostgreSQL side of the post-session summary (`hub.end_summary.SummaryLog`): the
summary is the data of the session's `session_summary` event, found by its fixed
idempotency key through the log's dedupe index."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.end_summary import SUMMARY_KEY


class PgSummaryLog:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def missing(self, limit: int) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT s.id FROM hub_sessions s"
            " WHERE s.status = 'completed' AND s.ended_at > now() - interval '1 day'"
            " AND NOT EXISTS (SELECT 1 FROM hub_events e WHERE e.session_pk = s.id AND e.dedupe_key = $1)"
            " ORDER BY s.ended_at LIMIT $2",
            SUMMARY_KEY,
            limit,
        )
        return [row["id"] for row in rows]

    async def latest(self, session_pk: int) -> dict[str, Any] | None:
        data = await self.pool.fetchval(
            "SELECT data FROM hub_events WHERE session_pk = $1 AND dedupe_key = $2", session_pk, SUMMARY_KEY
        )
        return dict(data) if data is not None else None
