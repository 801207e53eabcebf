"""Webhook delivery benchmark: events/s delivered to a local receiver, and the lag from
commit to delivery.

    .venv/bin/python bench/webhooks.py

Starts one hub (`python -m hub serve`, dev mode) on a fresh database of the local
PostgreSQL (`BENCH_PG_ADMIN_URL`, default postgresql://postgres@127.0.0.1:5432/postgres),
and a receiver (aiohttp, in this process) behind 1, 10 and 100 endpoints. Two phases:

- **drain**: a backlog of events is published as fast as the HTTP API takes it; figure:
  deliveries/s = endpoints × events / (last delivery − first publish).
- **paced**: events are published at a steady rate (default 1,000 events/s across 10
  sessions) to 10 endpoints; figures: delivered/s and the lag from commit (the event's
  `ts`, taken in the append) to its arrival at the receiver, p50 and p99.

Goal (issue 12): keep up with 1,000 events/s across 10 endpoints with p99 lag ≤ 500 ms.
Exit status 0 when every event reached every endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.count = 0
        self.lags: list[float] = []
        self.last_at = 0.0
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=1024).start()

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        now = time.time()
        committed = datetime.fromisoformat(body["ts"].replace("Z", "+00:00")).timestamp()
        self.lags.append(now - committed)
        self.count += 1
        self.last_at = now
        return web.Response(status=204)

    def reset(self) -> None:
        self.count, self.lags, self.last_at = 0, [], 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (Linux /proc), to report cost per delivery."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


async def start_hub(dsn: str, logs: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "HUB_DEV": "1",
        "DATABASE_URL": dsn,
        "REDIS_URL": "",
        "HUB_WEBHOOK_ALLOW_PRIVATE": "1",
        "HUB_RATE_LIMIT": "1000000",
        "HUB_RATE_BURST": "1000000",
        "HUB_LOG_LEVEL": "WARNING",
    }
    log = open(logs / "hub.log", "ab")  # noqa: ASYNC230  (the child writes to it until it stops)
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "hub", "serve", "--port", str(port), "--no-links"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(base + "/healthz")).status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"hub did not start; see {logs / 'hub.log'}")


async def setup(client: httpx.AsyncClient, receiver: Receiver, endpoints: int, sessions: int) -> list[str]:
    listing = orjson.loads((await client.get("/api/v2/webhooks")).content)
    for hook in listing["webhooks"]:
        await client.delete(f"/api/v2/webhooks/{hook['id']}")
    for i in range(endpoints):
        created = await client.post(
            "/api/v2/webhooks", json={"url": f"http://127.0.0.1:{receiver.port}/e{i}"}
        )
        created.raise_for_status()
    ids = []
    for _ in range(sessions):
        session_id = f"bench-{uuid.uuid4().hex[:8]}"
        body = {"session_id": session_id, "title": "Bench", "instructor": "Bench"}
        (await client.post("/api/v2/sessions/create", json=body)).raise_for_status()
        (await client.post(f"/api/v2/session/{session_id}/start")).raise_for_status()
        ids.append(session_id)
    return ids


async def wait_delivered(receiver: Receiver, expected: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while receiver.count < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return receiver.count >= expected


async def publish(client: httpx.AsyncClient, session_id: str, count: int) -> None:
    events = [{"type": "note", "data": {"content": f"bench {i}"}} for i in range(count)]
    (await client.post(f"/api/v2/session/{session_id}/events", json={"events": events})).raise_for_status()


async def drain_phase(
    client: httpx.AsyncClient, receiver: Receiver, endpoints: int, events: int, pid: int
) -> dict:
    sessions = await setup(client, receiver, endpoints, 10)
    await asyncio.sleep(2.5)  # the session_started events go out first
    receiver.reset()
    started, cpu = time.time(), cpu_seconds(pid)
    per_session = events // len(sessions)
    await asyncio.gather(
        *(publish(client, s, min(100, per_session - k)) for s in sessions for k in range(0, per_session, 100))
    )
    expected = per_session * len(sessions) * endpoints
    complete = await wait_delivered(receiver, expected, 300)
    elapsed = receiver.last_at - started
    cpu = cpu_seconds(pid) - cpu
    return {
        "phase": "drain",
        "endpoints": endpoints,
        "events": per_session * len(sessions),
        "deliveries": receiver.count,
        "complete": complete,
        "deliveries_per_s": round(receiver.count / elapsed) if elapsed > 0 else 0,
        "hub_cpu_ms_per_delivery": round(cpu * 1000 / max(1, receiver.count), 3),
        "lag_p50_ms": round(percentile(receiver.lags, 0.5) * 1000),
        "lag_p99_ms": round(percentile(receiver.lags, 0.99) * 1000),
    }


async def paced_phase(
    client: httpx.AsyncClient, receiver: Receiver, endpoints: int, rate: int, seconds: float, pid: int
) -> dict:
    sessions = await setup(client, receiver, endpoints, 10)
    await asyncio.sleep(2.5)
    receiver.reset()
    tick = 0.05  # one batch per session every tick
    per_batch = max(1, round(rate * tick / len(sessions)))
    ticks = int(seconds / tick)
    started, cpu, own = time.perf_counter(), cpu_seconds(pid), time.process_time()
    pending: set[asyncio.Task[None]] = set()
    for n in range(ticks):
        for session_id in sessions:
            task = asyncio.create_task(publish(client, session_id, per_batch))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(max(0.0, started + (n + 1) * tick - time.perf_counter()))
    await asyncio.gather(*pending)
    offered_elapsed = time.perf_counter() - started
    total = per_batch * len(sessions) * ticks
    complete = await wait_delivered(receiver, total * endpoints, 120)
    span = time.perf_counter() - started
    busy, own = (cpu_seconds(pid) - cpu) / span, (time.process_time() - own) / span
    return {
        "phase": "paced",
        "endpoints": endpoints,
        "offered_events_per_s": round(total / offered_elapsed),
        "deliveries": receiver.count,
        "complete": complete,
        "hub_cpu_cores": round(busy, 2),
        "bench_cpu_cores": round(own, 2),
        "lag_p50_ms": round(percentile(receiver.lags, 0.5) * 1000),
        "lag_p99_ms": round(percentile(receiver.lags, 0.99) * 1000),
        "lag_max_ms": round(max(receiver.lags, default=0) * 1000),
        "mean_lag_ms": round(statistics.fmean(receiver.lags) * 1000) if receiver.lags else None,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", default="1,10,100", help="drain phase endpoint counts")
    parser.add_argument("--events", type=int, default=2000, help="drain phase events (÷10 at 100 endpoints)")
    parser.add_argument("--rates", default="100,1000", help="paced phase events/s (10 endpoints)")
    parser.add_argument("--seconds", type=float, default=5.0, help="paced phase duration")
    args = parser.parse_args()

    name = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(ADMIN_URL)._replace(path=f"/{name}"))
    logs = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    print(f"logs: {logs}")
    receiver = Receiver()
    await receiver.start()
    proc, base = await start_hub(dsn, logs)
    results = []
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for endpoints in [int(x) for x in args.endpoints.split(",") if x]:
                events = args.events if endpoints < 100 else args.events // 10
                results.append(await drain_phase(client, receiver, endpoints, events, proc.pid))
                print(orjson.dumps(results[-1]).decode(), flush=True)
            for rate in [int(x) for x in args.rates.split(",") if x]:
                results.append(await paced_phase(client, receiver, 10, rate, args.seconds, proc.pid))
                print(orjson.dumps(results[-1]).decode(), flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
        await receiver.runner.cleanup() if receiver.runner else None
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    print()
    print("| phase | endpoints | events/s offered | deliveries/s | lag p50 | lag p99 | complete |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        offered = r.get("offered_events_per_s", "as fast as published")
        rate = r.get("deliveries_per_s", "")
        print(
            f"| {r['phase']} | {r['endpoints']} | {offered} | {rate} | {r['lag_p50_ms']} ms"
            f" | {r['lag_p99_ms']} ms | {r['complete']} |"
        )
    return 0 if all(r["complete"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
