"""Session reads give their pool connection back without asyncpg's reset round trip;
every other use of the pool is still reset (storage/pool_reset.py)."""

from __future__ import annotations

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
