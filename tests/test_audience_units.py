"""The audience table and the view rules, without a hub: one table, and every copy of it
(docs/protocol.md, the tests' own expectations) agrees with it."""

from __future__ import annotations

import re

import orjson
import pytest

from hub.audience import (
    DEFAULT_AUDIENCE,
    EVERYONE,
    FIXED_TYPES,
    STAFF,
    AudienceError,
    Policy,
    ViewCursor,
    frame_in_view,
    validate_overrides,
    with_prev,
)
from hub.events import DURABLE_TYPES, envelope
from tests.support import ROOT
from tests.view_tools import EVERYONE_TYPES, STAFF_TYPES


def test_every_durable_type_has_one_audience_and_the_copies_agree():
    assert set(DEFAULT_AUDIENCE) == set(DURABLE_TYPES)
    assert {t for t, a in DEFAULT_AUDIENCE.items() if a == EVERYONE} == EVERYONE_TYPES
    assert {t for t, a in DEFAULT_AUDIENCE.items() if a == STAFF} == STAFF_TYPES
    assert all(DEFAULT_AUDIENCE[t] == EVERYONE for t in FIXED_TYPES)


def test_the_documented_table_is_the_table():
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("### Audiences", 1)[1].split("### Views", 1)[0]
    documented: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[1].split(" ")[0] in (EVERYONE, STAFF):
            for event_type in re.findall(r"`([a-z_]+)`", cells[0]):
                documented[event_type] = cells[1].split(" ")[0]
    assert documented == DEFAULT_AUDIENCE


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ("everyone", ["audience"]),
        ({"teleport": EVERYONE}, ["audience.teleport"]),
        ({"response": "all", "note": None}, ["audience.response", "audience.note"]),
        (
            {"session_ended": STAFF, "session_update": STAFF},
            ["audience.session_ended", "audience.session_update"],
        ),
    ],
)
def test_bad_overrides_name_every_bad_entry(raw, fields):
    with pytest.raises(AudienceError) as caught:
        validate_overrides(raw)
    assert [e["field"] for e in caught.value.errors] == fields


def test_overrides_keep_only_what_differs_from_the_defaults():
    assert validate_overrides({"response": EVERYONE, "prompt": EVERYONE, "hrv_update": STAFF}) == {
        "response": EVERYONE
    }


def test_a_cursor_gives_each_view_its_previous_seq_and_switches_policy_at_the_change():
    cursor = ViewCursor(Policy())
    steps = [
        cursor.step(1, "session_started"),
        cursor.step(2, "participant_joined"),
        cursor.step(3, "response"),
        cursor.step(4, "session_update", {"audience": {"response": EVERYONE}}),
        cursor.step(5, "response"),
        cursor.step(6, "hrv_update"),
        cursor.step(7, "prompt"),
    ]
    assert [s.audience for s in steps] == [EVERYONE, STAFF, STAFF, EVERYONE, EVERYONE, STAFF, EVERYONE]
    assert [s.prev_staff for s in steps] == [0, 1, 2, 3, 4, 5, 6]
    assert [s.prev_everyone for s in steps] == [0, 1, 1, 1, 4, 5, 5]


def test_frames_carry_prev_seq_as_valid_json():
    payload = envelope("note", "s1", {"content": "x"}, seq=3).decode()
    assert orjson.loads(with_prev(payload, 2)) == {**orjson.loads(payload), "prev_seq": 2}
    cursor = ViewCursor(Policy(), last_staff=2, last_everyone=1)
    assert frame_in_view(cursor.copy(), "everyone", 3, payload) is None
    staff_frame = frame_in_view(cursor, "staff", 3, payload)
    assert staff_frame is not None and orjson.loads(staff_frame)["prev_seq"] == 2
