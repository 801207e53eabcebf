"""Retention benchmark: does trimming whole sessions with batched deletes block writers or
bloat the event table? (The reason the log is not partitioned; docs/operations.md.)

    .venv/bin/python bench/retention.py [--sessions 40] [--events 25000] [--batch 5000]

On a fresh database (on the local PostgreSQL, DATABASE_URL's server): fills --sessions
ended sessions with --events events each, then, while one writer appends to a live
session through the hub's append function (group commits of 20 events, as fast as it
can), trims every ended session the way the retention job does (`storage.pg_store.delete_log`).
Prints the writer's commit latency (p50/p99/max) before and during the trim, the trim's
rate, and the table's size after each of --cycles rounds of trim + VACUUM + fill again: a size
that stops growing means freed space is reused (no growth over cycles).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.store import AppendRequest
from storage.pg_store import PgStore, delete_log

BASE = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


async def fill(pool: asyncpg.Pool, sessions: int, events: int) -> list[int]:
    pks = []
    for i in range(sessions):
        pk = await pool.fetchval(
            "INSERT INTO hub_sessions (session_id, title, status, head_seq, started_at, ended_at)"
            " VALUES ($1, 'bench', 'completed', $2, now() - interval '41 days', now() - interval '40 days')"
            " RETURNING id",
            f"old-{secrets.token_hex(4)}-{i}",
            events,
        )
        await pool.execute(
            "INSERT INTO hub_events (session_pk, seq, type, ts, actor, data)"
            " SELECT $1, g, 'hrv_update', now(), '{\"user_id\": \"bob\"}',"
            ' \'{"hrv": 52.5, "improvement": 3.1}\''
            " FROM generate_series(1, $2) g",
            pk,
            events,
        )
        pks.append(pk)
    return pks


async def write_for(store: PgStore, session_pk: int, stop: asyncio.Event) -> list[float]:
    latencies = []
    while not stop.is_set():
        batch = [AppendRequest(session_pk, "hrv_update", {"hrv": 50}, {"user_id": "bob"}) for _ in range(20)]
        started = time.perf_counter()
        await store.append_batch(batch)
        latencies.append(time.perf_counter() - started)
    return latencies


def figures(latencies: list[float]) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms ({len(ms)} commits)"


async def size(pool: asyncpg.Pool) -> str:
    raw = await pool.fetchval("SELECT pg_total_relation_size('hub_events')")
    return f"{raw / 1024 / 1024:.0f} MiB"


async def main(args: argparse.Namespace) -> None:
    name = f"hub_retention_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(BASE)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = BASE.rsplit("/", 1)[0] + f"/{name}"
    store = await PgStore.connect(dsn, 2, 6)
    try:
        live = await store.create_session("default", {"session_id": "live", "title": "live"})
        await store.append_batch([AppendRequest(live.pk, "session_started", {}, None)])
        old = await fill(store.pool, args.sessions, args.events)
        total = args.sessions * args.events
        await store.pool.execute("VACUUM ANALYZE hub_events")
        filled = await size(store.pool)
        print(f"filled: {args.sessions} ended sessions x {args.events} events; hub_events {filled}")

        stop = asyncio.Event()
        writer = asyncio.create_task(write_for(store, live.pk, stop))
        await asyncio.sleep(args.seconds)
        stop.set()
        print(f"writer alone:        {figures(await writer)}")

        stop = asyncio.Event()
        writer = asyncio.create_task(write_for(store, live.pk, stop))
        started = time.perf_counter()
        for pk in old:
            await store.pool.execute("UPDATE hub_sessions SET retained_from = head_seq + 1 WHERE id = $1", pk)
            await delete_log(store.pool, pk, args.events + 1, args.batch)
        took = time.perf_counter() - started
        stop.set()
        print(f"writer during trim:  {figures(await writer)}")
        print(f"trim: {total} events in {took:.1f} s ({total / took:,.0f} events/s, batches of {args.batch})")

        # Fill/trim cycles: once the freed space is reused the table stops growing.
        sizes = [await size(store.pool)]
        for _ in range(args.cycles):
            await store.pool.execute("VACUUM hub_events")
            old = await fill(store.pool, args.sessions, args.events)
            await store.pool.execute("VACUUM ANALYZE hub_events")
            sizes.append(await size(store.pool))
            for pk in old:
                await delete_log(store.pool, pk, args.events + 1, args.batch)
        print(f"hub_events after each refill (trim + VACUUM between): {' -> '.join(sizes)}")
    finally:
        await store.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--events", type=int, default=25_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5.0, help="the writer's baseline run")
    parser.add_argument("--cycles", type=int, default=3, help="fill/trim cycles for the size figures")
    asyncio.run(main(parser.parse_args()))
