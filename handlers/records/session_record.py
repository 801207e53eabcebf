"""A session's record over HTTP: updating its record fields (and status through its
lifecycle), its place in a hierarchy, its state transitions, and rebuilding the
log-derived records."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import MaxLen
from pydantic import AliasChoices, BaseModel, BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.routing import Route

from hub.connection import Principal
from hub.errors import Conflict, ErrorCode, Forbidden, Invalid
from hub.lifecycle import ACTIONS, IN_PROGRESS, action_to
from hub.records.store import ParentNotFound
from hub.store import SessionRecord
from hub.values import STRICT

from ..api import hub_of, operation
from ..auth import can_open
from ..session_fields import SessionOut, SessionType, Title, session_json
from ..session_models import Status
from ..sessions import WRITERS, participant_count
from .common import AnyType, PageQuery, listing, records_of, type_filter
from .fields import RECORD_FIELDS, RecordFields, check_parent
from .rows import Children, Transitions

# PATCH status moves the session through the lifecycle action that leads there
# (`hub.lifecycle.action_to`); it may name any status an action leads to
# (`hub.lifecycle.action_targets`, which tests/test_lifecycle_rules.py holds `PatchStatus` to).
PatchStatus = Literal["in_progress", "paused", "completed", "cancelled"]
_STATUS_ALIASES = {"active": IN_PROGRESS}  # seed 002's ACTIVE / PAUSED / COMPLETED


def _status_word(value: Any) -> Any:
    if isinstance(value, str):
        return _STATUS_ALIASES.get(value.lower(), value.lower())
    return value


class StateTrigger(BaseModel):
    """What caused a change of `state`, recorded with the transition."""

    model_config = STRICT

    trigger_type: Annotated[str, MaxLen(100)] = "user_action"
    trigger_id: Annotated[str, MaxLen(200)] | None = None


class SessionPatch(RecordFields):
    """Record fields to change; null clears a field; `state` merges key by key."""

    title: Title | None = Field(None, validation_alias=AliasChoices("title", "name"))
    status: Annotated[PatchStatus, BeforeValidator(_status_word)] | None = Field(
        None, description="moves the session through its lifecycle; `active` = in_progress"
    )
    state_trigger: StateTrigger | None = None

    @field_validator("state", mode="before")
    @classmethod
    def _state_not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("type", "must be a JSON object; set a key to null to remove it")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> SessionPatch:
        if not self.model_fields_set:
            raise PydanticCustomError("required", "must name at least one field to update", {"field": "body"})
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=set(RECORD_FIELDS & self.model_fields_set))


class ChildrenQuery(PageQuery):
    status: Status | None = None
    type: SessionType | None = type_filter("session_type")


class TransitionsQuery(PageQuery):
    type: AnyType | None = type_filter("trigger_type")


class Ancestors(BaseModel):
    session_id: str
    depth: int = Field(description="0: the session is a root")
    root_session_id: str
    ancestors: list[SessionOut] = Field(description="parent first, root last")


class Rebuilt(BaseModel):
    session_id: str
    projected_seq: int


def may_write(principal: Principal, record: SessionRecord) -> bool:
    """Instructors and admins of the account, and the session's owner (seed 002)."""
    owner = record.attributes.get("owner_user_id")
    return principal.role in WRITERS or principal.user_id == owner


@operation(
    "Update the session's record fields (and status via its lifecycle)",
    SessionOut,
    errors=(ErrorCode.CONFLICT,),
)
async def patch_session(
    request: Request, principal: Principal, record: SessionRecord, body: SessionPatch
) -> dict[str, Any]:
    hub = hub_of(request)
    if not may_write(principal, record):
        raise Forbidden(f"role '{principal.role}' may not update this session")
    changes = body.changes()
    await check_parent(hub.store, principal, changes)
    status = body.status
    if status is not None and status != record.status:
        action = action_to(record.status, status)
        if action is None:
            raise Conflict(
                f"cannot move a session that is {record.status} to {status}", {"status": record.status}
            )
        event = ACTIONS[action]
        result = await hub.append(record, event.event_type, dict(event.data), principal.actor)
        if result.error is not None:
            raise Conflict(
                f"cannot move a session that is {result.status} to {status}", {"status": result.status}
            )
    if changes or body.title is not None:
        trigger = body.state_trigger or StateTrigger()
        try:  # a cycle in the hierarchy: 409
            record = await records_of(request).sessions.update(
                record.pk, changes, body.title, (trigger.trigger_type, trigger.trigger_id)
            )
        except ParentNotFound:
            message = "session not found in this account"
            problem = {"field": "parent_session_id", "rule": "exists", "message": message}
            raise Invalid(f"parent_session_id: {message}", {**problem, "errors": [problem]}) from None
    fresh = await hub.store.get_session_by_pk(record.pk) or record
    return session_json(fresh, await participant_count(hub, fresh))


@operation("Child sessions (status, type = session_type, time)", Children, expensive=True)
async def children(
    request: Request, principal: Principal, record: SessionRecord, query: ChildrenQuery
) -> dict[str, Any]:
    sessions = records_of(request).sessions
    found = await sessions.children(principal.account_id, record.session_id, query.page(), principal.sessions)
    return listing("sessions", found, session_json)


@operation("Walk to the root: parent, grandparent, ..., root", Ancestors, expensive=True)
async def ancestors(request: Request, principal: Principal, record: SessionRecord) -> dict[str, Any]:
    chain = await records_of(request).sessions.ancestors(principal.account_id, record.session_id)
    # The walk ends below the first ancestor outside the token's sessions: it is not there.
    hidden = next((i for i, a in enumerate(chain) if not can_open(principal, a.session_id)), len(chain))
    chain = chain[:hidden]
    root = chain[-1] if chain else record
    return {
        "session_id": record.session_id,
        "depth": len(chain),
        "root_session_id": root.session_id,
        "ancestors": [session_json(a) for a in chain],
    }


@operation("State transitions (type = trigger_type, time)", Transitions)
async def transitions(request: Request, record: SessionRecord, query: TransitionsQuery) -> dict[str, Any]:
    return listing("transitions", await records_of(request).sessions.transitions(record.pk, query.page()))


@operation("Rebuild the log-derived records from the log", Rebuilt, roles=WRITERS)
async def rebuild(request: Request, record: SessionRecord) -> dict[str, Any]:
    if record.retained_from > 1:  # a rebuild from what is left would drop the records
        raise Conflict(
            "the session's log was archived by retention; restore it first (python -m hub archive restore)",
            {"retained_from": record.retained_from},
        )
    projected = await records_of(request).rebuild(record.pk)
    return {"session_id": record.session_id, "projected_seq": projected}


routes = [
    Route("/api/v2/session/{session_id}", patch_session, methods=["PATCH"]),
    Route("/api/v2/session/{session_id}/children", children, methods=["GET"]),
    Route("/api/v2/session/{session_id}/ancestors", ancestors, methods=["GET"]),
    Route("/api/v2/session/{session_id}/state/transitions", transitions, methods=["GET"]),
    Route("/api/v2/session/{session_id}/records/rebuild", rebuild, methods=["POST"]),
]
