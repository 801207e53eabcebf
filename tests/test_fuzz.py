"""Property-based abuse of a running hub: malformed, oversized, deeply nested and odd-Unicode
WebSocket frames, HTTP bodies and query strings. Whatever arrives: no 500, no crash, no row
stored, and the neighbours in the room keep receiving events. Injection strings in valid
events are stored and delivered verbatim, never interpreted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import asyncpg
import orjson
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.events import SENDABLE_BY_ROLE
from tests.auth_support import DURABLE_TYPES, auth, make_session, settle, snapshot, token, token_hub
from tests.support import EVERYONE_SEES_ALL, HubProcess, LiveClient, api

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROOM = "fuzz-room"

INJECTIONS = [
    "'; DROP TABLE hub_events; --",
    "' OR '1'='1",
    '"); DELETE FROM hub_sessions; --',
    "$1; SELECT pg_sleep(10)",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "javascript:alert(1)",
    "{{7*7}} ${7*7} %s %n",
    "\u202eevil\u202c",
    "\ufeff\u200b\u200d👩‍👩‍👧\U0010ffff",
    "\\u0000 is only text here",
    "../../etc/passwd",
]
NUL_STRINGS = st.sampled_from(["\x00", "a\x00b", "'; \x00 --", "\x00" * 5])

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(INJECTIONS),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _storable(text: str) -> bool:
    return "\x00" not in text


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for index in range(depth):
        value = [value] if index % 2 else {"k": value}
    return value


def with_nul(value: Any) -> Any:
    return {"payload": value, "bad": "x\x00y"}


# data that can never be stored: NUL somewhere, or nesting deeper than 32 levels
unstorable = st.one_of(
    st.builds(with_nul, json_values),
    st.builds(lambda s: {"text": s, "content": s, "message": s, "technique": s}, NUL_STRINGS),
    st.integers(min_value=33, max_value=200).map(lambda d: {"text": "x", "deep": nested(d)}),
    st.builds(lambda k: {k: "x"}, NUL_STRINGS),
)


def frame_of(message: Any) -> str:
    return orjson.dumps(message).decode()


# frames that must be refused, whatever role sends them
bad_frames = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    json_values.filter(lambda v: not isinstance(v, dict)).map(frame_of),
    st.builds(
        lambda t, i, d: frame_of({"type": t, "id": i, "data": d}),
        st.text(max_size=30).filter(lambda t: t not in DURABLE_TYPES and t != "heartbeat"),
        st.text(min_size=1, max_size=20),
        json_values,
    ),
    st.builds(
        lambda t, d: frame_of({"type": t, "id": uuid.uuid4().hex, "data": d}),
        st.sampled_from(sorted(SENDABLE_BY_ROLE["instructor"])),
        unstorable,
    ),
    st.builds(lambda i: frame_of({"type": "note", "id": i, "data": {"content": "x"}}), NUL_STRINGS),
    st.integers(min_value=33, max_value=1500).map(
        lambda d: '{"type":"session_update","id":"deep","data":{"a":' + "[" * d + "]" * d + "}}"
    ),
    st.sampled_from(['{"type": "note", "id": "x", "data": {"content": "\\ud800"}}', "\ufeff{}", "{" * 5000]),
)


@pytest.fixture(scope="module")
def fuzz_hub(pg_base: str) -> Iterator[tuple[HubProcess, str]]:
    env = {
        "HUB_PRESENCE_GRACE": "0.2",
        "HUB_MAX_ERRORS": "1000000",
        "HUB_RATE_LIMIT": "100000",
        "HUB_RATE_BURST": "100000",
    }
    with token_hub(pg_base, **env) as (hub, dsn):
        make_session(hub, "acme", ROOM, audience=EVERYONE_SEES_ALL)
        settle(dsn)
        yield hub, dsn


class Room:
    """The fuzzers and the neighbours, connected once for all examples of a test."""

    def __init__(self, hub: HubProcess, dsn: str):
        self.hub, self.dsn = hub, dsn
        self.clients: dict[str, LiveClient] = {}
        self.db: asyncpg.Connection | None = None

    async def open(self) -> Room:
        url = self.hub.ws_url
        people = {
            "teacher": ("instructor", "instructor"),
            "fuzzer": ("instructor", "instructor"),
            "fuzzing_observer": ("observer", "observer"),
            "fuzzing_participant": ("participant", "participant"),
            "neighbour": ("participant", "participant"),
        }
        for who, (role, connect_as) in people.items():
            tok = token(user=f"{who}-{uuid.uuid4().hex[:6]}", role=role)
            self.clients[who] = await LiveClient.connect(url(ROOM, connect_as, token=tok))
        await self.clients["neighbour"].next_of("welcome", "participant_joined")
        self.db = await asyncpg.connect(self.dsn)
        return self

    async def rows(self) -> int:
        assert self.db is not None
        return int(await self.db.fetchval("SELECT count(*) FROM hub_events"))

    async def refused(self, who: str, frame: str | bytes) -> dict[str, Any]:
        """Send `frame`; return the hub's one answer, after checking nothing was stored."""
        client = self.clients[who]
        before = await self.rows()
        await client.ws.send(frame)
        reply = await client.next_of("error", "pong", "ack")
        assert reply["type"] in ("error", "pong"), (frame, reply)
        assert client.close_code is None
        assert await self.rows() == before, frame
        return reply

    async def neighbours_still_served(self) -> None:
        ack = await self.clients["teacher"].request("note", {"content": "still here"})
        assert ack["type"] == "ack", ack
        await self.clients["neighbour"].wait_for_seq(ack["data"]["seq"])

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()
        if self.db is None:
            return
        # Wait for the participants' `participant_left`, so that no later test sees it land.
        for _ in range(100):
            joined, left = await self.db.fetchrow(
                "SELECT count(*) FILTER (WHERE type = 'participant_joined'),"
                " count(*) FILTER (WHERE type = 'participant_left') FROM hub_events"
            )
            if joined == left:
                break
            await asyncio.sleep(0.05)
        await self.db.close()


