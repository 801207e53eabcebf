"""Capacity benchmark: memory per idle connection and time to welcome them, beside peers.

    .venv/bin/python bench/capacity.py [--connections 10000] [--runs 3] [--servers hub,websockets,starlette]

For every server in the same run: start it (pinned to CPU 0), read its RSS, open
--connections idle WebSockets from one Node process (bench/load/subscribers.js, on the
other CPUs, --connect-concurrency (64) connecting at a time) and wait for every
`welcome`; the time that takes is the welcome time. After --settle seconds the RSS is
read again: (RSS after − RSS before) / connections is the memory one idle connection holds. The peers:

- **websockets**: a bare `websockets` server that sends `welcome` and then only reads
  (bench/peers/ws_broadcast.py);
- **starlette**: a bare Starlette WebSocket endpoint on uvicorn (uvloop, websockets-sansio,
  as the hub runs) that sends `welcome` and echoes (bench/peers/starlette_echo.py).

The hub gets observers of one started session (`python -m hub serve`, a fresh database on
the local PostgreSQL). Each server is started afresh for each run. Prints per run and the
medians, with the hub's ratio to each peer. 20,000 connections need a file limit above
20,000 for both the server and the load generator: the benchmark raises the hard limit
itself where it may (root with CAP_SYS_RESOURCE); under a hard limit of exactly 20,000 a
few connections of each server fail for want of descriptors (the hub keeps some for its
own pools and refuses those beyond the rest), and the figures are per connection held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import fanout
from node_deps import ensure_node_deps

PEERS = ("websockets", "starlette")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def start_server(name: str, args: argparse.Namespace, logdir: Path) -> fanout.Server:
    if name == "hub":
        return await fanout.start_hub(args, logdir)
    if name == "websockets":
        args.deflate, args.max_seconds = False, 3600
        return await fanout.start_websockets_peer(args, logdir)
    cmd = [
        sys.executable,
        str(fanout.BENCH / "peers" / "starlette_echo.py"),
        "--host",
        fanout.HOST,
        "--port",
        "0",
    ]
    return await fanout.start_peer("starlette", cmd, logdir)


async def measure(name: str, args: argparse.Namespace, logdir: Path, connections: int) -> dict[str, Any]:
    server = await start_server(name, args, logdir)
    try:
        if name == "hub":
            session_id = await fanout.hub_new_session(server, 1)
            url = (
                f"ws://{fanout.HOST}:{server.port}/ws/live-updates?session_id={session_id}"
                "&role=observer&name=obs-{i}"
            )
        else:
            url = f"ws://{fanout.HOST}:{server.port}/"
        await asyncio.sleep(args.settle)
        before = rss_kb(server.pid)
        gen = ["--kind", "ws", "--url", url, "--subscribers", str(connections), "--events", "1"]
        gen += ["--setup-timeout-s", str(args.setup_timeout), "--max-seconds", str(args.setup_timeout + 120)]
        gen += ["--connect-concurrency", str(args.connect_concurrency)]
        gen += ["--heartbeat-s", "20"] if name == "hub" else []
        proc = await asyncio.create_subprocess_exec(
            ensure_node_deps(),
            str(fanout.BENCH / "load" / "subscribers.js"),
            *gen,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=(logdir / f"gen-{name}.log").open("ab"),
            cwd=fanout.BENCH,
            preexec_fn=fanout.pinned(fanout.CLIENT_CPUS),
        )
        assert proc.stdin is not None and proc.stdout is not None
        cpu0 = fanout.cpu_seconds(server.pid) or 0.0
        busy0 = fanout.system_busy_seconds() or 0.0
        wall0 = time.monotonic()
        ready = await fanout.read_json_line(proc.stdout, args.setup_timeout + 30)
        wall = time.monotonic() - wall0
        cpu = (fanout.cpu_seconds(server.pid) or 0.0) - cpu0
        busy = ((fanout.system_busy_seconds() or 0.0) - busy0) / wall
        if ready.get("event") != "ready":
            raise RuntimeError(f"{name}: connections not ready: {ready}")
        await asyncio.sleep(args.settle)
        after = rss_kb(server.pid)
        proc.stdin.write(b"abort\n")
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 30)
        if proc.returncode is None:
            proc.kill()
        connected = int(ready["connected"])
        return {
            "server": name,
            "connections": connected,
            "failed": int(ready["failed"]),
            "rss_before_mb": before / 1024,
            "rss_after_mb": after / 1024,
            "kb_per_connection": (after - before) / max(connected, 1),
            "welcome_s": float(ready["setup_s"]),
            "server_cpu_ms_per_connection": cpu * 1000 / max(connected, 1),
            "machine_cores": busy,
        }
    finally:
        await server.stop()


async def amain(args: argparse.Namespace) -> int:
    fanout.raise_fd_limit(max(args.connections) + 2048)
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(cpus) >= 2:
        fanout.SERVER_CPUS, fanout.CLIENT_CPUS = {cpus[0]}, set(cpus[1:])
    logdir = Path(tempfile.mkdtemp(prefix="hub-capacity-"))
    fanout.log(f"logs in {logdir}")
    results: list[dict[str, Any]] = []
    for connections in args.connections:
        for run in range(1, args.runs + 1):
            for name in args.servers:
                try:
                    r = await measure(name, args, logdir, connections)
                except (RuntimeError, TimeoutError, OSError) as exc:
                    print(f"{connections} x {name} run {run}: failed: {exc}", flush=True)
                    continue
                r["run"] = run
                results.append(r)
                print(
                    f"{connections} x {name:10} run {run}: {r['kb_per_connection']:5.1f} KB/connection"
                    f" (RSS {r['rss_before_mb']:.0f} -> {r['rss_after_mb']:.0f} MB),"
                    f" welcomed in {r['welcome_s']:.2f} s ({r['connections'] / r['welcome_s']:,.0f}/s),"
                    f" server CPU {r['server_cpu_ms_per_connection']:.2f} ms/connection,"
                    f" failed {r['failed']}, machine {r['machine_cores']:.2f} cores busy",
                    flush=True,
                )
        medians: dict[str, dict[str, float]] = {}
        for name in args.servers:
            mine = [r for r in results if r["server"] == name and r["connections"] >= connections * 0.99]
            if mine:
                medians[name] = {
                    key: statistics.median(r[key] for r in mine) for key in ("kb_per_connection", "welcome_s")
                }
        print(f"\n{connections} idle connections, medians of {args.runs} run(s):")
        for name, m in medians.items():
            ratios = ""
            if name == "hub":
                ratios = "".join(
                    f"  hub/{peer} memory {m['kb_per_connection'] / medians[peer]['kb_per_connection']:.2f}"
                    f" welcome time {m['welcome_s'] / medians[peer]['welcome_s']:.2f}"
                    for peer in PEERS
                    if peer in medians
                )
            kb, welcome = m["kb_per_connection"], m["welcome_s"]
            print(f"  {name:10} {kb:5.1f} KB/connection, welcomed in {welcome:.2f} s{ratios}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[10_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--servers", default="hub,websockets,starlette")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before each RSS reading")
    parser.add_argument("--setup-timeout", type=float, default=120.0)
    parser.add_argument(
        "--connect-concurrency", type=int, default=64, help="connections the load generator opens at once"
    )
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--embedded", action="store_true")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--hub-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--hub-start-timeout", type=float, default=120.0)
    args = parser.parse_args()
    args.servers = [s for s in args.servers.split(",") if s]
    # Lift the hub's admission limits: this measures what a connection holds, not the limits.
    most = str(max(args.connections) + 1000)
    args.hub_env = [
        f"HUB_MAX_CONNECTIONS={most}",
        f"HUB_MAX_CONNECTIONS_PER_USER={most}",
        f"HUB_MAX_CONNECTIONS_PER_ACCOUNT={most}",
        *args.hub_env,
    ]
    sys.exit(asyncio.run(amain(args)))


if __name__ == "__main__":
    main()
