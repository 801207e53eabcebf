"""Webhook delivery benchmark: events/s delivered to a local receiver, and the lag from
commit to delivery.

    .venv/bin/python bench/webhooks.py

Starts one hub (`python -m hub serve`, dev mode) on a fresh database of the local
PostgreSQL (`BENCH_PG_ADMIN_URL`, default postgresql://postgres@127.0.0.1:5432/postgres),
and a receiver (aiohttp, a process of its own) behind 1, 10 and 100 endpoints. Two phases:

- **drain**: a backlog of events is published as fast as the HTTP API takes it; figure:
  deliveries/s = endpoints × events / (last delivery − first publish), and the hub's CPU
  per delivery (from /proc: it does not depend on what else runs on the machine).
- **paced**: events are published at a steady rate across 10 sessions to 10 endpoints;
  figures: the lag from commit (the event's `ts`, taken in the append) to its arrival at
  the receiver, p50 and p99, and the CPU the hub used.

Goal (issue 12): keep up with 1,000 events/s across 10 endpoints with p99 lag ≤ 500 ms.
Exit status 0 when every event reached every endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SESSIONS = 10


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


# the receiver process: POST /e<n> counts a delivery and its lag; GET /stats, POST /reset


def serve_receiver(port: int) -> None:
    state: dict[str, Any] = {"count": 0, "last_at": 0.0, "lags": []}

    async def deliver(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        now = time.time()
        committed = datetime.fromisoformat(body["ts"].replace("Z", "+00:00")).timestamp()
        state["lags"].append(now - committed)
        state["count"] += 1
        state["last_at"] = now
        return web.Response(status=204)

    async def stats(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(state), content_type="application/json")

    async def reset(request: web.Request) -> web.Response:
        state.update(count=0, last_at=0.0, lags=[])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    app.router.add_post("/{path:.*}", deliver)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


class Receiver:
    def __init__(self, logs: Path):
        self.port = free_port()
        log = open(logs / "receiver.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-receiver", str(self.port)], stdout=log, stderr=log
        )
        self.base = f"http://127.0.0.1:{self.port}"

    async def ready(self, http: aiohttp.ClientSession) -> None:
        for _ in range(100):
            try:
                async with http.get(self.base + "/stats") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("the receiver did not start")

    async def reset(self, http: aiohttp.ClientSession) -> None:
        async with http.post(self.base + "/reset"):
            pass

    async def stats(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(self.base + "/stats") as response:
            found: dict[str, Any] = orjson.loads(await response.read())
            return found

    async def wait(self, http: aiohttp.ClientSession, expected: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = await self.stats(http)
            if found["count"] >= expected or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# the hub and its API


async def start_hub(dsn: str, logs: Path, http: aiohttp.ClientSession) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "HUB_DEV": "1",
        "DATABASE_URL": dsn,
        "REDIS_URL": "",
        "HUB_WEBHOOK_ALLOW_PRIVATE": "1",
        "HUB_RATE_LIMIT": "1000000",
        "HUB_RATE_BURST": "1000000",
        "HUB_LOG_FORMAT": "json",
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
    for _ in range(300):
        try:
            async with http.get(base + "/healthz") as response:
                if response.status == 200:
                    return proc, base
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"hub did not start; see {logs / 'hub.log'}")


class Hub:
    def __init__(self, http: aiohttp.ClientSession, base: str):
        self.http = http
        self.base = base

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        data = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if data is not None else {}
        async with self.http.request(method, self.base + path, data=data, headers=headers) as response:
            raw = await response.read()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {raw[:300]!r}")
            return orjson.loads(raw) if raw else None

    async def setup(self, receiver: Receiver, endpoints: int) -> list[str]:
        for hook in (await self.call("GET", "/api/v2/webhooks"))["webhooks"]:
            await self.call("DELETE", f"/api/v2/webhooks/{hook['id']}")
        for i in range(endpoints):
            await self.call("POST", "/api/v2/webhooks", {"url": f"{receiver.base}/e{i}"})
        ids = []
        for _ in range(SESSIONS):
            session_id = f"bench-{uuid.uuid4().hex[:8]}"
            await self.call(
                "POST",
                "/api/v2/sessions/create",
                {"session_id": session_id, "title": "Bench", "instructor": "B"},
            )
            await self.call("POST", f"/api/v2/session/{session_id}/start")
            ids.append(session_id)
        return ids

    async def publish(self, session_id: str, count: int) -> None:
        events = [{"type": "note", "data": {"content": f"bench {i}"}} for i in range(count)]
        await self.call("POST", f"/api/v2/session/{session_id}/events", {"events": events})


async def drain_phase(hub: Hub, receiver: Receiver, endpoints: int, events: int, pid: int) -> dict[str, Any]:
    sessions = await hub.setup(receiver, endpoints)
    await receiver.wait(hub.http, SESSIONS * endpoints, 30)  # the session_started events first
    await receiver.reset(hub.http)
    started, cpu = time.time(), cpu_seconds(pid)
    per_session = events // SESSIONS
    await asyncio.gather(
        *(hub.publish(s, min(100, per_session - k)) for s in sessions for k in range(0, per_session, 100))
    )
    expected = per_session * SESSIONS * endpoints
    found = await receiver.wait(hub.http, expected, 300)
    elapsed, cpu = found["last_at"] - started, cpu_seconds(pid) - cpu
    return {
        "phase": "drain",
        "endpoints": endpoints,
        "events": per_session * SESSIONS,
        "deliveries": found["count"],
        "complete": found["count"] >= expected,
        "deliveries_per_s": round(found["count"] / elapsed) if elapsed > 0 else 0,
        "hub_cpu_ms_per_delivery": round(cpu * 1000 / max(1, found["count"]), 3),
        "lag_p50_ms": round(percentile(found["lags"], 0.5) * 1000),
        "lag_p99_ms": round(percentile(found["lags"], 0.99) * 1000),
    }


async def paced_phase(
    hub: Hub, receiver: Receiver, endpoints: int, rate: int, seconds: float, pid: int
) -> dict[str, Any]:
    sessions = await hub.setup(receiver, endpoints)
    await receiver.wait(hub.http, SESSIONS * endpoints, 30)
    await receiver.reset(hub.http)
    tick = max(0.05, SESSIONS / rate)  # one batch per session every tick, at least one event
    per_batch = max(1, round(rate * tick / SESSIONS))
    ticks = int(seconds / tick)
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    pending: set[asyncio.Task[None]] = set()
    for n in range(ticks):
        for session_id in sessions:
            task = asyncio.create_task(hub.publish(session_id, per_batch))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.sleep(max(0.0, started + (n + 1) * tick - time.perf_counter()))
    await asyncio.gather(*pending)
    offered = time.perf_counter() - started
    total = per_batch * SESSIONS * ticks
    found = await receiver.wait(hub.http, total * endpoints, 120)
    busy = (cpu_seconds(pid) - cpu) / (time.perf_counter() - started)
    return {
        "phase": "paced",
        "endpoints": endpoints,
        "offered_events_per_s": round(total / offered),
        "deliveries_per_s": round(total * endpoints / offered),
        "deliveries": found["count"],
        "complete": found["count"] >= total * endpoints,
        "hub_cpu_cores": round(busy, 2),
        "lag_p50_ms": round(percentile(found["lags"], 0.5) * 1000),
        "lag_p99_ms": round(percentile(found["lags"], 0.99) * 1000),
        "lag_max_ms": round(max(found["lags"], default=0) * 1000),
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
    receiver = Receiver(logs)
    results: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        await receiver.ready(http)
        proc, base = await start_hub(dsn, logs, http)
        hub = Hub(http, base)
        try:
            for endpoints in [int(x) for x in args.endpoints.split(",") if x]:
                events = args.events if endpoints < 100 else args.events // 10
                results.append(await drain_phase(hub, receiver, endpoints, events, proc.pid))
                print(orjson.dumps(results[-1]).decode(), flush=True)
            for rate in [int(x) for x in args.rates.split(",") if x]:
                results.append(await paced_phase(hub, receiver, 10, rate, args.seconds, proc.pid))
                print(orjson.dumps(results[-1]).decode(), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
            receiver.stop()
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    print()
    print("| phase | endpoints | events/s offered | deliveries/s | hub CPU | lag p50 | lag p99 | complete |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        offered = r.get("offered_events_per_s", "backlog")
        cpu = r.get("hub_cpu_cores", r.get("hub_cpu_ms_per_delivery"))
        unit = " cores" if "hub_cpu_cores" in r else " ms/delivery"
        print(
            f"| {r['phase']} | {r['endpoints']} | {offered} | {r['deliveries_per_s']} | {cpu}{unit}"
            f" | {r['lag_p50_ms']} ms | {r['lag_p99_ms']} ms | {r['complete']} |"
        )
    return 0 if all(r["complete"] for r in results) else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-receiver":
        serve_receiver(int(sys.argv[2]))
    else:
        sys.exit(asyncio.run(main()))
