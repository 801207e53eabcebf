"""HTTP side of the error vocabulary (`hub.errors`): the error body, the JSON body reader,
and the boundary that turns whatever escapes an endpoint into a typed answer.

Errors are `{"error": {"code", "message", "details"}}` with the status of the code. Bodies
are read with a size cap (413 `too_large`), must be JSON (400 `invalid_json`) and JSON
objects PostgreSQL can store (422 `invalid`: NUL characters, nesting deeper than
`hub.safe_json.MAX_DEPTH`).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.errors import ErrorCode, HubError, Invalid, InvalidJson, TooLarge, classify, code_for_status
from hub.safe_json import json_problem

log = logging.getLogger("hub.http")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(error: HubError, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": error.body()}, error.status, headers)


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    too_large = f"request body is larger than {max_bytes} bytes"
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(too_large, {"max_bytes": max_bytes})
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(too_large, {"max_bytes": max_bytes})
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidJson("request body is empty; a JSON object is expected")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object", {"field": "body", "rule": "type"})
    # Valid JSON that PostgreSQL cannot store (NUL, absurd nesting) is refused here, whole,
    # instead of failing half-way through a write.
    problem = json_problem(body, "body")
    if problem is not None:
        field, reason = problem
        raise Invalid(f"{field} {reason}", {"field": field, "rule": "storable"})
    return body


async def hub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    # A 429 of the HTTP budget says when to come back (Retry-After).
    return error_response(exc, headers=getattr(exc, "headers", None))


async def http_error(request: Request, exc: Exception) -> Response:
    """The router's own refusals (no such path, wrong method) in the same shape."""
    assert isinstance(exc, HTTPException)
    code = code_for_status(exc.status_code)
    return error_response(HubError(code, str(exc.detail)), headers=dict(exc.headers or {}))


class ErrorBoundary:
    """Whatever escapes an endpoint becomes a typed answer here, and the connection stays
    usable: a dependency that cannot be reached is 503 `unavailable`, anything else is a
    bug: 500 `internal`, logged with its traceback. (Starlette's own last-resort handler
    answers too, but then re-raises, and the server drops the keep-alive connection.)"""

    def __init__(self, app: ASGIApp, unreachable: tuple[type[BaseException], ...] = ()):
        self.app = app
        self.unreachable = unreachable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            error = classify(exc, self.unreachable)
            extra = {"path": scope.get("path"), "code": str(error.code)}
            if error.code == ErrorCode.INTERNAL:
                log.error("request failed: a fault in the hub", exc_info=exc, extra=extra)
            else:
                log.warning("request failed: %s", error.message, exc_info=exc, extra=extra)
            if started:
                raise  # half a response is out: only dropping the connection tells the client
            await error_response(error)(scope, receive, send)
