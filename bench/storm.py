"""Resume-storm benchmark: clients that missed events all come back at once.

    python3 bench/storm.py                          # both scenarios, 3 runs each
    python3 bench/storm.py --scenario one --clients 1000
    python3 bench/storm.py --scenario failover --clients 2000

- **one**: one hub process; --clients observers (default 1000) of --sessions sessions
  (default 1) connect and are welcomed, then all close their sockets; an instructor
  appends --events announcements (default 100) to every session; then all clients
  reconnect at once with `since=<last seq seen>`.
- **failover**: two hub processes on Redis (a fresh key prefix, deleted at the end);
  --clients (default 2000) on the second, --stay (default the same) on the first. The
  second is killed (SIGKILL); once its clients have seen their sockets close, the
  events are appended through the first (the staying clients get them live), then the
  moved clients all reconnect to the first with `since`.

Printed per run: the time from the reconnect until every client has received every
missed event, the median and p99 client, the hub's CPU over that window (and per
client), PostgreSQL's, the retries, and the checks: every client received each marked
event exactly once, in seq order, with no gap by the protocol's `prev_seq` rule, and every
welcome said `recovered`. Exit status 1 on any loss, duplicate, disorder or gap.

How: the hubs run as `python -m hub serve` (dev mode, per-connection rate limit and
connection caps lifted, defaults otherwise) pinned to the first CPU, the clients in one
Node process (bench/load/storm_clients.js, `ws`) on the others; a fresh database on the
local PostgreSQL (--pg-admin-url), dropped at the end. Goals (issue 11): 1000 clients
resumed in ≤ 2 s on one process and after a failover, 2000 in ≤ 5 s.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from procs import ensure_venv

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

if __name__ == "__main__":
    ensure_venv(__file__)

# ruff: noqa: E402  (the imports below need the venv)
import argparse
import asyncio
import contextlib
import json
import secrets
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import fanout
from node_deps import ensure_node_deps
from procs import cpu_seconds, free_port
from websockets.asyncio.client import connect

HOST = "127.0.0.1"


@dataclass
class Hub:
    proc: asyncio.subprocess.Process
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        try:
            return cpu_seconds(self.pid)
        except (OSError, IndexError):
            return 0.0

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


async def start_hub(n: int, env: dict[str, str], logdir: Path, cpus: set[int] | None) -> Hub:
    port = free_port()
    cmd = [sys.executable, "-m", "hub", "serve", "--host", HOST, "--port", str(port), "--no-links"]
    proc, log_path = await fanout.spawn(f"hub{n}", cmd, logdir, env, cpus=cpus)
    hub = Hub(proc, port, log_path)
    try:
        await fanout.wait_healthy(proc, port, log_path, 60)
    except RuntimeError:
        await hub.stop()
        raise
    return hub


async def new_session(port: int, capacity: int) -> str:
    session_id = f"storm-{secrets.token_hex(4)}"
    base = f"http://{HOST}:{port}/api/v2"
    # Observers do not count against max_participants; participants beyond 1000 (the
    # session cap) need --sessions.
    seats = min(capacity, 1000)
    body = {"session_id": session_id, "title": "Storm", "instructor": "Bench", "max_participants": seats}
    status, resp = await asyncio.to_thread(fanout.http, "POST", f"{base}/sessions/create", body)
    if status != 201:
        raise RuntimeError(f"create session: HTTP {status} {resp}")
    status, resp = await asyncio.to_thread(fanout.http, "POST", f"{base}/session/{session_id}/start", {})
    if status not in (200, 201):
        raise RuntimeError(f"start session: HTTP {status} {resp}")
    return session_id


async def append_events(port: int, session_id: str, events: int) -> None:
    """An instructor appends `events` announcements marked data.n = 0..events-1 and
    waits for every ack (the hub acks after the commit)."""
    url = f"ws://{HOST}:{port}/ws/live-updates?session_id={session_id}&role=instructor&name=storm-pub"
    run = secrets.token_hex(4)
    async with connect(url, compression=None, max_size=2**24, open_timeout=30) as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"publisher: expected welcome, got {welcome}")
        frames = {
            f"{run}-{n}": json.dumps(
                {"type": "announcement", "id": f"{run}-{n}", "data": {"message": "storm", "n": n}}
            )
            for n in range(events)
        }
        for text in frames.values():
            await ws.send(text)
        pending = set(frames)
        deadline = time.monotonic() + 60
        while pending:
            msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
            data = msg.get("data") or {}
            if msg.get("type") == "ack":
                pending.discard(data.get("id"))
            elif msg.get("type") == "error" and data.get("id") in pending:
                if data.get("code") not in ("rate_limited", "unavailable"):
                    raise RuntimeError(f"publisher: event refused: {data}")
                await asyncio.sleep(0.05)
                await ws.send(frames[data["id"]])  # the same id again is idempotent


class Clients:
    """The Node process holding every client (bench/load/storm_clients.js)."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc

    @classmethod
    async def start(cls, plan: dict[str, Any], cpus: set[int] | None, logdir: Path) -> Clients:
        proc = await asyncio.create_subprocess_exec(
            ensure_node_deps(),
            str(BENCH / "load" / "storm_clients.js"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=(logdir / "clients.log").open("ab"),
            cwd=BENCH,
            limit=64 * 1024 * 1024,
            preexec_fn=fanout.pinned(cpus),
        )
        clients = cls(proc)
        await clients.ask(json.dumps(plan), "plan", 30)
        return clients

    async def ask(self, command: str, answer: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"the clients exited ({await self.proc.wait()})")
        reply = dict(json.loads(line))
        if reply.get("event") != answer:
            raise RuntimeError(f"clients: expected {answer}, got {reply}")
        return reply

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, ConnectionError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"quit\n")
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def run_once(args: argparse.Namespace, scenario: str, run: int, logdir: Path) -> dict[str, Any]:
    clients_n = args.clients or (1000 if scenario == "one" else 2000)
    stay = (args.stay if args.stay is not None else clients_n) if scenario == "failover" else 0
    db_url, drop_db = await fanout.create_database(args.pg_admin_url)
    if db_url is None:
        raise RuntimeError(f"no PostgreSQL at {args.pg_admin_url}")
    db_name = db_url.rsplit("/", 1)[1]
    prefix = f"stormbench:{secrets.token_hex(4)}:"
    most = str(2 * (clients_n + stay) + 1000)
    env = {
        "HUB_DEV": "1",
        "DATABASE_URL": db_url,
        "PYTHONUNBUFFERED": "1",
        "HUB_RATE_LIMIT": "1000000",
        "HUB_RATE_BURST": "1000000",
        "HUB_RATE_STRIKES": "1000000",
        # Every client is one dev-mode user of one account: lift the connection caps (a
        # killed process's slots count until they expire).
        "HUB_MAX_CONNECTIONS": most,
        "HUB_MAX_CONNECTIONS_PER_USER": most,
        "HUB_MAX_CONNECTIONS_PER_ACCOUNT": most,
        "REDIS_URL": args.redis_url if scenario == "failover" else "",
        "HUB_REDIS_PREFIX": prefix,
    }
    for item in args.hub_env:
        key, _, value = item.partition("=")
        env[key] = value
    hubs: list[Hub] = []
    clients: Clients | None = None
    try:
        for n in range(2 if scenario == "failover" else 1):
            hubs.append(await start_hub(n, {**env, "HUB_NODE_ID": f"{prefix}n{n}"}, logdir, args.server_cpus))
        survivor = hubs[0]
        sessions = [await new_session(survivor.port, clients_n + stay) for _ in range(args.sessions)]

        def url(port: int, i: int) -> str:
            session = sessions[i % len(sessions)]
            return f"ws://{HOST}:{port}/ws/live-updates?session_id={session}&role={args.role}&name=c{i}"

        specs = []
        for i in range(clients_n):
            first = hubs[-1].port  # failover: the process that will be killed
            specs.append({"url": url(first, i), "resume_url": url(survivor.port, i), "group": "moving"})
        for i in range(clients_n, clients_n + stay):
            here = url(survivor.port, i)
            specs.append({"url": here, "resume_url": here, "group": "staying"})
        plan = {
            "clients": specs,
            "events": args.events,
            "concurrency": args.concurrency,
            "resume_concurrency": args.resume_concurrency,
            "timeout_s": args.timeout,
        }
        clients = await Clients.start(plan, args.client_cpus, logdir)
        connected = await clients.ask("connect", "connected", args.timeout + 60)
        if connected["failed"]:
            raise RuntimeError(f"{connected['failed']} clients not welcomed: see {logdir}/clients.log")
        if scenario == "failover":
            hubs[1].proc.send_signal(signal.SIGKILL)
            await hubs[1].proc.wait()
            await clients.ask("lost moving", "lost", 60)
        else:
            await clients.ask("drop moving", "dropped", 60)
        await asyncio.gather(*(append_events(survivor.port, s, args.events) for s in sessions))
        await asyncio.sleep(args.settle)  # the survivor's room has delivered them live
        profiler = start_profile(args, survivor.pid, logdir, scenario, run)
        cpu0, db0, wall0 = survivor.cpu(), fanout.db_cpu_seconds(db_name), time.monotonic()
        resumed = await clients.ask("resume moving", "resumed", args.timeout + 30)
        wall = time.monotonic() - wall0
        cpu, db = survivor.cpu() - cpu0, fanout.db_cpu_seconds(db_name) - db0
        report = await clients.ask("report", "report", 30)
        if profiler is not None:
            await asyncio.to_thread(profiler.wait)
        times = resumed["times"]
        ok = (
            resumed["complete"] == clients_n
            and report["missing"] == 0
            and report["duplicates"] == 0
            and report["out_of_order"] == 0
            and report["gaps"] == 0
            and report["not_recovered"] == 0
        )
        return {
            "scenario": scenario,
            "run": run,
            "clients": clients_n,
            "staying": stay,
            "sessions": args.sessions,
            "events": args.events,
            "setup_s": connected["setup_s"],
            "resumed": resumed["complete"],
            "all_s": max(times) if times else None,
            "p50_s": statistics.median(times) if times else None,
            "p99_s": percentile(times, 99) if times else None,
            "hub_cpu_s": cpu,
            "hub_cpu_ms_per_client": cpu * 1000 / clients_n,
            "db_cpu_s": db,
            "wall_s": wall,
            "retries": resumed["retries"],
            "report": report,
            "ok": ok,
        }
    finally:
        if clients is not None:
            await clients.stop()
        for hub in hubs:
            await hub.stop()
        if drop_db is not None:
            with contextlib.suppress(Exception):
                await drop_db()
        if scenario == "failover":
            await drop_redis_keys(args.redis_url, prefix)


