"""Retention: ended sessions' logs archived, trimmed, exported and restored; what a trimmed
session still answers; the job on one process at a time; trimming beside live writers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.records.session_metrics import compute_metrics
from hub.retention import RetentionJob, RetentionPolicy
from hub.store import AppendRequest, StoredEvent
from storage.archive import DirectoryArchive, read_file
from storage.pg_store import PgStore
from storage.records.projection import PgProjectionStore
from storage.retention import PgRetentionStore
from tests.cluster_tools import Publisher, assert_gap_free, head_seq, log_seqs
from tests.support import ROOT, LiveClient, admin_dsn, api, create_session, database_dsn

pytestmark = pytest.mark.timeout(60)


async def ended_session(store: PgStore, events: int = 6, account: str = "default", days_ago: int = 40) -> Any:
    """A session that ran (prompts, responses with dedupe keys) and ended `days_ago` days
    ago, its records projection caught up (the job waits for that)."""
    record = await store.create_session(account, {"session_id": f"s-{uuid.uuid4().hex[:8]}", "title": "Calm"})
    actor = {"user_id": "sarah", "role": "instructor"}
    items = [AppendRequest(record.pk, "session_started", {}, actor)]
    for i in range(events):
        kind = "prompt" if i % 2 == 0 else "response"
        who = actor if kind == "prompt" else {"user_id": "bob", "role": "participant"}
        items.append(AppendRequest(record.pk, kind, {"text": f"t{i}"}, who, f"{kind}-{i}"))
    items.append(AppendRequest(record.pk, "session_ended", {"status": "completed"}, actor))
    assert all(r.error is None for r in await store.append_batch(items))
    await store.pool.execute(
        "UPDATE hub_sessions SET ended_at = now() - make_interval(days => $2) WHERE id = $1",
        record.pk,
        days_ago,
    )
    await PgProjectionStore(store.pool).catch_up(record.pk)
    return await store.get_session_by_pk(record.pk)


async def log_rows(pool: asyncpg.Pool, session_pk: int) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT seq, type, ts, actor, data, dedupe_key FROM hub_events WHERE session_pk = $1 ORDER BY seq",
        session_pk,
    )
    return [tuple(row) for row in rows]


def cli(database: str, archive_dir: Path, *args: str, **settings: str) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "HUB_ARCHIVE_DIR": str(archive_dir),
        "HUB_DEV": "1",
        **settings,
    }
    done = subprocess.run(
        [sys.executable, "-m", "hub", "archive", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_archive_trim_export_restore_round_trip_equals_the_original_log(database, pg_base, tmp_path):
    store = await PgStore.connect(database)
    try:
        old = await ended_session(store)
        recent = await ended_session(store, days_ago=1)
        kept = await ended_session(store, account="lab")  # HUB_RETENTION_ACCOUNT_DAYS: never
        original = await log_rows(store.pool, old.pk)
        metrics = compute_metrics(StoredEvent(old.pk, *row[:5]) for row in original)
        retention = PgRetentionStore(store.pool, delete_batch=3)  # several batches
        job = RetentionJob(retention, DirectoryArchive(tmp_path), RetentionPolicy(30, {"lab": None}))
        # A webhook endpoint not yet served to the end holds the log back (it delivers from it).
        await store.pool.execute(
            "INSERT INTO hub_webhooks (id, account_id, url, secret) VALUES ('w1', 'default', 'http://x', 's')"
        )
        await store.pool.execute(
            "INSERT INTO hub_webhook_cursors (webhook_id, session_pk, delivered_seq) VALUES ('w1', $1, 2)",
            old.pk,
        )
        assert (await job.run_once()).archived == 0
        await store.pool.execute("UPDATE hub_webhook_cursors SET delivered_seq = $1", old.head_seq)
        run = await job.run_once()
        assert (run.held, run.archived, run.trimmed_events) == (True, 1, len(original))
        assert await log_rows(store.pool, old.pk) == []
        assert len(await log_rows(store.pool, recent.pk)) == len(await log_rows(store.pool, kept.pk)) > 0
        trimmed = await store.get_session_by_pk(old.pk)
        assert trimmed is not None and trimmed.retained_from == trimmed.head_seq + 1 == len(original) + 1
        entry = await retention.archive_of(old.pk)
        assert entry is not None and entry.trimmed_at is not None and entry.metrics == metrics
        assert (await job.run_once()).archived == 0  # nothing twice

        # export (from the archive) -> restore into another deployment's database
        exported = tmp_path / "exported.jsonl.gz"
        cli(database, tmp_path, "export", old.session_id, "-o", str(exported))
        assert read_file(exported) == read_file(tmp_path / "default" / f"{old.session_id}.jsonl.gz")
        listed = cli(database, tmp_path, "list")
        assert (
            f"default\t{old.session_id}\t{len(original)}\t1-{len(original)}" in listed and "trimmed" in listed
        )
        other = database_dsn(pg_base, f"hubtest_{uuid.uuid4().hex[:12]}")
        admin = await asyncpg.connect(admin_dsn(pg_base))
        await admin.execute(f'CREATE DATABASE "{other.rsplit("/", 1)[1]}"')
        elsewhere = await PgStore.connect(other)
        try:
            cli(other, tmp_path / "unused", "restore", "--file", str(exported))
            copy = await elsewhere.get_session("default", old.session_id)
            assert copy is not None and copy.status == "completed"
            assert (copy.head_seq, copy.retained_from) == (len(original), 1)
            assert await log_rows(elsewhere.pool, copy.pk) == original
        finally:
            await elsewhere.close()
            await admin.execute(f'DROP DATABASE IF EXISTS "{other.rsplit("/", 1)[1]}" WITH (FORCE)')
            await admin.close()

        # restore in place, from the archive directory: the log as it was, resumable again
        assert "8 events restored" in cli(database, tmp_path, "restore", old.session_id)
        assert await log_rows(store.pool, old.pk) == original
        restored = await store.get_session_by_pk(old.pk)
        assert restored is not None and restored.retained_from == 1
        assert (await job.run_once()).archived == 0  # a restored session is left alone
    finally:
        await store.close()


async def test_a_trimmed_session_keeps_its_record_metrics_and_says_where_its_replay_went(
    hub_factory, database, tmp_path
):
    hub = hub_factory(HUB_ARCHIVE_DIR=str(tmp_path), HUB_RETENTION_INTERVAL="0")
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    bob = await LiveClient.connect(hub.ws_url(session_id, "participant", name="bob"))
    for i in range(3):
        await instructor.request("prompt", {"text": f"How is your breath {i}?"})
        await bob.request("response", {"text": f"Slow {i}"})
    assert (await api(hub, "POST", f"/api/v2/session/{session_id}/end")).status_code == 200
    await asyncio.gather(instructor.close(), bob.close())
    path = f"/api/v2/session/{session_id}/content?include_metrics=true&include_replay=true"
    # The end is followed by the hub's own `session_summary`: the log is whole once it is in,
    # and in the session's head too (read before the replay, it may lag one request behind).
    for _ in range(200):
        before = (await api(hub, "GET", path)).json()
        summaries = [m["seq"] for m in before["replay"]["messages"] if m["type"] == "session_summary"]
        if summaries and before["session_info"]["head_seq"] == summaries[0]:
            break
        await asyncio.sleep(0.05)
    head = before["session_info"]["head_seq"]
    interactions = (await api(hub, "GET", f"/api/v2/session/{session_id}/interactions")).json()

    # the policy with 0 days: archived as soon as it ended (the job, run from the CLI)
    assert "1 sessions archived" in cli(database, tmp_path, "run", HUB_RETENTION_DAYS="0")

    after = (await api(hub, "GET", path)).json()
    assert after["metrics"] == before["metrics"] and after["metrics"]["message_count"] == head
    assert after["session_info"]["status"] == "completed"
    archived = after["replay"]["archived"]
    assert after["replay"]["messages"] == [] and archived["reason"] == "trimmed"
    assert archived["retained_from"] == head + 1 and archived["event_count"] == head
    assert archived["location"] == (tmp_path / "default" / f"{session_id}.jsonl.gz").resolve().as_uri()
    assert (await api(hub, "GET", f"/api/v2/session/{session_id}/interactions")).json() == interactions
    metrics = (await api(hub, "GET", f"/api/v2/session/{session_id}/metrics")).json()["metrics"]
    assert metrics == before["metrics"]
    rebuild = await api(hub, "POST", f"/api/v2/session/{session_id}/records/rebuild")
    assert rebuild.status_code == 409  # the records outlive the log; a rebuild would drop them

    client = await LiveClient.connect(hub.ws_url(session_id, "observer", since=2))
    resume = client.welcome["data"]["resume"]
    assert (resume["recovered"], resume["reason"], resume["retained_from"]) == (False, "trimmed", head + 1)
    assert (await client.next_of("error"))["data"]["code"] == "resume_unavailable"
    await client.close()


async def test_the_job_runs_on_one_process_at_a_time(hub_factory, database, tmp_path):
    store = await PgStore.connect(database)
    sessions = [await ended_session(store) for _ in range(6)]
    lock = PgRetentionStore(store.pool)
    env = {"HUB_ARCHIVE_DIR": str(tmp_path), "HUB_RETENTION_INTERVAL": "0.2"}
    try:
        async with lock.exclusive() as held:  # the test holds the job's lock: nobody works
            assert held
            hubs = await asyncio.gather(*(asyncio.to_thread(hub_factory, **env) for _ in range(2)))
            await asyncio.sleep(1.0)
            assert await store.pool.fetchval("SELECT count(*) FROM hub_archives") == 0
        deadline = time.monotonic() + 15
        while await store.pool.fetchval("SELECT count(*) FROM hub_archives WHERE trimmed_at IS NOT NULL") < 6:
            assert time.monotonic() < deadline, "the sessions were not archived"
            await asyncio.sleep(0.1)
        done: list[float] = []
        for hub in hubs:
            text = (await api(hub, "GET", "/metrics")).text
            line = next(
                x for x in text.splitlines() if x.startswith("hub_retention_sessions_archived_total ")
            )
            done.append(float(line.split()[1]))
        assert sum(done) == len(sessions)  # each archived once, by whichever process held the lock
        assert await store.pool.fetchval("SELECT count(*) FROM hub_events") == 0
    finally:
        await store.close()


async def test_trimming_while_writers_append(hub_factory, database, tmp_path):
    store = await PgStore.connect(database)
    big = await ended_session(store)
    # a long log, written directly: 40 000 events to delete in batches
    await store.pool.execute(
        "INSERT INTO hub_events (session_pk, seq, type, ts, data)"
        " SELECT $1, g, 'hrv_update', now(), '{\"hrv\": 50}' FROM generate_series(9, 40008) g",
        big.pk,
    )
    await store.pool.execute("UPDATE hub_sessions SET head_seq = 40008 WHERE id = $1", big.pk)
    await store.pool.execute("UPDATE hub_projections SET projected_seq = 40008 WHERE session_pk = $1", big.pk)
    hub = hub_factory(HUB_ARCHIVE_DIR=str(tmp_path), HUB_RETENTION_INTERVAL="0")
    session_id = await create_session(hub)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    publisher = Publisher(instructor, count=150, interval=0.005)
    flow = asyncio.create_task(publisher.run())
    await publisher.wait_acked(10)
    job = RetentionJob(
        PgRetentionStore(store.pool, delete_batch=2000), DirectoryArchive(tmp_path), RetentionPolicy(30)
    )
    acked_before = len(publisher.acked_seqs())
    run = await job.run_once()
    acked_during = len(publisher.acked_seqs()) - acked_before
    try:
        assert run.archived == 1 and run.trimmed_events == 40008
        assert acked_during > 0 or flow.done(), "appends waited for the trim"
        await flow
        await publisher.wait_answered()
        head = await head_seq(hub, session_id)
        assert_gap_free(await log_seqs(hub, session_id), head)
        assert set(publisher.acked_seqs()) == set(range(2, head + 1))
        assert await store.pool.fetchval("SELECT count(*) FROM hub_events WHERE session_pk = $1", big.pk) == 0
    finally:
        await instructor.close()
        await store.close()
