"""Group HRV: the one fold (table-driven, no database), and the hub's `hrv_summary` /
`hrv_milestone` events written exactly once however many processes serve the class."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from hub.events import DURABLE_TYPES
from hub.group_hrv import MILESTONE_THRESHOLDS, GroupHrv, milestones_reached
from hub.records.channel_summary import quality
from hub.records.projector import PROJECTED_TYPES, apply, project_all
from hub.records.session_metrics import compute_metrics
from hub.store import StoredEvent
from tests.auth_support import VALID_DATA
from tests.cluster_tools import start_nodes
from tests.support import LiveClient, api, create_session


def _sample(seq: int, who: str, **data: Any) -> StoredEvent:
    actor = {"user_id": who, "name": who, "role": "participant"}
    return StoredEvent(1, seq, "hrv_update", datetime(2026, 1, 1, tzinfo=UTC), actor, data)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], {"participants_reporting": 0, "average_hrv": None, "average_hrv_improvement": None}),
        # one reading is its own baseline
        (
            [("ana", {"hrv": 50})],
            {"participants_reporting": 1, "average_hrv": 50, "average_hrv_improvement": 0},
        ),
        # latest against the first reading of each participant, averaged over participants
        (
            [("ana", {"hrv": 50}), ("ben", {"hrv": 40}), ("ana", {"hrv": 55}), ("ben", {"hrv": 48})],
            {"participants_reporting": 2, "average_hrv": 51.5, "average_hrv_improvement": 15, "min_hrv": 48},
        ),
        # a device's own improvement figure wins over the computed one
        (
            [("ana", {"hrv": 50, "improvement": 12.5}), ("ben", {"hrv": 40}), ("ben", {"hrv": 44})],
            {"average_hrv": 47, "average_hrv_improvement": 11.25, "max_hrv": 50},
        ),
        # a zero baseline has no percentage; samples without a number are not readings
        (
            [("ana", {"hrv": 0}), ("ana", {"hrv": 30}), ("ben", {"hrv": "high"}), ("ben", {"coherence": 1})],
            {"participants_reporting": 1, "average_hrv": 30, "average_hrv_improvement": None},
        ),
    ],
)
def test_the_fold_gives_the_groups_figures(samples, expected):
    events = [_sample(i + 1, who, **data) for i, (who, data) in enumerate(samples)]
    group = GroupHrv()
    for event in events:
        group.add_event(event.type, event.actor, event.data)
    figures = group.figures()
    assert {k: figures[k] for k in expected} == expected
    # The session's metrics (and with them seed 003's summary figure) are the same fold.
    metrics = compute_metrics(events)
    assert metrics["average_hrv_improvement"] == figures["average_hrv_improvement"]
    assert metrics["average_hrv"] == figures["average_hrv"]


@pytest.mark.parametrize(
    ("improvement", "passed", "reached"),
    [
        (None, (), []),
        (4.99, (), []),
        (5, (), [5]),
        (12, (), [5, 10]),
        (12, (5,), [10]),
        (30, (5, 10, 15), []),
    ],
)
def test_milestones_fire_once_per_threshold(improvement, passed, reached):
    assert milestones_reached(improvement, passed) == reached


def test_milestone_thresholds_are_the_quality_table_rows():
    # Just above each threshold the seed's quality score steps up.
    scores = [quality(t + 0.01)[0] for t in MILESTONE_THRESHOLDS]
    assert scores == sorted(scores) and len(set(scores)) == len(MILESTONE_THRESHOLDS)
    assert all(quality(t - 0.01)[0] != quality(t + 0.01)[0] for t in MILESTONE_THRESHOLDS)


@pytest.mark.timeout(90)
async def test_summary_and_milestones_exactly_once_with_three_processes(
    hub_factory, redis_base, redis_prefix
):
    nodes = await start_nodes(hub_factory, redis_base, redis_prefix, 3, HUB_HRV_SUMMARY_INTERVAL="0.25")
    session_id = await create_session(nodes[0], max_participants=20)
    instructor = await LiveClient.connect(nodes[0].ws_url(session_id, "instructor", name="Sarah"))
    participants = [
        await LiveClient.connect(nodes[i % 3].ws_url(session_id, "participant", name=f"p{i}"))
        for i in range(9)
    ]
    for step in range(12):  # every participant improves by 2 % a step: 5, 10, 15 % are crossed
        await asyncio.gather(
            *(p.request("hrv_update", {"hrv": round(50 * (1 + 0.02 * step), 2)}) for p in participants)
        )
        await asyncio.sleep(0.08)
    await asyncio.sleep(1.0)  # the last interval's summary comes one interval after it ends

    log = (await api(nodes[1], "GET", f"/api/v2/session/{session_id}/events?limit=10000")).json()["events"]
    summaries = [m for m in log if m["type"] == "hrv_summary"]
    intervals = [m["data"]["interval"] for m in summaries]
    assert len(summaries) >= 3 and intervals == sorted(set(intervals)), "one summary per interval"
    milestones = [m for m in log if m["type"] == "hrv_milestone"]
    assert [m["data"]["threshold"] for m in milestones] == [5, 10, 15], "one milestone per threshold"
    assert all(m["data"]["improvement"] >= m["data"]["threshold"] and m["actor"] is None for m in milestones)
    last = summaries[-1]["data"]
    assert last["participants_reporting"] == 9 and last["average_hrv_improvement"] == 22
    assert last["min_hrv"] == last["max_hrv"] == last["average_hrv"] == 61

    content = await api(nodes[2], "GET", f"/api/v2/session/{session_id}/content?include_metrics=true")
    assert content.json()["metrics"]["average_hrv_improvement"] == last["average_hrv_improvement"]
    live = (await api(nodes[2], "GET", "/api/v2/sessions/live")).json()["sessions"][0]
    assert live["group_hrv"]["average_hrv_improvement"] == 22, "the dashboard's figure"
    # Participants see the group's progress, not each other's readings.
    for client in participants:
        types = {m["type"] for m in client.events()}
        assert "hrv_summary" in types and "hrv_milestone" in types and "hrv_update" not in types
    assert sum(m["type"] == "hrv_update" for m in instructor.events()) == 9 * 12
    await asyncio.gather(instructor.close(), *(p.close() for p in participants))


@pytest.mark.parametrize("event_type", sorted(DURABLE_TYPES - PROJECTED_TYPES))
def test_the_records_projector_needs_no_wake_up_for_other_types(event_type):
    """The hub wakes the projector only for `PROJECTED_TYPES` (HRV streams would keep it
    busy); every other type must leave the projection exactly as it was."""
    state, _ = project_all(_sample(i, "ana", hrv=40) for i in range(1, 4))
    before = copy.deepcopy(state)
    data = {**VALID_DATA.get(event_type, {}), "hrv": 50, "average_hrv": 50, "participants_reporting": 1}
    event = StoredEvent(1, 9, event_type, datetime(2026, 1, 1, tzinfo=UTC), None, data)
    assert apply(state, event) == [] and state == before
