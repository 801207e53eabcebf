"""The log's guarantees under the set-based append (storage/sql/append.sql), on a real
PostgreSQL: several processes writing one session, resends inside and across batches, a
data error and lifecycle conflicts in the middle of a batch, a restart mid-flight."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from hub.committer import CommitFailed, GroupCommitter, PendingAppend
from hub.store import AppendRequest, AppendResult
from storage.pg_store import PgStore
from tests.test_outages import PrivatePostgres

ROOT = Path(__file__).resolve().parent.parent

# One writer process: `batches` batches of `size` items, alternating between the shared
# session and one of its own, every item with a dedupe key; prints the shared seqs it got.
WRITER = """
import asyncio, json, sys
from hub.store import AppendRequest
from storage.pg_store import PgStore

async def main(dsn, shared, own, name, batches, size):
    store = await PgStore.connect(dsn)
    seqs = []
    for b in range(batches):
        items = [AppendRequest(shared if i % 2 == 0 else own, "announcement", {"message": f"{name}-{b}-{i}"},
                               None, f"{name}-{b}-{i}") for i in range(size)]
        results = await store.append_batch(items)
        assert all(r.error is None and not r.duplicate for r in results), results
        seqs += [r.seq for item, r in zip(items, results) if item.session_pk == shared]
    await store.close()
    print(json.dumps(seqs))

