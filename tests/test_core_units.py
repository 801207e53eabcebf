"""The I/O-free core, tested without sockets: frame parsing, room ordering, close codes."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson
import pytest

from hub.close_codes import CloseCode, should_reconnect
from hub.connection import Connection, Principal
from hub.events import (
    DURABLE_TYPES,
    SENDABLE_BY_ROLE,
    EventError,
    ack_message,
    envelope,
    parse_client_frame,
    parse_event,
)
from hub.room import Room
from hub.wire import WireMessage, text_frame

ROOT = Path(__file__).resolve().parent.parent


class RecordingTransport:
    def __init__(self) -> None:
        self.frames: list[str] = []
        self.closed_with: int | None = None

    def can_write_now(self) -> bool:
        return True

    def write_frames(self, frames: list[bytes]) -> None:
        self.frames.extend(_texts(b"".join(frames)))

    async def send(self, message: WireMessage) -> None:
        self.frames.append(message.text)

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = code


def _texts(stream: bytes) -> list[str]:
    """Split a run of unmasked text frames back into their payloads."""
    texts, at = [], 0
    while at < len(stream):
        length, at = stream[at + 1] & 0x7F, at + 2
        if length == 126:
            length, at = int.from_bytes(stream[at : at + 2], "big"), at + 2
        elif length == 127:
            length, at = int.from_bytes(stream[at : at + 8], "big"), at + 8
        texts.append(stream[at : at + length].decode())
        at += length
    return texts


def _member(queue_size: int = 100) -> tuple[Connection, RecordingTransport]:
    transport = RecordingTransport()
    principal = Principal("default", "u1", "observer", "U")
    conn = Connection(transport, principal, "s1", queue_size)
    conn.start()
    return conn, transport


@pytest.mark.parametrize(
    ("frame", "role", "code"),
    [
        (b"{", "participant", "invalid"),
        (b"42", "participant", "invalid"),
        (b'{"id": "1"}', "participant", "invalid"),
        (b'{"type": 7, "id": "1"}', "participant", "invalid"),
        (b'{"type": "welcome", "id": "1"}', "participant", "invalid"),
        (b'{"type": "prompt", "id": "1", "data": {"text": "x"}}', "participant", "forbidden"),
        (b'{"type": "participant_joined", "id": "1", "data": {}}', "instructor", "forbidden"),
        (b'{"type": "response", "id": "1", "data": {"text": "x"}}', "observer", "forbidden"),
        (b'{"type": "response", "data": {"text": "x"}}', "participant", "invalid"),
        (b'{"type": "response", "id": "", "data": {"text": "x"}}', "participant", "invalid"),
        (b'{"type": "response", "id": "1", "data": []}', "participant", "invalid"),
        (b'{"type": "technique_changed", "id": "1", "data": {"technique": ""}}', "instructor", "invalid"),
        (
            b'{"type": "technique_changed", "id": "1", "data": {"technique": "Box", "duration": 0}}',
            "instructor",
            "invalid",
        ),
        (b'{"type": "hrv_milestone", "id": "1", "data": {"improvement": 250}}', "instructor", "invalid"),
        (
            b'{"type": "feedback", "id": "1", "data": {"message_seq": 3, "feedback_type": "love"}}',
            "participant",
            "invalid",
        ),
        (b'{"type": "session_update", "id": "1", "data": {}}', "instructor", "invalid"),
        (b'{"type": "hrv_update", "id": "1", "data": {"hrv": true}}', "participant", "invalid"),
    ],
)
def test_bad_frames_are_refused_with_their_code(frame, role, code):
    with pytest.raises(EventError) as refused:
        parse_client_frame(frame, role)
    assert refused.value.code == code


def test_good_frames_parse_and_heartbeat_is_not_an_event():
    assert parse_client_frame(b'{"type": "heartbeat"}', "observer") is None
    event = parse_client_frame(
        b'{"type": "hrv_update", "id": "a", "data": {"hrv": 61.5, "extra": 1}}', "participant"
    )
    assert event is not None and event.type == "hrv_update" and event.data == {"hrv": 61.5, "extra": 1}


def test_every_sendable_type_is_durable_and_observers_send_nothing():
    for role, types in SENDABLE_BY_ROLE.items():
        assert types <= DURABLE_TYPES, role
    assert SENDABLE_BY_ROLE["observer"] == frozenset()


async def test_room_delivers_in_seq_order_once_and_repairs_gaps_from_the_log():
    log = {seq: f'{{"seq":{seq}}}' for seq in range(1, 11)}
    fetched: list[tuple[int, int | None]] = []

    async def fetch(after: int, upto: int | None) -> list[tuple[int, str]]:
        fetched.append((after, upto))
        return [(s, p) for s, p in sorted(log.items()) if s > after and (upto is None or s <= upto)]

    room = Room(1, "s1", "default", fetch, gap_repair_delay=0.01)
    room.set_head(2)
    conn, transport = _member()
    room.add(conn)
    for seq in (3, 3, 5, 4, 2, 9):  # duplicate, out of order, old, and a gap (6-8)
        room.deliver(seq, log[seq])
    await asyncio.sleep(0.1)
    # 6-8 come from the log, then the repair reads on to the log's head (10)
    assert [orjson.loads(f)["seq"] for f in transport.frames] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert fetched and fetched[0] == (5, 8)
    room.close()


class StalledTransport(RecordingTransport):
    """A peer that stopped reading: nothing can be written now, and sends never finish."""

    def can_write_now(self) -> bool:
        return False

    async def send(self, message: WireMessage) -> None:
        await asyncio.Event().wait()


async def test_a_member_that_cannot_keep_up_is_closed_as_slow_consumer():
    conn = Connection(StalledTransport(), Principal("default", "u1", "observer", "U"), "s1", 3)
    conn.start()
    for seq in range(1, 8):
        conn.push_event(seq, WireMessage("{}"))
        await asyncio.sleep(0)
    assert conn.closed and conn.close_code == CloseCode.SLOW_CONSUMER
    await conn.stop()


async def test_frames_keep_their_order_when_the_socket_pauses_and_resumes():
    class Flaky(RecordingTransport):
        writable = False

        def can_write_now(self) -> bool:
            return self.writable

        async def send(self, message: WireMessage) -> None:
            while not self.writable:
                await asyncio.sleep(0.001)
            self.frames.append(message.text)

    transport = Flaky()
    conn = Connection(transport, Principal("default", "u1", "observer", "U"), "s1", 100)
    conn.start()
    for i in range(5):
        conn.offer(str(i))
    await asyncio.sleep(0.01)
    transport.writable = True
    for i in range(5, 10):
        conn.offer(str(i))  # must queue behind the writer's held frame, not overtake it
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert transport.frames == [str(i) for i in range(10)]
    await conn.stop()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_prebuilt_text_frames_match_the_websockets_library(size):
    from websockets.frames import Frame, Opcode

    payload = "é" * (size // 2) + "a" * (size % 2)
    expected = Frame(Opcode.TEXT, payload.encode()).serialize(mask=False, extensions=[])
    assert text_frame(payload.encode()) == expected == WireMessage(payload).frame
    from_bytes = WireMessage(payload.encode())  # the commit path's: no round trip through str
    assert from_bytes.frame == expected and from_bytes.text == payload


@pytest.mark.parametrize(
    ("session_id", "client_id", "seq"),
    [("s-1", "abc", 1), ('é"\\\u2028x', '\u0000"\\', 2**40), ("s", None, 7)],
)
def test_an_ack_is_the_envelope_of_an_ack_byte_for_byte(session_id, client_id, seq):
    ts = "2026-01-01T00:00:00.123456Z"
    expected = envelope("ack", session_id, {"id": client_id, "seq": seq}, ts=ts)
    assert ack_message(session_id, client_id, seq, ts) == expected


def test_close_code_table_matches_the_protocol_doc():
    doc = (ROOT / "docs" / "protocol.md").read_text()
    rows = dict(re.findall(r"^\| (\d{4}) \| `?([a-z_ ]+?)`? \|", doc, flags=re.M))
    for code in CloseCode:
        if code.value >= 3000:
            assert rows.get(str(code.value)) == code.name.lower(), code
    assert should_reconnect(CloseCode.SLOW_CONSUMER) and should_reconnect(CloseCode.SERVER_SHUTDOWN)
    assert should_reconnect(1006) and should_reconnect(1012)
    for terminal in (
        CloseCode.UNAUTHORIZED,
        CloseCode.FORBIDDEN,
        CloseCode.SESSION_ENDED,
        CloseCode.MESSAGE_TOO_BIG,
    ):
        assert not should_reconnect(terminal)


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"note","id":"n","data":{"content":"ok"}}',
        '{"type":"note","id":"n","data":{"content":"nul \\u0000 inside"}}',
        '{"type":"note","id":"\\u0000","data":{}}',
        '{"type":"note","id":"n","data":{"k\\u0000":1}}',
        '{"type":"note","id":"n","data":' + '{"a":' * 40 + "1" + "}" * 40 + "}",
        '{"type":"note","id":"n","data":{"content":"\\\\u0000 is only text"}}',
    ],
)
def test_the_inbound_fast_path_never_passes_what_json_problem_refuses(raw):
    from hub.safe_json import json_problem, raw_is_storable

    message = orjson.loads(raw)
    refused = json_problem(message["data"]) or json_problem(message["id"], "id")
    if refused is not None:
        assert not raw_is_storable(raw) and not raw_is_storable(raw.encode())
    if raw.endswith('"ok"}}'):
        assert raw_is_storable(raw) and raw_is_storable(raw.encode())


async def test_a_slow_consumer_is_closed_with_its_code_and_lets_go_of_what_it_could_not_take():
    conn = Connection(StalledTransport(), Principal("default", "u1", "observer", "U"), "s1", 50)
    conn.start()
    for seq in range(1, 50):
        conn.push_event(seq, WireMessage("x" * 10_000))
    await asyncio.sleep(0)
    assert conn.queued() == 48 and not conn.closed  # one is held by the stalled send
    for seq in range(50, 53):  # the queue is full at 50 waiting frames
        conn.push_event(seq, WireMessage("{}"))
    assert conn.closed and conn.close_code == CloseCode.SLOW_CONSUMER
    assert conn.queued() == 0, "a closed slow consumer still holds its frames"
    assert not conn.offer("{}") and conn.queued() == 0
    await conn.stop()


async def test_an_idle_member_holds_no_task():
    before = len(asyncio.all_tasks())
    members = [_member()[0] for _ in range(100)]
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before, "an idle connection has a task of its own"
    members[0].close_soon(CloseCode.SERVER_SHUTDOWN)  # a close still gets written
    await members[0].wait_closed(1.0)
    for member in members:
        await member.stop()


async def test_slim_flag_and_inbox_behave_like_asyncio():
    from hub.slim_sync import Flag, Inbox

    flag = Flag()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    flag.set()
    flag.clear()  # set wakes every waiter even if cleared before they run
    assert await asyncio.gather(*waiters) == [True, True, True] and not flag.is_set()
    inbox: Inbox[int] = Inbox()
    getters = [asyncio.create_task(inbox.get()) for _ in range(2)]
    await asyncio.sleep(0)
    getters[0].cancel()
    inbox.put_nowait(1)  # not lost to the cancelled getter
    inbox.put_nowait(2)
    assert await getters[1] == 1 and inbox.get_nowait() == 2 and inbox.empty()
    with pytest.raises(asyncio.QueueEmpty):
        inbox.get_nowait()


_SAME_WAY_FRAMES = [
    ("instructor", {"type": "announcement", "id": "a1", "data": {"message": "hi", "n": 1}}),
    ("instructor", {"type": "announcement", "id": "a2", "data": {"message": ""}}),
    ("instructor", {"type": "announcement", "id": "a3", "data": {"message": 5, "title": "x" * 201}}),
    ("instructor", {"type": "announcement", "id": "a4", "data": {}}),
    ("instructor", {"type": "announcement", "id": "", "data": {"message": "hi"}}),
    ("instructor", {"type": "announcement", "id": "x" * 101, "data": {"message": "hi"}}),
    ("instructor", {"type": "announcement", "id": 7, "data": {"message": "hi"}}),
    ("instructor", {"type": "announcement", "data": {"message": "hi"}}),
    ("instructor", {"type": "announcement", "id": "a5", "data": None}),
    ("instructor", {"type": "announcement", "id": "a6", "data": [1]}),
    ("instructor", {"type": "session_update", "id": "u1", "data": {"audience": "staff"}}),
    ("instructor", {"type": "session_update", "id": "u2", "data": {"title": "t"}}),
    ("instructor", {"type": "session_update", "id": "u3", "data": {}}),
    ("instructor", {"type": "session_ended", "id": "e1", "data": {}}),
    ("participant", {"type": "announcement", "id": "p1", "data": {"message": "hi"}}),
    ("participant", {"type": "hrv_update", "id": "h1", "data": {"hrv": 61.5, "coherence": 2}}),
    ("participant", {"type": "hrv_update", "id": "h2", "data": {"hrv": "high"}}),
    ("observer", {"type": "note", "id": "o1", "data": {"content": "c"}}),
    ("instructor", {"type": ["announcement"], "id": "l1", "data": {"message": "hi"}}),
    ("instructor", {"type": "no_such_type", "id": "n1", "data": {}}),
]


@pytest.mark.parametrize(("role", "frame"), _SAME_WAY_FRAMES)
def test_the_common_frame_fast_path_answers_as_the_long_way_does(role, frame):
    """`parse_client_frame` skips `parse_event`'s checks for a well-formed frame; what it
    accepts and every refusal (code, wording, details, id) is the same either way."""

    def outcome(parse):
        try:
            return ("ok", tuple(parse()))
        except EventError as exc:
            return ("refused", exc.code, exc.message, exc.details, exc.client_id)

    fast = outcome(lambda: parse_client_frame(orjson.dumps(frame), role))
    long_way = outcome(lambda: parse_event(frame, role))
    assert fast == long_way
