"""Bare Starlette-on-uvicorn WebSocket peer for the capacity benchmark.

Every connection to `/` is accepted, gets one `welcome` frame (so the load generator
treats it like the hub) and has every text frame echoed back: what a hub on the same
stack holds per connection before it adds anything of its own. uvicorn with uvloop and
the websockets-sansio protocol, as the hub runs.

Usage: python bench/peers/starlette_echo.py --port 0 [--host 127.0.0.1]
Prints one JSON line {"listening": PORT} on stdout when ready; runs until SIGTERM/SIGINT
or until its stdin closes (the orchestrator died).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

WELCOME = json.dumps({"type": "welcome", "session_id": None, "seq": None, "data": {}})


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text(WELCOME)
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    except WebSocketDisconnect:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    print(json.dumps({"listening": sock.getsockname()[1]}), flush=True)
    app = Starlette(routes=[WebSocketRoute("/", echo)])
    config = uvicorn.Config(
        app, loop="uvloop", ws="websockets-sansio", log_level="warning", ws_ping_interval=None, backlog=2048
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        # The orchestrator holds our stdin open; EOF means it is gone and we should be too.
        loop.add_reader(
            sys.stdin.fileno(), lambda: os.read(sys.stdin.fileno(), 4096) or server.handle_exit(15, None)
        )
        await server.serve(sockets=[sock])

    uvloop.run(run())


if __name__ == "__main__":
    main()
