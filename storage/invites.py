"""The invite store seam (`hub.invites.InviteStore`) on PostgreSQL."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.invites import CodeTaken, Invite, InviteRefused, NewInvite, Seat, expiry, now_utc

_COLUMNS = (
    "i.code, i.account_id, i.session_pk, s.session_id, s.status, s.title, i.role, i.label, i.created_by,"
    " i.created_at, i.expires_at, i.max_uses, i.uses, i.revoked_at"
)
_FROM = "hub_invites i JOIN hub_sessions s ON s.id = i.session_pk"


def _invite(row: Any) -> Invite:
    return Invite(
        code=row["code"],
        account_id=row["account_id"],
        session_pk=row["session_pk"],
        session_id=row["session_id"],
        role=row["role"],
        label=row["label"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        max_uses=row["max_uses"],
        uses=row["uses"],
        revoked_at=row["revoked_at"],
        session_status=row["status"],
        session_title=row["title"],
    )


class PgInviteStore:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def create(
        self, code: str, session_pk: int, account_id: str, created_by: str, new: NewInvite
    ) -> Invite:
        try:
            await self.pool.execute(
                "INSERT INTO hub_invites (code, session_pk, account_id, role, label, created_by,"
                " expires_at, max_uses) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                code,
                session_pk,
                account_id,
                new.role,
                new.label,
                created_by,
                expiry(now_utc(), new.expires_in),
                new.max_uses,
            )
        except asyncpg.UniqueViolationError:
            raise CodeTaken(code) from None
        invite = await self.get(code)
        assert invite is not None
        return invite

    async def get(self, code: str) -> Invite | None:
        row = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM {_FROM} WHERE i.code = $1", code)
        return _invite(row) if row else None

    async def list_for_session(self, session_pk: int) -> list[Invite]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM {_FROM} WHERE i.session_pk = $1 ORDER BY i.created_at, i.code",
            session_pk,
        )
        return [_invite(row) for row in rows]

    async def revoke(self, code: str) -> Invite | None:
        await self.pool.execute(
            "UPDATE hub_invites SET revoked_at = now() WHERE code = $1 AND revoked_at IS NULL", code
        )
        return await self.get(code)

    async def claim_seat(self, code: str, user_id: str, name: str, secret_hash: bytes) -> Seat:
        async with self.pool.acquire() as conn, conn.transaction():
            # The invite's row lock serialises racing claims: the count never passes max_uses.
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM {_FROM} WHERE i.code = $1 FOR UPDATE OF i", code
            )
            if row is None:
                raise KeyError(code)
            refusal = _invite(row).refusal(now_utc())
            if refusal is not None:
                raise InviteRefused(refusal)
            await conn.execute("UPDATE hub_invites SET uses = uses + 1 WHERE code = $1", code)
            await conn.execute(
                "INSERT INTO hub_invite_seats (invite_code, user_id, name, secret_hash)"
                " VALUES ($1, $2, $3, $4)",
                code,
                user_id,
                name,
                secret_hash,
            )
        return Seat(code, user_id, name)

    async def seat(self, code: str, secret_hash: bytes) -> Seat | None:
        row = await self.pool.fetchrow(
            "SELECT invite_code, user_id, name FROM hub_invite_seats"
            " WHERE secret_hash = $1 AND invite_code = $2",
            secret_hash,
            code,
        )
        return Seat(row["invite_code"], row["user_id"], row["name"]) if row else None
