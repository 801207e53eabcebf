"""An ASGI app object for servers started by hand, e.g.

    uvicorn handlers.asgi:app --ws websockets-sansio --loop uvloop --http httptools

Settings come from the environment as with `python -m hub serve`. Prefer that command:
it adds the hub's drain on SIGTERM (clients told to reconnect elsewhere with 3000) before
the server stops; under a bare ASGI server the lifespan shutdown still flushes every
accepted event, and clients see the server's own close code.
"""

from __future__ import annotations

from .app import create_app

app = create_app()
