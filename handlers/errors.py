"""HTTP error shape and JSON body reading, shared by every endpoint.

Errors are `{"error": {"code", "message", "details"}}`. Bodies are read with a size cap
(413) and must be JSON objects (400 for broken JSON, 422 for a wrong shape or for content
PostgreSQL cannot store: NUL characters, nesting deeper than `hub.safe_json.MAX_DEPTH`).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from hub.safe_json import json_problem


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else {}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details if details is not None else {}}}
    return json_response(body, status)


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "too_large", f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, "too_large", f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, "invalid_json", "request body is empty; a JSON object is expected")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "request body must be a JSON object")
    # Valid JSON that PostgreSQL cannot store (NUL, absurd nesting) is refused here, whole,
    # instead of failing half-way through a write.
    problem = json_problem(body, "body")
    if problem is not None:
        field, reason = problem
        raise ApiError(422, "invalid", f"{field} {reason}", {"field": field})
    return body


def query_flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ApiError(422, "invalid", f"query parameter '{name}' must be true or false", {"field": name})


def query_int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            422, "invalid", f"query parameter '{name}' must be a whole number", {"field": name}
        ) from None
    if not low <= value <= high:
        raise ApiError(
            422, "invalid", f"query parameter '{name}' must be between {low} and {high}", {"field": name}
        )
    return value
