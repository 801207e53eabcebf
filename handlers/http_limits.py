"""HTTP rate limits: writes and expensive reads answer 429 with `Retry-After` beyond a
user's or an account's budget (`hub.rate_limits.KeyedLimits`, per process).

Every `@operation` (handlers/api.py) is metered here, in units, once its caller is known:

- a write (POST, PUT, PATCH, DELETE) or an operation declared `expensive` costs 1 when
  it arrives (`expensive` may name the query flags that make a read expensive, such as
  `include_replay`); other reads cost nothing;
- reading the session log on top costs `HUB_HTTP_EXPENSIVE_COST` units per 1,000 events,
  charged before the read starts (`charge_log_read`, called by the HTTP API's one log
  reader, `handlers.log_reads`), so a replay of 9,000 events costs what it is and is
  refused before it is done, not after. Every operation that reads the log is declared
  expensive, so every log read is metered.

The units come out of the caller's bucket (`HUB_HTTP_RATE_LIMIT` a second, up to
`HUB_HTTP_RATE_BURST`) and its account's (`HUB_HTTP_ACCOUNT_RATE_*`). A request whose
token does not verify is refused (401) before it costs anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from hub.config import Settings
from hub.connection import Principal
from hub.errors import RateLimited
from hub.rate_limits import KeyedLimits, Refused

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOG_PAGE = 1000  # events per HUB_HTTP_EXPENSIVE_COST
_FALSE = ("", "0", "false", "no", "off")

# An operation's declaration: True (always expensive), the query flags that make it so,
# or False.
Expensive = bool | tuple[str, ...]


def is_metered(method: str, expensive: Expensive) -> bool:
    """Whether requests of this method and declaration can cost anything (their 429)."""
    return method.upper() in WRITE_METHODS or bool(expensive)


def admission_cost(method: str, expensive: Expensive, query: Mapping[str, str]) -> float:
    """Units a request costs when it arrives (the log it reads is charged as it reads)."""
    if method.upper() in WRITE_METHODS or expensive is True:
        return 1.0
    if expensive:  # any spelling the query model could take for true: never under-metered
        return 1.0 if any(query.get(flag, "").strip().lower() not in _FALSE for flag in expensive) else 0.0
    return 0.0


class OverBudget(RateLimited):
    """429 `rate_limited`, with the seconds until the same request would be admitted."""

    def __init__(self, refused: Refused):
        whose = "this user" if refused.scope == "user" else "this account"
        message = f"too many requests from {whose}; retry after the Retry-After seconds ({refused.setting})"
        super().__init__(message, {"limit": refused.setting, "retry_after": round(refused.retry_after, 3)})
        self.refused = refused
        self.headers = {"Retry-After": str(max(1, math.ceil(refused.retry_after)))}


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
                raise OverBudget(refused)


_METER: ContextVar[Meter | None] = ContextVar("http_meter", default=None)


def charge_log_read(events: int) -> None:
    """Before reading `events` events of a session's log for the current HTTP request:
    take their cost, or OverBudget (429) with nothing read."""
    meter = _METER.get()
    if meter is not None and events > 0:
        meter.charge(math.ceil(meter.expensive_cost * events / LOG_PAGE))


class HttpLimits:
    """The budgets of this process's HTTP callers (one per app)."""

    def __init__(self, settings: Settings):
        self.limits = KeyedLimits(
            (settings.http_rate_limit, settings.http_rate_burst),
            (settings.http_account_rate_limit, settings.http_account_rate_burst),
            ("HUB_HTTP_RATE_LIMIT", "HUB_HTTP_ACCOUNT_RATE_LIMIT"),
        )
        self.expensive_cost = settings.http_expensive_cost

    @contextmanager
    def metered(self, request: Request, principal: Principal | None, expensive: Expensive) -> Iterator[None]:
        """Charge the request's admission, then let what runs inside charge its log reads;
        OverBudget (429) when the caller's or its account's budget is spent."""
        cost = admission_cost(request.method, expensive, request.query_params)
        if principal is None or cost == 0:
            yield
            return
        meter = Meter(self.limits, principal.account_id, principal.user_id, self.expensive_cost)
        token = _METER.set(meter)
        try:
            meter.charge(cost)
            yield
        except OverBudget as exc:
            hub = getattr(request.app.state, "hub", None)
            if hub is not None:
                hub.metrics.rate_limited.labels(f"http_{exc.refused.scope}").inc()
            raise
        finally:
            _METER.reset(token)


RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds until the same request would be admitted (docs/auth.md)",
        "schema": {"type": "integer", "minimum": 1},
    }
}
