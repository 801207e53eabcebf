"""A session's audiences over HTTP: read them, change them (hub/audience.py has the rules).

A change is stored as an event (`session_update` with the complete overrides under
`audience`), so every room and every replay switch at the same seq.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.routing import Route

from hub.audience import AUDIENCE_KEY, AudienceError, Policy, cursor_at, validate_overrides
from hub.connection import Principal
from hub.errors import Conflict, ErrorCode, NotFound
from hub.store import SessionRecord
from hub.validation import invalid

from .api import hub_of, operation
from .sessions import WRITERS

Audience = Literal["everyone", "staff"]


class AudienceChange(BaseModel):
    """Event type -> audience; lifecycle types and session_update always go to everyone."""

    model_config = ConfigDict(extra="forbid")

    audience: dict[str, Any] = Field(description="event type -> `everyone` or `staff`")


class AudienceTable(BaseModel):
    session_id: str
    audience: dict[str, Audience] = Field(description="every durable type's audience")
    overrides: dict[str, Audience] = Field(description="where this session differs from the defaults")
    seq: int | None = Field(None, description="the session_update that stored the change")


def _checked(raw: Any) -> dict[str, str]:
    """The overrides, or the typed 422 listing every bad entry."""
    try:
        return validate_overrides(raw)
    except AudienceError as exc:
        raise invalid([{**e, "rule": "audience"} for e in exc.errors]) from None


def _body(policy: Policy, session_id: str, seq: int | None) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "audience": policy.table(),
        "overrides": dict(policy.overrides),
        "seq": seq,
    }


@operation("Who receives each event type", AudienceTable)
async def get_audience(request: Request, record: SessionRecord) -> dict[str, Any]:
    cursor = await cursor_at(hub_of(request).store, record, record.head_seq)
    return _body(cursor.policy, record.session_id, None)


@operation(
    "Change the audience of event types (PATCH merges, PUT replaces; stored as a session_update event)",
    AudienceTable,
    roles=WRITERS,
    errors=(ErrorCode.CONFLICT,),
)
async def change_audience(
    request: Request, principal: Principal, record: SessionRecord, body: AudienceChange
) -> dict[str, Any]:
    hub = hub_of(request)
    given = _checked(body.audience)
    if request.method == "PATCH":
        current = (await cursor_at(hub.store, record, record.head_seq)).policy
        given = _checked({**current.overrides, **body.audience})
    result = await hub.append(record, "session_update", {AUDIENCE_KEY: given}, principal.actor)
    if result.error == ErrorCode.CONFLICT:
        raise Conflict(
            f"the session is {result.status}; its audiences cannot change now", {"status": result.status}
        )
    if result.error == ErrorCode.NOT_FOUND:
        raise NotFound(f"session '{record.session_id}' not found")
    return _body(Policy(given), record.session_id, result.seq)


routes = [
    Route("/api/v2/session/{session_id}/audience", get_audience, methods=["GET"]),
    Route("/api/v2/session/{session_id}/audience", change_audience, methods=["PUT", "PATCH"]),
]
