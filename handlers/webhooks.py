"""`/api/v2/webhooks`: an account's endpoints, their delivery attempts, and replay.

Managed by `admin` tokens (any caller in dev mode, which acts as admin). Everything is
scoped to the caller's account: another account's endpoint is simply not found. The
secret is answered once, at creation; delivery itself is `hub.webhooks.dispatcher`.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.routing import Route

from hub.connection import Principal
from hub.errors import Conflict, ErrorCode, Invalid, NotFound
from hub.events import DURABLE_TYPES, iso
from hub.values import SessionId
from hub.webhooks.dispatcher import Dispatcher
from hub.webhooks.signing import new_secret
from hub.webhooks.store import Attempt, WebhookStatus, WebhookStore
from hub.webhooks.targets import TargetRefused, check_url

from .api import hub_of, operation

MANAGERS = ("admin",)
MAX_PER_ACCOUNT = 100
WebhookId = Annotated[str, Field(pattern=r"^wh_[0-9a-f]{24}$")]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL receiving the events")
    events: list[str] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=50, description='types, or ["*"]'
    )
    session_id: SessionId | None = Field(default=None, description="only this session; absent: every session")

    @field_validator("events")
    @classmethod
    def known_types(cls, events: list[str]) -> list[str]:
        if events == ["*"]:
            return events
        unknown = [t for t in events if t not in DURABLE_TYPES]
        if unknown:
            raise ValueError(f"unknown event types {unknown[:5]}; use durable types or ['*']")
        return list(dict.fromkeys(events))


class WebhookCreated(BaseModel):
    id: str
    secret: str = Field(description="whsec_ + base64; shown only in this answer")
    url: str
    events: list[str]
    session_id: str | None
    created_at: str


class WebhookView(BaseModel):
    id: str
    url: str
    events: list[str]
    session_id: str | None
    created_at: str
    state: str = Field(
        description="healthy, retrying (an event is being retried) or failing (recent failures)"
    )
    backlog: int = Field(description="events not yet delivered")
    lag_seconds: float | None = Field(description="age of the oldest event not yet delivered")
    retrying_sessions: int
    failures_last_hour: int
    last_error: str | None
    last_delivered_at: str | None


class WebhookList(BaseModel):
    count: int
    webhooks: list[WebhookView]


class WebhookDeleted(BaseModel):
    id: str
    deleted: bool = True


class DeliveryEvent(BaseModel):
    type: str
    session_id: str
    seq: int
    message_id: str = Field(description="the webhook-id header")


class DeliveryView(BaseModel):
    id: int
    event: DeliveryEvent
    attempt: int
    status: str = Field(description="delivered, retrying or failed (given up)")
    response_code: int | None
    error: str | None
    duration_ms: int
    next_retry_at: str | None
    attempted_at: str


class DeliveryList(BaseModel):
    count: int
    deliveries: list[DeliveryView]
    next_cursor: int | None


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: SessionId
    since: int = Field(default=0, ge=0, le=2**62, description="deliver the events after this seq")


class DeliveriesQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=500)
    cursor: int | None = Field(default=None, ge=1, le=2**62, description="page back from next_cursor")


class ReplayAccepted(BaseModel):
    webhook_id: str
    session_id: str
    since: int
    head_seq: int
    status: str = "replaying"


def _store(request: Request) -> WebhookStore:
    store: WebhookStore = request.app.state.webhooks
    return store


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def _when(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


def view(status: WebhookStatus) -> WebhookView:
    hook = status.webhook
    state = "healthy"
    if status.retrying_sessions:
        state = "retrying"
    elif status.failures_last_hour:
        state = "failing"
    return WebhookView(
        id=hook.id,
        url=hook.url,
        events=list(hook.event_types) if hook.event_types is not None else ["*"],
        session_id=hook.session_id,
        created_at=iso(hook.created_at),
        state=state,
        backlog=status.backlog,
        lag_seconds=status.lag_seconds,
        retrying_sessions=status.retrying_sessions,
        failures_last_hour=status.failures_last_hour,
        last_error=status.last_error,
        last_delivered_at=_when(status.last_delivered_at),
    )


def _delivery(attempt: Attempt) -> DeliveryView:
    return DeliveryView(
        id=attempt.id or 0,
        event=DeliveryEvent(
            type=attempt.event_type,
            session_id=attempt.session_id,
            seq=attempt.seq,
            message_id=attempt.message_id,
        ),
        attempt=attempt.attempt,
        status=attempt.status,
        response_code=attempt.response_code,
        error=attempt.error,
        duration_ms=attempt.duration_ms,
        next_retry_at=_when(attempt.next_retry_at),
        attempted_at=iso(attempt.attempted_at),
    )


async def _owned(request: Request, account_id: str, webhook_id: str) -> WebhookStatus:
    status = await _store(request).status(account_id, webhook_id)
    if status is None:
        raise NotFound(f"webhook '{webhook_id[:100]}' not found")
    return status


@operation(
    "Register an endpoint; the secret is answered only here",
    WebhookCreated,
    status=201,
    roles=MANAGERS,
    errors=(ErrorCode.CONFLICT,),
)
async def create_webhook(request: Request, principal: Principal, body: WebhookCreate) -> dict[str, Any]:
    try:
        url = check_url(body.url, hub_of(request).settings.webhook_allow_private)
    except TargetRefused as exc:
        raise Invalid(f"url {exc}", {"field": "url"}) from None
    store = _store(request)
    if await store.count(principal.account_id) >= MAX_PER_ACCOUNT:
        raise Conflict(f"an account has at most {MAX_PER_ACCOUNT} webhooks; delete one first")
    types = None if body.events == ["*"] else body.events
    secret = new_secret()
    hook = await store.create(
        principal.account_id, "wh_" + secrets.token_hex(12), url, types, body.session_id, secret
    )
    _dispatcher(request).webhooks_changed()
    created = WebhookCreated(
        id=hook.id,
        secret=secret,
        url=hook.url,
        events=body.events,
        session_id=hook.session_id,
        created_at=iso(hook.created_at),
    )
    return created.model_dump()


@operation("The account's endpoints with their delivery state", WebhookList, roles=MANAGERS)
async def list_webhooks(request: Request, principal: Principal) -> dict[str, Any]:
    views = [view(s) for s in await _store(request).statuses(principal.account_id)]
    return WebhookList(count=len(views), webhooks=views).model_dump()


@operation("One endpoint with its delivery state", WebhookView, roles=MANAGERS)
async def get_webhook(request: Request, principal: Principal, webhook_id: WebhookId) -> dict[str, Any]:
    return view(await _owned(request, principal.account_id, webhook_id)).model_dump()


@operation("Delete an endpoint: nothing more is sent", WebhookDeleted, roles=MANAGERS)
async def delete_webhook(request: Request, principal: Principal, webhook_id: WebhookId) -> dict[str, Any]:
    await _owned(request, principal.account_id, webhook_id)
    await _store(request).delete(principal.account_id, webhook_id)
    return WebhookDeleted(id=webhook_id).model_dump()


@operation("The endpoint's delivery attempts, newest first", DeliveryList, roles=MANAGERS)
async def list_deliveries(
    request: Request, principal: Principal, webhook_id: WebhookId, query: DeliveriesQuery
) -> dict[str, Any]:
    await _owned(request, principal.account_id, webhook_id)
    attempts = await _store(request).attempts(webhook_id, query.limit + 1, query.cursor)
    page, more = attempts[: query.limit], len(attempts) > query.limit
    answer = DeliveryList(
        count=len(page),
        deliveries=[_delivery(a) for a in page],
        next_cursor=page[-1].id if more and page else None,
    )
    return answer.model_dump()


@operation(
    "Deliver a session's events after `since` again, in order", ReplayAccepted, status=202, roles=MANAGERS
)
async def replay(
    request: Request, principal: Principal, webhook_id: WebhookId, body: ReplayRequest
) -> dict[str, Any]:
    hub = hub_of(request)
    status = await _owned(request, principal.account_id, webhook_id)
    record = await hub.store.get_session(principal.account_id, body.session_id)
    if record is None:
        raise NotFound(f"session '{body.session_id}' not found", {"field": "session_id"})
    only = status.webhook.session_id
    if only is not None and only != record.session_id:
        raise Invalid(f"this webhook only receives session '{only}'", {"field": "session_id"})
    await _store(request).replay(webhook_id, record.pk, body.since)
    dispatcher = _dispatcher(request)
    dispatcher.webhooks_changed()
    dispatcher.notify(record.pk)
    answer = ReplayAccepted(
        webhook_id=webhook_id, session_id=record.session_id, since=body.since, head_seq=record.head_seq
    )
    return answer.model_dump()


_W = "/api/v2/webhooks"
routes = [
    Route(_W, create_webhook, methods=["POST"]),
    Route(_W, list_webhooks, methods=["GET"]),
    Route(_W + "/{webhook_id}", get_webhook, methods=["GET"]),
    Route(_W + "/{webhook_id}", delete_webhook, methods=["DELETE"]),
    Route(_W + "/{webhook_id}/deliveries", list_deliveries, methods=["GET"]),
    Route(_W + "/{webhook_id}/replay", replay, methods=["POST"]),
]