def start_profile(
    args: argparse.Namespace, pid: int, logdir: Path, scenario: str, run: int
) -> subprocess.Popen[bytes] | None:
    """py-spy on the hub that takes the storm, from just before the reconnect, for
    --profile seconds (a raw file per run in the log directory: flamegraph.pl input)."""
    if not args.profile:
        return None
    spy = Path(sys.prefix) / "bin" / "py-spy"
    out = logdir / f"profile-{scenario}-{run}.raw"
    cmd = [str(spy), "record", "-p", str(pid), "-d", str(max(int(args.profile), 1)), "-r", "200"]
    cmd += ["-f", "raw", "-o", str(out), "--nonblocking"]
    fanout.log(f"profiling the hub into {out}")
    with (logdir / f"profile-{scenario}-{run}.log").open("ab") as log_file:
        return subprocess.Popen(
            cmd, stdout=log_file, stderr=log_file, preexec_fn=fanout.pinned(args.client_cpus)
        )


async def drop_redis_keys(url: str, prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def show(r: dict[str, Any]) -> None:
    rep = r["report"]
    checks = (
        f"missing {rep['missing']} dup {rep['duplicates']} disorder {rep['out_of_order']}"
        f" gaps {rep['gaps']} not-recovered {rep['not_recovered']}"
    )
    where = "one process" if r["scenario"] == "one" else f"failover ({r['staying']} staying)"
    all_s = f"{r['all_s']:.2f} s" if r["all_s"] is not None else "never"
    print(
        f"{r['scenario']:8} run {r['run']}: {r['resumed']}/{r['clients']} resumed x {r['events']} events,"
        f" {where}, all in {all_s} (p50 {r['p50_s'] or 0:.2f} s, p99 {r['p99_s'] or 0:.2f} s),"
        f" hub CPU {r['hub_cpu_s']:.2f} s = {r['hub_cpu_ms_per_client']:.2f} ms/client,"
        f" db {r['db_cpu_s']:.2f} s,"
        f" retries {r['retries']}, welcome setup {r['setup_s']:.1f} s; {checks}"
        f" {'ok' if r['ok'] else 'FAILED'}",
        flush=True,
    )
    if not r["ok"] or rep["errors"]:
        print(f"    closes {rep['close_codes']} errors {rep['errors']}", flush=True)


async def amain(args: argparse.Namespace) -> int:
    fanout.raise_fd_limit(4 * (args.clients or 2000) * 2 + 4096)
    cpus = sorted(os.sched_getaffinity(0))
    args.server_cpus = args.client_cpus = None
    if not args.no_pin and len(cpus) >= 2:
        args.server_cpus, args.client_cpus = {cpus[0]}, set(cpus[1:])
    logdir = Path(tempfile.mkdtemp(prefix="hub-storm-"))
    fanout.log(f"logs in {logdir}")
    results: list[dict[str, Any]] = []
    failed = False
    for run in range(1, args.runs + 1):
        for scenario in args.scenario:
            try:
                r = await run_once(args, scenario, run, logdir)
            except (RuntimeError, TimeoutError, OSError) as exc:
                print(f"{scenario:8} run {run}: failed: {exc}", flush=True)
                failed = True
                continue
            results.append(r)
            failed |= not r["ok"]
            show(r)
    print(f"\nmedians of {args.runs} run(s):")
    for scenario in args.scenario:
        mine = [r for r in results if r["scenario"] == scenario and r["all_s"] is not None]
        if not mine:
            continue
        med = {k: statistics.median(r[k] for r in mine) for k in ("all_s", "p50_s", "hub_cpu_ms_per_client")}
        goal = 2.0 if mine[0]["clients"] <= 1000 else 5.0
        print(
            f"  {scenario:8} {mine[0]['clients']} clients x {mine[0]['events']} events: all resumed in"
            f" {med['all_s']:.2f} s (goal {goal:.0f} s), p50 client {med['p50_s']:.2f} s,"
            f" hub {med['hub_cpu_ms_per_client']:.2f} ms CPU/client"
        )
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(results, indent=2))
    return 1 if failed else 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", default="one,failover", help="one, failover or both (comma-separated)")
    parser.add_argument("--clients", type=int, help="clients that resume (default 1000 one, 2000 failover)")
    parser.add_argument("--stay", type=int, help="failover: clients on the survivor (default --clients)")
    parser.add_argument("--events", type=int, default=100, help="events each client misses")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--role", default="observer", choices=["observer", "participant"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64, help="connections opening at once at setup")
    parser.add_argument("--resume-concurrency", type=int, default=0, help="reconnecting at once (0: all)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds between the appends and the storm")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--hub-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--json", help="write every run's figures to this file")
    parser.add_argument("--profile", type=int, default=0, help="py-spy the storm's hub for this many s")
    args = parser.parse_args()
    args.scenario = [s for s in args.scenario.split(",") if s]
    if any(s not in ("one", "failover") for s in args.scenario):
        parser.error("--scenario: one, failover")
    return args


def main() -> None:
    args = parse_args()
    try:
        sys.exit(asyncio.run(amain(args)))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