dsn, shared, own, name, batches, size = sys.argv[1:]
asyncio.run(main(dsn, int(shared), int(own), name, int(batches), int(size)))
"""


async def started_session(store: PgStore, session_id: str, start: bool = True) -> int:
    record = await store.create_session("default", {"session_id": session_id, "title": session_id})
    if start:
        [result] = await store.append_batch([AppendRequest(record.pk, "session_started", {}, None)])
        assert result.seq == 1
    return record.pk


def item(pk: int, text: str, key: str | None = None, event_type: str = "announcement") -> AppendRequest:
    return AppendRequest(pk, event_type, {"message": text}, None, key)


def outcome(results: list[AppendResult]) -> list[tuple[int | None, str | None, bool]]:
    return [(r.seq, r.error, r.duplicate) for r in results]


async def test_writers_in_several_processes_share_one_gap_free_log(database):
    store = await PgStore.connect(database)
    try:
        shared = await started_session(store, "shared")
        own = [await started_session(store, f"own-{n}") for n in range(3)]
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WRITER,
                database,
                str(shared),
                str(pk),
                f"w{n}",
                "15",
                "40",
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
            )
            for n, pk in enumerate(own)
        ]
        outputs = await asyncio.gather(*(p.communicate() for p in procs))
        assert [p.returncode for p in procs] == [0, 0, 0]
        per_writer = [json.loads(out) for out, _ in outputs]
        for seqs in per_writer:
            assert seqs == sorted(seqs), "a writer's own events out of order"
        every = sorted(s for seqs in per_writer for s in seqs)
        assert every == list(range(2, 2 + 3 * 15 * 20)), "seqs of the shared session not gap-free"
        stored = await store.read_events(shared, 0, 10_000)
        assert [e.seq for e in stored] == list(range(1, 2 + 3 * 15 * 20))
        heads = await store.heads([shared, *own])
        assert heads == {shared: 901, **{pk: 301 for pk in own}}
    finally:
        await store.close()


async def test_a_resend_inside_one_batch_and_across_batches_is_stored_once(database):
    store = await PgStore.connect(database)
    try:
        a, b = await started_session(store, "a"), await started_session(store, "b")
        first = await store.append_batch(
            [item(a, "one", "k1"), item(b, "one", "k1"), item(a, "one again", "k1"), item(a, "two", "k2")]
        )
        # the same key in another session is another event; inside a session, the first wins
        assert outcome(first) == [(2, None, False), (2, None, False), (2, None, True), (3, None, False)]
        assert first[2].data == {"message": "one"} and first[2].ts == first[0].ts
        second = await store.append_batch(
            [
                item(a, "three", "k3"),
                item(a, "two resent", "k2"),
                item(b, "one resent", "k1"),
                item(a, "four"),
            ]
        )
        assert outcome(second) == [(4, None, False), (3, None, True), (2, None, True), (5, None, False)]
        assert second[1].data == {"message": "two"}
        messages = [e.data["message"] for e in await store.read_events(a, 1, 100)]
        assert messages == ["one", "two", "three", "four"]
        assert await store.heads([a, b]) == {a: 5, b: 2}
    finally:
        await store.close()


async def test_the_last_technique_of_a_batch_becomes_the_sessions_own(database):
    store = await PgStore.connect(database)
    try:
        pk = await started_session(store, "technique")
        await store.append_batch(
            [
                AppendRequest(pk, "technique_changed", {"technique": "Box", "duration": 60}, None),
                item(pk, "between"),
                AppendRequest(pk, "technique_changed", {"technique": "4-7-8", "duration": 90}, None),
                item(pk, "after"),
            ]
        )
        record = await store.get_session_by_pk(pk)
        assert record is not None and record.head_seq == 5
        assert record.current_technique is not None
        assert record.current_technique["technique"] == "4-7-8" and "changed_at" in record.current_technique
        await store.append_batch([item(pk, "no technique here")])
        record = await store.get_session_by_pk(pk)
        assert record is not None and record.current_technique is not None
        assert record.current_technique["technique"] == "4-7-8"
    finally:
        await store.close()


async def test_lifecycle_conflicts_in_a_batch_are_per_item_and_in_order(database):
    store = await PgStore.connect(database)
    try:
        live = await started_session(store, "live")
        waiting = await started_session(store, "waiting", start=False)
        ended = await started_session(store, "ended")
        await store.append_batch([AppendRequest(ended, "session_ended", {}, None)])
        results = await store.append_batch(
            [
                item(live, "a"),
                item(ended, "too late", "late"),  # a content event after the end
                AppendRequest(waiting, "session_paused", {}, None),  # not started: conflict
                item(waiting, "baseline"),  # content before the start is fine
                AppendRequest(waiting, "session_started", {}, None),
                item(live, "b"),
                AppendRequest(waiting, "session_started", {}, None),  # twice: conflict
                item(waiting, "started"),
                AppendRequest(waiting, "session_ended", {"status": "cancelled"}, None),  # live: conflict
                AppendRequest(waiting, "session_ended", {}, None),
                item(waiting, "after the end"),
                item(404_404, "nowhere"),
            ]
        )
        assert outcome(results) == [
            (2, None, False),
            (None, "conflict", False),
            (None, "conflict", False),
            (1, None, False),
            (2, None, False),
            (3, None, False),
            (None, "conflict", False),
            (3, None, False),
            (None, "conflict", False),
            (4, None, False),
            (None, "conflict", False),
            (None, "not_found", False),
        ]
        assert results[1].status == "completed" and results[4].data is not None
        assert results[4].data["status"] == "in_progress" and results[-2].status == "completed"
        assert await store.heads([live, waiting, ended]) == {live: 3, waiting: 4, ended: 2}
    finally:
        await store.close()


async def test_a_data_error_mid_batch_costs_its_neighbours_nothing(database):
    store = await PgStore.connect(database)
    committer = GroupCommitter(store, lambda pending, result: None)
    try:
        a, b = await started_session(store, "a"), await started_session(store, "b")
        # Queued before the writer starts, so that all of it is one batch.
        messages = ["a1", "b1", "nul \u0000 inside", "a2", "b2"]
        futures = [
            committer.submit(PendingAppend(item(a if m[0] != "b" else b, m, f"key-{m}"), "s"))
            for m in messages
        ]
        committer.start()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert isinstance(outcomes[2], CommitFailed)
        assert [(r.seq, r.duplicate) for r in outcomes if isinstance(r, AppendResult)] == [
            (2, False),
            (2, False),
            (3, False),
            (3, False),
        ]
        assert [e.data["message"] for e in await store.read_events(a, 1, 10)] == ["a1", "a2"]
        assert [e.data["message"] for e in await store.read_events(b, 1, 10)] == ["b1", "b2"]
    finally:
        await committer.close()
        await store.close()


@pytest.mark.timeout(90)
async def test_a_postgres_restart_mid_flight_acks_only_what_is_stored_and_nothing_twice():
    server = PrivatePostgres()
    try:
        store = await PgStore.connect(server.uri)
        # Two sessions on two lanes: batches of both are in flight when the database stops.
        committer = GroupCommitter(store, lambda pending, result: None, lanes=2)
        committer.start()
        try:
            pks = [await started_session(store, "restart"), await started_session(store, "restart-2")]
            acked: dict[str, int] = {}
            failed: list[str] = []

            async def send(n: int) -> None:
                key = f"e{n}"
                try:
                    result = await committer.submit(PendingAppend(item(pks[n % 2], key, key), "restart"))
                except CommitFailed:
                    failed.append(key)
                else:
                    assert result.seq is not None
                    acked[key] = result.seq

            async def flow() -> None:
                n = 0
                while not stopped.is_set() or n < 300:
                    await asyncio.gather(*(send(n + k) for k in range(20)))
                    n += 20
                    await asyncio.sleep(0.005)

            stopped = asyncio.Event()
            flowing = asyncio.create_task(flow())
            await asyncio.sleep(0.3)
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(0.3)
            await asyncio.to_thread(server.start)
            stopped.set()
            await asyncio.wait_for(flowing, 60)
            assert failed, "no batch met the stopped database"
            # Resending what failed stores each event once: acked ones keep their seq.
            for _attempt in range(50):
                retry, failed = failed, []
                await asyncio.gather(*(send(int(key[1:])) for key in retry))
                if not failed:
                    break
                await asyncio.sleep(0.2)
            assert not failed
            everything: dict[str, int] = {}
            for pk in pks:
                stored = await store.read_events(pk, 1, 100_000)
                seqs = [e.seq for e in stored]
                assert seqs == list(range(2, 2 + len(stored))), "a gap or a seq twice"
                keys = [e.data["message"] for e in stored]
                assert len(keys) == len(set(keys)), "an event stored twice"
                everything.update({e.data["message"]: e.seq for e in stored})
            assert everything == acked
        finally:
            await committer.close()
            await store.close()
    finally:
        server.server.cleanup()
