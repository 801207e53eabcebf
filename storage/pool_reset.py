"""Releasing a pool connection without asyncpg's reset round trip when nothing needs it.

On every release asyncpg's pool sends `SELECT pg_advisory_unlock_all(); CLOSE ALL;
UNLISTEN *; RESET ALL;`: a round trip as dear as the read before it. A join storm reads
session rows by the thousand (hub/session_reads.py), each one statement outside any
transaction that leaves no lock, cursor, listener or setting behind; in a 10,000-join
storm that reset was about 6 % of the hub's CPU. `fetchrow_read_only` marks its release
as one that needs no reset; every other release is reset as before. (An open transaction
is still rolled back by asyncpg itself, whatever the mark says.)
"""

from __future__ import annotations

import contextvars
from typing import Any

import asyncpg

# Set only around the release of a connection that ran one read-only statement; the
# release runs in a task of its own (asyncpg shields it), which copies the context then.
_NOTHING_TO_RESET: contextvars.ContextVar[bool] = contextvars.ContextVar("nothing_to_reset", default=False)


async def reset_unless_read_only(conn: asyncpg.Connection) -> None:
    """The pool's `reset`: asyncpg's reset query, skipped after a read-only statement."""
    if _NOTHING_TO_RESET.get():
        return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


async def fetchrow_read_only(pool: asyncpg.Pool, query: str, *args: Any) -> Any:
    """`pool.fetchrow` for a statement that changes no session state (a plain SELECT of
    rows): its connection goes back to the pool without the reset round trip."""
    token = None
    try:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(query, *args)
            token = _NOTHING_TO_RESET.set(True)  # seen by the release on leaving the block
    finally:
        if token is not None:
            _NOTHING_TO_RESET.reset(token)
    return row
