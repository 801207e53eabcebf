"""Bare `websockets` peer for the fan-out benchmark.

The smallest server that does the hub's fan-out job: every connection to `/` is a
subscriber and gets one `welcome` frame (so the load generator can treat it like the
hub); every text frame received on `/publish` is pushed verbatim to all subscribers
with `websockets.broadcast()`, which writes each frame synchronously to every
transport without awaiting anything. No parsing, no storage, no ordering work: this
is the ceiling a Python hub built on `websockets` could reach.

Usage: python bench/peers/ws_broadcast.py --port 0 [--host 127.0.0.1] [--no-uvloop]
Prints one JSON line {"listening": PORT, "loop": ...} on stdout when ready and runs
until SIGTERM/SIGINT, until its stdin closes (the orchestrator died) or --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

WELCOME = json.dumps({"type": "welcome", "session_id": None, "seq": None, "data": {}})


async def main(args: argparse.Namespace) -> None:
    subscribers: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else "/"
        if path.startswith("/publish"):
            async for frame in ws:
                broadcast(subscribers, frame)
            return
        subscribers.add(ws)
        try:
            await ws.send(WELCOME)
            # Subscribers only listen; drain whatever they send (heartbeats) until close.
            async for _ in ws:
                pass
        finally:
            subscribers.discard(ws)

    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)

    # The orchestrator holds our stdin open; EOF means it is gone and we should be too.
    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            request_stop()

    with contextlib.suppress(OSError):  # e.g. stdin is /dev/null: rely on signals then
        loop.add_reader(sys.stdin.fileno(), on_stdin)

    async with serve(
        handler,
        args.host,
        args.port,
        # Negotiated only if the client offers it; the load generator decides for everyone.
        compression="deflate" if args.deflate else None,
        max_size=2**20,
        # 1000 sockets on a saturated 2-core box: keepalive pings must not kill anyone.
        ping_interval=None,
        backlog=2048,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(json.dumps({"listening": port, "loop": type(loop).__module__}), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop, timeout=args.max_seconds)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--deflate", action="store_true", help="accept permessage-deflate")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    return parser.parse_args()


def run() -> None:
    arguments = parse_args()
    if not arguments.no_uvloop:
        try:
            # The hub runs under uvicorn, which uses uvloop when it is installed.
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main(arguments))
            return
    asyncio.run(main(arguments))


if __name__ == "__main__":
    run()
