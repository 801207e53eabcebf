"""Seed 003's HTTP API: create with its validation rules, live listing, content, announce."""

from __future__ import annotations

from tests.support import LiveClient, api, create_session

SEED_EXAMPLE = {
    "session_id": "session-2024-03-21-001",
    "title": "Morning Mindfulness",
    "scheduled_start": "2024-03-21T10:00:00Z",
    "instructor": "Sarah Chen",
    "max_participants": 50,
}


async def test_create_with_the_seed_example_answers_201_with_the_record(hub):
    response = await api(hub, "POST", "/api/v2/sessions/create", SEED_EXAMPLE)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["session_id"] == SEED_EXAMPLE["session_id"]
    assert record["status"] == "scheduled" and record["max_participants"] == 50
    assert record["scheduled_start"] == "2024-03-21T10:00:00Z"
    again = await api(hub, "POST", "/api/v2/sessions/create", SEED_EXAMPLE)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


async def test_create_validation_rules_answer_typed_422s(hub):
    bad = [
        ({"max_participants": 0}, "max_participants"),
        ({"max_participants": 1001}, "max_participants"),
        ({"max_participants": "many"}, "max_participants"),
        ({"session_type": "workshop", "max_participants": 4}, "max_participants"),
        ({"session_type": "rave"}, "session_type"),
        ({"title": ""}, "title"),
        ({"title": None}, "title"),
        ({"instructor": None}, "instructor"),
        ({"scheduled_start": "tomorrow"}, "scheduled_start"),
        ({"session_duration": 7201}, "session_duration"),
        ({"breathing_techniques": []}, "breathing_techniques"),
        ({"breathing_techniques": [f"t{i}" for i in range(11)]}, "breathing_techniques"),
        ({"session_id": "has spaces"}, "session_id"),
    ]
    for change, field in bad:
        body = {**SEED_EXAMPLE, "session_id": "v-1", **change}
        response = await api(hub, "POST", "/api/v2/sessions/create", body)
        assert response.status_code == 422, (change, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid" and error["details"]["errors"][0]["field"] == field, change
    guided = {**SEED_EXAMPLE, "session_id": "guided-1", "session_type": "guided", "instructor": None}
    assert (await api(hub, "POST", "/api/v2/sessions/create", guided)).status_code == 201
    listing = (await api(hub, "GET", "/api/v2/sessions")).json()
    assert [s["session_id"] for s in listing["sessions"]] == ["guided-1"], "refused bodies stored nothing"


async def test_malformed_bodies_never_answer_500(hub):
    for raw in [b"", b"{", b"[1,2]", b'"text"', b"\xff\xfe", b'{"title": "\\ud800"}', b"null"]:
        response = await api(hub, "POST", "/api/v2/sessions/create", content=raw)
        assert response.status_code in (400, 422), (raw, response.status_code)
        assert "error" in response.json()
    huge = b'{"title": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    assert (await api(hub, "POST", "/api/v2/sessions/create", content=huge)).status_code == 413
    assert (await api(hub, "GET", "/api/v2/sessions/live?include_metrics=maybe")).status_code == 422
    assert (await api(hub, "GET", "/api/v2/nothing-here")).status_code == 404
    assert (await api(hub, "DELETE", "/api/v2/sessions/create")).status_code == 405


async def test_live_listing_and_content_with_metrics_and_replay(hub):
    live_id = await create_session(hub)
    await create_session(hub, start=False)
    participant = await LiveClient.connect(hub.ws_url(live_id, "participant", name="Bob"))
    await participant.request("hrv_update", {"hrv": 50, "improvement": 12.5})
    listing = (await api(hub, "GET", "/api/v2/sessions/live?include_metrics=true")).json()
    assert listing["count"] == 1
    (item,) = listing["sessions"]
    assert item["session_id"] == live_id and item["participant_count"] == 1 and item["active"] is True
    assert item["started_at"] and item["metrics"]["current_hrv_improvement"] == 12.5
    plain = (await api(hub, "GET", "/api/v2/sessions/live")).json()["sessions"][0]
    assert plain["metrics"] == {"message_count": 3, "participant_count": 1}
    content = (
        await api(hub, "GET", f"/api/v2/session/{live_id}/content?include_metrics=true&include_replay=true")
    ).json()
    assert content["session_info"]["participant_count"] == 1
    assert content["session_info"]["participants"] == [{"participant_id": "Bob", "name": "Bob"}]
    assert content["metrics"]["average_hrv"] == 50
    replay = content["replay"]
    assert replay["message_count"] == len(replay["messages"]) == 3
    assert [m["type"] for m in replay["messages"]] == ["session_started", "participant_joined", "hrv_update"]
    bare = (await api(hub, "GET", f"/api/v2/session/{live_id}/content")).json()
    assert "metrics" not in bare and "replay" not in bare
    await participant.close()


async def test_live_announce_to_one_session_or_every_live_one(hub):
    first, second = await create_session(hub), await create_session(hub)
    scheduled = await create_session(hub, start=False)
    a = await LiveClient.connect(hub.ws_url(first, "participant", name="a"))
    b = await LiveClient.connect(hub.ws_url(second, "participant", name="b"))
    announcement = {"type": "session_starting", "title": "Soon", "message": "Join us in 5 minutes"}
    one = await api(hub, "POST", "/api/v2/live-announce", {"announcement": announcement, "session_id": first})
    assert one.json() == {"status": "announced", "sessions_notified": [first], "participant_count": 1}
    assert (await a.next_of("announcement"))["data"]["message"] == "Join us in 5 minutes"
    every = (await api(hub, "POST", "/api/v2/live-announce", {"announcement": announcement})).json()
    assert sorted(every["sessions_notified"]) == sorted([first, second]) and every["participant_count"] == 2
    assert (await b.next_of("announcement"))["data"]["title"] == "Soon"
    early = await api(
        hub, "POST", "/api/v2/live-announce", {"announcement": announcement, "session_id": scheduled}
    )
    assert early.status_code == 200, "a scheduled session may be told it starts soon"
    missing = await api(hub, "POST", "/api/v2/live-announce", {"announcement": {"message": ""}})
    assert missing.status_code == 422
    unknown = await api(
        hub, "POST", "/api/v2/live-announce", {"announcement": announcement, "session_id": "nope"}
    )
    assert unknown.status_code == 404
    await a.close()
    await b.close()


async def test_openapi_describes_the_api(hub):
    document = (await api(hub, "GET", "/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    for path in (
        "/api/v2/sessions/create",
        "/api/v2/sessions/live",
        "/api/v2/session/{session_id}/content",
        "/api/v2/live-announce",
        "/api/v2/session/{session_id}/start",
    ):
        assert path in document["paths"], path
