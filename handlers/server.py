"""Run the hub under uvicorn (uvloop, httptools, websockets-sansio) with a graceful drain.

The port is bound before anything starts, so a busy port fails at once with one line.
On SIGTERM/SIGINT the hub first stops accepting, flushes every accepted event and closes
clients with `server_shutdown` (reconnect elsewhere); only then does uvicorn stop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

import uvicorn

from hub.config import ConfigError, Settings

from .app import create_app
from .uvicorn_transport import server_config, started

log = logging.getLogger("hub")


class PortBusy(ConfigError):
    """The address to listen on is taken (or not ours to take)."""


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Any, banner: str = ""):
        super().__init__(config)
        self.hub_app = app
        self.banner = banner
        self._draining = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        hub = getattr(self.hub_app.state, "hub", None)
        if self.started and hub is not None:
            started(self, hub.metrics.registry)
            if self.banner:
                print(self.banner, flush=True)  # only once the hub really serves

    def handle_exit(self, sig: int, frame: Any) -> None:
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


def banner(host: str, port: int) -> str:
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    return (
        f"\nSession Hub on {base}\n"
        f"  participant page:  {base}/participant\n"
        f"  instructor console: {base}/instructor\n"
        f"  dashboard:          {base}/dashboard\n"
        f"  API description:    {base}/openapi.json\n"
    )


def serve(settings: Settings, host: str, port: int, links: bool = True) -> None:
    sock = bind(host, port)
    app = create_app(settings)
    config = server_config(app, settings, host=host, port=port)
    DrainingServer(config, app, banner(host, port) if links else "").run(sockets=[sock])
