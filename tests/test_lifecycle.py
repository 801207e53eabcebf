"""Seed 000's status machine over HTTP and WebSocket: every legal and illegal transition."""

from __future__ import annotations

import asyncio
import time

from tests.support import LiveClient, api, create_session

# (path of actions taken first, action under test, expected status code, status afterwards)
CASES = [
    ([], "start", 200, "in_progress"),
    ([], "pause", 409, "scheduled"),
    ([], "resume", 409, "scheduled"),
    ([], "end", 409, "scheduled"),
    ([], "cancel", 200, "cancelled"),
    (["start"], "start", 409, "in_progress"),
    (["start"], "pause", 200, "paused"),
    (["start"], "resume", 409, "in_progress"),
    (["start"], "end", 200, "completed"),
    (["start"], "cancel", 409, "in_progress"),
    (["start", "pause"], "resume", 200, "in_progress"),
    (["start", "pause"], "pause", 409, "paused"),
    (["start", "pause"], "end", 200, "completed"),
    (["start", "pause"], "cancel", 200, "cancelled"),
    (["start", "pause"], "start", 409, "paused"),
    (["start", "end"], "start", 409, "completed"),
    (["start", "end"], "resume", 409, "completed"),
    (["start", "end"], "cancel", 409, "completed"),
    (["cancel"], "start", 409, "cancelled"),
    (["cancel"], "end", 409, "cancelled"),
]
EVENT_OF = {
    "start": "session_started",
    "pause": "session_paused",
    "resume": "session_resumed",
    "end": "session_ended",
    "cancel": "session_ended",
}


async def test_every_transition_legal_and_illegal(hub):
    # One hub for all cases: a process per case would cost more than the cases.
    for before, action, status_code, status_after in CASES:
        await _check_transition(hub, before, action, status_code, status_after)


async def _check_transition(hub, before, action, status_code, status_after):
    session_id = await create_session(hub, start=False)
    for step in before:
        assert (await api(hub, "POST", f"/api/v2/session/{session_id}/{step}")).status_code == 200
    if "end" in before:
        # The summary a completed session gets is appended after the end, in the background:
        # once it is there, the head can only move by the action under test.
        await _wait_for_summary(hub, session_id)
    head_before = (await api(hub, "GET", f"/api/v2/session/{session_id}")).json()["head_seq"]
    response = await api(hub, "POST", f"/api/v2/session/{session_id}/{action}")
    assert response.status_code == status_code, (before, action, response.text)
    record = (await api(hub, "GET", f"/api/v2/session/{session_id}")).json()
    assert record["status"] == status_after
    if status_code == 200:
        log = (await api(hub, "GET", f"/api/v2/session/{session_id}/events")).json()["events"]
        written = [e for e in log if e["seq"] > head_before]
        assert written[0]["seq"] == head_before + 1 and written[0]["type"] == EVENT_OF[action]
        # A completed session also gets its multi-channel summary appended (hub/end_summary.py).
        later = [e["type"] for e in written[1:]]
        assert later == [] or (status_after == "completed" and later == ["session_summary"])
        if action in ("end", "cancel"):
            assert written[0]["data"]["status"] == status_after
    else:
        error = response.json()["error"]
        assert error["code"] == "conflict" and error["details"]["status"] == status_after
        assert record["head_seq"] == head_before, "a refused transition stored nothing"


async def _wait_for_summary(hub, session_id: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = (await api(hub, "GET", f"/api/v2/session/{session_id}/events")).json()["events"]
        if any(e["type"] == "session_summary" for e in log):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no session_summary after the end")


async def test_instructor_controls_the_session_over_websocket(hub):
    session_id = await create_session(hub, start=False)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    participant = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Bob"))
    # The room is open before the start: a baseline reading is stored and delivered.
    baseline = await participant.request("hrv_update", {"hrv": 48})
    assert baseline["type"] == "ack"
    assert (await instructor.next_of("hrv_update"))["seq"] == baseline["data"]["seq"]
    early_end = await instructor.request("session_ending", {})
    assert early_end["type"] == "error" and early_end["data"]["code"] == "conflict"
    for event_type in ("session_started", "session_paused", "session_resumed"):
        ack = await instructor.request(event_type, {})
        assert ack["type"] == "ack", ack
        event = await participant.next_of(event_type)
        assert event["seq"] == ack["data"]["seq"]
    again = await instructor.request("session_resumed", {})
    assert again["type"] == "error" and again["data"]["code"] == "conflict"
    assert (await instructor.request("session_ending", {"seconds_remaining": 60}))["type"] == "ack"
    ended = await instructor.request("session_ended", {"message": "thanks"})
    assert ended["type"] == "ack"
    assert await participant.wait_closed() == 3506
    record = (await api(hub, "GET", f"/api/v2/session/{session_id}")).json()
    assert record["status"] == "completed" and record["ended_at"] is not None


async def test_unknown_session_answers_404_everywhere(hub):
    for method, path in [
        ("GET", "/api/v2/session/nope"),
        ("GET", "/api/v2/session/nope/content"),
        ("GET", "/api/v2/session/nope/events"),
        ("POST", "/api/v2/session/nope/start"),
    ]:
        response = await api(hub, method, path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    client = await LiveClient.connect(hub.ws_url("nope", "participant"), expect_welcome=False)
    assert await client.wait_closed() == 3504
    assert client.messages[0]["data"]["code"] == "not_found"
