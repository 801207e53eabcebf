"""Class benchmark: one live class, every participant streaming HRV.

    python3 bench/class.py                      # 1000 participants, 1 Hz, 30 s, one hub
    python3 bench/class.py --rate 4             # 4 Hz
    python3 bench/class.py --nodes 2            # the class split over two hubs on Redis

One session; --participants participants each send `hrv_update` --rate times a second
for --seconds seconds (spread evenly over each period, as sensors are); one instructor
and one dashboard observer watch. It prints:

- the time until every participant is welcomed (all connecting at once, 100 at a time);
- the instructor's (and the observer's) p50/p99 from a participant's send to their
  receive (each sample carries the sender's wall clock; one machine, one clock);
- the participants' `hrv_summary` cadence (and that the log holds one per interval);
- hub CPU in cores over the sending window, and deliveries (event frames written to
  members) per second from the hubs' own counters;
- checks: every acked sample is in the log exactly once and reached the instructor
  exactly once (exit status 1 otherwise).

Goals at 1 Hz: instructor p99 ≤ 50 ms, hub ≤ 0.5 core, everyone welcomed within 5 s.

How: the hub(s) run as `python -m hub serve` (dev mode, defaults otherwise) pinned to
the first CPU; the load runs in two Python processes (uvloop + websockets, no
compression) pinned to the others: one for the participants, one for instructor and
observer, so a busy sender loop does not delay the staff's clocks. PostgreSQL: a fresh
database on the local server (--pg-admin-url), dropped at the end; Redis (--nodes 2):
a fresh key prefix, deleted at the end. Run from anywhere: it makes the repo's .venv
(`make install`) if it is missing and re-runs itself with it.
"""

from __future__ import annotations

import os
import subprocess
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
import itertools
import json
import math
import secrets
import signal
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import fanout
import orjson
from procs import cpu_seconds, free_port
from websockets.asyncio.client import connect

