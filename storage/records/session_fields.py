"""Session record fields, hierarchies, state transitions and follow-up candidates.

A session's record fields live in `hub_sessions.attributes` (migration 010); updates
lock the row, merge in Python and write it back in one transaction, so two concurrent
PATCHes cannot lose each other's fields and the state-transition trigger sees each
change once. `hub.records.store.SessionFieldsStore` on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.records.follow_ups import FOLLOW_UP_STATUSES
from hub.records.store import HierarchyCycle, Only, Page, ParentNotFound, Rows
from hub.store import SessionRecord

from ..session_rows import SESSION_COLUMNS, session_from_row
from .paging import Where, fetch_page

# Literals, not a parameter: the partial index of migration 010 matches them at plan time.
_FOLLOW_UP_STATUSES = ", ".join(f"'{status}'" for status in FOLLOW_UP_STATUSES)
_MAX_DEPTH = 100  # a hierarchy deeper than this is refused (and walks stop there)


def merge_state(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Top-level merge; a key set to null is removed (JSON merge patch, one level)."""
    merged = dict(old)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


class PgSessionFieldsStore:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def exists(self, account_id: str, session_id: str) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM hub_sessions WHERE account_id = $1 AND session_id = $2", account_id, session_id
        )
        return found is not None

    async def update(
        self,
        session_pk: int,
        changes: dict[str, Any],
        title: str | None = None,
        trigger: tuple[str, str | None] = ("user_action", None),
    ) -> SessionRecord:
        """Apply `changes` to the record fields (None removes a field; `state` merges)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT account_id, session_id, attributes FROM hub_sessions WHERE id = $1 FOR UPDATE",
                session_pk,
            )
            attributes = dict(row["attributes"] or {})
            for key, value in changes.items():
                if key == "state" and value is not None:
                    value = merge_state(attributes.get("state") or {}, value)
                if value is None:
                    attributes.pop(key, None)
                else:
                    attributes[key] = value
            parent = changes.get("parent_session_id")
            if parent is not None:
                await self._check_parent(conn, row["account_id"], row["session_id"], parent)
            await conn.execute("SELECT set_config('hub.state_trigger_type', $1, true)", trigger[0])
            await conn.execute("SELECT set_config('hub.state_trigger_id', $1, true)", trigger[1] or "")
            try:
                updated = await conn.fetchrow(
                    "UPDATE hub_sessions SET attributes = $2, title = coalesce($3, title), updated_at = now()"
                    f" WHERE id = $1 RETURNING {SESSION_COLUMNS}",
                    session_pk,
                    attributes,
                    title,
                )
            except asyncpg.ForeignKeyViolationError:
                raise ParentNotFound(f"parent_session_id: session '{parent}' not found") from None
        return session_from_row(updated)

    async def _check_parent(self, conn: asyncpg.Connection, account_id: str, child: str, parent: str) -> None:
        chain = await self._chain(conn, account_id, parent)
        if not chain:
            raise ParentNotFound(f"parent_session_id: session '{parent}' not found")
        if child in [r["session_id"] for r in chain] or len(chain) >= _MAX_DEPTH:
            raise HierarchyCycle(f"parent_session_id: '{parent}' would make the session its own ancestor")

    async def _chain(
        self, conn: asyncpg.Pool | asyncpg.Connection, account_id: str, session_id: str
    ) -> list[asyncpg.Record]:
        return await conn.fetch(
            "WITH RECURSIVE up AS ("
            "  SELECT id, session_id, parent_session_id, 0 AS depth FROM hub_sessions"
            "  WHERE account_id = $1 AND session_id = $2"
            "  UNION ALL"
            "  SELECT s.id, s.session_id, s.parent_session_id, up.depth + 1 FROM hub_sessions s"
            "  JOIN up ON s.account_id = $1 AND s.session_id = up.parent_session_id"
            "  WHERE up.depth < $3"
            ") SELECT id, session_id, depth FROM up ORDER BY depth",
            account_id,
            session_id,
            _MAX_DEPTH,
        )

    async def ancestors(self, account_id: str, session_id: str) -> list[SessionRecord]:
        """The session's parent, grandparent, ... up to the root (nearest first)."""
        chain = await self._chain(self.pool, account_id, session_id)
        pks = [r["id"] for r in chain[1:]]
        rows = await self.pool.fetch(f"SELECT {SESSION_COLUMNS} FROM hub_sessions WHERE id = ANY($1)", pks)
        by_pk = {row["id"]: session_from_row(row) for row in rows}
        return [by_pk[pk] for pk in pks if pk in by_pk]

    async def children(
        self, account_id: str, session_id: str, page: Page, only: Only = None
    ) -> tuple[list[SessionRecord], int | None]:
        where = Where().add("account_id = {0}", account_id).add("parent_session_id = {0}", session_id)
        where.add_if("session_id = ANY({0}::text[])", None if only is None else list(only))
        where.add_if("status = {0}", page.status).add_if("session_type = {0}", page.type)
        rows, cursor = await fetch_page(
            self.pool, f"SELECT {SESSION_COLUMNS} FROM hub_sessions", where, "id", page
        )
        return [session_from_row(row) for row in rows], cursor

    async def transitions(self, session_pk: int, page: Page) -> Rows:
        where = Where().add("session_pk = {0}", session_pk).add_if("trigger_type = {0}", page.type)
        return await fetch_page(
            self.pool,
            "SELECT id, trigger_type, trigger_id, transition_data, previous_values, new_values, created_at"
            " FROM hub_state_transitions",
            where,
            "id",
            page,
        )

    async def follow_up_candidates(
        self, account_id: str, session_type: str | None, after_pk: int | None, limit: int
    ) -> list[SessionRecord]:
        """Sessions in a follow-up status with follow-ups enabled; the time rules are the caller's."""
        rows = await self.pool.fetch(
            f"SELECT {SESSION_COLUMNS} FROM hub_sessions WHERE account_id = $1 AND follow_up_enabled"
            f" AND status IN ({_FOLLOW_UP_STATUSES}) AND ($2::text IS NULL OR session_type = $2)"
            " AND ($3::bigint IS NULL OR id > $3) ORDER BY id LIMIT $4",
            account_id,
            session_type,
            after_pk,
            limit,
        )
        return [session_from_row(row) for row in rows]
