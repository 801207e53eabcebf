"""The records projector behind the commit path (hub/records/worker.py): under a stream of
commits it catches a session up at most once per linger, and the HTTP readers still see
their own writes at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hub.records.worker import RecordsWorker
from tests.records_support import Api, api_fixture  # noqa: F401  (the `api` fixture)


class Counting:
    """The real projection store, counting the catch-ups asked of it."""

    def __init__(self, store: Any):
        self.store = store
        self.catch_ups = 0

    async def catch_up(self, session_pk: int) -> int:
        self.catch_ups += 1
        return int(await self.store.catch_up(session_pk))

    async def behind(self, limit: int) -> list[int]:
        return list(await self.store.behind(limit))


async def test_a_stream_of_commits_is_caught_up_once_per_linger_and_reads_see_their_writes(api: Api):
    await api.session("linger", start=True)
    record = await api.record("linger")
    worker: RecordsWorker = api.hub.records
    counting = Counting(worker.store)
    worker.store = counting  # type: ignore[assignment]
    worker.linger = 0.5
    await asyncio.sleep(0.6)  # whatever the start left to project is done
    counting.catch_ups = 0
    seqs = []
    began = time.monotonic()
    for turn in range(20):  # a prompt every 25 ms for half a second
        seqs.append(await api.event("linger", "prompt", {"text": f"Q{turn}"}, user="sarah"))
        await asyncio.sleep(0.025)
    streamed = time.monotonic() - began
    # The reader sees every prompt at once (read-your-writes), lingering or not.
    listed = await api.ok("GET", "/api/v2/session/linger/interactions", limit=100)
    assert [i["seq"] for i in listed["interactions"]] == seqs
    await asyncio.sleep(0.6)
    # The worker started at most one catch-up per linger (the reader's own is on top),
    # where it used to start one per commit.
    worker_catch_ups = counting.catch_ups - 1
    assert 1 <= worker_catch_ups <= streamed / worker.linger + 2, (worker_catch_ups, streamed)
    assert worker_catch_ups < 10
    assert await worker.store.store.checkpoint(record.pk) == seqs[-1]  # type: ignore[attr-defined]


async def test_a_commit_after_a_quiet_spell_is_projected_at_once(api: Api):
    await api.session("quiet", start=True)
    record = await api.record("quiet")
    worker: RecordsWorker = api.hub.records
    worker.linger = 1.0
    await asyncio.sleep(1.1)  # quiet for longer than the linger
    seq = await api.event("quiet", "prompt", {"text": "Q"}, user="sarah")
    began = time.monotonic()
    while time.monotonic() - began < 0.5:  # half the linger
        if await worker.store.checkpoint(record.pk) == seq:  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the first commit after a quiet spell waited for the linger")
