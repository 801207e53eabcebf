"""Run the hub under uvicorn (uvloop, httptools, websockets-sansio) with a graceful drain.

On SIGTERM/SIGINT the hub first stops accepting, flushes every accepted event and closes
clients with `server_shutdown` (reconnect elsewhere); only then does uvicorn stop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn

from hub.config import Settings
from hub.logs import configure

from .app import create_app

log = logging.getLogger("hub")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Any):
        super().__init__(config)
        self.hub_app = app
        self._draining = False

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


def serve(host: str, port: int, links: bool = True) -> None:
    configure()
    settings = Settings.from_env()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_config=None,
        timeout_graceful_shutdown=int(settings.drain_timeout),
        lifespan="on",
    )
    if links:
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        print(
            f"\nSession Hub on {base}\n"
            f"  participant page:  {base}/participant\n"
            f"  instructor console: {base}/instructor\n"
            f"  dashboard:          {base}/dashboard\n"
            f"  API description:    {base}/openapi.json\n",
            flush=True,
        )
    DrainingServer(config, app).run()
