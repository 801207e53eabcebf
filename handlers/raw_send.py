"""Expose the ASGI server's own `send` to the WebSocket endpoint.

Starlette wraps `send` for its exception handling; the hub's fan-out wants the server's
protocol object underneath (uvicorn's websockets-sansio), whose transport can take an
already-framed message without an ASGI round trip per member. This middleware runs
before that wrapping and leaves the original in the scope. Nothing depends on it: without
it, or under another server, the endpoint uses plain ASGI sends.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

RAW_SEND_KEY = "hub.raw_send"


class ExposeRawSend:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND_KEY] = send
        await self.app(scope, receive, send)
