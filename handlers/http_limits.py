"""HTTP rate limits: writes and expensive reads answer 429 with `Retry-After` beyond a
user's or an account's budget (`hub.rate_limits.KeyedLimits`, per process).

Requests under `/api/v2` from an authenticated caller are metered, in units:

- a write (POST, PUT, PATCH, DELETE) or an expensive read (`EXPENSIVE_READS`) costs 1
  when it arrives; other reads cost nothing and are not metered at all (every request
  that reads the log is an expensive read);
- reading the session log on top costs `HUB_HTTP_EXPENSIVE_COST` units per 1,000 events,
  charged before the read starts (`charge_log_read`, called by the HTTP API's one log
  reader, `handlers.log_reads`), so a replay of 9,000 events costs what it is and is refused before it is
  done, not after.

The units come out of the caller's bucket (`HUB_HTTP_RATE_LIMIT` a second, up to
`HUB_HTTP_RATE_BURST`) and its account's (`HUB_HTTP_ACCOUNT_RATE_*`). A request whose
token does not verify is not metered: it is refused with 401 before it costs anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.config import Settings
from hub.rate_limits import KeyedLimits, Refused

from .auth import AuthError, bearer_token
from .errors import error_response

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reads that cost a unit: the path, and the query flags that make it expensive (None: always).
EXPENSIVE_READS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("/api/v2/session/{id}/content", ("include_replay", "include_metrics")),
    ("/api/v2/sessions/live", ("include_metrics",)),
    ("/api/v2/session/{id}/events", None),
    ("/api/v2/session/{id}/metrics", None),
    ("/api/v2/session/{id}/summary", None),
    ("/api/v2/session/{id}/summaries", None),
    ("/api/v2/session/{id}/progress", None),
    ("/api/v2/session/{id}/interactions", None),
    ("/api/v2/session/{id}/notes", None),
    ("/api/v2/session/{id}/feedback", None),
    ("/api/v2/session/{id}/artifacts", None),
    ("/api/v2/session/{id}/topics", None),
    ("/api/v2/session/{id}/children", None),
    ("/api/v2/session/{id}/ancestors", None),
    ("/api/v2/topics", None),
    ("/api/v2/topics/{id}/sessions", None),
    ("/api/v2/sessions/followups/due", None),
)
_PATTERNS = [
    (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "/?$"), flags) for path, flags in EXPENSIVE_READS
]
_FALSE = ("", "0", "false", "no", "off")
LOG_PAGE = 1000  # events per HUB_HTTP_EXPENSIVE_COST


def is_expensive_read(path: str, query: Mapping[str, str]) -> bool:
    for pattern, flags in _PATTERNS:
        if pattern.match(path):
            return flags is None or any(query.get(f, "").strip().lower() not in _FALSE for f in flags)
    return False


def admission_cost(method: str, path: str, query: Mapping[str, str]) -> float:
    """Units a request costs when it arrives (the log it reads is charged later)."""
    if not path.startswith("/api/v2/"):
        return 0.0
    if method in WRITE_METHODS:
        return 1.0
    return 1.0 if is_expensive_read(path, query) else 0.0


class RateLimited(Exception):
    def __init__(self, refused: Refused):
        super().__init__(refused.setting)
        self.refused = refused


@dataclass
class Meter:
    """What one request may still spend, from its caller's buckets."""

    limits: KeyedLimits
    account: str
    user: str
    expensive_cost: float

    def charge(self, units: float) -> None:
        if units > 0:
            refused = self.limits.take(self.account, self.user, units)
            if refused is not None:
                raise RateLimited(refused)


_METER: ContextVar[Meter | None] = ContextVar("http_meter", default=None)


def charge_log_read(events: int) -> None:
    """Before reading `events` events of a session's log for the current HTTP request:
    take their cost, or RateLimited (429) with nothing read."""
    meter = _METER.get()
    if meter is not None and events > 0:
        meter.charge(math.ceil(meter.expensive_cost * events / LOG_PAGE))


def _message(refused: Refused) -> str:
    whose = "this user" if refused.scope == "user" else "this account"
    return f"too many requests from {whose}; retry after the Retry-After seconds ({refused.setting})"


class HttpLimits:
    """ASGI middleware: meters `/api/v2` requests and answers 429 beyond the budgets."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.limits = KeyedLimits(
            (settings.http_rate_limit, settings.http_rate_burst),
            (settings.http_account_rate_limit, settings.http_account_rate_burst),
            ("HUB_HTTP_RATE_LIMIT", "HUB_HTTP_ACCOUNT_RATE_LIMIT"),
        )
        self.expensive_cost = settings.http_expensive_cost

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cost = admission_cost(scope["method"], scope["path"], request.query_params)
        if cost == 0:  # every request that reads the log costs a unit first
            await self.app(scope, receive, send)
            return
        try:
            principal = scope["app"].state.auth.from_request(request, bearer_token(request))
        except AuthError:
            await self.app(scope, receive, send)  # refused there, before it costs anything
            return
        meter = Meter(self.limits, principal.account_id, principal.user_id, self.expensive_cost)
        token = _METER.set(meter)
        started = False

        async def watch(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            meter.charge(cost)
            await self.app(scope, receive, watch)
        except RateLimited as exc:
            if started:
                raise
            await self._refuse(exc.refused, scope, receive, send)
        finally:
            _METER.reset(token)

    async def _refuse(self, refused: Refused, scope: Scope, receive: Receive, send: Send) -> None:
        hub = getattr(scope["app"].state, "hub", None)
        if hub is not None:
            hub.metrics.rate_limited.labels(f"http_{refused.scope}").inc()
        details = {"limit": refused.setting, "retry_after": round(refused.retry_after, 3)}
        response = error_response(429, "rate_limited", _message(refused), details)
        response.headers["Retry-After"] = str(max(1, math.ceil(refused.retry_after)))
        await response(scope, receive, send)


def document_429(spec: dict[str, Any]) -> None:
    """Add the 429 answer to every operation of the OpenAPI document that is metered."""
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            metered = method.upper() in WRITE_METHODS or any(p.match(path) for p, _ in _PATTERNS)
            if metered and path.startswith("/api/v2/"):
                operation.setdefault("responses", {})["429"] = RESPONSE_429


RESPONSE_429: dict[str, Any] = {
    "description": "Rate limited: the caller's or its account's budget is spent (docs/auth.md)",
    "headers": {
        "Retry-After": {
            "description": "Seconds until the same request would be admitted",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
