"""The one lifecycle table (hub/lifecycle.py) against the store's real append path: every
status × every event type, with every ending an event may ask for."""

from __future__ import annotations

from typing import Any, get_args

from handlers.records.session_record import PatchStatus
from handlers.session_models import Status
from hub import lifecycle
from hub.events import DURABLE_TYPES
from hub.store import AppendRequest
from storage.pg_store import PgStore

ENDINGS: list[dict[str, Any]] = [{}, {"status": "completed"}, {"status": "cancelled"}, {"status": "bogus"}]
EVENTS = (
    [(t, {}) for t in sorted(DURABLE_TYPES)]
    + [("session_ended", data) for data in ENDINGS[1:]]
    + [("session_started", {"status": "paused"}), ("note", {"status": 5}), ("unknown_type", {})]
)


async def test_every_status_and_event_type_follow_the_table(database):
    store = await PgStore.connect(database)
    try:
        cases = [(status, event_type, data) for status in lifecycle.STATUSES for event_type, data in EVENTS]
        sessions = []
        for i, (status, _, _) in enumerate(cases):
            record = await store.create_session("default", {"session_id": f"s{i}", "title": "T"})
            await store.pool.execute("UPDATE hub_sessions SET status = $2 WHERE id = $1", record.pk, status)
            sessions.append(record)
        # One batch, as group commit sends them: each item is checked on its own.
        results = await store.append_batch(
            [AppendRequest(s.pk, t, d, None) for s, (_, t, d) in zip(sessions, cases, strict=True)]
        )
        wrong = []
        for record, (status, event_type, data), result in zip(sessions, cases, results, strict=True):
            expected = lifecycle.next_status(status, event_type, data)
            stored = await store.get_session_by_pk(record.pk)
            assert stored is not None
            if expected is None:
                outcome_ok = result.error == "conflict" and stored.head_seq == 0
            else:
                moved = expected != status
                outcome_ok = (
                    result.error is None
                    and result.seq == 1
                    and (result.data or {}).get("status") == (expected if moved else data.get("status"))
                )
            after = expected or status  # a refused event leaves the status as it was
            if not outcome_ok or result.status != after or stored.status != after:
                wrong.append((status, event_type, data, expected, result.error, stored.status))
        assert not wrong, f"the append path and hub/lifecycle.py disagree on {wrong}"
    finally:
        await store.close()


def test_the_table_gives_what_the_http_actions_rely_on():
    allowed = {name: lifecycle.allowed_from(a.event_type, a.data) for name, a in lifecycle.ACTIONS.items()}
    assert allowed == {
        "start": ("scheduled",),
        "pause": ("in_progress",),
        "resume": ("paused",),
        "end": ("in_progress", "paused"),
        "cancel": ("scheduled", "paused"),
    }
    assert lifecycle.action_targets() == ("in_progress", "paused", "completed", "cancelled")
    for status in lifecycle.TERMINAL_STATUSES:
        # ... but the summary the hub writes after a session completed (hub/end_summary.py)
        others = DURABLE_TYPES - {"session_summary"}
        assert all(lifecycle.next_status(status, t, {}) is None for t in others)
    assert lifecycle.next_status("completed", "session_summary", {}) == "completed"
    assert all(lifecycle.next_status(s, "session_summary", {}) is None for s in lifecycle.OPEN_STATUSES)
    # One row per (type, ending, status), as the append function keys them; '*' is its wildcard.
    keys = [(t, ends_as, status) for t, ends_as, status, _ in lifecycle.rule_rows()]
    assert len(keys) == len(set(keys)) and all(ends_as != "*" for _, ends_as, _ in keys)


def test_the_http_models_name_the_tables_statuses():
    """The request models spell statuses out as `Literal`s (for the schema and the error
    text); they must name exactly what the table does."""
    assert get_args(Status) == lifecycle.STATUSES
    assert set(get_args(PatchStatus)) == set(lifecycle.action_targets())
