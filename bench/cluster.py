"""Cluster benchmark: two hub processes on Redis + PostgreSQL, publish-to-receive latency.

    .venv/bin/python bench/cluster.py [--subscribers 1000] [--rate 500] [--seconds 20]
                                      [--sessions 10] [--runs 1] [--redis-cluster]

Starts two hub processes sharing one Redis (a fresh key prefix) and one PostgreSQL (a
fresh database on the local server), opens --subscribers observers split evenly across
both processes and across --sessions sessions, then publishes a steady --rate events per
second for --seconds seconds (round-robin over the sessions, each session's instructor
alternately on process A and B, so every event reaches half its subscribers through
Redis). Each event carries the publisher's wall clock; the subscribers (one Node process,
bench/load/cluster_subscribers.js) time publish → receive. That span includes the
durable write (group commit in PostgreSQL), the fan-out and, for half the subscribers,
the Redis hop.

Prints p50/p90/p99/max latency (the first --warmup seconds are delivered but not timed),
deliveries per second, and checks that every subscriber got every event exactly once in
seq order (exit status 1 otherwise). With --runs > 1 it prints the median of each figure.

With --redis-cluster each run is done twice: on the single Redis, then on a Redis Cluster
of 3 masters and 3 replicas started for the benchmark on local ports
(`HUB_REDIS_CLUSTER=1`, tests/redis_cluster_tools.py), and the ratio of the figures
(cluster / single) is printed.
Goal: p99 ≤ 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import redis
from node_deps import ensure_node_deps
from procs import cpu_seconds, free_port
from websockets.asyncio.client import connect

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
MESSAGE = "Breathe in for four, hold for seven, out for eight; relax the shoulders."


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


class Cluster:
    """Two hub processes, a fresh database and a fresh Redis key prefix; all removed after."""

    def __init__(self, args: argparse.Namespace, redis_url: str, redis_cluster: bool = False):
        self.args = args
        self.redis_url = redis_url
        self.redis_cluster = redis_cluster
        self.db_name = f"hub_cluster_bench_{secrets.token_hex(4)}"
        self.prefix = f"hubbench:{secrets.token_hex(4)}:"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.logdir = ROOT / "test-output"

    async def __aenter__(self) -> Cluster:
        admin = await asyncpg.connect(self.args.pg_admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{self.db_name}"')
        finally:
            await admin.close()
        base = self.args.pg_admin_url.rsplit("/", 1)[0]
        self.logdir.mkdir(exist_ok=True)
        for i in range(2):
            self._spawn(i, f"{base}/{self.db_name}")
        for port, proc in zip(self.ports, self.procs, strict=True):
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"hub on {port} exited; see {self.logdir}")
                with contextlib.suppress(OSError):
                    if http("GET", f"http://{HOST}:{port}/readyz")["status"] == "ready":
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"hub on {port} not ready after 60 s")
                await asyncio.sleep(0.2)
        return self

    def _spawn(self, i: int, database_url: str) -> None:
        port = free_port()
        env = {
            **os.environ,
            "HUB_DEV": "1",
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis_url,
            "HUB_REDIS_CLUSTER": "1" if self.redis_cluster else "0",
            "HUB_REDIS_PREFIX": self.prefix,
            "HUB_NODE_ID": f"bench-{'ab'[i]}",
            # the per-connection rate limit guards against abuse; the publisher is not
            "HUB_RATE_LIMIT": "1000000",
            "HUB_RATE_BURST": "1000000",
            "HUB_RATE_STRIKES": "1000000",
        }
        cmd = [sys.executable, "-m", "hub", "serve", "--host", HOST, "--port", str(port), "--no-links"]
        if self.args.profile:  # cProfile each process; written when it stops (SIGINT)
            Path(self.args.profile).mkdir(parents=True, exist_ok=True)
            target = Path(self.args.profile) / f"hub-{'ab'[i]}.prof"
            cmd[1:1] = ["-m", "cProfile", "-o", str(target)]
        with open(self.logdir / f"bench-cluster-{'ab'[i]}.log", "wb") as out:  # the child keeps its copy
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
        self.ports.append(port)

    async def __aexit__(self, *exc: Any) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if self.args.profile else signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        admin = await asyncpg.connect(self.args.pg_admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            await admin.close()
        if self.redis_cluster:
            return  # the benchmark's own cluster goes away whole
        client = redis.Redis.from_url(self.redis_url)
        keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()

    def url(self, node: int, path: str) -> str:
        return f"http://{HOST}:{self.ports[node]}{path}"

    def ws(self, node: int, session_id: str, role: str, name: str) -> str:
        return (
            f"ws://{HOST}:{self.ports[node]}/ws/live-updates?session_id={session_id}&role={role}&name={name}"
        )

    def create_session(self, subscribers: int) -> str:
        session_id = f"bench-{secrets.token_hex(4)}"
        body = {
            "session_id": session_id,
            "title": "Bench",
            "instructor": "Bench",
            "max_participants": max(subscribers, 1),
        }
        http("POST", self.url(0, "/api/v2/sessions/create"), body)
        http("POST", self.url(0, f"/api/v2/session/{session_id}/start"), {})
        return session_id


async def publish(cluster: Cluster, sessions: list[str], total: int, rate: float) -> dict[str, Any]:
    """One instructor per session (alternately on A and B); a steady `rate` over all."""
    acks: list[float] = []
    errors: dict[str, int] = {}
    sent_at: dict[str, float] = {}
    sockets = []
    for i, session_id in enumerate(sessions):
        ws = await connect(
            cluster.ws(i % 2, session_id, "instructor", f"pub{i}"), compression=None, max_size=2**22
        )
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome", welcome
        sockets.append(ws)

    async def read(ws: Any) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "ack":
                acks.append(time.time() * 1000 - sent_at.pop(message["data"]["id"], 0))
            elif message["type"] == "error":
                code = str(message["data"].get("code"))
                errors[code] = errors.get(code, 0) + 1

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    run = secrets.token_hex(3)
    started = time.perf_counter()
    for n in range(total):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        client_id = f"{run}-{n}"
        now_ms = time.time() * 1000
        sent_at[client_id] = now_ms
        frame = {"type": "announcement", "id": client_id, "data": {"message": MESSAGE, "n": n, "t": now_ms}}
        await sockets[n % len(sockets)].send(json.dumps(frame, separators=(",", ":")))
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 15
    while len(acks) + sum(errors.values()) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for ws in sockets:
        await ws.close()
    await asyncio.gather(*readers, return_exceptions=True)
    acks.sort()
    return {
        "sent": total,
        "publish_seconds": elapsed,
        "acked": len(acks),
        "errors": errors,
        "ack_p50_ms": acks[len(acks) // 2] if acks else None,
        "ack_p99_ms": acks[int(len(acks) * 0.99)] if acks else None,
    }


async def one_run(args: argparse.Namespace, redis_url: str, redis_cluster: bool = False) -> dict[str, Any]:
    async with Cluster(args, redis_url, redis_cluster) as cluster:
        sessions = [cluster.create_session(args.subscribers) for _ in range(args.sessions)]
        total = int(args.rate * args.seconds)
        warm = int(args.rate * args.warmup)
        # expected events per session: round-robin n % sessions
        per_session = [len(range(i, total, len(sessions))) for i in range(len(sessions))]
        urls = []
        for k in range(args.subscribers):
            s = k % len(sessions)
            node = (k // len(sessions)) % 2
            group = "local" if node == s % 2 else "remote"  # the instructor of session s is on s % 2
            urls.append([cluster.ws(node, sessions[s], "observer", f"sub{k}"), per_session[s], group])
        node_bin = ensure_node_deps()
        load = await asyncio.create_subprocess_exec(
            node_bin,
            str(BENCH / "load" / "cluster_subscribers.js"),
            "--grace-s",
            "10",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=BENCH,
        )
        assert load.stdin is not None and load.stdout is not None
        load.stdin.write((json.dumps({"urls": urls, "warmup": warm, "total": total}) + "\n").encode())
        await load.stdin.drain()
        ready = json.loads(await asyncio.wait_for(load.stdout.readline(), 180))
        log(f"subscribers ready: {ready}")
        if ready.get("connected") != args.subscribers:
            raise RuntimeError(f"not every subscriber connected: {ready}")
        load.stdin.write(b"go\n")
        await load.stdin.drain()
        cpu_before = [cpu_seconds(p.pid) for p in cluster.procs]
        wall_before = time.monotonic()
        published = await publish(cluster, sessions, total, args.rate)
        wall = time.monotonic() - wall_before
        hub_cpu = [(cpu_seconds(p.pid) - c) / wall for p, c in zip(cluster.procs, cpu_before, strict=True)]
        try:
            load.stdin.write(b"done\n")
            await load.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # every subscriber had every event already: the load printed its result and left
        result = json.loads(await asyncio.wait_for(load.stdout.readline(), 120))
        await load.wait()
        result.update(published)
        result["hub_cpu"] = hub_cpu  # share of one core per hub process while publishing
        window = (result["last_ms"] - result["first_ms"]) / 1000 if result["first_ms"] else 0
        result["deliveries_per_s"] = result["deliveries"] / window if window else 0
        result["expected"] = sum(entry[1] for entry in urls)
        return result


def report(result: dict[str, Any]) -> None:
    print(
        f"  latency p50 {result['p50_ms']:.2f} ms  p90 {result['p90_ms']:.2f} ms  "
        f"p99 {result['p99_ms']:.2f} ms  max {result['max_ms']:.1f} ms   "
        f"deliveries/s {result['deliveries_per_s']:.0f}   "
        f"({result['deliveries']}/{result['expected']} delivered, {result['missing']} missing, "
        f"{result['duplicates']} dup, {result['out_of_order']} out of order; "
        f"published {result['sent']} in {result['publish_seconds']:.1f} s, acked {result['acked']}, "
        f"ack p50 {result['ack_p50_ms']:.1f} ms; subscriber CPU {result['cpu_share']:.2f}, "
        f"hub CPU {' + '.join(f'{c:.2f}' for c in result['hub_cpu'])} cores)\n"
        + "".join(
            f"  {name}: p50 {g['p50_ms']:.2f} ms p99 {g['p99_ms']:.2f} ms ({g['timed']} timed)\n"
            for name, g in sorted(result["groups"].items())
        ),
        flush=True,
    )


async def amain(args: argparse.Namespace) -> int:
    ensure_node_deps()  # before any process starts: a fresh clone has no bench/node_modules
    servers = None
    if args.redis_cluster:
        sys.path.insert(0, str(ROOT))
        from tests.redis_cluster_tools import RedisClusterServers

        servers = RedisClusterServers().start()
        log(f"redis cluster up: masters on ports {sorted(servers.masters())}")
    try:
        results = []
        for run in range(args.runs):
            log(
                f"run {run + 1}/{args.runs}: {args.subscribers} subscribers on 2 processes, "
                f"{args.sessions} sessions, {args.rate:g} events/s for {args.seconds:g} s"
            )
            result = await one_run(args, args.redis_url)
            if servers is not None:
                print("single Redis:", flush=True)
            report(result)
            results.append(result)
            if servers is not None:
                on_cluster = await one_run(args, servers.url(), redis_cluster=True)
                print("Redis Cluster (3 masters, 3 replicas):", flush=True)
                report(on_cluster)
                results.append(on_cluster)
                ratio = {k: on_cluster[k] / result[k] for k in ("p50_ms", "p99_ms", "deliveries_per_s")}
                print(
                    f"cluster / single: p50 x{ratio['p50_ms']:.2f}  p99 x{ratio['p99_ms']:.2f}  "
                    f"deliveries/s x{ratio['deliveries_per_s']:.2f}",
                    flush=True,
                )
    finally:
        if servers is not None:
            servers.stop()
    ok = all(r["missing"] == 0 and r["duplicates"] == 0 and r["out_of_order"] == 0 for r in results)
    if args.runs > 1 and not args.redis_cluster:
        median = {k: statistics.median(r[k] for r in results) for k in ("p50_ms", "p99_ms", "max_ms")}
        rate = statistics.median(r["deliveries_per_s"] for r in results)
        print(
            f"median of {args.runs}: p50 {median['p50_ms']:.2f} ms  p99 {median['p99_ms']:.2f} ms  "
            f"max {median['max_ms']:.1f} ms  deliveries/s {rate:.0f}"
        )
    p99 = statistics.median(r["p99_ms"] for r in results)
    print(
        f"goal p99 <= 10 ms: {'met' if p99 <= 10 else 'NOT met'} ({p99:.2f} ms); "
        f"every event exactly once, in order: {'yes' if ok else 'NO'}"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500.0, help="events per second, over all sessions")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds delivered but not timed")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", metavar="DIR", help="cProfile both hub processes into DIR")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="also run on a 3-master Redis Cluster started for the run, and print the ratio",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 65536), hard), hard))
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
