"""Run the hub under uvicorn (uvloop, httptools, websockets-sansio) with a graceful drain.

The port is bound before anything starts, so a busy port fails at once with one line.
On SIGTERM/SIGINT the hub first stops accepting, flushes every accepted event and closes
clients with `server_shutdown` (reconnect elsewhere); only then does uvicorn stop.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import socket
import sys
from typing import Any

import uvicorn

from hub.config import ConfigError, Settings

from .app import create_app
from .auth import Authenticator
from .uvicorn_transport import server_config, started
from .ws import direct_lane

log = logging.getLogger("hub")


class PortBusy(ConfigError):
    """The address to listen on is taken (or not ours to take)."""


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Any, banner: str = ""):
        super().__init__(config)
        self.hub_app = app
        self.banner = banner
        self._draining = False
        # The first signal that stopped us: uvicorn re-raises it once the server is done,
        # but asyncio.run's own SIGINT handler can turn that into a quiet return, so the
        # exit status is decided from this instead.
        self.stopped_by: int | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        hub = getattr(self.hub_app.state, "hub", None)
        if self.started and hub is not None:
            # What exists now (modules, the app, pools: ~110k objects) lives as long as the
            # process: out of the cycle collector's sight, its full passes scan only what
            # serving creates (~75 ms each became ~19 ms under bench/ingest.py, in the
            # ack latency's tail, and ~4% less CPU).
            gc.collect()
            gc.freeze()
            started(self, hub.metrics.registry)
            if self.banner:
                print(self.banner, flush=True)  # only once the hub really serves

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.stopped_by is None:
            self.stopped_by = sig
        hub = getattr(self.hub_app.state, "hub", None)
        if self._draining or hub is None:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        log.info("draining", extra={"signal": sig})
        asyncio.get_event_loop().create_task(self._drain_then_exit(hub, sig, frame))

    async def _drain_then_exit(self, hub: Any, sig: int, frame: Any) -> None:
        try:
            await asyncio.wait_for(hub.drain(), timeout=hub.settings.drain_timeout + 5)
        except Exception:
            log.exception("drain did not finish cleanly")
        super().handle_exit(sig, frame)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or PortBusy saying how to pick another port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise PortBusy(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
        other = port + 1 if 0 < port < 65535 else 8001
        raise PortBusy(
            f"port {port} on {host} {why}: pick another with `make run PORT={other}` "
            f"or `python -m hub serve --port {other}`"
        ) from None
    sock.set_inheritable(True)
    return sock


BANNER_TOKEN_TTL = 12 * 3600  # seconds: one working day at the console


def banner(host: str, port: int, settings: Settings, interactive: bool | None = None) -> str:
    """The links to print once the hub serves, each one usable in the mode it runs in.

    In dev mode the pages need no token. Otherwise the console and the dashboard need one:
    on a terminal the banner carries a fresh admin token (account `default`) in the link's
    fragment, which the page keeps and takes out of the address bar; in a log (not a
    terminal) it only says how to make one, so that no token ever lands in a log file.
    Participants join with the links the console creates.
    """
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    if settings.dev_mode:
        return (
            f"\nSession Hub on {base}  (open dev mode: no tokens; anyone can act as any role)\n"
            f"  instructor console: {base}/instructor?as=instructor\n"
            f"  participant page:   {base}/participant  (or a join link the console creates)\n"
            f"  dashboard:          {base}/dashboard\n"
            f"  API description:    {base}/openapi.json\n"
        )
    if interactive is None:
        interactive = sys.stdout.isatty()
    make = "python -m hub token --account ACCOUNT --user YOU --role instructor"
    if not interactive:
        return (
            f"\nSession Hub on {base}  (tokens required)\n"
            f"  instructor console: {base}/instructor  (paste a token from: {make})\n"
            f"  participants join with the links the console creates\n"
            f"  API description:    {base}/openapi.json\n"
        )
    token = Authenticator(settings).issue(
        "default", "operator", "admin", ttl=BANNER_TOKEN_TTL, name="Operator"
    )
    return (
        f"\nSession Hub on {base}  (tokens required)\n"
        f"  instructor console: {base}/instructor#token={token}\n"
        f"  dashboard:          {base}/dashboard#token={token}\n"
        f"    (admin of account 'default' for 12 h; other accounts: {make})\n"
        f"  participants join with the links the console creates\n"
        f"  API description:    {base}/openapi.json\n"
    )


def serve(settings: Settings, host: str, port: int, links: bool = True) -> int | None:
    """Serve until a signal stops the hub; the signal's number, or None."""
    sock = bind(host, port)
    app = create_app(settings)
    config = server_config(direct_lane(app), settings, host=host, port=port)
    server = DrainingServer(config, app, banner(host, port, settings) if links else "")
    server.run(sockets=[sock])
    return server.stopped_by
