"""Ingest benchmark: durable acks a second through a real hub process, beside the ceiling.

    .venv/bin/python bench/ingest.py [--sessions 200] [--window 8] [--seconds 5] [--runs 3]
    .venv/bin/python bench/ingest.py --rate 10000 [--window 64]     (latency at a set rate)
    .venv/bin/python bench/ingest.py --mode frames [--frames 100000]

`e2e` (default): a fresh database on the local PostgreSQL, one hub (`python -m hub serve`,
pinned to CPU 0), N started sessions and one instructor per session over a real WebSocket
(bench/load/instructors.js, one Node process on the other CPU), each keeping W
announcements un-acked at all times (or, with --rate R, sending R a second in all
whatever the acks do: open loop, the ack latency at that rate). Prints acks/s, ack
p50/p99, the CPU the hub and the database's backends used per second, and, in the same
run, the ceiling: the same rows (same columns, same jsonb, same primary key and dedupe
index) inserted by asyncpg straight into an equivalent table with `executemany` in
batches of the size the hub commits, from the same number of concurrent writers; then
the ratio hub/ceiling. Medians of --runs.

`frames`: times `hub.events.parse_client_frame` (decode, type, role, data validation)
plus the storability check the inbound path runs after it, in microseconds per frame.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import fanout
import orjson
from node_deps import ensure_node_deps

from hub.events import parse_client_frame
from hub.safe_json import json_problem

FRAMES = [
    (
        "participant",
        {"type": "hrv_update", "id": "h", "data": {"hrv": 61.5, "improvement": 12.5, "coherence": 0.7}},
    ),
    (
        "participant",
        {"type": "response", "id": "r", "data": {"text": "I feel calm", "prompt_seq": 12, "method": "text"}},
    ),
    (
        "instructor",
        {
            "type": "announcement",
            "id": "a",
            "data": {"message": "Breathe in", "title": "Now", "type": "info"},
        },
    ),
    (
        "instructor",
        {
            "type": "note",
            "id": "n",
            "data": {"content": "steady", "note_type": "insight", "is_important": True},
        },
    ),
    ("instructor", {"type": "technique_changed", "id": "t", "data": {"technique": "Box", "duration": 240}}),
    ("participant", {"type": "feedback", "id": "f", "data": {"message_seq": 3, "feedback_type": "like"}}),
]


def run(frames: int) -> float:
    encoded = [(role, orjson.dumps(frame)) for role, frame in FRAMES]
    started = time.perf_counter()
    for index in range(frames):
        role, raw = encoded[index % len(encoded)]
        event = parse_client_frame(raw, role)
        assert event is not None
        json_problem(event.data)
    return (time.perf_counter() - started) / frames * 1e6


# ------------------------------------------------------------------ end to end


async def new_sessions(server: fanout.Server, count: int) -> list[str]:
    """`count` started sessions, 16 created at a time."""
    sessions: list[str] = []
    for start in range(0, count, 16):
        batch = [fanout.hub_new_session(server, 1) for _ in range(min(16, count - start))]
        sessions += await asyncio.gather(*batch)
    return sessions


async def drive_writers(
    args: argparse.Namespace, server: fanout.Server, sessions: list[str]
) -> dict[str, Any]:
    node = ensure_node_deps()
    urls = [
        f"ws://{fanout.HOST}:{server.port}/ws/live-updates?session_id={sid}&role=instructor&name=w{i}"
        for i, sid in enumerate(sessions)
    ]
    plan = {
        "urls": urls,
        "window": args.window,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "rate": args.rate,
    }
    proc = await asyncio.create_subprocess_exec(
        node,
        str(fanout.BENCH / "load" / "instructors.js"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=fanout.pinned(fanout.CLIENT_CPUS),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(plan).encode() + b"\n")
    await proc.stdin.drain()
    ready = await fanout.read_json_line(proc.stdout, 120)
    if ready.get("event") != "ready":
        raise RuntimeError(f"writers not ready: {ready}")
    hub_cpu0 = fanout.cpu_seconds(server.pid) or 0.0
    db_cpu0 = fanout.db_cpu_seconds(server.info.get("db_name"))
    busy0, wall0 = fanout.system_busy_seconds() or 0.0, time.monotonic()
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    result = await fanout.read_json_line(proc.stdout, args.warmup + args.seconds + 60)
    wall = time.monotonic() - wall0
    hub_cpu = ((fanout.cpu_seconds(server.pid) or 0.0) - hub_cpu0) / wall
    db_cpu = (fanout.db_cpu_seconds(server.info.get("db_name")) - db_cpu0) / wall
    busy = ((fanout.system_busy_seconds() or 0.0) - busy0) / wall
    await proc.wait()
    result.update(hub_cores=hub_cpu, db_cores=db_cpu, machine_cores=busy)
    result["acks_per_s"] = result["timed_acks"] / result["timed_seconds"]
    return result


CEILING_TABLE = """CREATE TABLE IF NOT EXISTS bench_ceiling_events (
    session_pk bigint NOT NULL, seq bigint NOT NULL, type text NOT NULL, ts timestamptz NOT NULL,
    actor jsonb, data jsonb NOT NULL DEFAULT '{}', dedupe_key text, PRIMARY KEY (session_pk, seq));
