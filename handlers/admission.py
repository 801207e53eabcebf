"""Admission: whether a caller may become a member of a session's room.

The WebSocket (`handlers/ws.py`) and the event stream (`handlers/stream.py`) admit members
by the same rules: the hub accepts, the token verifies, its role may act in the requested
role, the session is the caller's to open, and the user and its account have a
connection slot left. A refusal is a `HubError`: the socket closes with its close code,
the stream answers its HTTP status (hub/errors.py has both).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from annotated_types import Len
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from hub.close_codes import CloseCode
from hub.connection import Connection, Principal
from hub.errors import Forbidden, NotFound, ShuttingDown, TooManyConnections
from hub.node import Hub
from hub.presence import ACCOUNT_SLOTS
from hub.safe_json import text_problem
from hub.store import SessionRecord

from .auth import can_open

log = logging.getLogger("hub.admission")


def _storable(value: Any) -> Any:
    problem = text_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise PydanticCustomError("storable", problem)
    return value


# A session id, display name or dev-mode user id in a member's query string.
Name = Annotated[str, BeforeValidator(_storable), Len(1, 100)]


def ensure_accepting(hub: Hub) -> None:
    if not hub.accepting:
        raise ShuttingDown("the hub is shutting down")


def role_allowed(principal: Principal, requested: str) -> bool:
    """A token's role caps what the connection may ask for; admins may take any role."""
    if principal.role == "admin":
        return True
    if principal.role == "instructor":
        return requested in ("instructor", "observer")
    return requested == principal.role


async def admit(
    hub: Hub, principal: Principal, with_token: bool, session_id: str, role: str, name: str | None
) -> SessionRecord:
    """The session `principal` may join acting in `role` (it takes that role), or a HubError."""
    hub.membership.ensure_join_capacity()  # before any read: a refused burst costs nothing
    if not role_allowed(principal, role):
        raise Forbidden(f"the token's role '{principal.role}' may not connect as '{role}'")
    if name and with_token and not principal.name_from_token:  # a named token keeps its name
        principal.name = name
    principal.role = role  # the connection acts in the role it asked for
    # Another account's session, or one outside the token's list, is simply not there.
    session = None
    if can_open(principal, session_id):
        session = await hub.membership.find_session(principal.account_id, session_id)
    if session is None:
        raise NotFound(f"session '{session_id}' not found")
    return session


async def claim_slot(hub: Hub, conn: Connection) -> None:
    """Take one of the user's connection slots and one of its account's, counted on every
    process sharing the presence (Redis), or TooManyConnections. The last step of
    admission: nothing after it can refuse, so a refused connection never holds a slot."""
    principal, settings = conn.principal, hub.settings
    account, user = principal.account_id, principal.user_id
    user_limit, account_limit = settings.max_connections_per_user, settings.max_connections_per_account
    # One step for both pools (one round trip): a refusal leaves nothing held.
    full = await hub.presence.claim_slots(
        account, conn.conn_id, {ACCOUNT_SLOTS: account_limit, user: user_limit}
    )
    if full is None:
        return
    if full == user:
        message = f"too many connections for this user (at most {user_limit}, HUB_MAX_CONNECTIONS_PER_USER)"
        raise TooManyConnections(message, {"limit": user_limit})
    message = (
        f"too many connections for this account (at most {account_limit}, HUB_MAX_CONNECTIONS_PER_ACCOUNT)"
    )
    raise TooManyConnections(message, {"limit": account_limit})


async def release_slot(hub: Hub, conn: Connection) -> None:
    try:
        await hub.presence.release_slots(
            conn.principal.account_id, [conn.principal.user_id, ACCOUNT_SLOTS], conn.conn_id
        )
    except Exception:
        # The presence no longer refreshes them, so they expire within HUB_PRESENCE_TTL.
        log.warning("connection slots not released; they expire", exc_info=True)


def count_close(hub: Hub, code: CloseCode) -> None:
    """A member's close, in the metrics (`on_closed` of its Connection)."""
    if code == CloseCode.SLOW_CONSUMER:
        hub.metrics.slow_consumers.inc()
        hub.metrics.closes.labels("slow_consumer").inc()
