"""Who may do what: every HTTP endpoint and every WebSocket message type against every
kind of bad or insufficient token, on a hub in token mode. Each refusal has its status or
close code, and the database is unchanged afterwards.

One hub serves the whole module (account `acme` with three sessions, account `globex`
with one of the same id); no test here lets a participant join, so nothing writes
presence events in the background while the row counts are compared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from handlers.app import create_app
from hub.config import Settings
from hub.events import SENDABLE_BY_ROLE
from tests.auth_support import (
    DURABLE_TYPES,
    SECRET,
    VALID_DATA,
    auth,
    bad_tokens,
    make_session,
    settle,
    snapshot,
    token,
    token_hub,
)
from tests.support import HubProcess, LiveClient, api

LIVE, OTHER = "a-live", "a-other"


@pytest.fixture(scope="module")
def shared(pg_base: str) -> Iterator[tuple[HubProcess, str]]:
    with token_hub(pg_base) as (hub, dsn):
        make_session(hub, "acme", LIVE)
        make_session(hub, "acme", OTHER)
        make_session(hub, "globex", LIVE, title="globex's own")
        settle(dsn)
        yield hub, dsn


WRITERS = ("instructor", "admin")
EVERYONE = ("participant", "instructor", "observer", "admin")
ANNOUNCEMENT = {"announcement": {"message": "hello"}}

# (method, path, body, roles allowed, names one session)
ENDPOINTS: list[tuple[str, str, Any, tuple[str, ...], bool]] = [
    ("POST", "/api/v2/sessions/create", {"title": "t", "instructor": "i"}, WRITERS, False),
    ("GET", "/api/v2/sessions", None, EVERYONE, False),
    ("GET", "/api/v2/sessions/live?include_metrics=true", None, EVERYONE, False),
    ("GET", "/api/v2/session/{sid}", None, EVERYONE, True),
    ("GET", "/api/v2/session/{sid}/content?include_metrics=true&include_replay=true", None, EVERYONE, True),
    ("GET", "/api/v2/session/{sid}/events", None, EVERYONE, True),
    *[("POST", f"/api/v2/session/{{sid}}/{a}", None, WRITERS, True) for a in ("start", "pause", "resume")],
    *[("POST", f"/api/v2/session/{{sid}}/{a}", None, WRITERS, True) for a in ("end", "cancel")],
    ("POST", "/api/v2/live-announce", {**ANNOUNCEMENT, "session_id": "{sid}"}, WRITERS, True),
    ("POST", "/api/v2/live-announce", ANNOUNCEMENT, ("admin",), False),
]


def _ids(endpoint: tuple[str, str, Any, tuple[str, ...], bool]) -> str:
    method, path, body, _, _ = endpoint
    suffix = "-all" if path.endswith("announce") and "session_id" not in body else ""
    return f"{method} {path.split('?')[0]}{suffix}"


def _fill(value: Any, session_id: str) -> Any:
    if isinstance(value, str):
        return value.replace("{sid}", session_id)
    if isinstance(value, dict):
        return {k: _fill(v, session_id) for k, v in value.items()}
    return value


async def _call(hub: HubProcess, endpoint: tuple[str, str, Any, Any, Any], tok: str | None, sid: str) -> Any:
    method, path, body, _, _ = endpoint
    return await api(hub, method, _fill(path, sid), _fill(body, sid), headers=auth(tok))


async def _refused(
    hub: HubProcess, dsn: str, endpoint: Any, tok: str | None, status: int, sid: str = LIVE
) -> None:
    before = await snapshot(dsn)
    response = await _call(hub, endpoint, tok, sid)
    assert response.status_code == status, (endpoint[:2], response.text)
    error = response.json()["error"]
    assert error["code"] == {401: "unauthorized", 403: "forbidden", 404: "not_found"}[status]
    assert error["message"]
    assert await snapshot(dsn) == before


# HTTP × bad tokens


@pytest.mark.parametrize("case", list(bad_tokens()))
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_ids)
async def test_http_refuses_bad_tokens_with_401(shared, endpoint, case):
    hub, dsn = shared
    await _refused(hub, dsn, endpoint, bad_tokens(role="admin")[case], 401)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e[3] != EVERYONE], ids=_ids)
async def test_http_refuses_wrong_roles_with_403(shared, endpoint):
    hub, dsn = shared
    for role in (r for r in EVERYONE if r not in endpoint[3]):
        await _refused(hub, dsn, endpoint, token(role=role), 403)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e[4]], ids=_ids)
async def test_http_other_account_and_outside_sessions_answer_404(shared, endpoint):
    hub, dsn = shared
    # globex's admin asks for acme's other session (globex has no such id)
    await _refused(hub, dsn, endpoint, token(account="globex", role="admin"), 404, OTHER)
    # acme's admin whose token is limited to OTHER asks for LIVE
    await _refused(hub, dsn, endpoint, token(role="admin", sessions=[OTHER]), 404, LIVE)
    # an id of the account that does not exist looks the same
    await _refused(hub, dsn, endpoint, token(role="admin"), 404, "never-created")


async def test_every_api_route_refuses_a_missing_or_bad_token(shared):
    """Also the endpoints later features add: discovered from the application itself."""
    hub, dsn = shared
    api_routes = _api_routes()
    assert len(api_routes) >= len(ENDPOINTS) - 1
    before = await snapshot(dsn)
    for method, path in api_routes:
        filled = path.replace("{session_id}", LIVE)
        while "{" in filled:
            start, end = filled.index("{"), filled.index("}")
            filled = filled[:start] + "x1" + filled[end + 1 :]
        body = {} if method in ("POST", "PUT", "PATCH") else None
        for case, tok in bad_tokens(role="admin").items():
            response = await api(hub, method, filled, body, headers=auth(tok))
            assert response.status_code == 401, (method, path, case, response.text)
    assert await snapshot(dsn) == before


def _api_routes() -> list[tuple[str, str]]:
    app = create_app(Settings(dev_mode=False, secret_keys={"default": SECRET}))
    routes = [(m, r.path) for r in app.routes for m in (getattr(r, "methods", None) or ()) if m != "HEAD"]
    return [(m, p) for m, p in routes if p.startswith("/api/")]


async def test_every_session_route_hides_other_accounts_and_sessions_outside_the_token(shared):
    """Discovered from the application: a session of another account, or one the token's
    `sessions` does not name, is not there for any endpoint under /api/v2/session/{id}."""
    hub, dsn = shared
    scoped = [(m, p) for m, p in _api_routes() if "{session_id}" in p]
    assert len(scoped) >= 9
    before = await snapshot(dsn)
    callers = {
        "other_account": (token(account="globex", role="admin"), OTHER),
        "outside_sessions": (token(role="admin", sessions=[OTHER]), LIVE),
    }
    for method, path in scoped:
        for case, (tok, session_id) in callers.items():
            filled = path.replace("{session_id}", session_id)
            while "{" in filled:
                start, end = filled.index("{"), filled.index("}")
                filled = filled[:start] + "1" + filled[end + 1 :]
            body = {} if method in ("POST", "PUT", "PATCH") else None
            response = await api(hub, method, filled, body, headers=auth(tok))
            if method == "GET":
                assert response.status_code == 404, (method, path, case, response.text)
            else:  # a write may also be refused for its body first; it never succeeds
                assert response.status_code in (404, 422), (method, path, case, response.text)
            assert session_id not in response.text or response.status_code == 404
    assert await snapshot(dsn) == before


# WebSocket: connecting


WS_REFUSALS = [
    *[(case, "instructor", LIVE, {"role": "instructor"}, 3501) for case in bad_tokens()],
    ("other_account", "instructor", OTHER, {"account": "globex"}, 3504),
    ("other_account_admin", "observer", OTHER, {"account": "globex", "role": "admin"}, 3504),
    ("outside_sessions", "instructor", LIVE, {"sessions": [OTHER]}, 3504),
    ("no_such_session", "instructor", "never-created", {}, 3504),
    ("participant_as_instructor", "instructor", LIVE, {"role": "participant"}, 3503),
    ("observer_as_participant", "participant", LIVE, {"role": "observer"}, 3503),
    ("observer_as_instructor", "instructor", LIVE, {"role": "observer"}, 3503),
    ("instructor_as_participant", "participant", LIVE, {"role": "instructor"}, 3503),
    ("bad_role_parameter", "admin", LIVE, {"role": "admin"}, 3500),
]


def _ws_token(case: str, claims: dict[str, Any]) -> str | None:
    if case in bad_tokens():
        return bad_tokens(**claims)[case]
    return token(**claims)


@pytest.mark.parametrize(("case", "role", "session_id", "claims", "code"), WS_REFUSALS, ids=lambda v: str(v))
async def test_ws_refusals_close_with_do_not_reconnect_codes(shared, case, role, session_id, claims, code):
    hub, dsn = shared
    before = await snapshot(dsn)
    tok = _ws_token(case, claims)
    client = await LiveClient.connect(hub.ws_url(session_id, role, token=tok), expect_welcome=False)
    # Every message type, sent at once after the handshake: none may be acted upon.
    for index, event_type in enumerate(("heartbeat", *DURABLE_TYPES)):
        try:
            await client.send_event(event_type, VALID_DATA.get(event_type, {}), f"m{index}")
        except websockets.ConnectionClosed:
            break
    assert await client.wait_closed() == code
    assert [m["type"] for m in client.messages] == ["error"]
    assert client.messages[0]["data"]["message"]
    assert await snapshot(dsn) == before


async def test_ws_token_in_a_bearer_subprotocol_is_accepted_and_checked(shared):
    hub, _ = shared
    good = token(role="observer")
    client = await LiveClient.connect(hub.ws_url(LIVE, "observer"), subprotocols=[f"bearer.{good}"])
    assert client.ws.subprotocol == f"bearer.{good}"
    assert client.welcome["data"]["role"] == "observer"
    await client.close()
    forged = bad_tokens(role="observer")["forged"]
    refused = await LiveClient.connect(
        hub.ws_url(LIVE, "observer"), expect_welcome=False, subprotocols=[f"bearer.{forged}"]
    )
    assert await refused.wait_closed() == 3501


# WebSocket: message types by role


@pytest.mark.parametrize("role", ["instructor", "observer", "admin"])
async def test_ws_every_message_type_a_role_may_not_send_is_forbidden(shared, role):
    """Participants are covered in test_two_accounts (joining writes presence events)."""
    hub, dsn = shared
    connect_as = "instructor" if role == "admin" else role
    client = await LiveClient.connect(hub.ws_url(LIVE, connect_as, token=token(role=role)))
    before = await snapshot(dsn)
    forbidden = [t for t in DURABLE_TYPES if t not in SENDABLE_BY_ROLE[connect_as]]
    assert forbidden
    for event_type in forbidden:
        reply = await client.request(event_type, VALID_DATA.get(event_type, {}))
        assert reply["type"] == "error", event_type
        assert reply["data"]["code"] == "forbidden", (event_type, reply)
    await client.send({"type": "heartbeat"})
    assert (await client.next_of("pong"))["seq"] is None
    assert await snapshot(dsn) == before
    await client.close()


async def test_ws_frames_cannot_name_another_session(shared):
    """A frame's `session_id` is ignored: an event lands in the connection's own room."""
    hub, dsn = shared
    client = await LiveClient.connect(hub.ws_url(LIVE, "instructor", token=token()))
    before = await snapshot(dsn)
    await client.send({"type": "note", "id": "n1", "session_id": OTHER, "data": {"content": "x"}})
    ack = await client.next_of("ack", "error")
    assert ack["type"] == "ack" and ack["session_id"] == LIVE
    after = await snapshot(dsn)
    assert after["hub_events"] == before["hub_events"] + 1
    assert f"acme/{OTHER}:in_progress:1" in after["session_states"]
    await client.close()


# token expiry during a connection


async def test_a_token_that_expires_during_a_connection_closes_it_with_3003(shared):
    hub, _ = shared
    client = await LiveClient.connect(hub.ws_url(LIVE, "observer", token=token(role="observer", ttl=2)))
    code = await client.wait_closed(timeout=8)
    assert code == 3003
    assert 3003 in range(3000, 3500)  # the reconnect range: come back with a fresh token
    fresh = await LiveClient.connect(hub.ws_url(LIVE, "observer", token=token(role="observer")))
    await fresh.close()


async def test_http_reads_allowed_to_every_role_of_the_account(shared):
    hub, _ = shared
    for role in EVERYONE:
        response = await api(hub, "GET", f"/api/v2/session/{LIVE}/content", headers=auth(token(role=role)))
        assert response.status_code == 200, (role, response.text)
        limited = token(role=role, sessions=[OTHER])
        listed = await api(hub, "GET", "/api/v2/sessions", headers=auth(limited))
        assert [s["session_id"] for s in listed.json()["sessions"]] == [OTHER]


async def test_refusals_do_not_slow_each_other(shared):
    """Many refused connections at once: each gets its code, the hub stays healthy."""
    hub, _ = shared
    tok = bad_tokens()["forged"]
    url = hub.ws_url(LIVE, "observer", token=tok)
    clients = await asyncio.gather(*(LiveClient.connect(url, expect_welcome=False) for _ in range(20)))
    codes = await asyncio.gather(*(c.wait_closed() for c in clients))
    assert set(codes) == {3501}
    assert (await api(hub, "GET", "/healthz")).status_code == 200


# two accounts side by side


async def _everything_visible_to(hub: HubProcess, account: str, sessions: list[str]) -> str:
    """Every HTTP answer an admin of `account` can get, concatenated."""
    tok = auth(token(account=account, user=f"{account}-admin", role="admin"))
    paths = ["/api/v2/sessions", "/api/v2/sessions/live?include_metrics=true"]
    for sid in sessions:
        paths += [
            f"/api/v2/session/{sid}",
            f"/api/v2/session/{sid}/content?include_metrics=true&include_replay=true",
            f"/api/v2/session/{sid}/events",
        ]
    answers = []
    for path in paths:
        response = await api(hub, "GET", path, headers=tok)
        assert response.status_code == 200, (path, response.text)
        answers.append(response.text)
    return "\n".join(answers)


async def test_two_accounts_side_by_side_see_nothing_of_each_other(hub_factory):
    hub = hub_factory(HUB_DEV="0", HUB_SECRET=SECRET)
    markers = {"acme": "ACME-MARKER", "globex": "GLOBEX-MARKER"}
    rooms: dict[str, dict[str, LiveClient]] = {}
    for account, marker in markers.items():
        admin = auth(token(account=account, user=f"{account}-admin", role="admin"))
        for sid in ("shared-id", f"{account}-only"):
            body = {"session_id": sid, "title": f"{marker} {sid}", "instructor": marker}
            assert (await api(hub, "POST", "/api/v2/sessions/create", body, headers=admin)).status_code == 201
            assert (await api(hub, "POST", f"/api/v2/session/{sid}/start", headers=admin)).status_code == 200
        url = hub.ws_url
        teacher = await LiveClient.connect(
            url("shared-id", "instructor", token=token(account=account, user="teach", name=marker))
        )
        student = await LiveClient.connect(
            url("shared-id", "participant", token=token(account=account, user="pupil", role="participant"))
        )
        assert student.welcome["data"]["participant_count"] == 1
        rooms[account] = {"teacher": teacher, "student": student}

    for account, marker in markers.items():
        room = rooms[account]
        ack = await room["teacher"].request("prompt", {"text": f"{marker} prompt"})
        assert ack["type"] == "ack"
        # the participant's role matrix: everything but response, hrv_update, feedback
        for event_type in DURABLE_TYPES:
            if event_type in SENDABLE_BY_ROLE["participant"]:
                continue
            reply = await room["student"].request(event_type, VALID_DATA.get(event_type, {}))
            assert reply["data"]["code"] == "forbidden", event_type
        assert (await room["student"].request("response", {"text": f"{marker} answer"}))["type"] == "ack"
        # announce to every live session of the account (admin), then check who got it
        admin = auth(token(account=account, user=f"{account}-admin", role="admin"))
        body = {"announcement": {"message": f"{marker} to all"}}
        answer = (await api(hub, "POST", "/api/v2/live-announce", body, headers=admin)).json()
        assert sorted(answer["sessions_notified"]) == sorted(["shared-id", f"{account}-only"])
        await room["student"].next_of("announcement")

    for account, marker in markers.items():
        other = next(m for a, m in markers.items() if a != account)
        seen = await _everything_visible_to(hub, account, ["shared-id", f"{account}-only"])
        assert marker in seen and other not in seen, account
        assert f"{'globex' if account == 'acme' else 'acme'}-only" not in seen
        for client in rooms[account].values():
            received = str(client.messages)
            assert marker in received and other not in received, account
        # the other account's own session id answers 404
        other_only = f"{'globex' if account == 'acme' else 'acme'}-only"
        tok = auth(token(account=account, role="admin"))
        assert (await api(hub, "GET", f"/api/v2/session/{other_only}", headers=tok)).status_code == 404

    for room in rooms.values():
        for client in room.values():
            await client.close()
