"""Session records against real PostgreSQL, in-process: the projection from the log and
its rebuild, state transitions, hierarchies, and the database's own constraints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from hub.event_data import highest_numbers
from hub.events import validate_data
from hub.records.store import HierarchyCycle, Page, ParentNotFound
from hub.store import AppendRequest, SessionRecord
from storage.pg_store import PgStore
from storage.records.store import PgRecordsStore as RecordsStore

INSTRUCTOR = {"user_id": "sarah", "name": "Sarah", "role": "instructor"}
OTHER = {"title": "x", "session_type": "live", "max_participants": 5, "attributes": {}}


def participant(user: str) -> dict[str, Any]:
    return {"user_id": user, "name": user.title(), "role": "participant"}


@pytest.fixture
async def stores(database: str) -> AsyncIterator[tuple[PgStore, RecordsStore]]:
    store = await PgStore.connect(database, min_size=1, max_size=4)
    yield store, RecordsStore(store.pool)
    await store.close()


async def new_session(store: PgStore, session_id: str = "s1", **attributes: Any) -> SessionRecord:
    fields = {
        "session_id": session_id,
        "title": "Childhood",
        "session_type": "interview",
        "max_participants": 10,
        "attributes": attributes,
        "created_by": "sarah",
    }
    return await store.create_session("acme", fields)


async def append(
    store: PgStore, record: SessionRecord, *events: tuple[str, dict[str, Any], Any]
) -> list[int]:
    results = await store.append_batch([AppendRequest(record.pk, t, d, a) for t, d, a in events])
    assert all(r.error is None for r in results), results
    return [r.seq for r in results if r.seq is not None]


async def storyteller_session(store: PgStore) -> SessionRecord:
    record = await new_session(store, intention="Capture 3 scenes", success_indicators=["3 scenes"])
    await append(store, record, ("session_started", {}, INSTRUCTOR))
    for turn in range(6):
        (prompt_seq,) = await append(
            store,
            record,
            ("prompt", {"text": f"Q{turn}", "category": "scene", "topic": "t"}, INSTRUCTOR),
        )
        await append(
            store,
            record,
            ("response", {"text": f"A{turn}", "method": "voice"}, participant("bob")),
            ("feedback", {"message_seq": prompt_seq, "feedback_type": "like"}, participant("bob")),
        )
    await append(
        store,
        record,
        (
            "note",
            {"content": "ask about dad", "requires_followup": True, "interaction_sequence": 2},
            INSTRUCTOR,
        ),
        ("feedback", {"message_seq": 2, "feedback_type": "like"}, participant("bob")),  # repeated kind
        ("session_ended", {"status": "completed"}, INSTRUCTOR),
    )
    return record


async def test_projection_builds_records_and_a_rebuild_from_the_log_matches(stores):
    store, records = stores
    record = await storyteller_session(store)
    assert await records.catch_up(record.pk) == (await store.get_session_by_pk(record.pk)).head_seq
    live = await records.content.snapshot(record.pk)

    interactions = live["interactions"]
    assert [i["interaction_sequence"] for i in interactions] == list(range(1, 13))
    assert [i["interaction_type"] for i in interactions[:2]] == ["prompt", "response"]
    assert interactions[1]["prompt_seq"] == interactions[0]["seq"]  # response linked to its prompt
    assert interactions[1]["response_method"] == "voice" and interactions[1]["duration_seconds"] >= 0
    assert interactions[0]["prompt_category"] == "scene" and interactions[0]["topic"] == "t"
    assert [n["note_content"] for n in live["notes"]] == ["ask about dad"]
    assert live["notes"][0]["noted_at_interaction_sequence"] == 2 and live["notes"][0]["requires_followup"]
    assert len(live["feedback"]) == 6  # the repeated like on message 2 is not a second row
    kinds = [(s["kind"], s["response_count"]) for s in live["summaries"]]
    assert kinds == [("periodic", 5), ("final", 6)]
    final = live["summaries"][-1]
    assert (
        final["outline"]["goal"] == "Capture 3 scenes" and final["outline"]["covered"]["interactions"] == 12
    )
    assert "Follow up: ask about dad" in final["outline"]["next_steps"]
    session = await store.get_session_by_pk(record.pk)
    assert session.attributes["summary"] == final["summary_text"]
    assert session.attributes["actual_duration_minutes"] == 0

    # Idempotent: projecting again writes nothing new; rebuilding gives the same rows.
    await records.catch_up(record.pk)
    assert await records.content.snapshot(record.pk) == live
    await records.rebuild(record.pk)
    assert await records.content.snapshot(record.pk) == live


async def test_catch_up_resumes_from_the_checkpoint(stores):
    store, records = stores
    record = await new_session(store)
    await append(store, record, ("session_started", {}, INSTRUCTOR), ("prompt", {"text": "Q"}, INSTRUCTOR))
    assert await records.behind(10) == [record.pk]
    assert await records.catch_up(record.pk) == 2
    assert await records.behind(10) == []
    await append(store, record, ("response", {"text": "A", "prompt_seq": 2}, participant("amy")))
    assert await records.checkpoint(record.pk) == 2
    assert await records.catch_up(record.pk) == 3
    rows, cursor = await records.content.interactions(record.pk, Page(limit=1))
    assert [r["interaction_sequence"] for r in rows] == [1] and cursor == 1
    rows, cursor = await records.content.interactions(record.pk, Page(limit=1, cursor=cursor))
    assert rows[0]["prompt_seq"] == 2 and cursor is None


async def test_every_state_change_is_a_transition_with_previous_and_new_values(stores):
    store, records = stores
    record = await new_session(store, state={"step": 1})
    await records.sessions.update(
        record.pk, {"state": {"step": 2, "mood": "calm"}}, trigger=("agent_decision", "x1")
    )
    await records.sessions.update(record.pk, {"state": {"mood": None}})
    await records.sessions.update(record.pk, {"intention": "unrelated"})  # not a state change
    rows, _ = await records.sessions.transitions(record.pk, Page())
    assert [(r["trigger_type"], r["trigger_id"]) for r in rows] == [
        ("session_created", None),
        ("agent_decision", "x1"),
        ("user_action", None),
    ]
    assert rows[1]["previous_values"] == {"step": 1} and rows[1]["new_values"] == {"step": 2, "mood": "calm"}
    assert rows[2]["previous_values"] == {"mood": "calm"} and rows[2]["new_values"] == {}
    assert (await store.get_session_by_pk(record.pk)).attributes["state"] == {"step": 2}


async def test_hierarchy_children_ancestors_and_refusals(stores):
    store, records = stores
    root = await new_session(store, "root")
    child = await new_session(store, "child", parent_session_id="root")
    grandchild = await new_session(store, "grandchild", parent_session_id="child")
    await new_session(store, "sibling", parent_session_id="root")
    assert [r.session_id for r in await records.sessions.ancestors("acme", "grandchild")] == ["child", "root"]
    assert await records.sessions.ancestors("acme", "root") == []
    kids, cursor = await records.sessions.children("acme", "root", Page(limit=1))
    assert [k.session_id for k in kids] == ["child"] and cursor == child.pk
    kids, cursor = await records.sessions.children("acme", "root", Page(limit=1, cursor=cursor))
    assert [k.session_id for k in kids] == ["sibling"] and cursor is None
    with pytest.raises(HierarchyCycle):
        await records.sessions.update(root.pk, {"parent_session_id": "grandchild"})
    with pytest.raises(ParentNotFound):
        await records.sessions.update(grandchild.pk, {"parent_session_id": "nope"})
    # Another account's session of the same id is not a parent.
    await store.create_session(
        "other",
        {
            "session_id": "elsewhere",
            "title": "x",
            "session_type": "live",
            "max_participants": 5,
            "attributes": {},
        },
    )
    with pytest.raises(ParentNotFound):
        await records.sessions.update(grandchild.pk, {"parent_session_id": "elsewhere"})


async def test_the_database_refuses_out_of_range_record_fields(stores):
    store, _ = stores
    for attributes in ({"success_rating": 6}, {"completion_percentage": 101}, {"state": [1]}):
        with pytest.raises(asyncpg.CheckViolationError):
            await new_session(store, "bad", **attributes)
    record = await new_session(store, "ok", success_rating=5, completion_percentage=100)
    assert record.attributes["success_rating"] == 5


# (event type, field) -> where the projection stores it: every value the event validation
# accepts must fit there, or one acked event breaks the session's records for good.
# (A response's prompt_seq is stored only when it names a prompt of the log.)
PROJECTED_NUMBERS = {
    ("note", "interaction_sequence"): "notes",
    ("response", "duration_seconds"): "interactions",
    ("feedback", "message_seq"): "feedback",
}


async def test_every_number_the_events_accept_fits_where_the_projection_stores_it(stores):
    store, records = stores
    record = await new_session(store)
    highest = highest_numbers()
    events = [("session_started", {}, INSTRUCTOR), ("prompt", {"text": "Q"}, INSTRUCTOR)]
    for event_type, name in PROJECTED_NUMBERS:
        data = {"text": "A", "content": "n", "feedback_type": "like", "message_seq": 2}
        data[name] = highest[(event_type, name)]
        validate_data(event_type, data)  # accepted by the hub, so it will be acked
        events.append((event_type, data, INSTRUCTOR if event_type == "note" else participant("bob")))
    await append(store, record, *events)
    head = len(events)
    assert await records.catch_up(record.pk) == head
    rows = await records.content.snapshot(record.pk)
    stored = {
        "notes": {row["noted_at_interaction_sequence"] for row in rows["notes"]},
        "interactions": {row["duration_seconds"] for row in rows["interactions"]},
        "feedback": {row["message_seq"] for row in rows["feedback"]},
    }
    for (event_type, name), table in PROJECTED_NUMBERS.items():
        assert highest[(event_type, name)] in stored[table], (event_type, name)
