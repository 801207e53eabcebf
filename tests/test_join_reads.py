"""Session reads for joins: their pool connection goes back without asyncpg's reset round
trip while every other use of the pool is still reset (storage/pool_reset.py), and
admission shares the welcomes' reads (hub/session_reads.py)."""

from __future__ import annotations

import asyncio

from hub.session_reads import SessionReads
from storage.pg_store import PgStore
from storage.pool_reset import fetchrow_read_only

SETTING = "SELECT current_setting('application_name')"


async def test_a_read_only_release_skips_the_reset_and_every_other_release_is_reset(database: str) -> None:
    store = await PgStore.connect(database, min_size=1, max_size=1)  # one connection: the same each time
    pool = store.pool
    try:
        # A normal release resets what the statement left in the session.
        await pool.execute("SET application_name = 'left behind'")
        assert await pool.fetchval(SETTING) == ""
        # The read-only path sends no reset: what a statement there left stays (which is
        # why only statements that leave nothing may take it).
        await fetchrow_read_only(pool, "SELECT set_config('application_name', 'not reset', false)")
        assert await pool.fetchval(SETTING) == "not reset"
        # The mark was for that one release: the release just made reset it as before.
        assert await pool.fetchval(SETTING) == ""
        # Session reads take the read-only path and still answer.
        assert await store.get_session("nobody", "nothing") is None
        assert await store.get_session_by_pk(-1) is None
    finally:
        await store.close()


async def test_admission_shares_the_welcomes_reads_and_still_finds_a_session_made_again(
    database: str,
) -> None:
    store = await PgStore.connect(database, min_size=1, max_size=4)
    reads = SessionReads(store)
    try:
        made = await store.create_session("acct", {"session_id": "s1", "title": "t"})
        assert (await reads.by_id("acct", "s1")).pk == made.pk  # type: ignore[union-attr]
        assert reads.batched.reads == 1
        # A welcome's read in flight; an admission and another welcome ask meanwhile: both
        # are answered by the one next read (by id it would have been a read of its own).
        first = asyncio.ensure_future(reads.by_pk(made.pk))
        await asyncio.sleep(0)
        later = await asyncio.gather(reads.by_id("acct", "s1"), reads.by_pk(made.pk), first)
        assert [found.pk for found in later if found] == [made.pk] * 3
        assert reads.batched.reads == 3
        # Deleted and made again under its id: a new primary key, which admission finds.
        await store.pool.execute("DELETE FROM hub_sessions WHERE id = $1", made.pk)
        again = await store.create_session("acct", {"session_id": "s1", "title": "t"})
        assert again.pk != made.pk
        assert (await reads.by_id("acct", "s1")).pk == again.pk  # type: ignore[union-attr]
        assert await reads.by_id("acct", "gone") is None
    finally:
        await store.close()
