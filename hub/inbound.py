"""Frames a member sends: rate limit, parse and check, queue for group commit, and the
error replies for whatever is refused.

A refused frame changes nothing and is answered with an `error` naming its id. Errors
that are the client's fault count towards `HUB_MAX_ERRORS` (then 3507); sustained
flooding (of this connection, or of its user's or account's connections together,
`hub.rate_limits`) ends in 3508; the hub's own trouble (database unreachable, queue full) is
never counted, so an outage cannot end connections with a do-not-reconnect code.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from .close_codes import CloseCode
from .committer import CommitFailed, CommitOverloaded, GroupCommitter, PendingAppend
from .config import Settings
from .connection import Connection
from .errors import ErrorCode, HubError, Invalid
from .events import ControlFrame, envelope, error_message, parse_client_frame
from .events import now_iso as iso_now
from .metrics import HubMetrics
from .publishing import client_append
from .rate_limits import FrameLimits
from .room import Room
from .safe_json import json_problem, raw_is_storable
from .store import AppendResult
from .token_refresh import TokenLifetime

log = logging.getLogger("hub.inbound")

_FROM = {"connection": "on this connection", "user": "from this user", "account": "from this account"}
_ERROR_TEXT: dict[str, str] = {
    ErrorCode.NOT_FOUND: "the session does not exist",
    ErrorCode.CONFLICT: "the session's status does not allow this event",
}


class Inbound:
    def __init__(
        self, settings: Settings, committer: GroupCommitter, metrics: HubMetrics, tokens: TokenLifetime
    ):
        self.settings = settings
        self.limits = FrameLimits(settings)
        self.committer = committer
        self.metrics = metrics
        self.tokens = tokens

    def handle_frame(self, conn: Connection, room: Room, raw: str | bytes) -> None:
        conn.last_seen = now = time.monotonic()
        principal = conn.principal
        refused = self.limits.take(conn.bucket, principal.account_id, principal.user_id, now)
        if refused is not None:
            self.metrics.rate_limited.labels(refused.scope).inc()
            conn.strikes += 1
            if conn.strikes >= self.settings.rate_limit_strikes:
                self.metrics.closes.labels("rate_limited").inc()
                conn.close_soon(CloseCode.RATE_LIMITED)
            else:
                # Not counted towards HUB_MAX_ERRORS: sustained abuse ends in 3508, not 3507.
                message = f"too many messages {_FROM[refused.scope]}; slow down ({refused.setting})"
                details = {"limit": refused.scope, "retry_after": round(refused.retry_after, 3)}
                client_id = _client_id_of(raw)
                self._reply_error(
                    conn, room.session_id, ErrorCode.RATE_LIMITED, message, client_id, details, counted=False
                )
            return
        if conn.strikes and self.limits.rested(conn.bucket, principal.account_id, principal.user_id):
            conn.strikes = 0  # the buckets refilled: the client slowed down, forgive the burst
        try:
            event = parse_client_frame(raw, conn.role)
            if isinstance(event, ControlFrame):  # `refresh`: hub/token_refresh.py
                conn.offer(self.tokens.refresh(conn, event))
                return
            # Valid JSON PostgreSQL cannot store (NUL, deep nesting) would fail the whole batch.
            unsafe = None
            if event is not None and not raw_is_storable(raw):
                unsafe = json_problem(event.data) or json_problem(event.client_id, "id")
            if unsafe is not None:
                field, why = unsafe
                error = Invalid(f"{field} {why}", {"field": field, "rule": "storable"})
                error.client_id = event.client_id if event is not None else None
                raise error
        except HubError as exc:
            self._reply_error(conn, room.session_id, exc.code, exc.message, exc.client_id, exc.details)
            return
        if event is None:
            data = {"server_time": iso_now()}
            conn.offer(envelope("pong", room.session_id, data).decode())
            return
        request = client_append(room.session_pk, event, conn.principal)
        pending = PendingAppend(
            request, room.session_id, origin=conn, client_id=event.client_id, on_done=self._after_commit
        )
        try:
            self.committer.enqueue(pending)
        except CommitOverloaded as exc:
            # The hub's fault, not the client's: never counted towards HUB_MAX_ERRORS (a
            # database outage must not end connections with a do-not-reconnect code).
            self._reply_error(conn, room.session_id, exc.code, exc.message, event.client_id, counted=False)

    def _after_commit(
        self, pending: PendingAppend, result: AppendResult | None, exc: BaseException | None
    ) -> None:
        """The outcome of a frame's event, called by the committer (the ack is the commit
        listener's): only refusals are answered here."""
        if result is not None and result.error is None:
            return
        conn, session_id, client_id = pending.origin, pending.session_id, pending.client_id
        if isinstance(exc, CommitFailed):
            message = "the event could not be stored; send it again"
            self._reply_error(conn, session_id, ErrorCode.UNAVAILABLE, message, client_id, counted=False)
            return
        if exc is not None or result is None:
            # A fault in the hub, not a dependency: say so and close with 1011 rather than
            # let the client retry into the same fault.
            log.error("unexpected commit failure", exc_info=exc)
            message = "internal error; the fault is logged on the hub"
            self._reply_error(conn, session_id, ErrorCode.INTERNAL, message, client_id, counted=False)
            conn.close_soon(CloseCode.UNEXPECTED_CONDITION)
            return
        assert result.error is not None
        message = _ERROR_TEXT.get(result.error, result.error)
        if result.error == ErrorCode.CONFLICT:
            message = f"the session is {result.status}; this event is not allowed now"
        self._reply_error(conn, session_id, result.error, message, client_id, {"status": result.status})

    def _reply_error(
        self,
        conn: Connection,
        session_id: str,
        code: str,
        message: str,
        client_id: Any = None,
        details: Any = None,
        counted: bool = True,
    ) -> None:
        self.metrics.frames_refused.labels(code).inc()
        conn.errors += 1 if counted else 0
        conn.offer(error_message(session_id, code, message, client_id, details).decode())
        if conn.errors >= self.settings.max_errors_per_connection:
            self.metrics.closes.labels("too_many_errors").inc()
            conn.close_soon(CloseCode.TOO_MANY_ERRORS)


def _client_id_of(raw: str | bytes) -> Any:
    """The frame's id, if it has a usable one, so a refusal can name what it refused."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    client_id = message.get("id") if isinstance(message, dict) else None
    return client_id if isinstance(client_id, str) and len(client_id) <= 100 else None
