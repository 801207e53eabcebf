"""A connection's token over its lifetime: the warning before it runs out, in-band renewal,
and the close when it has run out.

A class can outlast a token. Instead of closing the socket (3003) and making the client
reconnect, the hub warns the connection `HUB_TOKEN_WARNING` seconds before expiry with a
`token_expiring` control message; the client answers with
`{"type": "refresh", "data": {"token": T}}` and the hub, if T names the same account, user
and role and still allows the session, moves the connection's expiry to T's and answers
`refreshed`. Refusals are `error` messages (the connection keeps its old token):

- `invalid`: `data.token` is missing or not a string;
- `unauthorized`: T does not verify (malformed, forged, wrongly signed, expired);
- `forbidden`: T verifies but `details.reason` says why it cannot replace the current one:
  `other_account`, `other_user`, `other_role` or `session_not_allowed`.

Verifying signatures is the auth layer's business: it hands the hub a `TokenVerifier`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from .close_codes import CloseCode
from .connection import Connection, Principal
from .errors import Forbidden, HubError, Invalid, Unauthorized
from .event_data import Refreshed, TokenExpiring
from .events import ControlFrame, envelope, iso

_MAX_TOKEN = 8192  # characters; far above any token the hub issues


class TokenRejected(Exception):
    """The token does not verify; the message says why (expired, forged, ...)."""


# token -> the principal it names, or TokenRejected
TokenVerifier = Callable[[str], Principal]


def _expiry(expires_at: float, now: float) -> TokenExpiring:
    return TokenExpiring(
        expires_at=iso(datetime.fromtimestamp(expires_at, UTC)), expires_in=max(0, int(expires_at - now))
    )


class TokenLifetime:
    """Warns, renews and expires the tokens of this process's connections."""

    def __init__(self, warn_before: float, on_expired: Callable[[], None] | None = None):
        self.warn_before = warn_before
        self.verifier: TokenVerifier | None = None  # set by the composition root
        self._on_expired = on_expired

    def sweep(self, conn: Connection, now: float) -> None:
        """Once a second per connection: warn shortly before expiry, close at expiry."""
        expires_at = conn.principal.expires_at
        if not expires_at or conn.closed:
            return
        if now >= expires_at:
            if self._on_expired is not None:
                self._on_expired()
            conn.close_soon(CloseCode.TOKEN_EXPIRED)
        elif expires_at - now <= self.warn_before and conn.expiry_warned != expires_at:
            conn.expiry_warned = expires_at
            data = _expiry(expires_at, now).model_dump()
            conn.offer(envelope("token_expiring", conn.session_id, data).decode())

    def refresh(self, conn: Connection, frame: ControlFrame) -> str:
        """Renew `conn`'s token from a `refresh` frame: the `refreshed` reply, or HubError."""
        try:
            return self._refresh(conn, frame)
        except HubError as exc:
            exc.client_id = frame.client_id
            raise

    def _refresh(self, conn: Connection, frame: ControlFrame) -> str:
        data = frame.data if isinstance(frame.data, dict) else {}
        token = data.get("token")
        if not isinstance(token, str) or not 1 <= len(token) <= _MAX_TOKEN:
            message = f"data.token must be a token string of 1 to {_MAX_TOKEN} characters"
            raise Invalid(message, {"field": "token"})
        if self.verifier is None:
            raise Unauthorized("this hub does not renew tokens", {"field": "token"})
        try:
            renewed = self.verifier(token)
        except TokenRejected as exc:
            raise Unauthorized(str(exc), {"field": "token"}) from None
        reason = mismatch(conn.principal, renewed, conn.session_id)
        if reason is not None:
            message = f"the new token cannot replace this connection's token ({reason.replace('_', ' ')})"
            raise Forbidden(message, {"field": "token", "reason": reason})
        assert renewed.expires_at is not None  # verified tokens always carry `exp`
        conn.principal.expires_at = renewed.expires_at
        conn.principal.sessions = renewed.sessions
        expiry = _expiry(renewed.expires_at, time.time())
        reply = Refreshed(id=frame.client_id, **expiry.model_dump()).model_dump()
        return envelope("refreshed", conn.session_id, reply).decode()


def mismatch(current: Principal, renewed: Principal, session_id: str) -> str | None:
    """Why `renewed` may not take over from `current` on a connection to `session_id`."""
    if renewed.account_id != current.account_id:
        return "other_account"
    if renewed.user_id != current.user_id:
        return "other_user"
    if renewed.role != (current.token_role or current.role):
        return "other_role"
    if not renewed.may_open(session_id):
        return "session_not_allowed"
    return None
