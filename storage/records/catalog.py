"""Artifacts of a session, and the account's templates and topics (seed 000):
`hub.records.store.CatalogStore` on PostgreSQL."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.records.store import Conflict, NotFound, Only, Page, Row, Rows

from ..statements import ensure_account, insert_returning
from .paging import Where, as_row, fetch_page

_ARTIFACT_COLUMNS = (
    "id, artifact_type, artifact_name, content, structured_data, topic, is_provisional, is_approved,"
    " approved_at, approved_by, included_in_synthesis, created_by, created_at, updated_at"
)
_TEMPLATE_COLUMNS = (
    "id, template_name, template_description, session_type, suggested_for_event_types,"
    " default_intention, default_success_indicators, default_completion_indicators,"
    " default_constraints, default_procedure_notes, default_duration_minutes, defaults,"
    " is_active, created_by, created_at, updated_at"
)
_TEMPLATE_FIELDS = _TEMPLATE_COLUMNS.replace("id, ", "", 1).split(", ")[:12]
_INSERT_TEMPLATE = insert_returning(
    "hub_session_templates", ("account_id", "created_by", *_TEMPLATE_FIELDS), _TEMPLATE_COLUMNS
)
# Topic links answer prompts_completed from the log-derived interactions: never stale.
_LINK_SELECT = (
    "SELECT st.topic_id, t.name, t.topic_type, st.is_primary_focus, st.coverage_level, st.notes,"
    " st.created_at, st.updated_at,"
    " (SELECT count(*) FROM hub_interactions i WHERE i.session_pk = st.session_pk"
    "   AND i.interaction_type = 'prompt' AND i.topic = t.name) AS prompts_completed"
    " FROM hub_session_topics st JOIN hub_topics t ON t.id = st.topic_id"
)


class PgCatalogStore:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    # artifacts

    async def add_artifact(self, session_pk: int, fields: dict[str, Any], user_id: str) -> Row:
        row = await self.pool.fetchrow(
            "INSERT INTO hub_artifacts (session_pk, artifact_type, artifact_name, content,"
            " structured_data, topic, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            f" RETURNING {_ARTIFACT_COLUMNS}",
            session_pk,
            fields["artifact_type"],
            fields.get("artifact_name"),
            fields.get("content"),
            fields.get("structured_data"),
            fields.get("topic"),
            user_id,
        )
        return as_row(row)

    async def artifacts(self, session_pk: int, page: Page) -> Rows:
        where = Where().add("session_pk = {0}", session_pk).add_if("artifact_type = {0}", page.type)
        where.flag(page.status, {"approved": "is_approved", "provisional": "is_provisional"})
        return await fetch_page(
            self.pool, f"SELECT {_ARTIFACT_COLUMNS} FROM hub_artifacts", where, "id", page
        )

    async def approve_artifact(
        self, session_pk: int, artifact_id: int, user_id: str, include: bool | None
    ) -> Row:
        row = await self.pool.fetchrow(
            "UPDATE hub_artifacts SET is_provisional = false, is_approved = true, approved_at = now(),"
            " approved_by = $3, included_in_synthesis = coalesce($4, included_in_synthesis),"
            " updated_at = now() WHERE session_pk = $1 AND id = $2 AND NOT is_approved"
            f" RETURNING {_ARTIFACT_COLUMNS}",
            session_pk,
            artifact_id,
            user_id,
            include,
        )
        if row is not None:
            return as_row(row)
        exists = await self.pool.fetchval(
            "SELECT 1 FROM hub_artifacts WHERE session_pk = $1 AND id = $2", session_pk, artifact_id
        )
        if exists:
            raise Conflict(f"artifact {artifact_id} is already approved")
        raise NotFound(f"artifact {artifact_id} not found")

    # templates

    async def add_template(self, account_id: str, fields: dict[str, Any], user_id: str) -> Row:
        await ensure_account(self.pool, account_id)
        values = [fields.get(name) for name in _TEMPLATE_FIELDS]
        values[_TEMPLATE_FIELDS.index("suggested_for_event_types")] = (
            fields.get("suggested_for_event_types") or []
        )
        values[_TEMPLATE_FIELDS.index("defaults")] = fields.get("defaults") or {}
        values[_TEMPLATE_FIELDS.index("session_type")] = fields.get("session_type") or "live"
        values[_TEMPLATE_FIELDS.index("is_active")] = fields.get("is_active", True) is not False
        try:
            row = await self.pool.fetchrow(_INSERT_TEMPLATE, account_id, user_id, *values)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"template '{fields.get('template_name')}' already exists") from None
        return as_row(row)

    async def templates(self, account_id: str, page: Page) -> Rows:
        where = Where().add("account_id = {0}", account_id).add_if("session_type = {0}", page.type)
        if page.status in ("active", "inactive"):
            where.add("is_active = {0}", page.status == "active")
        return await fetch_page(
            self.pool, f"SELECT {_TEMPLATE_COLUMNS} FROM hub_session_templates", where, "id", page
        )

    async def template(self, account_id: str, template_id: int) -> Row:
        row = await self.pool.fetchrow(
            f"SELECT {_TEMPLATE_COLUMNS} FROM hub_session_templates WHERE account_id = $1 AND id = $2",
            account_id,
            template_id,
        )
        if row is None:
            raise NotFound(f"template '{template_id}' not found")
        return as_row(row)

    # topics

    async def link_topic(self, account_id: str, session_pk: int, name: str, fields: dict[str, Any]) -> Row:
        async with self.pool.acquire() as conn, conn.transaction():
            await ensure_account(conn, account_id)
            topic_id = await conn.fetchval(
                "INSERT INTO hub_topics (account_id, name, topic_type, description) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (account_id, name) DO UPDATE SET"
                " topic_type = coalesce(EXCLUDED.topic_type, hub_topics.topic_type),"
                " description = coalesce(EXCLUDED.description, hub_topics.description) RETURNING id",
                account_id,
                name,
                fields.get("topic_type"),
                fields.get("description"),
            )
            primary = fields.get("is_primary_focus")
            if primary:
                # One primary focus per session: the new one replaces the old.
                await conn.execute(
                    "UPDATE hub_session_topics SET is_primary_focus = false, updated_at = now()"
                    " WHERE session_pk = $1 AND is_primary_focus AND topic_id <> $2",
                    session_pk,
                    topic_id,
                )
            await conn.execute(
                "INSERT INTO hub_session_topics"
                " (session_pk, topic_id, is_primary_focus, coverage_level, notes)"
                " VALUES ($1, $2, coalesce($3, false), $4, $5)"
                " ON CONFLICT (session_pk, topic_id) DO UPDATE SET"
                " is_primary_focus = coalesce($3, hub_session_topics.is_primary_focus),"
                " coverage_level = coalesce($4, hub_session_topics.coverage_level),"
                " notes = coalesce($5, hub_session_topics.notes), updated_at = now()",
                session_pk,
                topic_id,
                primary,
                fields.get("coverage_level"),
                fields.get("notes"),
            )
            row = await conn.fetchrow(
                f"{_LINK_SELECT} WHERE st.session_pk = $1 AND st.topic_id = $2", session_pk, topic_id
            )
        return as_row(row)

    async def unlink_topic(self, session_pk: int, topic_id: int) -> None:
        status = await self.pool.execute(
            "DELETE FROM hub_session_topics WHERE session_pk = $1 AND topic_id = $2", session_pk, topic_id
        )
        if status.endswith(" 0"):
            raise NotFound(f"topic {topic_id} is not linked to this session")

    async def session_topics(self, session_pk: int, page: Page) -> Rows:
        where = Where().add("st.session_pk = {0}", session_pk).add_if("st.coverage_level = {0}", page.type)
        return await fetch_page(self.pool, _LINK_SELECT, where, "st.topic_id", page, "st.created_at")

    async def topics(self, account_id: str, page: Page, only: Only = None) -> Rows:
        where = Where()
        only_ids = where.bind(None if only is None else list(only))
        where.add("t.account_id = {0}", account_id).add_if("t.topic_type = {0}", page.type)
        return await fetch_page(
            self.pool,
            "SELECT t.id, t.name, t.topic_type, t.description, t.created_at,"
            " (SELECT count(*) FROM hub_session_topics st JOIN hub_sessions s ON s.id = st.session_pk"
            f"   WHERE st.topic_id = t.id AND ({only_ids}::text[] IS NULL OR s.session_id = ANY({only_ids})))"
            " AS session_count FROM hub_topics t",
            where,
            "t.id",
            page,
            "t.created_at",
        )

    async def topic_sessions(self, account_id: str, topic_id: int, page: Page, only: Only = None) -> Rows:
        where = Where().add("s.account_id = {0}", account_id).add("st.topic_id = {0}", topic_id)
        where.add_if("s.session_id = ANY({0}::text[])", None if only is None else list(only))
        where.add_if("s.status = {0}", page.status).add_if("s.session_type = {0}", page.type)
        return await fetch_page(
            self.pool,
            "SELECT s.id, s.session_id, s.title, s.session_type, s.status, st.is_primary_focus,"
            " st.coverage_level FROM hub_session_topics st JOIN hub_sessions s ON s.id = st.session_pk",
            where,
            "s.id",
            page,
            "s.created_at",
        )
