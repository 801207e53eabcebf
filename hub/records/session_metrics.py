"""Per-session metrics derived from the log alone, so they can be rebuilt at any time.

A pure fold over stored events: the content endpoint's `include_metrics`, the live
listing and the summaries all read the same numbers. What a prompt, response or feedback
means is `conversation`'s rule, shared with the records projector.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from statistics import mean, median
from typing import Any

from ..group_hrv import GroupHrv
from ..store import StoredEvent
from .conversation import (
    answered_prompt,
    feedback_of,
    remember_prompt,
    responder,
    response_seconds,
    technique_of,
)


def compute_metrics(events: Iterable[StoredEvent]) -> dict[str, Any]:
    by_type: Counter[str] = Counter()
    counts: list[int] = []
    group = GroupHrv()  # the same fold as the live hrv_summary events
    responders: set[str] = set()
    joined: set[str] = set()
    asked: dict[str, str] = {}  # `conversation.remember_prompt`
    answer_seconds: list[float] = []
    started = ended = None
    last_count = 0
    feedback: Counter[str] = Counter()  # issue 6: feedback, techniques and achievements too
    techniques: set[str] = set()
    last_prompt: int | None = None
    for event in events:
        by_type[event.type] += 1
        data = event.data or {}
        if event.type in ("participant_joined", "participant_left"):
            count = data.get("participant_count")
            if isinstance(count, int):
                counts.append(count)
                last_count = count
            if event.type == "participant_joined" and data.get("participant_id"):
                joined.add(str(data["participant_id"]))
        elif event.type == "hrv_update":
            group.add_event(event.type, event.actor, data)
        elif event.type == "prompt":
            remember_prompt(asked, event)
            last_prompt = event.seq
        elif event.type == "response":
            user = responder(event)
            if user is not None:
                responders.add(user)
            seconds = response_seconds(asked, answered_prompt(data, last_prompt, asked), event.ts)
            if seconds is not None:
                answer_seconds.append(seconds)
        elif event.type == "feedback":
            given = feedback_of(event)
            if given is not None:
                feedback[given.feedback_type] += 1
        elif event.type == "technique_changed":
            technique = technique_of(event)
            if technique is not None:
                techniques.add(technique)
        elif event.type == "session_started":
            started = event.ts
        elif event.type == "session_ended":
            ended = event.ts
    hrv = group.figures()
    peak = max(counts, default=0)
    duration = (ended - started).total_seconds() if started and ended else None
    return {
        "message_count": sum(by_type.values()),
        "events_by_type": dict(sorted(by_type.items())),
        "participants_peak": peak,
        "participants_average": round(mean(counts), 2) if counts else 0,
        "participants_total": len(joined),
        "participants_at_end": last_count,
        "prompts": by_type["prompt"],
        "responses": by_type["response"],
        "engagement_rate": round(len(responders) / len(joined), 4) if joined else 0.0,
        "completion_rate": round(last_count / peak, 4) if peak and ended else None,
        "average_hrv": hrv["average_hrv"],
        "average_hrv_improvement": hrv["average_hrv_improvement"],
        "group_hrv": hrv,
        "average_response_seconds": round(mean(answer_seconds), 3) if answer_seconds else None,
        "median_response_seconds": round(median(answer_seconds), 3) if answer_seconds else None,
        "max_response_seconds": round(max(answer_seconds), 3) if answer_seconds else None,
        "interactions": by_type["prompt"] + by_type["response"],
        "notes": by_type["note"],
        "achievements": by_type["achievement_unlocked"],
        "feedback_by_type": dict(sorted(feedback.items())),
        "techniques_used": len(techniques),
        "duration_seconds": duration,
    }