@pytest.fixture
async def room(fuzz_hub: tuple[HubProcess, str]) -> AsyncIterator[Room]:
    opened = await Room(*fuzz_hub).open()
    yield opened
    await opened.close()


@FUZZ
@given(frame=bad_frames, who=st.sampled_from(["fuzzer", "fuzzing_observer", "fuzzing_participant"]))
async def test_bad_frames_are_refused_and_store_nothing(room, frame, who):
    reply = await room.refused(who, frame)
    if reply["type"] == "error":
        assert reply["data"]["code"] in ("invalid", "forbidden"), reply
        assert reply["data"]["message"]
    await room.neighbours_still_served()


@FUZZ
@given(event_type=st.sampled_from(DURABLE_TYPES), data=json_values)
async def test_observers_store_nothing_whatever_they_send(room, event_type, data):
    frame = frame_of({"type": event_type, "id": uuid.uuid4().hex, "data": data})
    reply = await room.refused("fuzzing_observer", frame)
    assert reply["data"]["code"] == "forbidden"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(min_value=64 * 1024 + 1, max_value=256 * 1024), binary=st.booleans())
async def test_oversized_frames_close_1009_and_the_room_goes_on(room, size, binary):
    hub = room.hub
    fuzzer = await LiveClient.connect(hub.ws_url(ROOM, "instructor", token=token(user="big")))
    before = await room.rows()
    body = '{"type":"note","id":"big","data":{"content":"' + "x" * size + '"}}'
    try:
        await fuzzer.ws.send(body.encode() if binary else body)
    except websockets.ConnectionClosed:
        pass
    assert await fuzzer.wait_closed() == 1009
    assert await room.rows() == before
    await room.neighbours_still_served()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.sampled_from(INJECTIONS), st.text(min_size=1, max_size=300).filter(_storable)))
