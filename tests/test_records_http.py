"""Session records over HTTP, in-process against real PostgreSQL: record fields and PATCH,
hierarchies, interactions, notes, feedback, artifacts, templates, topics, accounts."""

from __future__ import annotations

from tests.records_support import Api, api_fixture  # noqa: F401  (the `api` fixture)

S = "/api/v2/session"


async def test_record_fields_on_create_and_patch_with_state_transitions(api: Api):
    created = await api.session(
        "s1",
        session_type="interview",
        intention="Capture 3 scenes",
        success_indicators=["3 scenes"],
        completion_indicators=["covered"],
        constraints=["30 minutes max"],
        procedure_notes="start broad",
        scheduled_duration_minutes=30,
        tags=["childhood"],
        success_rating=4,
        state={"step": "intro"},
    )
    assert created["intention"] == "Capture 3 scenes" and created["success_rating"] == 4
    bad = await api.call(
        "POST", "/api/v2/sessions/create", {"title": "x", "instructor": "i", "success_rating": 6}
    )
    assert bad.status_code == 422 and bad.json()["error"]["details"]["errors"][0]["field"] == "success_rating"
    for body, field in (
        ({"completion_percentage": 101}, "completion_percentage"),
        ({"follow_up_time": "9am"}, "follow_up_time"),
        ({"tags": "x"}, "tags"),
        ({"state": None}, "state"),
        ({"last_follow_up_at": "2024-01-01T00:00:00Z"}, "last_follow_up_at"),
        ({"colour": "red"}, "colour"),
    ):
        response = await api.call("PATCH", f"{S}/s1", body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["details"]["errors"][0]["field"] == field

    patched = await api.ok(
        "PATCH",
        f"{S}/s1",
        {
            "completion_percentage": 50,
            "success_rating": None,
            "state": {"step": "scenes", "scene": 1},
            "state_trigger": {"trigger_type": "agent_decision", "trigger_id": "turn-3"},
            "status": "active",
        },
    )
    assert patched["completion_percentage"] == 50 and "success_rating" not in patched
    assert patched["status"] == "in_progress" and patched["state"] == {"step": "scenes", "scene": 1}
    conflict = await api.call("PATCH", f"{S}/s1", {"status": "cancelled"})
    assert conflict.status_code == 409
    listed = await api.ok("GET", f"{S}/s1/state/transitions")
    assert [t["trigger_type"] for t in listed["transitions"]] == ["session_created", "agent_decision"]
    assert listed["transitions"][1]["previous_values"] == {"step": "intro"}
    assert listed["transitions"][1]["new_values"] == {"step": "scenes", "scene": 1}
    filtered = await api.ok("GET", f"{S}/s1/state/transitions", type="agent_decision")
    assert filtered["count"] == 1

    # Seed 002: the owner may update their own session; another participant may not.
    await api.session("mine", owner_user_id="amy")
    assert (
        await api.call("PATCH", f"{S}/mine", {"title": "Breakup"}, user="amy", role="participant")
    ).is_success
    denied = await api.call("PATCH", f"{S}/mine", {"title": "x"}, user="bob", role="participant")
    assert denied.status_code == 403


async def test_hierarchy_children_and_walk_to_root(api: Api):
    await api.session("root", session_type="agent")
    await api.session("child", session_type="agent", parent_session_id="root")
    await api.session("leaf", session_type="agent", parent_session_id="child", start=True)
    await api.session("child2", session_type="agent", parent_session_id="root", start=True)
    walk = await api.ok("GET", f"{S}/leaf/ancestors")
    assert walk["root_session_id"] == "root" and walk["depth"] == 2
    assert [a["session_id"] for a in walk["ancestors"]] == ["child", "root"]
    page = await api.ok("GET", f"{S}/root/children", limit=1)
    assert [c["session_id"] for c in page["sessions"]] == ["child"] and page["next_cursor"]
    page = await api.ok("GET", f"{S}/root/children", limit=1, cursor=page["next_cursor"])
    assert [c["session_id"] for c in page["sessions"]] == ["child2"] and page["next_cursor"] is None
    live = await api.ok("GET", f"{S}/root/children", status="in_progress")
    assert [c["session_id"] for c in live["sessions"]] == ["child2"]
    assert (await api.call("GET", f"{S}/root/children", status="bogus")).status_code == 422
    assert (await api.call("GET", f"{S}/root/children", after="yesterday")).status_code == 422
    missing = await api.call(
        "POST", "/api/v2/sessions/create", {"title": "x", "instructor": "i", "parent_session_id": "nope"}
    )
    assert missing.status_code == 422
    cycle = await api.call("PATCH", f"{S}/root", {"parent_session_id": "leaf"})
    assert cycle.status_code == 409
    # Another account neither sees the hierarchy nor can hang a session under it.
    assert (await api.call("GET", f"{S}/root/children", account="other")).status_code == 404
    foreign = await api.call(
        "POST",
        "/api/v2/sessions/create",
        {"title": "x", "instructor": "i", "parent_session_id": "root"},
        account="other",
    )
    assert foreign.status_code == 422


async def test_interactions_notes_and_feedback_from_live_events_and_http(api: Api):
    await api.session("coach", start=True, session_type="coaching")
    prompt = await api.event(
        "coach", "prompt", {"text": "How are you?", "category": "feelings"}, user="sarah"
    )
    answer = await api.event("coach", "response", {"text": "Sad", "method": "text"})
    await api.event(
        "coach", "note", {"content": "grief", "note_type": "insight", "interaction_sequence": 2}, "sarah"
    )
    await api.event("coach", "feedback", {"message_seq": prompt, "feedback_type": "like"})
    # Read-your-writes: the projection catches up before answering.
    listed = await api.ok("GET", f"{S}/coach/interactions")
    assert [(i["interaction_sequence"], i["interaction_type"]) for i in listed["interactions"]] == [
        (1, "prompt"),
        (2, "response"),
    ]
    assert listed["interactions"][1]["prompt_seq"] == prompt and listed["interactions"][1]["seq"] == answer
    only = await api.ok("GET", f"{S}/coach/interactions", type="response")
    assert only["count"] == 1

    note = await api.ok(
        "POST", f"{S}/coach/notes", {"note_content": "check sleep", "requires_followup": True}, 201
    )
    assert note["noted_by"] == "sarah" and note["seq"] is None
    assert (await api.call("POST", f"{S}/coach/notes", {"note_content": ""})).status_code == 422
    assert (
        await api.call("POST", f"{S}/coach/notes", {"note_content": "x"}, role="participant")
    ).status_code == 403
    notes = await api.ok("GET", f"{S}/coach/notes")
    assert [n["note_content"] for n in notes["notes"]] == ["grief", "check sleep"]
    assert [
        n["note_content"] for n in (await api.ok("GET", f"{S}/coach/notes", status="followup"))["notes"]
    ] == ["check sleep"]
    assert (await api.ok("GET", f"{S}/coach/notes", type="insight"))["count"] == 1

    # At most one feedback of each kind per user and message; the live like counts.
    again = await api.call(
        "POST", f"{S}/coach/feedback", {"message_seq": prompt, "feedback_type": "like"}, user="bob"
    )
    assert again.status_code == 409
    disliked = await api.ok(
        "POST",
        f"{S}/coach/feedback",
        {"message_id": prompt, "feedback_type": "dislike"},
        201,
        user="bob",
        role="participant",
    )
    assert disliked["success"] and disliked["message"] == "Feedback (dislike) recorded"
    await api.ok(
        "POST", f"{S}/coach/feedback", {"message_seq": prompt, "feedback_type": "like"}, 201, user="amy"
    )
    assert (
        await api.call("POST", f"{S}/coach/feedback", {"message_seq": 999, "feedback_type": "like"})
    ).status_code == 404
    assert (
        await api.call("POST", f"{S}/coach/feedback", {"message_seq": 1, "feedback_type": "like"})
    ).status_code == 422
    assert (
        await api.call("POST", f"{S}/coach/feedback", {"message_seq": prompt, "feedback_type": "love"})
    ).status_code == 422
    observer = await api.call(
        "POST", f"{S}/coach/feedback", {"message_seq": prompt, "feedback_type": "like"}, role="observer"
    )
    assert observer.status_code == 403
    likes = await api.ok("GET", f"{S}/coach/feedback", type="like")
    assert sorted(f["user_id"] for f in likes["feedback"]) == ["amy", "bob"]


async def test_artifacts_templates_and_topics(api: Api):
    await api.session("story", start=True, session_type="interview")
    made = await api.ok(
        "POST",
        f"{S}/story/artifacts",
        {"artifact_type": "scene_capture", "content": "The kitchen", "structured_data": {"who": ["mum"]}},
        201,
    )
    assert made["is_provisional"] and not made["is_approved"] and made["approved_at"] is None
    assert (await api.call("POST", f"{S}/story/artifacts", {"content": "x"})).status_code == 422
    approved = await api.ok(
        "POST", f"{S}/story/artifacts/{made['id']}/approve", user="bob", role="participant"
    )
    assert approved["is_approved"] and not approved["is_provisional"] and approved["approved_at"]
    assert (await api.call("POST", f"{S}/story/artifacts/{made['id']}/approve")).status_code == 409
    assert (await api.call("POST", f"{S}/story/artifacts/999/approve")).status_code == 404
    await api.ok("POST", f"{S}/story/artifacts", {"artifact_type": "timeline_entry"}, 201)
    assert (await api.ok("GET", f"{S}/story/artifacts", status="provisional"))["count"] == 1
    assert (await api.ok("GET", f"{S}/story/artifacts", type="scene_capture"))["count"] == 1

    template = await api.ok(
        "POST",
        "/api/v2/templates",
        {
            "template_name": "Childhood exploration",
            "session_type": "interview",
            "default_intention": "Capture childhood scenes",
            "default_success_indicators": ["3 scenes"],
            "default_constraints": ["Allow skipping"],
            "default_duration_minutes": 30,
            "defaults": {"tags": ["childhood"]},
        },
        201,
    )
    assert (
        await api.call("POST", "/api/v2/templates", {"template_name": "Childhood exploration"})
    ).status_code == 409
    invalid = await api.call(
        "POST", "/api/v2/templates", {"template_name": "t", "default_duration_minutes": 0}
    )
    assert invalid.json()["error"]["details"]["errors"][0]["field"] == "default_duration_minutes"
    session = await api.ok(
        "POST",
        f"/api/v2/templates/{template['template_id']}/sessions",
        {"session_id": "from-t", "scheduled_duration_minutes": 45},
        201,
    )
    assert session["intention"] == "Capture childhood scenes" and session["scheduled_duration_minutes"] == 45
    assert session["constraints"] == ["Allow skipping"] and session["tags"] == ["childhood"]
    assert session["template_id"] == template["template_id"] and session["title"] == "Childhood exploration"
    assert (await api.ok("GET", "/api/v2/templates", type="interview"))["count"] == 1
    assert (
        await api.call("GET", f"/api/v2/templates/{template['template_id']}", account="other")
    ).status_code == 404

    await api.event("story", "prompt", {"text": "Your school?", "topic": "School"}, user="sarah")
    await api.ok("POST", f"{S}/story/topics", {"name": "Family", "is_primary_focus": True}, 201)
    linked = await api.ok(
        "POST",
        f"{S}/story/topics",
        {"name": "School", "is_primary_focus": True, "coverage_level": "deep_dive"},
        201,
    )
    assert linked["prompts_completed"] == 1 and linked["is_primary_focus"]
    topics = await api.ok("GET", f"{S}/story/topics")
    assert {t["name"]: t["is_primary_focus"] for t in topics["topics"]} == {"Family": False, "School": True}
    await api.ok("POST", f"{S}/from-t/topics", {"name": "School"}, 201)
    sessions = await api.ok("GET", f"/api/v2/topics/{linked['topic_id']}/sessions")
    assert sorted(s["session_id"] for s in sessions["sessions"]) == ["from-t", "story"]
    assert (await api.ok("GET", "/api/v2/topics", account="other"))["count"] == 0
    await api.ok("DELETE", f"{S}/story/topics/{linked['topic_id']}")
    assert (await api.call("DELETE", f"{S}/story/topics/{linked['topic_id']}")).status_code == 404


async def test_other_accounts_get_404_everywhere(api: Api):
    await api.session("private", start=True)
    for method, path in (
        ("GET", "interactions"),
        ("GET", "notes"),
        ("POST", "notes"),
        ("GET", "artifacts"),
        ("GET", "feedback"),
        ("GET", "topics"),
        ("GET", "summaries"),
        ("GET", "summary"),
        ("GET", "progress"),
        ("GET", "metrics"),
        ("GET", "follow-up"),
        ("GET", "ancestors"),
        ("GET", "state/transitions"),
        ("POST", "records/rebuild"),
    ):
        response = await api.call(
            method, f"{S}/private/{path}", {"note_content": "x"}, account="other", role="admin"
        )
        assert response.status_code == 404, (method, path, response.text)
    assert (await api.call("PATCH", f"{S}/private", {"title": "x"}, account="other")).status_code == 404


async def test_a_note_at_any_accepted_interaction_sequence_keeps_the_records_readable(api: Api):
    """An acked note may name any interaction sequence the event validation accepts (up to
    2^62); the records it projects into must stay readable, and HTTP accepts the same range."""
    await api.session("wide", start=True)
    await api.event("wide", "note", {"content": "far", "interaction_sequence": 2**31}, "sarah")
    for kind in ("interactions", "notes", "feedback", "topics", "summaries", "summary", "progress"):
        await api.ok("GET", f"{S}/wide/{kind}")
    notes = (await api.ok("GET", f"{S}/wide/notes"))["notes"]
    assert [n["noted_at_interaction_sequence"] for n in notes] == [2**31]
    body = {"note_content": "by hand", "noted_at_interaction_sequence": 2**62}
    assert (await api.ok("POST", f"{S}/wide/notes", body, 201))["noted_at_interaction_sequence"] == 2**62
