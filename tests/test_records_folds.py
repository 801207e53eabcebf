"""The two pure folds over the log, table-driven and without a database: the records
projector (events in, rows out) and the session metrics (events in, numbers out). Each
case also checks that the folds agree with each other (hub/records/conversation.py):
the metrics' prompt-to-response times are those of the projected rows' prompt links, and
feedback and techniques count the same in both."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any

import pytest

from hub.records.conversation import PROMPTS_KEPT
from hub.records.projector import FeedbackRow, InteractionRow, NoteRow, SummaryDue, project_all
from hub.records.session_metrics import compute_metrics
from hub.store import StoredEvent

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
SARAH = {"user_id": "sarah", "name": "Sarah", "role": "instructor"}
BOB = {"user_id": "bob", "name": "Bob", "role": "participant"}


def log(*items: tuple[Any, ...]) -> list[StoredEvent]:
    """(type, data, at seconds[, actor]) in log order; seqs are 1, 2, 3, ..."""
    events = []
    for seq, (kind, data, at, *actor) in enumerate(items, start=1):
        who = actor[0] if actor else (SARAH if kind in ("prompt", "note", "technique_changed") else BOB)
        events.append(StoredEvent(7, seq, kind, T0 + timedelta(seconds=at), who, data))
    return events


def prompt(at: float) -> tuple[Any, ...]:
    return ("prompt", {"text": "Q", "category": "scene"}, at)


def response(at: float, **data: Any) -> tuple[Any, ...]:
    return ("response", {"text": "A", **data}, at)


CASES: list[tuple[str, list[StoredEvent], dict[str, Any], dict[str, Any]]] = [
    (
        "no prompt_seq answers the latest prompt",
        log(prompt(0), prompt(10), response(25)),
        {"links": [(3, 2, 15)]},
        {"average_response_seconds": 15.0, "responses": 1, "interactions": 3},
    ),
    (
        "a null prompt_seq is no prompt_seq",
        log(prompt(0), response(7, prompt_seq=None)),
        {"links": [(2, 1, 7)]},
        {"average_response_seconds": 7.0},
    ),
    (
        "a named earlier prompt is answered",
        log(prompt(0), prompt(10), response(30, prompt_seq=1)),
        {"links": [(3, 1, 30)]},
        {"max_response_seconds": 30.0},
    ),
    (
        "a named seq that is not a prompt links nothing",
        log(prompt(0), ("note", {"content": "n"}, 1), response(5, prompt_seq=2)),
        {"links": [(3, None, None)], "notes": 1},
        {"average_response_seconds": None, "notes": 1},
    ),
    (
        "a response before any prompt links nothing",
        log(response(3)),
        {"links": [(1, None, None)]},
        {"median_response_seconds": None, "responses": 1},
    ),
    (
        "the client's duration is the row's, the log's times are the metrics'",
        log(prompt(0), response(20, duration_seconds=5)),
        {"links": [(2, 1, 5)]},
        {"average_response_seconds": 20.0},
    ),
    (
        "log times out of order never give a negative time",
        log(prompt(10), response(4)),
        {"links": [(2, 1, 0)]},
        {"average_response_seconds": 0.0},
    ),
    (
        "a prompt beyond the remembered ones links nothing",
        log(*[prompt(i) for i in range(PROMPTS_KEPT + 1)], response(900, prompt_seq=1)),
        {"links": [(PROMPTS_KEPT + 2, None, None)]},
        {"average_response_seconds": None, "prompts": PROMPTS_KEPT + 1},
    ),
    (
        "feedback that cannot be a record counts nowhere",
        log(
            prompt(0),
            ("feedback", {"message_seq": 1, "feedback_type": "like"}, 1),
            ("feedback", {"message_seq": 1, "feedback_type": "meh"}, 2),
            ("feedback", {"message_seq": 1, "feedback_type": "like"}, 3, {"role": "participant"}),
            ("feedback", {"feedback_type": "dislike"}, 4),
        ),
        {"feedback": [(2, 1, "like")]},
        {"feedback_by_type": {"like": 1}},
    ),
    (
        "techniques are counted once each, empty ones not at all",
        log(
            ("technique_changed", {"technique": "box"}, 0),
            ("technique_changed", {"technique": "box"}, 1),
            ("technique_changed", {"technique": "4-7-8"}, 2),
            ("technique_changed", {"technique": ""}, 3),
        ),
        {"techniques": ["box", "4-7-8"]},
        {"techniques_used": 2},
    ),
    (
        "a summary after every fifth response and at the end",
        log(
            ("session_started", {}, 0),
            *[item for turn in range(5) for item in (prompt(10 * turn + 1), response(10 * turn + 3))],
            ("session_ended", {}, 60),
        ),
        {"summaries": [(11, "periodic"), (12, "final")]},
        {"responses": 5, "average_response_seconds": 2.0, "duration_seconds": 60.0},
    ),
    (
        "participants: peak, total, engagement and completion",
        log(
            ("session_started", {}, 0),
            ("participant_joined", {"participant_id": "bob", "participant_count": 1}, 1),
            ("participant_joined", {"participant_id": "amy", "participant_count": 2}, 2),
            response(3),
            ("participant_left", {"participant_id": "amy", "participant_count": 1}, 4),
            ("session_ended", {}, 5),
        ),
        {"links": [(4, None, None)]},
        {
            "participants_peak": 2,
            "participants_total": 2,
            "participants_at_end": 1,
            "engagement_rate": 0.5,
            "completion_rate": 0.5,
            "message_count": 6,
        },
    ),
]


@pytest.mark.parametrize(("events", "rows", "metrics"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_folds(events: list[StoredEvent], rows: dict[str, Any], metrics: dict[str, Any]) -> None:
    state, writes = project_all(events)
    computed = compute_metrics(events)
    responses = [w for w in writes if isinstance(w, InteractionRow) and w.interaction_type == "response"]
    feedback = [w for w in writes if isinstance(w, FeedbackRow)]
    if "links" in rows:
        assert [(r.seq, r.prompt_seq, r.duration_seconds) for r in responses] == rows["links"]
    if "notes" in rows:
        assert len([w for w in writes if isinstance(w, NoteRow)]) == rows["notes"]
    if "feedback" in rows:
        assert [(f.seq, f.message_seq, f.feedback_type) for f in feedback] == rows["feedback"]
    if "techniques" in rows:
        assert state.techniques == rows["techniques"]
    if "summaries" in rows:
        assert [(w.seq, w.kind) for w in writes if isinstance(w, SummaryDue)] == rows["summaries"]
    assert {name: computed[name] for name in metrics} == metrics

    # The two folds agree: the same prompt links, the same feedback and techniques.
    at = {event.seq: event.ts for event in events}
    linked = [(at[r.seq] - at[r.prompt_seq]).total_seconds() for r in responses if r.prompt_seq is not None]
    expected = round(mean(max(0.0, s) for s in linked), 3) if linked else None
    assert computed["average_response_seconds"] == expected
    assert computed["feedback_by_type"] == dict(Counter(f.feedback_type for f in feedback))
    assert computed["techniques_used"] == len(state.techniques)
    assert computed["interactions"] == state.interactions
    assert computed["notes"] == state.notes
