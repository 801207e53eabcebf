"""POST /api/v2/session-summary: seed 003's rules table (one typed 422 per rule) and its
HRV quality table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.records.channel_summary import quality
from tests.records_support import Api, api_fixture  # noqa: F401  (the `api` fixture)


def body(**changes: Any) -> dict[str, Any]:
    data = {
        "title": "Morning Breathing Session",
        "content": "Start your day with mindful breathing",
        "session_id": "morning-001",
        "session_duration": 1800,
        "participant_count": 25,
        "breathing_techniques": ["Box Breathing"],
        "average_hrv_improvement": 10.5,
        "session_type": "live",
        "instructor_name": "John Doe",
        "session_date": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "key_achievements": ["100% completion rate"],
        "participant_feedback": {
            "items": [{"participant_name": "John D.", "comment": "Best <b>session</b>!"}]
        },
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    ("improvement", "score", "action"),
    [
        (15.1, 5.0, "Feature content"),
        (15, 4.0, "Highlight achievement"),
        (10.01, 4.0, "Highlight achievement"),
        (10, 3.0, "Standard summary"),
        (5.5, 3.0, "Standard summary"),
        (5, 2.0, "Review technique"),
        (0, 2.0, "Review technique"),
        (-0.1, 1.0, "Investigate issues"),
        (None, None, "No HRV data"),
    ],
)
def test_quality_score_follows_the_hrv_table(improvement, score, action):
    assert quality(improvement) == (score, action)


async def test_summary_renders_every_channel(api: Api):
    result = await api.ok("POST", "/api/v2/session-summary", body(publish_immediately=True))
    assert result["status"] == "published" and result["quality_score"] == 4.0
    assert result["preview_urls"] == {"session": "/sessions/morning-001"}
    assert result["email"]["subject"] == "Session Summary: Morning Breathing Session"
    assert "&lt;b&gt;session&lt;/b&gt;" in result["email"]["html"]  # participant text is escaped
    assert (
        result["web"]["slug"] == "morning-001-summary"
        and "25 participants" in result["web"]["seo_description"]
    )
    assert set(result["social"]) == {"twitter", "linkedin", "facebook"}
    assert len(result["social"]["twitter"]["content"]) <= 280
    assert result["newsletter"] == result["email"] and result["web_update"] == result["web"]
    wrapped = await api.ok("POST", "/api/v2/session-summary", {"session_data": body(), "channels": ["email"]})
    assert wrapped["status"] == "preview" and "web" not in wrapped and "social" not in wrapped


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"session_duration": None}, "session_duration", "required"),
        ({"session_duration": 0}, "session_duration", "range"),
        ({"session_duration": 7201}, "session_duration", "range"),
        ({"participant_count": None}, "participant_count", "required"),
        ({"participant_count": 1001}, "participant_count", "range"),
        ({"participant_count": 4, "session_type": "workshop"}, "participant_count", "workshop_minimum"),
        ({"breathing_techniques": None}, "breathing_techniques", "required"),
        ({"breathing_techniques": []}, "breathing_techniques", "min_items"),
        ({"breathing_techniques": [f"t{i}" for i in range(11)]}, "breathing_techniques", "max_items"),
        ({"average_hrv_improvement": 200.5}, "average_hrv_improvement", "range"),
        ({"average_hrv_improvement": -101}, "average_hrv_improvement", "range"),
        ({"session_date": None}, "session_date", "required"),
        ({"session_date": "yesterday"}, "session_date", "type"),
        ({"session_date": "2999-01-01T00:00:00Z"}, "session_date", "not_future"),
        ({"session_date": (datetime.now(UTC) - timedelta(days=31)).isoformat()}, "session_date", "max_age"),
        ({"instructor_name": None}, "instructor_name", "required_for_live"),
        ({"session_type": "party"}, "session_type", "choice"),
        ({"channels": ["fax"]}, "channels", "choice"),
    ],
)
async def test_every_rule_has_its_typed_422(api: Api, changes, field, rule):
    response = await api.call("POST", "/api/v2/session-summary", body(**changes))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (
        error["code"] == "invalid" and error["details"]["field"] == field and error["details"]["rule"] == rule
    )


async def test_conditional_rules_only_apply_to_their_session_type(api: Api):
    guided = body(session_type="guided", instructor_name=None, participant_count=1)
    assert (await api.call("POST", "/api/v2/session-summary", guided)).status_code == 200
    workshop = body(session_type="workshop", participant_count=5)
    assert (await api.call("POST", "/api/v2/session-summary", workshop)).status_code == 200
