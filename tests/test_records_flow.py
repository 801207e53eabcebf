"""Follow-ups due by seed 002's rules; summaries every 5 responses and at the end;
progress and metrics; a rebuild over HTTP equals the live build."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.records.follow_ups import follow_up_due
from tests.records_support import Api, api_fixture  # noqa: F401  (the `api` fixture)

S = "/api/v2/session"


def test_follow_up_due_rules_exactly():
    on = {"follow_up_enabled": True, "follow_up_time": "09:00"}
    at = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
    assert follow_up_due("in_progress", on, at)
    assert not follow_up_due("paused", on, at)  # only active sessions
    assert not follow_up_due("in_progress", {**on, "follow_up_enabled": False}, at)
    assert not follow_up_due("in_progress", on, datetime(2024, 1, 2, 8, 59, tzinfo=UTC))  # before the time
    sent_today = {**on, "last_follow_up_at": "2024-01-02T09:00:30Z"}
    assert not follow_up_due("in_progress", sent_today, datetime(2024, 1, 2, 18, 0, tzinfo=UTC))
    assert follow_up_due("in_progress", sent_today, datetime(2024, 1, 3, 9, 0, tzinfo=UTC))
    # The preferred time and "today" are in the session's time zone.
    paris = {**on, "follow_up_timezone": "Europe/Paris"}
    assert not follow_up_due("in_progress", paris, datetime(2024, 1, 2, 7, 59, tzinfo=UTC))
    assert follow_up_due("in_progress", paris, datetime(2024, 1, 2, 8, 0, tzinfo=UTC))


async def test_due_follow_ups_with_a_check_in_prompt_and_mark_sent(api: Api):
    await api.session(
        "alex",
        start=True,
        session_type="coaching",
        primary_topic="heartbreak",
        follow_up_enabled=True,
        follow_up_time="09:00",
    )
    await api.session(
        "paused", start=True, session_type="coaching", follow_up_enabled=True, follow_up_time="09:00"
    )
    await api.ok("POST", f"{S}/paused/pause")
    await api.session("off", start=True, session_type="coaching", follow_up_time="09:00")
    await api.session(
        "late", start=True, session_type="coaching", follow_up_enabled=True, follow_up_time="23:59"
    )
    due = await api.ok("GET", "/api/v2/sessions/followups/due", at="2030-05-01T09:00:00Z")
    assert [f["coach_session_id"] for f in due["followups"]] == ["alex"]
    assert due["followups"][0]["prompt"].startswith("Last time we talked about your heartbreak.")
    assert (await api.ok("GET", "/api/v2/sessions/followups/due", at="2030-05-01T08:59:59Z"))["count"] == 0
    # A participant sees only the sessions they own; another account sees none.
    assert (
        await api.ok("GET", "/api/v2/sessions/followups/due", role="participant", at="2030-05-01T10:00:00Z")
    )["count"] == 0
    assert (
        await api.ok("GET", "/api/v2/sessions/followups/due", account="other", at="2030-05-01T10:00:00Z")
    )["count"] == 0

    sent = await api.ok("POST", f"{S}/alex/follow-up/sent")
    assert sent["last_follow_up_at"] and not sent["due"]
    today = datetime.now(UTC).replace(hour=23, minute=59, second=59).isoformat()
    assert (await api.ok("GET", "/api/v2/sessions/followups/due", at=today))["count"] <= 1  # "late" only
    changed = await api.ok("PUT", f"{S}/alex/follow-up", {"follow_up_enabled": False})
    assert changed["follow_up_enabled"] is False
    assert (await api.call("PUT", f"{S}/alex/follow-up", {"follow_up_time": "25:00"})).status_code == 422
    assert (await api.call("PUT", f"{S}/alex/follow-up", {"title": "x"})).status_code == 422


async def test_summaries_progress_metrics_and_rebuild(api: Api):
    await api.session(
        "story",
        start=True,
        session_type="interview",
        intention="Capture scenes",
        success_indicators=["3 scenes", "key people"],
        completion_indicators=["covered"],
        met_indicators=["3 scenes"],
    )
    await api.ok("POST", f"{S}/story/artifacts", {"artifact_type": "scene_capture"}, 201)
    for turn in range(5):
        await api.event(
            "story", "prompt", {"text": f"Q{turn}", "category": "scene" if turn < 3 else "people"}, "sarah"
        )
        await api.event("story", "response", {"text": f"A{turn}", "duration_seconds": 30})
    periodic = await api.ok("GET", f"{S}/story/summaries")
    assert [s["kind"] for s in periodic["summaries"]] == ["periodic"]
    assert periodic["summaries"][0]["outline"]["themes"] == ["scene", "people"]
    session = await api.ok("GET", f"{S}/story")
    assert session["summary"] == periodic["summaries"][0]["summary_text"]
    assert session["next_plan"].startswith("Next, we're focusing on: Work towards: key people")

    progress = await api.ok("GET", f"{S}/story/progress")
    assert progress["interactions_count"] == 10 and progress["artifacts_count"] == 1
    assert progress["success_indicators"] == [
        {"indicator": "3 scenes", "met": True},
        {"indicator": "key people", "met": False},
    ]
    assert progress["can_complete"] is False and progress["duration_so_far"] >= 0
    await api.ok("PATCH", f"{S}/story", {"met_indicators": ["3 scenes", "covered"]})
    assert (await api.ok("GET", f"{S}/story/progress"))["can_complete"] is True

    await api.ok("POST", f"{S}/story/end")
    final = await api.ok("GET", f"{S}/story/summaries", type="final")
    outline = final["summaries"][0]["outline"]
    assert outline["covered"]["interactions"] == 10 and outline["covered"]["artifacts"] == 1
    assert outline["goal"] == "Capture scenes" and outline["duration_minutes"] == 0
    current = await api.ok("GET", f"{S}/story/summary")
    assert current["latest"]["kind"] == "final" and current["current"]["outline"]["kind"] == "final"

    metrics = (await api.ok("GET", f"{S}/story/metrics"))["metrics"]
    assert metrics["interactions"] == 10 and metrics["responses"] == 5
    assert metrics["events_by_type"]["prompt"] == 5 and metrics["median_response_seconds"] is not None
    content = await api.ok("GET", f"{S}/story/content", include_metrics="true")
    assert content["metrics"]["interactions"] == 10

    before = {
        kind: (await api.ok("GET", f"{S}/story/{kind}"))
        for kind in ("interactions", "summaries", "notes", "feedback")
    }
    rebuilt = await api.ok("POST", f"{S}/story/records/rebuild")
    # + session_ended, and the session_summary once it is written (hub/end_summary.py)
    assert session["head_seq"] + 1 <= rebuilt["projected_seq"] <= session["head_seq"] + 2
    after = {
        kind: (await api.ok("GET", f"{S}/story/{kind}"))
        for kind in ("interactions", "summaries", "notes", "feedback")
    }
    assert after == before
    assert (await api.call("POST", f"{S}/story/records/rebuild", role="participant")).status_code == 403