CREATE UNIQUE INDEX IF NOT EXISTS bench_ceiling_dedupe ON bench_ceiling_events (session_pk, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
TRUNCATE bench_ceiling_events"""


async def ceiling(db_url: str, sessions: int, rows: int, batch: int) -> dict[str, float]:
    """The same rows as the hub stores, inserted straight by asyncpg: executemany and COPY,
    one transaction per `batch` rows (the hub's group commit), one writer."""
    conn = await asyncpg.connect(db_url)
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: b"\x01" + orjson.dumps(v),
        decoder=lambda r: orjson.loads(r[1:]),
        schema="pg_catalog",
        format="binary",
    )
    actor = {"role": "instructor", "name": "w0", "user_id": "bench"}
    ts = dt.datetime.now(dt.UTC)
    out: dict[str, float] = {}
    try:
        for how in ("executemany", "copy"):
            await conn.execute(CEILING_TABLE)
            records = [
                (
                    n % sessions + 1,
                    n // sessions + 1,
                    "announcement",
                    ts,
                    actor,
                    {"message": "Breathe in for four, hold for four.", "n": n},
                    f"{n % sessions}-{n}",
                )
                for n in range(rows)
            ]
            started = time.perf_counter()
            for i in range(0, rows, batch):
                chunk = records[i : i + batch]
                async with conn.transaction():
                    if how == "copy":
                        await conn.copy_records_to_table("bench_ceiling_events", records=chunk)
                    else:
                        await conn.executemany(
                            "INSERT INTO bench_ceiling_events VALUES ($1, $2, $3, $4, $5, $6, $7)", chunk
                        )
            out[how] = rows / (time.perf_counter() - started)
    finally:
        await conn.close()
    return out


async def e2e(args: argparse.Namespace) -> int:
    fanout.raise_fd_limit(args.sessions * 2 + 1024)
    if not args.no_pin and (os.cpu_count() or 1) >= 2:
        fanout.SERVER_CPUS, fanout.CLIENT_CPUS = {0}, set(range(1, os.cpu_count() or 2))
    logdir = Path(tempfile.mkdtemp(prefix="hub-ingest-"))
    fanout.log(f"logs in {logdir}")
    results: list[dict[str, Any]] = []
    for run in range(args.runs):
        server = await fanout.start_hub(args, logdir)
        try:
            sessions = await new_sessions(server, args.sessions)
            result = await drive_writers(args, server, sessions)
            db_url = f"{args.pg_admin_url.rsplit('/', 1)[0]}/{server.info['db_name']}"
            rows = min(max(result["timed_acks"], 10_000), 200_000)
            result.update(await ceiling(db_url, args.sessions, rows, args.ceiling_batch))
        finally:
            await server.stop()
        result["ratio_executemany"] = result["acks_per_s"] / result["executemany"]
        result["ratio_copy"] = result["acks_per_s"] / result["copy"]
        results.append(result)
        print(
            f"run {run + 1}: {result['acks_per_s']:,.0f} acks/s  p50 {result['p50_ms']:.1f} ms"
            f"  p99 {result['p99_ms']:.1f} ms  hub {result['hub_cores']:.2f} cores"
            f"  postgres {result['db_cores']:.2f} cores  machine {result['machine_cores']:.2f} cores"
            f"  | ceiling executemany {result['executemany']:,.0f}/s copy {result['copy']:,.0f}/s"
            f"  hub/executemany {result['ratio_executemany']:.2f}  hub/copy {result['ratio_copy']:.2f}"
            f"  errors {result['errors']} refused {result['refused']} owed {result['owed']}"
            f" skipped {result.get('skipped', 0)}"
            f"  client cpu {result['cpu_share']:.2f}",
            flush=True,
        )
    med = {
        k: statistics.median(r[k] for r in results)
        for k in (
            "acks_per_s",
            "p50_ms",
            "p99_ms",
            "hub_cores",
            "db_cores",
            "executemany",
            "copy",
            "ratio_executemany",
            "ratio_copy",
        )
    }
    print(
        f"ingest e2e: {args.sessions} sessions x {args.window} in flight, median of {args.runs}:"
        f" {med['acks_per_s']:,.0f} acks/s, ack p50 {med['p50_ms']:.1f} ms, p99 {med['p99_ms']:.1f} ms;"
        f" hub {med['hub_cores']:.2f} cores, postgres {med['db_cores']:.2f} cores;"
        f" ceiling {med['executemany']:,.0f}/s (executemany), {med['copy']:,.0f}/s (COPY);"
        f" hub/ceiling {med['ratio_executemany']:.2f} / {med['ratio_copy']:.2f}"
    )
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(results, indent=2))
    bad = any(r["refused"] or r["owed"] or r["closes"] or r.get("skipped") for r in results)
    return 1 if bad else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("e2e", "frames"), default="e2e")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=100_000, help="frames: frames per run")
    parser.add_argument("--sessions", type=int, default=200, help="e2e: sessions, one instructor each")
    parser.add_argument("--window", type=int, default=8, help="e2e: un-acked events per instructor")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="e2e: open loop, this many events a second in all (--window then caps each writer's un-acked)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="e2e: timed seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="e2e: seconds before timing")
    parser.add_argument("--ceiling-batch", type=int, default=512, help="e2e: ceiling rows per commit")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--embedded", action="store_true")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--hub-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--hub-start-timeout", type=float, default=120.0)
    parser.add_argument("--json", help="also write every run's figures to this file")
    parser.add_argument("--profile", help="e2e: run the hub under cProfile, stats to this file (last run)")
    args = parser.parse_args()
    if args.mode == "e2e":
        if args.profile:
            profiled = str(fanout.BENCH / "hub_profiled.py")
            fanout.HUB_PYTHON_ARGS[:] = [profiled, str(Path(args.profile).resolve())]
        args.hub_env = [
            "HUB_RATE_LIMIT=1000000",
            "HUB_RATE_BURST=1000000",
            "HUB_RATE_STRIKES=1000000",
            *args.hub_env,
        ]
        sys.exit(asyncio.run(e2e(args)))
    results = [run(args.frames) for _ in range(args.runs)]
    print(
        f"ingest: {args.frames} frames x {args.runs} runs: best {min(results):.2f} us/frame, "
        f"median {statistics.median(results):.2f} us/frame"
    )


if __name__ == "__main__":
    main()