HOST = "127.0.0.1"
SCRIPT = Path(__file__).resolve()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(**fields: Any) -> None:
    """A worker's report to the orchestrator: one JSON line on stdout."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# --------------------------------------------------------------------- participants


async def participants_worker(args: argparse.Namespace) -> None:
    urls = args.urls.split(",")
    count, period = args.participants, 1.0 / args.rate
    sockets: list[Any] = [None] * count
    acks: dict[str, int] = {}
    errors: Counter[str] = Counter()
    summary_times: list[list[float]] = [[] for _ in range(min(count, 20))]

    async def join(i: int) -> None:
        url = f"{urls[i % len(urls)]}&name=p{i:04}&user_id=p{i:04}"
        ws = await connect(url, compression=None, open_timeout=60, max_size=None)
        welcome = orjson.loads(await ws.recv())
        if welcome["type"] != "welcome":
            raise RuntimeError(f"participant {i} got {welcome['type']} first: {welcome['data']}")
        sockets[i] = ws

    started = time.perf_counter()
    for first in range(0, count, 100):
        await asyncio.gather(*(join(i) for i in range(first, min(first + 100, count))))
    emit(welcomed=time.perf_counter() - started)

    async def read(i: int, ws: Any) -> None:
        watch = summary_times[i] if i < len(summary_times) else None
        with contextlib.suppress(Exception):
            async for raw in ws:
                if raw.startswith('{"type":"ack"'):
                    data = orjson.loads(raw)["data"]
                    acks[data["id"]] = data["seq"]
                elif watch is not None and raw.startswith('{"type":"hrv_summary"'):
                    watch.append(time.time())
                elif raw.startswith('{"type":"error"'):
                    errors[orjson.loads(raw)["data"]["code"]] += 1

    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
    total = int(args.seconds * args.rate)
    loop = asyncio.get_running_loop()
    begin = loop.time() + 1.0

    async def send(i: int, ws: Any) -> None:
        base = 40 + i % 30
        phase = i / count * period
        for k in range(total):
            delay = begin + phase + k * period - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            # Everyone breathes a little better as the class goes on: the milestones fire.
            hrv = round(base * (1 + 0.2 * k / max(total - 1, 1)), 2)
            sample = f"{i}-{k}"
            frame = {
                "type": "hrv_update",
                "id": sample,
                "data": {"hrv": hrv, "sample": sample, "sent_at": time.time()},
            }
            await ws.send(orjson.dumps(frame).decode())

    await asyncio.sleep(max(begin - loop.time() - 0.01, 0))
    emit(sending=time.time())
    await asyncio.gather(*(send(i, ws) for i, ws in enumerate(sockets)))
    emit(sent=time.time())
    deadline = loop.time() + 10
    while len(acks) < total * count and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.5 * args.summary_interval)  # the last summaries
    gaps = [b - a for times in summary_times for a, b in itertools.pairwise(times)]
    emit(
        result={
            "sent": total * count,
            "acked": sorted(acks),
            "errors": dict(errors),
            "summary_gaps": gaps,
            "summaries_per_participant": [len(t) for t in summary_times],
        }
    )
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    for task in readers:
        task.cancel()


# --------------------------------------------------------------------- staff


async def staff_worker(args: argparse.Namespace) -> None:
    seen: dict[str, list[str]] = {"instructor": [], "observer": []}
    latency: dict[str, list[float]] = {"instructor": [], "observer": []}
    events: Counter[str] = Counter()

    async def watch(role: str) -> None:
        url = f"{args.urls.split(',')[0]}&name=bench-{role}&user_id=bench-{role}"
        url = url.replace("role=participant", f"role={role}", 1)
        async with connect(url, compression=None, open_timeout=60, max_size=None) as ws:
            emit(ready=role)
            async for raw in ws:
                now = time.time()
                if raw.startswith('{"type":"hrv_update"'):
                    data = orjson.loads(raw)["data"]
                    seen[role].append(data["sample"])
                    latency[role].append((now - data["sent_at"]) * 1000)
                elif role == "instructor":
                    events[orjson.loads(raw)["type"]] += 1

    watchers = [asyncio.create_task(watch(role)) for role in seen]
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    await reader.readline()  # "stop"
    for task in watchers:
        task.cancel()
    emit(
        result={
            role: {
                "samples": seen[role],
                "p50": percentile(latency[role], 50),
                "p99": percentile(latency[role], 99),
                "max": max(latency[role], default=None),
            }
            for role in seen
        }
        | {"events": dict(events)}
    )


# --------------------------------------------------------------------- orchestrator


def http(method: str, url: str, body: Any = None) -> Any:
    """The answer's JSON (or text); a refusal raises. fanout.http waits out the hub's HTTP
    rate limit (reading a 30,000-event log is "expensive" for it), as an API client would."""
    status, answer = fanout.http(method, url, body, timeout=30)
    if status >= 400:
        raise RuntimeError(f"{method} {url}: HTTP {status} {answer}")
    return answer


def scrape(port: int) -> dict[str, float]:
    """The hub's counters this benchmark reads: frames out, and the commit histogram."""
    text = http("GET", f"http://{HOST}:{port}/metrics")
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(
            ("hub_events_out_total ", "hub_persist_seconds_bucket", "hub_persist_seconds_count")
        ):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def scrape_all(hubs: list[Any]) -> dict[str, float]:
    total: Counter[str] = Counter()
    for _, port in hubs:
        total.update(scrape(port))
    return dict(total)


def commit_p99(before: dict[str, float], after: dict[str, float]) -> float | None:
    """The p99 of the group-commit round trips in the window, as the histogram bucket's bound."""
    buckets = sorted(
        (float(name.split('le="')[1].split('"')[0]), after[name] - before.get(name, 0.0))
        for name in after
        if name.startswith("hub_persist_seconds_bucket")
    )
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= 0.99 * total:
            return bound * 1000
    return None


