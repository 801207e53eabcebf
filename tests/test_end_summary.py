"""After the class: the multi-channel summary from the session's own log, its HRV quality
score, overridable escaped templates, and the `session_summary` event webhooks carry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.channel_templates import ChannelRenderer
from hub.end_summary import build_summary
from hub.store import SessionRecord, StoredEvent
from tests.support import LiveClient, api, create_session
from tests.webhook_support import FAST_RETRIES, Receiver

START = datetime(2026, 3, 21, 10, 0, tzinfo=UTC)


def record() -> SessionRecord:
    return SessionRecord(
        pk=1, account_id="default", session_id="Morning-001", title="Morning <Calm>", session_type="live",
        status="completed", instructor="Sarah Chen", max_participants=50, head_seq=9, retained_from=1,
        current_technique=None, scheduled_start=None, started_at=START,
        ended_at=START + timedelta(minutes=30),
        created_at=START, updated_at=START,
    )  # fmt: skip


def log(improvement: float) -> list[StoredEvent]:
    pat = {"user_id": "pat", "name": "Pat <script>", "role": "participant"}
    rows = [
        ("session_started", {}, None),
        ("participant_joined", {"participant_id": "pat", "participant_count": 1}, None),
        ("technique_changed", {"technique": "Box Breathing"}, None),
        ("hrv_update", {"hrv": 50, "improvement": improvement}, pat),
        ("achievement_unlocked", {"title": "<b>Calm</b> streak"}, None),
        ("feedback", {"message_seq": 3, "feedback_type": "like", "comment": "Loved it & more"}, pat),
        ("session_ended", {"duration_seconds": 1800, "status": "completed"}, None),
    ]
    return [
        StoredEvent(1, seq, kind, START + timedelta(minutes=seq), actor, data)
        for seq, (kind, data, actor) in enumerate(rows, start=1)
    ]


@pytest.mark.parametrize(
    ("improvement", "score"), [(15.5, 5.0), (12, 4.0), (7, 3.0), (5, 2.0), (0, 2.0), (-3, 1.0)]
)
def test_quality_follows_the_hrv_table(improvement, score):
    assert build_summary(record(), log(improvement), ChannelRenderer())["quality_score"] == score


def test_channels_come_from_the_log_and_escape_what_people_wrote():
    summary = build_summary(record(), log(12), ChannelRenderer())
    email, web, social = summary["email"], summary["web"], summary["social"]
    assert email["subject"] == "Session Summary: Morning <Calm>", "plain text stays plain"
    assert "Morning &lt;Calm&gt;" in email["html"] and "&lt;b&gt;Calm&lt;/b&gt; streak" in email["html"]
    assert "Pat &lt;script&gt;" in email["html"] and "<script>" not in email["html"]
    assert "- Techniques: Box Breathing" in email["text"] and "30 minutes" in email["text"]
    assert web["slug"] == "morning-001-summary" and len(web["seo_description"]) <= 160
    assert "1 participant practising Box Breathing" in web["seo_description"]
    assert social["twitter"]["hashtags"] == ["#breathwork", "#BoxBreathing"]
    assert len(social["twitter"]["content"]) <= 280 and social["twitter"]["content"].endswith("#BoxBreathing")
    assert summary["metrics"]["average_hrv_improvement"] == 12.0


def test_an_operator_overrides_one_template_and_keeps_the_rest(tmp_path: Path):
    (tmp_path / "channel_summary").mkdir()
    (tmp_path / "channel_summary" / "email_subject.txt").write_text("Your class: {{ title }}")
    (tmp_path / "channel_summary" / "web.html").write_text("<main>{{ achievements[0] }}</main>")
    summary = build_summary(record(), log(3), ChannelRenderer(str(tmp_path)))
    assert summary["email"]["subject"] == "Your class: Morning <Calm>"
    assert summary["web"]["content"] == "<main>&lt;b&gt;Calm&lt;/b&gt; streak</main>", "overrides escape too"
    assert summary["email"]["html"].startswith("<html>")


async def test_a_completed_session_gets_its_summary_event_served_and_delivered(hub_factory):
    receiver = await Receiver().start()
    try:
        hub = hub_factory(**FAST_RETRIES)
        hook = await api(
            hub, "POST", "/api/v2/webhooks", {"url": receiver.url("/s"), "events": ["session_summary"]}
        )
        receiver.secrets["/s"] = hook.json()["secret"]
        session_id = await create_session(hub, title="Evening Wind-down")
        pat = await LiveClient.connect(hub.ws_url(session_id, "participant", user_id="pat", name="Pat"))
        assert (await pat.request("hrv_update", {"hrv": 48, "improvement": 16}))["type"] == "ack"
        assert (await api(hub, "POST", f"/api/v2/session/{session_id}/end")).status_code == 200
        await receiver.wait_for("/s", 1)
        event = receiver.received["/s"][0].body
        assert event["type"] == "session_summary" and event["account"] == "default"
        assert event["data"]["quality_score"] == 5.0 and event["data"]["quality_action"] == "Feature content"
        assert event["data"]["email"]["subject"] == "Session Summary: Evening Wind-down"
        summary = (await api(hub, "GET", f"/api/v2/session/{session_id}/summary")).json()
        assert summary["channels"] == event["data"]
        await asyncio.sleep(0.5)
        assert len(receiver.received["/s"]) == 1, "one summary per session"
        cancelled = await create_session(hub, start=False)
        assert (await api(hub, "POST", f"/api/v2/session/{cancelled}/cancel")).status_code == 200
        await asyncio.sleep(0.5)
        assert (await api(hub, "GET", f"/api/v2/session/{cancelled}/summary")).json()["channels"] is None
        await pat.close()
    finally:
        await receiver.stop()


async def test_the_operators_templates_serve_both_summaries(hub_factory, tmp_path: Path):
    (tmp_path / "channel_summary").mkdir()
    (tmp_path / "channel_summary" / "email_subject.txt").write_text("Recap: {{ title }}")
    hub = hub_factory(HUB_TEMPLATES_DIR=str(tmp_path))
    session_id = await create_session(hub, title="Dusk Flow")
    assert (await api(hub, "POST", f"/api/v2/session/{session_id}/end")).status_code == 200
    for _ in range(100):
        channels = (await api(hub, "GET", f"/api/v2/session/{session_id}/summary")).json()["channels"]
        if channels:
            break
        await asyncio.sleep(0.05)
    assert channels["email"]["subject"] == "Recap: Dusk Flow"
    seed = {
        "title": "Morning Breathing Session",
        "session_id": "morning-001",
        "session_duration": 1800,
        "participant_count": 25,
        "breathing_techniques": ["Box Breathing"],
        "session_type": "guided",
        "session_date": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }
    rendered = (await api(hub, "POST", "/api/v2/session-summary", seed)).json()
    assert rendered["email"]["subject"] == "Recap: Morning Breathing Session"
