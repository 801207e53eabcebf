"""Join links over HTTP (the rules are in hub/invites.py).

Instructors and admins of the session's account create, list and revoke a session's
invites (`/api/v2/session/{id}/invites`). Anyone holding a link `/j/<code>` (no token: the
code is the credential, so these live under the link, not the token-guarded `/api/`)
reads what it admits to (`GET /j/<code>/invite`) and trades it for a seat's token
(`POST /j/<code>/token` with `{"name"}`), or renews that token with the seat's credential
(`{"renewal"}`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.routing import Route

from hub.connection import Principal
from hub.errors import ErrorCode, Gone, NotFound, Unauthorized, Unavailable
from hub.events import iso
from hub.invites import (
    DEFAULT_EXPIRES_IN,
    LABEL_MAX,
    MAX_EXPIRES_IN,
    MAX_USES,
    NAME_MAX,
    CodeTaken,
    Invite,
    InviteRefused,
    InviteRole,
    InviteState,
    InviteStore,
    NewInvite,
    Seat,
    display_name_problem,
    is_code,
    new_code,
    new_guest_id,
    new_secret,
    now_utc,
    secret_hash,
)
from hub.store import SessionRecord
from hub.validation import invalid
from hub.values import STRICT

from .api import hub_of, operation
from .auth import check_origin
from .errors import json_response
from .sessions import WRITERS


def _display_name(value: str) -> str:
    problem = display_name_problem(value)
    if problem is not None:
        raise PydanticCustomError("display_name", problem)
    return value.strip()


DisplayName = Annotated[str, Field(min_length=1, max_length=NAME_MAX), AfterValidator(_display_name)]


class InviteCreate(BaseModel):
    model_config = STRICT

    role: InviteRole = Field("participant", description="what the link admits as")
    expires_in: int = Field(
        DEFAULT_EXPIRES_IN, ge=60, le=MAX_EXPIRES_IN, description="seconds the link admits new people"
    )
    max_uses: int | None = Field(None, ge=1, le=MAX_USES, description="people it admits at most; null: any")
    label: str | None = Field(None, max_length=LABEL_MAX, description="a note for the console")


class InviteOut(BaseModel):
    code: str
    url: str = Field(description="the join link, /j/<code>")
    session_id: str
    role: InviteRole
    label: str | None
    state: InviteState
    uses: int = Field(description="seats claimed")
    max_uses: int | None
    expires_at: str
    created_at: str
    created_by: str
    revoked_at: str | None


class InviteList(BaseModel):
    count: int
    invites: list[InviteOut]


class InvitePublic(BaseModel):
    """What the join page shows before anyone picks a name."""

    code: str
    session_id: str
    title: str
    status: str = Field(description="the session's status")
    role: InviteRole
    state: InviteState
    message: str | None = Field(description="why the link admits nobody, for people")
    expires_at: str


class SeatRequest(BaseModel):
    """Either `name` (join: claims a new seat) or `renewal` (a fresh token for a seat)."""

    model_config = STRICT

    name: DisplayName | None = None
    renewal: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class SeatToken(BaseModel):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="seconds the token is good for")
    renewal: str | None = Field(None, description="on joining only: the credential to renew with")
    session_id: str
    role: InviteRole
    user_id: str
    name: str
    page: str = Field(description="the page to open with the seat")


def _store(request: Request) -> InviteStore:
    invites: InviteStore = request.app.state.invites
    return invites


def _refused(exc: InviteRefused) -> Gone:
    return Gone(exc.message, {"reason": exc.reason})


async def _invite_of(request: Request, code: str) -> Invite:
    """The invite a link names, for anyone holding it (404 otherwise)."""
    check_origin(request, request.app.state.settings.allowed_origins)
    code = code.lower()
    invite = await _store(request).get(code) if is_code(code) else None
    if invite is None:
        raise NotFound("no such invite: check the link")
    return invite


def _out(request: Request, invite: Invite) -> dict[str, Any]:
    return invite.to_json(str(request.base_url), now_utc())


@operation("Create a join link for the session", InviteOut, status=201, roles=WRITERS)
async def create_invite(
    request: Request, principal: Principal, record: SessionRecord, body: InviteCreate
) -> dict[str, Any]:
    new = NewInvite(body.role, body.expires_in, body.max_uses, body.label or None)
    for _ in range(3):  # a clash of random codes is astronomically rare; never loop on it
        try:
            invite = await _store(request).create(
                new_code(), record.pk, record.account_id, principal.user_id, new
            )
            return _out(request, invite)
        except CodeTaken:
            continue
    raise Unavailable("no free invite code was found; try again")


@operation("The session's join links and their state", InviteList, roles=WRITERS)
async def list_invites(request: Request, record: SessionRecord) -> dict[str, Any]:
    invites = await _store(request).list_for_session(record.pk)
    return {"count": len(invites), "invites": [_out(request, i) for i in invites]}


@operation("Revoke a join link: no new seats, no renewals", InviteOut, roles=WRITERS)
async def revoke_invite(request: Request, record: SessionRecord, code: str) -> dict[str, Any]:
    code = code.lower()
    invite = await _store(request).get(code) if is_code(code) else None
    if invite is None or invite.session_pk != record.pk:
        raise NotFound(f"no invite '{code[:20]}' for this session")
    revoked = await _store(request).revoke(code)
    assert revoked is not None
    return _out(request, revoked)


@operation(
    "What a join link admits to (no token: the code is the credential)",
    InvitePublic,
    public=True,
    errors=(ErrorCode.FORBIDDEN,),
)
async def show_invite(request: Request, code: str) -> dict[str, Any]:
    invite = await _invite_of(request, code)
    refusal = invite.refusal(now_utc())
    return {
        "code": invite.code,
        "session_id": invite.session_id,
        "title": invite.session_title,
        "status": invite.session_status,
        "role": invite.role,
        "state": refusal or "active",
        "message": InviteRefused(refusal).message if refusal else None,
        "expires_at": iso(invite.expires_at),
    }


@operation(
    "Join with a display name (201: a seat, its token and renewal credential) or renew a seat's token (200)",
    SeatToken,
    status=201,
    public=True,
    errors=(ErrorCode.GONE, ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN, ErrorCode.INVALID),
    other={200: SeatToken},
)
async def invite_token(request: Request, code: str, body: SeatRequest) -> Any:
    invite = await _invite_of(request, code)
    if (body.name is None) == (body.renewal is None):
        message = "send either {'name': your display name} to join, or {'renewal': credential} to renew"
        raise _invalid(message)
    if body.renewal is not None:
        seat = await _renew(request, invite, body.renewal)
        return json_response(_token_body(request, invite, seat), 200)
    assert body.name is not None
    secret, hashed = new_secret()
    try:
        seat = await _store(request).claim_seat(invite.code, new_guest_id(), body.name, hashed)
    except InviteRefused as exc:
        raise _refused(exc) from None
    except KeyError:
        raise NotFound("no such invite: check the link") from None
    return {**_token_body(request, invite, seat), "renewal": secret}


def _invalid(message: str) -> Exception:
    return invalid([{"field": "name", "rule": "one_of", "message": message}], message)


async def _renew(request: Request, invite: Invite, credential: str) -> Seat:
    refusal = invite.refusal(now_utc(), renewing=True)
    if refusal is not None:
        raise _refused(InviteRefused(refusal))
    seat = await _store(request).seat(invite.code, secret_hash(credential))
    if seat is None:
        raise Unauthorized("this renewal credential is not one of this invite's seats")
    return seat


def _token_body(request: Request, invite: Invite, seat: Seat) -> dict[str, Any]:
    ttl = int(hub_of(request).settings.invite_token_ttl)
    token = request.app.state.auth.issue(
        invite.account_id, seat.user_id, invite.role, [invite.session_id], ttl, seat.name
    )
    return {
        "token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "session_id": invite.session_id,
        "role": invite.role,
        "user_id": seat.user_id,
        "name": seat.name,
        "page": "/participant" if invite.role == "participant" else "/dashboard",
    }


routes = [
    Route("/api/v2/session/{session_id}/invites", create_invite, methods=["POST"]),
    Route("/api/v2/session/{session_id}/invites", list_invites, methods=["GET"]),
    Route("/api/v2/session/{session_id}/invites/{code}", revoke_invite, methods=["DELETE"]),
    # Under the link itself: the code is the credential, no token is asked for.
    Route("/j/{code}/invite", show_invite, methods=["GET"]),
    Route("/j/{code}/token", invite_token, methods=["POST"]),
]
