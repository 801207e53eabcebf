"""Group commit on a real PostgreSQL: a burst shares round trips and seqs stay gap-free."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from hub.committer import CommitFailed, CommitOverloaded, GroupCommitter, PendingAppend
from hub.store import AppendRequest, AppendResult
from storage.pg_store import PgStore


async def test_a_burst_shares_round_trips_and_gets_gap_free_seqs(database):
    store = await PgStore.connect(database)
    batches: list[int] = []
    delivered: list[int] = []
    committer = GroupCommitter(
        store,
        lambda batch, results: delivered.extend(r.seq or 0 for r in results),
        observer=lambda size, seconds, ok: batches.append(size),
    )
    committer.start()
    try:
        first = await store.create_session(
            "default", {"session_id": "a", "title": "A", "max_participants": 10}
        )
        second = await store.create_session(
            "default", {"session_id": "b", "title": "B", "max_participants": 10}
        )
        for session in (first, second):
            start = AppendRequest(session.pk, "session_started", {}, None)
            await committer.submit(PendingAppend(start, session.session_id))
        batches.clear()
        futures = [
            committer.submit(PendingAppend(AppendRequest(pk, "announcement", {"message": str(i)}, None), "x"))
            for i in range(500)
            for pk in (first.pk, second.pk)
        ]
        results = await asyncio.gather(*futures)
        assert len(batches) < 100, f"1000 events took {len(batches)} round trips"
        # futures alternate between the two sessions; each session's seqs run 2..501 in order
        assert [r.seq for r in results[0::2]] == list(range(2, 502))
        assert [r.seq for r in results[1::2]] == list(range(2, 502))
        events = await store.read_events(first.pk, 0, 1000)
        assert [e.seq for e in events] == list(range(1, 502))
    finally:
        await committer.close()
        await store.close()


async def test_status_and_dedupe_are_checked_per_item_in_one_batch(database):
    store = await PgStore.connect(database)
    try:
        session = await store.create_session(
            "default", {"session_id": "c", "title": "C", "max_participants": 10}
        )
        results = await store.append_batch(
            [
                AppendRequest(session.pk, "session_ending", {}, None),  # not started yet
                AppendRequest(session.pk, "hrv_update", {"hrv": 50}, None),  # a baseline is fine
                AppendRequest(session.pk, "session_started", {}, None),
                AppendRequest(session.pk, "prompt", {"text": "now"}, None, dedupe_key="u\x1f1"),
                AppendRequest(session.pk, "prompt", {"text": "now"}, None, dedupe_key="u\x1f1"),
                AppendRequest(999_999, "prompt", {"text": "nowhere"}, None),
                AppendRequest(session.pk, "session_ended", {"status": "completed"}, None),
                AppendRequest(session.pk, "prompt", {"text": "too late"}, None),
            ]
        )
        assert [(r.seq, r.error, r.duplicate) for r in results] == [
            (None, "conflict", False),
            (1, None, False),
            (2, None, False),
            (3, None, False),
            (3, None, True),
            (None, "not_found", False),
            (4, None, False),
            (None, "conflict", False),
        ]
        assert results[2].data is not None and results[2].data["status"] == "in_progress"
        assert results[-1].status == "completed"
        assert await store.count_events(session.pk) == 4
    finally:
        await store.close()


async def test_first_session_of_a_new_account_registers_the_account_once(database):
    store = await PgStore.connect(database)
    try:
        record = await store.create_session("acme", {"session_id": "x", "title": "X"})
        assert record.account_id == "acme" and record.session_type == "live"
        other = await store.create_session("acme", {"session_id": "y", "title": "Y"})
        assert other.pk != record.pk
        assert await store.pool.fetchval("SELECT count(*) FROM hub_accounts WHERE account_id = 'acme'") == 1
    finally:
        await store.close()


async def test_a_data_error_in_one_item_does_not_fail_its_batch_neighbours(database):
    store = await PgStore.connect(database)
    committer = GroupCommitter(store, lambda pending, result: None)
    committer.start()
    try:
        session = await store.create_session("default", {"session_id": "d", "title": "D"})
        await committer.submit(PendingAppend(AppendRequest(session.pk, "session_started", {}, None), "d"))
        # Validation normally refuses NUL; this goes straight to the committer to force a data error.
        items = [{"message": "before"}, {"message": "nul \u0000 inside"}, {"message": "after"}]
        futures = [
            committer.submit(PendingAppend(AppendRequest(session.pk, "announcement", data, None), "d"))
            for data in items
        ]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert isinstance(outcomes[1], CommitFailed)
        stored = [e.data["message"] for e in await store.read_events(session.pk, 1, 10)]
        assert stored == ["before", "after"]
    finally:
        await committer.close()
        await store.close()


class InFlight:
    """The real store, counting how many `append_batch` calls are under way at once."""

    def __init__(self, store: PgStore):
        self.store = store
        self.now = 0
        self.most = 0

    async def append_batch(self, items: list[AppendRequest]) -> list[AppendResult]:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.002)  # a slower database: the next lane's batch starts meanwhile
            return await self.store.append_batch(items)
        finally:
            self.now -= 1


async def test_lanes_write_sessions_at_once_and_keep_each_sessions_order(database):
    store = await PgStore.connect(database)
    counting = InFlight(store)
    seen: dict[int, list[tuple[int, str]]] = {}  # session pk -> (seq, message) as the listener saw them

    def listener(batch: Sequence[PendingAppend], results: Sequence[AppendResult]) -> None:
        for pending, result in zip(batch, results, strict=True):
            seen.setdefault(pending.request.session_pk, []).append(
                (result.seq or 0, pending.request.data["message"])
            )

    committer = GroupCommitter(counting, listener, batch_max=16, lanes=3)  # type: ignore[arg-type]
    committer.start()
    try:
        sessions = [
            await store.create_session("default", {"session_id": f"l{n}", "title": "L"}) for n in range(6)
        ]
        for session in sessions:
            await committer.submit(PendingAppend(AppendRequest(session.pk, "session_started", {}, None), "l"))
        seen.clear()
        sent = [(s.pk, f"{s.pk}-{i}") for i in range(100) for s in sessions]
        results = await asyncio.gather(
            *(
                committer.submit(
                    PendingAppend(AppendRequest(pk, "announcement", {"message": m}, None, m), "l")
                )
                for pk, m in sent
            )
        )
        assert counting.most >= 2, "no two batches were ever in flight together"
        for session in sessions:
            mine = [(r.seq, m) for (pk, m), r in zip(sent, results, strict=True) if pk == session.pk]
            # seqs in the order submitted, gap-free; the listener saw them in that order too
            assert mine == [(2 + i, f"{session.pk}-{i}") for i in range(100)]
            assert seen[session.pk] == mine
            stored = await store.read_events(session.pk, 1, 200)
            assert [(e.seq, e.data["message"]) for e in stored] == mine
    finally:
        await committer.close()
        await store.close()


async def test_callback_pendings_get_each_outcome_without_a_future(database):
    store = await PgStore.connect(database)
    committer = GroupCommitter(store, lambda batch, results: None, lanes=2)
    outcomes: dict[str, Any] = {}

    def done(pending: PendingAppend, result: AppendResult | None, error: BaseException | None) -> None:
        outcomes[pending.client_id or ""] = error if error is not None else (result.seq, result.error)  # type: ignore[union-attr]

    try:
        started = await store.create_session("default", {"session_id": "cb1", "title": "C"})
        committer.start()
        await committer.submit(PendingAppend(AppendRequest(started.pk, "session_started", {}, None), "cb1"))
        for client_id, pk in (("ok", started.pk), ("refused", 999_999)):
            pending = PendingAppend(
                AppendRequest(pk, "prompt", {"text": "q"}, None), "x", client_id=client_id, on_done=done
            )
            assert pending.future is None
            committer.enqueue(pending)
        for _ in range(100):
            if len(outcomes) == 2:
                break
            await asyncio.sleep(0.02)
        assert outcomes == {"ok": (2, None), "refused": (None, "not_found")}
        # what was still queued when the committer stopped is failed, never left hanging
        await committer.close()
        committer_closed = PendingAppend(
            AppendRequest(started.pk, "prompt", {"text": "late"}, None), "x", client_id="late", on_done=done
        )
        with pytest.raises(CommitOverloaded):
            committer.enqueue(committer_closed)
    finally:
        await committer.close()
        await store.close()
