"""An ASGI app object for servers started by hand, e.g.

    uvicorn handlers.asgi:app --ws websockets-sansio --loop uvloop --http httptools

Settings come from the environment as with `python -m hub serve`. Prefer that command:
it runs uvicorn with the hub's own protocol classes (`handlers/uvicorn_transport.py`):
the fan-out fast path, the socket deadlines and caps, pongs only while a peer reads, and
the bounded close; and it drains on SIGTERM (clients told to reconnect elsewhere with
3000) before the server stops. Under a bare ASGI server the hub still works: frames go
through ASGI (logged as `websocket fast path inactive`, `hub_websocket_transports_total
{kind="asgi"}`), the lifespan shutdown still flushes every accepted event, and clients see
the server's own close code.
"""

from __future__ import annotations

from .app import create_app

app = create_app()
