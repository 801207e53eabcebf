"""SQL that more than one store writes: an account registered on first use, and an
INSERT built from a column list with its placeholders numbered to match the arguments."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def ensure_account(conn: asyncpg.Connection | asyncpg.Pool, account_id: str) -> None:
    """Register `account_id` if nobody has yet: sessions, templates and topics reference it."""
    await conn.execute("INSERT INTO hub_accounts (account_id) VALUES ($1) ON CONFLICT DO NOTHING", account_id)


def insert_returning(table: str, columns: Sequence[str], returning: str) -> str:
    """`INSERT INTO table (columns) VALUES ($1, ...) RETURNING returning`: pass one
    argument per column, in the order of `columns`."""
    placeholders = ", ".join(f"${number}" for number in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) RETURNING {returning}"