async def test_injection_and_odd_unicode_are_stored_and_delivered_verbatim(room, text):
    data = {"content": text, "extra": {text: [text]}}
    ack = await room.clients["teacher"].request("note", data)
    assert ack["type"] == "ack", ack
    seq = ack["data"]["seq"]
    await room.clients["neighbour"].wait_for_seq(seq)
    delivered = next(m for m in room.clients["neighbour"].events() if m["seq"] == seq)
    assert delivered["data"] == data
    page = await api(
        room.hub, "GET", f"/api/v2/session/{ROOM}/events?since={seq - 1}&limit=1", headers=auth(token())
    )
    assert page.json()["events"][0]["data"] == data


# HTTP


def _not_an_object(raw: bytes) -> bool:
    try:
        return not isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return True


bad_bodies = st.one_of(
    st.binary(max_size=300).filter(_not_an_object),
    st.text(max_size=300).map(str.encode).filter(_not_an_object),
    json_values.filter(lambda v: not isinstance(v, dict)).map(orjson.dumps),
    unstorable.map(orjson.dumps),
    st.builds(lambda d: orjson.dumps({"announcement": d, "title": d, "session_id": d}), unstorable),
    st.integers(min_value=33, max_value=1500).map(lambda d: b'{"a":' + b"[" * d + b"]" * d + b"}"),
    st.sampled_from([b'{"title": "\\ud800"}', b"\xef\xbb\xbf{}", b"{" * 5000, b'{"a": 1e400}']),
).filter(len)  # an empty body is a valid request to the lifecycle endpoints
POSTS = [
    "/api/v2/sessions/create",
    f"/api/v2/session/{ROOM}/pause",
    f"/api/v2/session/{ROOM}/end",
    "/api/v2/live-announce",
]


@FUZZ
@given(body=bad_bodies, path=st.sampled_from(POSTS))
async def test_bad_http_bodies_answer_4xx_and_store_nothing(fuzz_hub, body, path):
    hub, dsn = fuzz_hub
    before = await snapshot(dsn)
    headers = {**auth(token(role="admin")), "Content-Type": "application/json"}
    response = await api(hub, "POST", path, content=body, headers=headers)
    assert response.status_code in (400, 413, 422), (body[:200], response.status_code, response.text)
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert await snapshot(dsn) == before


query_text = st.one_of(st.text(max_size=40), NUL_STRINGS, st.sampled_from(INJECTIONS))


@settings(FUZZ, max_examples=25)  # several requests and a connection per example
@given(status=query_text, kind=query_text, limit=query_text, since=query_text, session_id=query_text)
async def test_odd_query_strings_and_paths_never_fail_the_hub(
    fuzz_hub, status, kind, limit, since, session_id
):
    hub, dsn = fuzz_hub
    before = await snapshot(dsn)
    headers = auth(token(role="admin"))
    q = {k: quote(v, safe="") for k, v in {"s": status, "t": kind, "l": limit, "c": since}.items()}
    listing = await api(
        hub, "GET", f"/api/v2/sessions?status={q['s']}&session_type={q['t']}&limit={q['l']}&cursor={q['c']}",
        headers=headers,
    )  # fmt: skip
    assert listing.status_code in (200, 422), listing.text
    sid = quote(session_id, safe="") or "x"
    for path in (f"/api/v2/session/{sid}/events?since={q['c']}", f"/api/v2/session/{sid}/content"):
        response = await api(hub, "GET", path, headers=headers)
        assert response.status_code in (200, 404, 422), (path, response.text)
    client = await LiveClient.connect(
        hub.ws_url(session_id, "observer", token=token(role="observer"), since=since, name=kind),
        expect_welcome=False,
    )
    first = await client.next()
    if first["type"] == "welcome":
        await client.close()
    else:
        assert await client.wait_closed() in (3500, 3504), client.messages
    assert await snapshot(dsn) == before
    assert (await api(hub, "GET", "/readyz")).status_code == 200
