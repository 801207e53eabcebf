"""The browser pages: /participant, /instructor, /dashboard and the files under /static.

Everything the pages need is in `static/` (plain ES modules, HTML, CSS; no build step,
nothing fetched from elsewhere). The pages talk to the same hub that serves them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from .api import operation

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Only our own origin: scripts, styles and sockets. No inline script, no third party.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _page(filename: str, summary: str) -> Any:
    @operation(summary, None, public=True, media_type="text/html")
    async def endpoint() -> Response:
        return FileResponse(STATIC_DIR / filename, media_type="text/html; charset=utf-8", headers=_HEADERS)

    endpoint.__name__ = filename.removesuffix(".html")
    return endpoint


@operation("Redirect to the dashboard", None, status=307, public=True, media_type="text/html")
async def index() -> Response:
    return RedirectResponse("/dashboard", status_code=307)


class _StaticFiles(StaticFiles):
    """Static files with the right module MIME type and revalidation on every load."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])  # type: ignore[call-overload]
                path = str(scope.get("path", ""))
                if path.endswith(".js"):
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                    headers.append((b"content-type", b"text/javascript; charset=utf-8"))
                headers.append((b"cache-control", b"no-cache"))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_with_headers)  # type: ignore[arg-type]


routes = [
    Route("/", index, methods=["GET"]),
    Route("/participant", _page("participant.html", "The participant page"), methods=["GET"]),
    Route("/instructor", _page("instructor.html", "The instructor console"), methods=["GET"]),
    Route("/dashboard", _page("dashboard.html", "The live sessions dashboard"), methods=["GET"]),
    Route("/j/{code}", _page("join.html", "The page behind a join link"), methods=["GET"]),
    Mount("/static", app=_StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
]
