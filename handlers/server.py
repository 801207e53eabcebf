"""Run the hub under uvicorn (uvloop, httptools, websockets-sansio) with a graceful drain.

The port is bound before anything starts, so a busy port fails at once with one line.
On SIGTERM/SIGINT the hub first stops accepting, flushes every accepted event and closes
clients with `server_shutdown` (reconnect elsewhere); only then does uvicorn stop.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import importlib.metadata
import logging
import socket
import sys
from typing import Any

import uvicorn
from prometheus_client.registry import CollectorRegistry

from hub.config import ConfigError, Settings

from .app import create_app
from .auth import Authenticator
from .transport_stats import stats
from .uvicorn_http import ConnectionGuard, GuardedHttpProtocol, socket_cap
from .uvicorn_transport import PING_INTERVAL, PING_TIMEOUT, HubWebSocketProtocol
from .uvicorn_transport import log as transport_log
from .ws import direct_lane

log = logging.getLogger("hub")

# The cyclic collector's first generation runs after this many allocations (Python's
# default is 700). Every inbound frame allocates a few dozen objects that live until its
# batch commits, so at the default a busy hub collected hundreds of times a second and
# promoted the in-flight ones to older generations, whose collections then traversed the
# whole heap: about a tenth of the hub's CPU under ingest load (py-spy --native).
GC_YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Once serving: what startup built (modules, models, the app) is kept for the
    process's life, so it moves out of the collector's sight (`gc.freeze`), and the young
    generation is collected less often. Under bench/ingest.py the collector was ~11 % of the
    hub's CPU, and each full pass over the ~110k startup objects took ~75 ms, straight
    into the ack latency's tail."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def server_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """uvicorn's configuration for the hub, with its own protocol classes
    (handlers/uvicorn_transport.py, handlers/uvicorn_http.py)."""
    ws_protocol = type(
        "HubWebSocketProtocol",
        (HubWebSocketProtocol,),
        {
            "close_grace": settings.close_grace,
            "ping_rate": settings.rate_limit_per_second,
            "ping_burst": float(settings.rate_limit_burst),
        },
    )
    cap = socket_cap(settings.max_connections)
    if cap < settings.max_connections:
        transport_log.warning(
            "fewer sockets than HUB_MAX_CONNECTIONS: the file limit (ulimit -n) is too low",
            extra={"max_connections": settings.max_connections, "sockets": cap},
        )
    http_protocol = type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "request_timeout": settings.request_timeout,
            "guard": ConnectionGuard(cap, stats.drop),
        },
    )
    stats.fast_path_active = True
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=http_protocol,
        ws=ws_protocol,
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=PING_INTERVAL,
        ws_ping_timeout=PING_TIMEOUT,
        timeout_keep_alive=settings.keepalive_timeout,  # type: ignore[arg-type]  # a float works
        log_config=None,
        timeout_graceful_shutdown=int(settings.drain_timeout),
        lifespan="on",
    )


def started(server: uvicorn.Server, registry: CollectorRegistry) -> None:
    """Export the transport's figures in the hub's metrics and say whether the fast path
    is on."""
    stats.attach(registry, lambda: len(server.server_state.connections))
    versions = {name: importlib.metadata.version(name) for name in ("uvicorn", "websockets")}
    if stats.fast_path_active:
        transport_log.info("websocket fast path active", extra=versions)
    else:
        transport_log.warning("websocket fast path inactive", extra=versions)


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
            started(self, hub.metrics.registry)
            settle_heap()
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
