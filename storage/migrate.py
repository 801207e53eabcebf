"""Versioned `.sql` migrations, applied in file-name order at start, then the append
function with the lifecycle rules it reads.

Several hub processes may start at once against one database, so the run holds a
PostgreSQL advisory lock; each file is applied in its own transaction and recorded.
The append function is not versioned: like a repeatable migration it is defined in one
file (`sql/append.sql`) and applied at every start, in one transaction with the rules
table's rows from `hub.lifecycle`, so the function and its rules always match the code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg

from hub.lifecycle import rule_rows

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
APPEND_SQL = Path(__file__).parent / "sql" / "append.sql"
_LOCK_KEY = 0x5E55_1011  # any constant shared by every hub process

log = logging.getLogger("hub.storage")


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply what is missing; return the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS hub_schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM hub_schema_migrations")}
        for path in migration_files():
            version = path.stem
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO hub_schema_migrations (version) VALUES ($1)", version)
            log.info("migration applied", extra={"version": version})
            applied_now.append(version)
        await apply_append_function(conn)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def apply_append_function(conn: asyncpg.Connection) -> None:
    """(Re)define the append function and the lifecycle rules it reads, at once."""
    async with conn.transaction():
        await conn.execute("DELETE FROM hub_lifecycle_rules")
        await conn.executemany(
            "INSERT INTO hub_lifecycle_rules (event_type, ends_as, from_status, to_status)"
            " VALUES ($1, $2, $3, $4)",
            rule_rows(),
        )
        await conn.execute(APPEND_SQL.read_text())
