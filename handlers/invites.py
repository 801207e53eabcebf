"""Join links over HTTP (the rules are in hub/invites.py).

Instructors and admins of the session's account:

- `POST /api/v2/session/{id}/invites` `{"role", "expires_in", "max_uses", "label"}` → 201 the
  invite, with its `url` (`/j/<code>`);
- `GET /api/v2/session/{id}/invites` → `{"count", "invites"}`, each with its `state`;
- `DELETE /api/v2/session/{id}/invites/{code}` → the invite, revoked.

Anyone holding the link (no token; the code is the credential):

- `GET /api/v2/invites/{code}` → what the join page shows: session title and status, role,
  whether it still admits;
- `POST /api/v2/invites/{code}/token` with `{"name"}` claims a seat (201: `token`,
  `renewal`, …), with `{"renewal"}` renews the seat's token (200).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.events import iso
from hub.invites import (
    CodeTaken,
    Invite,
    InviteRefused,
    InviteStore,
    Seat,
    display_name_problem,
    is_code,
    new_code,
    new_guest_id,
    new_secret,
    now_utc,
    parse_new_invite,
    secret_hash,
)

from .auth import AuthError, check_origin
from .errors import ApiError, json_response, read_json_object
from .sessions import WRITERS, caller, hub_of, load_session

_MAX_SECRET = 200


def store_of(request: Request) -> InviteStore:
    invites: InviteStore = request.app.state.invites
    return invites


def _base_url(request: Request) -> str:
    return str(request.base_url)


def _refused(exc: InviteRefused) -> ApiError:
    return ApiError(410, "gone", exc.message, {"reason": exc.reason})


async def _invite_of(request: Request) -> Invite:
    """The invite named by the path, for anyone holding its code (404 otherwise)."""
    try:
        check_origin(request, request.app.state.settings.allowed_origins)
    except AuthError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    code = request.path_params["code"].lower()
    invite = await store_of(request).get(code) if is_code(code) else None
    if invite is None:
        raise ApiError(404, "not_found", "no such invite: check the link")
    return invite


async def create_invite(request: Request) -> Response:
    principal = caller(request, WRITERS)
    record = await load_session(request, principal)
    body = await read_json_object(request, hub_of(request).settings.max_body_bytes)
    new, errors = parse_new_invite(body)
    if new is None:
        raise ApiError(422, "invalid", errors[0]["field"] + " " + errors[0]["message"], {"errors": errors})
    for _ in range(3):  # a clash of random codes is astronomically rare; never loop on it
        try:
            invite = await store_of(request).create(
                new_code(), record.pk, record.account_id, principal.user_id, new
            )
            break
        except CodeTaken:
            continue
    else:
        raise ApiError(503, "unavailable", "no free invite code was found; try again")
    return json_response(invite.to_json(_base_url(request), now_utc()), 201)


async def list_invites(request: Request) -> Response:
    principal = caller(request, WRITERS)
    record = await load_session(request, principal)
    invites = await store_of(request).list_for_session(record.pk)
    now, base = now_utc(), _base_url(request)
    return json_response({"count": len(invites), "invites": [i.to_json(base, now) for i in invites]})


async def revoke_invite(request: Request) -> Response:
    principal = caller(request, WRITERS)
    record = await load_session(request, principal)
    code = request.path_params["code"].lower()
    invite = await store_of(request).get(code) if is_code(code) else None
    if invite is None or invite.session_pk != record.pk:
        raise ApiError(404, "not_found", f"no invite '{code[:20]}' for this session")
    revoked = await store_of(request).revoke(code)
    assert revoked is not None
    return json_response(revoked.to_json(_base_url(request), now_utc()))


async def show_invite(request: Request) -> Response:
    invite = await _invite_of(request)
    refusal = invite.refusal(now_utc())
    return json_response(
        {
            "code": invite.code,
            "session_id": invite.session_id,
            "title": invite.session_title,
            "status": invite.session_status,
            "role": invite.role,
            "state": refusal or "active",
            "message": InviteRefused(refusal).message if refusal else None,
            "expires_at": iso(invite.expires_at),
        }
    )


async def invite_token(request: Request) -> Response:
    invite = await _invite_of(request)
    body = await read_json_object(request, hub_of(request).settings.max_body_bytes)
    unknown = sorted(set(body) - {"name", "renewal"})
    if unknown or ("name" in body) == ("renewal" in body):
        message = "send either {'name': your display name} to join, or {'renewal': credential} to renew"
        raise ApiError(422, "invalid", message, {"field": unknown[0][:100] if unknown else "name"})
    if "renewal" in body:
        seat = await _renew(request, invite, body["renewal"])
        return json_response(_token_body(request, invite, seat))
    problem = display_name_problem(body["name"])
    if problem is not None:
        raise ApiError(422, "invalid", f"name {problem}", {"field": "name"})
    secret, hashed = new_secret()
    try:
        seat = await store_of(request).claim_seat(invite.code, new_guest_id(), body["name"].strip(), hashed)
    except InviteRefused as exc:
        raise _refused(exc) from None
    except KeyError:
        raise ApiError(404, "not_found", "no such invite: check the link") from None
    return json_response({**_token_body(request, invite, seat), "renewal": secret}, 201)


async def _renew(request: Request, invite: Invite, credential: Any) -> Seat:
    if not isinstance(credential, str) or not 1 <= len(credential) <= _MAX_SECRET:
        raise ApiError(
            422, "invalid", "renewal must be the credential the join answered", {"field": "renewal"}
        )
    refusal = invite.refusal(now_utc(), renewing=True)
    if refusal is not None:
        raise _refused(InviteRefused(refusal))
    seat = await store_of(request).seat(invite.code, secret_hash(credential))
    if seat is None:
        raise ApiError(401, "unauthorized", "this renewal credential is not one of this invite's seats")
    return seat


def _token_body(request: Request, invite: Invite, seat: Seat) -> dict[str, Any]:
    ttl = int(hub_of(request).settings.invite_token_ttl)
    try:
        token = request.app.state.auth.issue(
            invite.account_id, seat.user_id, invite.role, [invite.session_id], ttl, seat.name
        )
    except AuthError as exc:  # no signing key: a configuration fault, not the caller's
        raise ApiError(500, "internal", exc.message) from None
    page = "/participant" if invite.role == "participant" else "/dashboard"
    return {
        "token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "session_id": invite.session_id,
        "role": invite.role,
        "user_id": seat.user_id,
        "name": seat.name,
        "page": page,
    }


routes = [
    Route("/api/v2/session/{session_id}/invites", create_invite, methods=["POST"]),
    Route("/api/v2/session/{session_id}/invites", list_invites, methods=["GET"]),
    Route("/api/v2/session/{session_id}/invites/{code}", revoke_invite, methods=["DELETE"]),
    Route("/api/v2/invites/{code}", show_invite, methods=["GET"]),
    Route("/api/v2/invites/{code}/token", invite_token, methods=["POST"]),
]

_CODE = {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
_SESSION = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}
_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_INVITE = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "url": {"type": "string", "description": "the join link, /j/<code>"},
        "session_id": {"type": "string"},
        "role": {"type": "string", "enum": ["participant", "observer"]},
        "label": {"type": ["string", "null"]},
        "state": {"type": "string", "enum": ["active", "revoked", "expired", "used_up", "session_ended"]},
        "uses": {"type": "integer"},
        "max_uses": {"type": ["integer", "null"]},
        "expires_at": {"type": "string", "format": "date-time"},
        "created_at": {"type": "string", "format": "date-time"},
        "created_by": {"type": "string"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


def _answer(description: str, schema: dict[str, Any], *errors: int) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    return {"responses": {"200": responses, **{str(e): {"description": "error", **_ERROR} for e in errors}}}


openapi_schemas: dict[str, Any] = {
    "Invite": _INVITE,
    "InviteCreate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "role": {"type": "string", "enum": ["participant", "observer"], "default": "participant"},
            "expires_in": {"type": "integer", "minimum": 60, "maximum": 7776000, "default": 86400},
            "max_uses": {"type": ["integer", "null"], "minimum": 1, "maximum": 100000},
            "label": {"type": ["string", "null"], "maxLength": 200},
        },
    },
    "InviteToken": {
        "type": "object",
        "additionalProperties": False,
        "description": "Either name (join: a new seat) or renewal (a fresh token for the seat)",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "renewal": {"type": "string"},
        },
    },
}

_REF = {"$ref": "#/components/schemas/Invite"}
_TOKEN_ANSWER = {
    "type": "object",
    "properties": {
        "token": {"type": "string"},
        "token_type": {"type": "string"},
        "expires_in": {"type": "integer"},
        "renewal": {"type": "string", "description": "only when joining: keep it to renew"},
        "session_id": {"type": "string"},
        "role": {"type": "string"},
        "user_id": {"type": "string"},
        "name": {"type": "string"},
        "page": {"type": "string"},
    },
}
openapi_paths: dict[str, Any] = {
    "/api/v2/session/{session_id}/invites": {
        "post": {
            "summary": "Create a join link for the session (instructor, admin)",
            "parameters": [_SESSION],
            "requestBody": {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InviteCreate"}}}
            },
            "responses": {
                "201": {"description": "the invite", "content": {"application/json": {"schema": _REF}}},
                **{str(e): {"description": "error", **_ERROR} for e in (401, 403, 404, 422)},
            },
        },
        "get": {
            "summary": "The session's invites and their state (instructor, admin)",
            "parameters": [_SESSION],
            **_answer(
                "the invites",
                {
                    "type": "object",
                    "properties": {"count": {"type": "integer"}, "invites": {"type": "array", "items": _REF}},
                },
                401,
                403,
                404,
            ),
        },
    },
    "/api/v2/session/{session_id}/invites/{code}": {
        "delete": {
            "summary": "Revoke an invite: no new seats, no renewals",
            "parameters": [_SESSION, _CODE],
            **_answer("the invite, revoked", _REF, 401, 403, 404),
        }
    },
    "/api/v2/invites/{code}": {
        "get": {
            "summary": "What a join link admits to (no token: the code is the credential)",
            "parameters": [_CODE],
            "security": [],
            **_answer("the invite as the join page shows it", {"type": "object"}, 404),
        }
    },
    "/api/v2/invites/{code}/token": {
        "post": {
            "summary": "Join with a display name (201: a seat, its token and renewal) or renew a token",
            "parameters": [_CODE],
            "security": [],
            "requestBody": {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InviteToken"}}}
            },
            "responses": {
                "200": {
                    "description": "a renewed token",
                    "content": {"application/json": {"schema": _TOKEN_ANSWER}},
                },
                "201": {
                    "description": "a seat: token and renewal",
                    "content": {"application/json": {"schema": _TOKEN_ANSWER}},
                },
                **{str(e): {"description": "error", **_ERROR} for e in (401, 404, 410, 422)},
            },
        }
    },
}