class Worker:
    """A load process: JSON lines on stdout, "stop" on stdin."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc

    @classmethod
    async def start(cls, kind: str, args: argparse.Namespace, cpus: set[int] | None, **extra: Any) -> Worker:
        cmd = [sys.executable, str(SCRIPT), "--worker", kind]
        for key, value in extra.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        return cls(proc)

    async def next(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"load worker exited ({await self.proc.wait()})")
        return dict(json.loads(line))

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


def start_hubs(
    args: argparse.Namespace, db_url: str, prefix: str, cpus: set[int] | None, logdir: Path
) -> list[Any]:
    hubs = []
    for n in range(args.nodes):
        port = free_port()
        env = {
            **os.environ,
            "HUB_DEV": "1",
            "DATABASE_URL": db_url,
            "HUB_HRV_SUMMARY_INTERVAL": str(args.summary_interval),
            "HUB_NODE_ID": f"{prefix}n{n}",
            "REDIS_URL": args.redis_url if args.nodes > 1 else "",
            "HUB_REDIS_PREFIX": prefix,
        }
        log_file = (logdir / f"hub{n}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve", "--host", HOST, "--port", str(port), "--no-links"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        hubs.append((proc, port))
    for proc, port in hubs:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"a hub exited with {proc.returncode}; logs in {logdir}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                http("GET", f"http://{HOST}:{port}/healthz")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"a hub did not start; logs in {logdir}")
            time.sleep(0.2)
    return hubs


def write_json(path: str, text: str) -> None:
    Path(path).write_text(text)


def read_log(port: int, session_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    since = 0
    while True:
        page = http(
            "GET", f"http://{HOST}:{port}/api/v2/session/{session_id}/events?since={since}&limit=10000"
        )
        events += page["events"]
        if len(page["events"]) < 10000:
            return events
        since = page["events"][-1]["seq"]


async def run(args: argparse.Namespace) -> int:
    import asyncpg
    import redis

    cpus = sorted(os.sched_getaffinity(0))
    hub_cpus = load_cpus = None
    if args.pin and len(cpus) >= 2:
        hub_cpus, load_cpus = {cpus[0]}, set(cpus[1:])
    fanout.raise_fd_limit(args.participants * 2 + 4096)
    logdir = Path(tempfile.mkdtemp(prefix="class-bench-"))
    name = f"hub_class_{secrets.token_hex(4)}"
    prefix = f"classbench:{secrets.token_hex(4)}:"
    admin = await asyncpg.connect(args.pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db_url = f"{args.pg_admin_url.rsplit('/', 1)[0]}/{name}"
    hubs: list[Any] = []
    workers: list[Worker] = []
    try:
        hubs = await asyncio.to_thread(start_hubs, args, db_url, prefix, hub_cpus, logdir)
        base = f"http://{HOST}:{hubs[0][1]}"
        session = http(
            "POST",
            f"{base}/api/v2/sessions/create",
            {"title": "Class benchmark", "instructor": "Bench", "max_participants": args.participants},
        )
        session_id = session["session_id"]
        http("POST", f"{base}/api/v2/session/{session_id}/start")
        urls = ",".join(
            f"ws://{HOST}:{port}/ws/live-updates?session_id={session_id}&role=participant" for _, port in hubs
        )
        where = f"{args.nodes} hub process{'es on Redis' if args.nodes > 1 else ''}"
        pins = f"hub on cpu {sorted(hub_cpus or [])}, load on cpu {sorted(load_cpus or [])}"
        pids = " ".join(str(proc.pid) for proc, _ in hubs)
        print(
            f"class: {args.participants} participants x {args.rate:g} Hz x {args.seconds:g} s, {where}, "
            f"{pins if hub_cpus else 'unpinned'} (hub pid {pids}; logs: {logdir})",
            flush=True,
        )
        staff = await Worker.start("staff", args, load_cpus, urls=urls)
        workers.append(staff)
        for _ in range(2):
            await staff.next(60)  # instructor and observer connected
        crowd = await Worker.start(
            "participants",
            args,
            load_cpus,
            urls=urls,
            participants=args.participants,
            rate=args.rate,
            seconds=args.seconds,
            summary_interval=args.summary_interval,
        )
        workers.append(crowd)
        welcomed = (await crowd.next(600))["welcomed"]
        await crowd.next(60)  # sending
        cpu0, m0, t0 = sum(cpu_seconds(p.pid) for p, _ in hubs), scrape_all(hubs), time.time()
        await crowd.next(args.seconds + 120)  # sent
        cpu1, m1, t1 = sum(cpu_seconds(p.pid) for p, _ in hubs), scrape_all(hubs), time.time()
        out0, out1 = m0.get("hub_events_out_total", 0.0), m1.get("hub_events_out_total", 0.0)
        crowd_result = (await crowd.next(120))["result"]
        assert staff.proc.stdin is not None
        staff.proc.stdin.write(b"stop\n")
        await staff.proc.stdin.drain()
        staff_result = (await staff.next(60))["result"]

        log_events = read_log(hubs[0][1], session_id)
        logged = Counter(m["data"].get("sample") for m in log_events if m["type"] == "hrv_update")
        at_instructor = Counter(staff_result["instructor"]["samples"])
        acked = crowd_result["acked"]
        summaries = [m for m in log_events if m["type"] == "hrv_summary"]
        intervals = [m["data"]["interval"] for m in summaries]
        milestones = [m["data"].get("threshold") for m in log_events if m["type"] == "hrv_milestone"]
        window = t1 - t0
        gaps = crowd_result["summary_gaps"]

        problems = []
        if len(acked) != crowd_result["sent"]:
            problems.append(f"{crowd_result['sent'] - len(acked)} samples not acked within 10 s")
        missing = [s for s in acked if logged[s] != 1]
        if missing:
            problems.append(f"{len(missing)} acked samples not in the log exactly once, e.g. {missing[:3]}")
        unseen = [s for s in acked if at_instructor[s] != 1]
        if unseen:
            problems.append(
                f"{len(unseen)} acked samples did not reach the instructor exactly once, e.g. {unseen[:3]}"
            )
        if len(intervals) != len(set(intervals)):
            problems.append("two summaries for one interval")
        if crowd_result["errors"]:
            problems.append(f"errors: {crowd_result['errors']}")

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f} ms"

        instructor, observer = staff_result["instructor"], staff_result["observer"]
        print(f"welcomed:     all {args.participants} in {welcomed:.2f} s (goal <= 5 s)")
        print(
            f"instructor:   send -> receive p50 {ms(instructor['p50'])}  p99 {ms(instructor['p99'])}  "
            f"max {ms(instructor['max'])}  (n={len(instructor['samples'])}; goal p99 <= 50 ms)"
        )
        print(f"observer:     send -> receive p50 {ms(observer['p50'])}  p99 {ms(observer['p99'])}")
        cadence = (
            f"every {statistics.mean(gaps):.2f} s (min {min(gaps):.2f}, max {max(gaps):.2f})"
            if gaps
            else "none seen"
        )
        print(
            f"hrv_summary:  participants get one {cadence}; the log holds {len(summaries)}, "
            f"one per interval; milestones {milestones}"
        )
        cores = (cpu1 - cpu0) / window
        print(f"hub CPU:      {cores:.2f} cores over the {window:.1f} s of sending (goal <= 0.5)")
        commits = m1.get("hub_persist_seconds_count", 0) - m0.get("hub_persist_seconds_count", 0)
        bound = commit_p99(m0, m1)
        print(
            f"commits:      {commits / window:,.0f} group commits/s, p99 round trip <= "
            f"{'-' if bound is None else f'{bound:g} ms'} (the database's share of the latency)"
        )
        with contextlib.suppress(OSError):
            load = os.getloadavg()[0]
            print(f"machine:      load average {load:.1f} on {os.cpu_count()} cores (others' work too)")
        print(
            f"deliveries:   {(out1 - out0) / window:,.0f} event frames/s to members, "
            f"plus {crowd_result['sent'] / window:,.0f} acks/s"
        )
        verdict = "OK" if not problems else "FAILED: " + "; ".join(problems)
        print(
            f"checks:       {crowd_result['sent']} sent, {len(acked)} acked; every acked sample in the log "
            f"once and at the instructor once: {verdict}"
        )
        if args.out_file:
            write_json(
                args.out_file,
                json.dumps(
                    {
                        "participants": args.participants,
                        "rate": args.rate,
                        "nodes": args.nodes,
                        "welcomed_s": welcomed,
                        "instructor_p50_ms": instructor["p50"],
                        "instructor_p99_ms": instructor["p99"],
                        "observer_p99_ms": observer["p99"],
                        "summary_gap_mean_s": statistics.mean(gaps) if gaps else None,
                        "hub_cores": (cpu1 - cpu0) / window,
                        "commit_p99_ms": commit_p99(m0, m1),
                        "deliveries_per_s": (out1 - out0) / window,
                        "problems": problems,
                    },
                    indent=2,
                ),
            )
        return 1 if problems else 0
    finally:
        for worker in workers:
            await worker.stop()
        for proc, _ in hubs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc, _ in hubs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        admin = await asyncpg.connect(args.pg_admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if args.nodes > 1:
            client = redis.Redis.from_url(args.redis_url)
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1.0, help="hrv_update per participant per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--nodes", type=int, default=1, help="hub processes (more than one: on Redis)")
    parser.add_argument("--summary-interval", type=float, default=1.0, help="HUB_HRV_SUMMARY_INTERVAL")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin hub and load to CPUs")
    parser.add_argument("--json", dest="out_file", help="write the figures to this file")
    parser.add_argument("--worker", choices=["participants", "staff"], help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    use_uvloop()
    if args.worker == "participants":
        fanout.raise_fd_limit(args.participants * 2 + 1024)
        asyncio.run(participants_worker(args))
    elif args.worker == "staff":
        asyncio.run(staff_worker(args))
    else:
        try:
            sys.exit(asyncio.run(run(args)))
        except KeyboardInterrupt:
            log("interrupted")
            sys.exit(130)


if __name__ == "__main__":
    main()
