"""Server-side publishing (`POST /api/v2/session/{id}/events`) and the kick
(`POST /api/v2/session/{id}/disconnect`) on a token-mode hub."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from hub.close_codes import CloseCode, should_reconnect
from tests.auth_support import auth, make_session, token, token_hub
from tests.support import HubProcess, LiveClient

ACCOUNT = "pubco"


@pytest.fixture(scope="module")
def hub_dsn(pg_base: str) -> Iterator[tuple[HubProcess, str]]:
    # A burst of 150 lets a full batch (100) through once, not twice in a row.
    with token_hub(pg_base, HUB_RATE_BURST="150", HUB_RATE_LIMIT="20") as started:
        yield started


@pytest.fixture
def hub(hub_dsn: tuple[HubProcess, str]) -> HubProcess:
    return hub_dsn[0]


async def state_of(dsn: str, session_id: str) -> tuple[Any, ...]:
    """What a refused publish must not change: the session's row and its log. (Other
    sessions of the module's hub may still get their members' late participant_left.)"""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT * FROM hub_sessions WHERE session_id = $1", session_id)
        events = await conn.fetchval("SELECT count(*) FROM hub_events WHERE session_pk = $1", row["id"])
    finally:
        await conn.close()
    return tuple(row.values()), events


def new_session(hub: HubProcess, **fields: Any) -> str:
    session_id = f"pub-{uuid.uuid4().hex[:8]}"
    make_session(hub, ACCOUNT, session_id, **fields)
    return session_id


async def post(hub: HubProcess, path: str, body: Any, role: str = "service", user: str | None = None) -> Any:
    headers = auth(token(account=ACCOUNT, user=user or f"{role}-bot", role=role))
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=15) as client:
        return await client.post(path, json=body, headers=headers)


def ws_url(hub: HubProcess, session_id: str, role: str, user: str) -> str:
    return hub.ws_url(session_id, role, token=token(account=ACCOUNT, user=user, role=role))


async def test_publish_is_durable_idempotent_and_reaches_every_member(hub):
    session_id = new_session(hub)
    member = await LiveClient.connect(ws_url(hub, session_id, "participant", "pat"))
    path = f"/api/v2/session/{session_id}/events"
    body = {"type": "prompt", "id": "p-1", "data": {"text": "How is your breath?"}}
    first = await post(hub, path, body)
    assert first.status_code == 201, first.text
    assert first.json() == {"seq": first.json()["seq"], "duplicate": False}
    again = await post(hub, path, body)
    assert again.status_code == 200 and again.json() == {"seq": first.json()["seq"], "duplicate": True}
    received = await member.next_of("prompt")
    assert received["seq"] == first.json()["seq"] and received["actor"]["role"] == "service"
    async with httpx.AsyncClient(base_url=hub.base_url, headers=auth(token(account=ACCOUNT))) as client:
        log = (await client.get(f"/api/v2/session/{session_id}/events")).json()["events"]
    assert [e["type"] for e in log].count("prompt") == 1, "the repeated id stored nothing"
    await member.close()


async def test_the_same_id_over_websocket_and_http_is_one_event(hub):
    session_id = new_session(hub)
    sarah = await LiveClient.connect(ws_url(hub, session_id, "instructor", "sarah"))
    ack = await sarah.request("announcement", {"message": "Break in 5"}, client_id="same-1")
    assert ack["type"] == "ack"
    over_http = await post(
        hub, f"/api/v2/session/{session_id}/events", {"type": "announcement", "id": "same-1",
        "data": {"message": "Break in 5"}}, role="instructor", user="sarah",
    )  # fmt: skip
    assert over_http.status_code == 200 and over_http.json() == {"seq": ack["data"]["seq"], "duplicate": True}
    first = await post(
        hub, f"/api/v2/session/{session_id}/events",
        {"type": "note", "id": "same-2", "data": {"content": "calm"}}, role="instructor", user="sarah",
    )  # fmt: skip
    assert first.status_code == 201
    resent = await sarah.request("note", {"content": "calm"}, client_id="same-2")
    assert resent["type"] == "ack" and resent["data"]["seq"] == first.json()["seq"]
    other_user = await post(
        hub, f"/api/v2/session/{session_id}/events",
        {"type": "note", "id": "same-2", "data": {"content": "calm"}}, role="instructor", user="tom",
    )  # fmt: skip
    assert other_user.status_code == 201, "idempotency is per user"
    await sarah.close()


async def test_batches_answer_a_list_and_keep_their_order(hub):
    session_id = new_session(hub)
    events = [{"type": "hrv_update", "id": f"h{i}", "data": {"hrv": 40 + i}} for i in range(5)]
    response = await post(hub, f"/api/v2/session/{session_id}/events", {"events": events})
    assert response.status_code == 201, response.text
    seqs = [item["seq"] for item in response.json()]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert not any(item["duplicate"] for item in response.json())
    again = await post(hub, f"/api/v2/session/{session_id}/events", {"events": events[:2]})
    assert again.status_code == 200 and [i["seq"] for i in again.json()] == seqs[:2]


async def test_roles_follow_the_websocket_table_and_service_sends_content(hub):
    session_id = new_session(hub)
    path = f"/api/v2/session/{session_id}/events"
    content = (("response", {"text": "ok"}), ("note", {"content": "n"}), ("prompt", {"text": "?"}))
    for event_type, data in content:
        assert (await post(hub, path, {"type": event_type, "data": data})).status_code == 201, event_type
    for event_type in ("session_ended", "participant_joined", "session_summary"):
        refused = await post(hub, path, {"type": event_type, "data": {}})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden", event_type
    instructor_only = await post(hub, path, {"type": "response", "data": {"text": "x"}}, role="instructor")
    assert instructor_only.status_code == 403
    observer = await post(hub, path, {"type": "note", "data": {"content": "x"}}, role="observer")
    assert observer.status_code == 403


async def test_bad_bodies_get_typed_errors_and_change_nothing(hub_dsn):
    hub, dsn = hub_dsn
    session_id = new_session(hub)
    path = f"/api/v2/session/{session_id}/events"
    before = await state_of(dsn, session_id)
    cases = [
        ({"type": "dance", "data": {}}, 422, "type"),
        ({"type": "prompt", "data": {"text": ""}}, 422, "text"),
        ({"type": "prompt", "data": "text"}, 422, "data"),
        ({"type": "prompt", "id": "", "data": {"text": "x"}}, 422, "id"),
        ({"type": "prompt", "data": {"text": "x"}, "extra": 1}, 422, "extra"),
        ({"events": []}, 422, "events"),
        ({"events": [{"type": "prompt", "data": {"text": "x"}}] * 101}, 422, "events"),
        ({"events": [{"type": "prompt", "data": {"text": "x"}}, {"type": "prompt", "data": {}}]}, 422, None),
    ]
    for body, status, field in cases:
        response = await post(hub, path, body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid"
        if field:
            assert field in error["details"]["field"], (body, error)
    batch_error = (await post(hub, path, cases[-1][0])).json()["error"]
    assert batch_error["details"]["index"] == 1 and batch_error["details"]["field"] == "events[1].text"
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=15) as client:
        broken = await client.post(path, content=b"{", headers=auth(token(account=ACCOUNT, role="service")))
        assert broken.status_code == 400
        anonymous = await client.post(path, json={"type": "note", "data": {"content": "x"}})
        assert anonymous.status_code == 401
    missing = await post(hub, "/api/v2/session/nope/events", {"type": "note", "data": {"content": "x"}})
    assert missing.status_code == 404
    assert await state_of(dsn, session_id) == before


async def test_lifecycle_and_rate_limits_apply(hub):
    session_id = new_session(hub)
    path = f"/api/v2/session/{session_id}/events"
    batch = {"events": [{"type": "hrv_update", "data": {"hrv": 50}}] * 100}
    assert (await post(hub, path, batch, user="busy")).status_code == 201
    limited = await post(hub, path, batch, user="busy")
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
    assert limited.json()["error"]["details"]["retry_after"] > 0
    ended = await post(hub, f"/api/v2/session/{session_id}/end", {}, role="instructor")
    assert ended.status_code == 200
    late = await post(hub, path, {"type": "note", "data": {"content": "late"}})
    assert late.status_code == 409 and late.json()["error"]["code"] == "conflict"


async def test_disconnect_closes_the_users_connections_with_a_do_not_reconnect_code(hub):
    session_id = new_session(hub)
    pat = await LiveClient.connect(ws_url(hub, session_id, "participant", "pat"))
    ann = await LiveClient.connect(ws_url(hub, session_id, "participant", "ann"))
    path = f"/api/v2/session/{session_id}/disconnect"
    refused = await post(hub, path, {"user_id": "pat"}, role="participant", user="ann")
    assert refused.status_code == 403
    assert (await post(hub, path, {"user_id": ""})).status_code == 422
    response = await post(hub, path, {"user_id": "pat"})
    assert response.status_code == 200 and response.json()["closed_here"] == 1
    assert await pat.wait_closed() == CloseCode.DISCONNECTED
    assert not should_reconnect(CloseCode.DISCONNECTED)
    assert (await ann.request("response", {"text": "still here"}))["type"] == "ack"
    await ann.close()
