"""The Python client (clients/python, `session_hub_client`) against real hub processes:
sends acked with their seq, every event once and in order, the hub killed mid-stream and
restarted, a cut socket, do-not-reconnect closes, resume_unavailable, and the HTTP side.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from session_hub_client import (
    Event,
    HubAPI,
    HubAPIError,
    HubClient,
    HubClosed,
    HubError,
    ResumeUnavailable,
    StateChange,
    backoff_delay,
)
from session_hub_client.ordering import verdict

from tests.auth_support import token_hub
from tests.support import HubProcess, create_session
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(90)

FAST = {"backoff_base": 0.1, "backoff_cap": 1.0}


@pytest.fixture(scope="module")
def shared(pg_base: str) -> Iterator[HubProcess]:
    """One dev-mode hub for the tests that leave it running (each on its own session)."""
    with token_hub(pg_base, HUB_DEV="1") as (process, _dsn):
        yield process


class Reader:
    """Runs the app's `async for event in client.events()` and keeps what it saw."""

    def __init__(self, client: HubClient, held: bool = False):
        self.client = client
        self.events: list[Event] = []
        self.reading = asyncio.Event()  # cleared: the app is busy and reads nothing
        if not held:
            self.reading.set()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.client.events():
            self.events.append(event)
            await self.reading.wait()

    def seqs(self) -> list[int]:
        return [e.seq for e in self.events if e.seq is not None]

    async def wait_for(self, seq: int, timeout: float = 30.0) -> None:
        await until(lambda: bool(self.events) and (self.events[-1].seq or 0) >= seq, timeout)


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


async def publish(client: HubClient, count: int, sent: dict[int, int], batch: int = 4) -> None:
    """Send `count` announcements in small concurrent batches; keep message index -> seq."""
    for start in range(0, count, batch):
        indexes = range(start, min(start + batch, count))
        seqs = await asyncio.gather(*(client.send("announcement", {"message": f"m{i}"}) for i in indexes))
        sent.update(zip(indexes, seqs, strict=True))
        await asyncio.sleep(0.02)


async def stored_messages(hub: HubProcess, session_id: str) -> list[str]:
    async with HubAPI(hub.base_url) as api:
        content = await api.content(session_id, include_replay=True)
    return [m["data"]["message"] for m in content["replay"]["messages"] if m["type"] == "announcement"]


async def test_sends_are_acked_with_their_seq_and_every_event_arrives_once_in_order(shared: HubProcess):
    hub = shared
    session_id = await create_session(hub)
    states: list[StateChange] = []
    writer = HubClient(hub.base_url, session_id=session_id, role="instructor", name="Sarah")
    obs = HubClient(hub.base_url, session_id=session_id, role="observer", since=0, on_state=states.append)
    async with writer, obs:
        assert [s.state for s in states] == ["connecting", "open"]
        reader = Reader(obs)
        seqs = await asyncio.gather(*(writer.send("announcement", {"message": f"m{i}"}) for i in range(12)))
        assert sorted(seqs) == list(range(2, 14)), "session_started is seq 1"
        again = await writer.send("announcement", {"message": "dup"}, id="fixed-id")
        assert await writer.send("announcement", {"message": "dup"}, id="fixed-id") == again
        with pytest.raises(HubError) as refused:
            await obs.send("announcement", {"message": "observers only listen"})
        assert refused.value.code == "forbidden"
        with pytest.raises(HubError) as invalid:
            await writer.send("technique_changed", {})
        assert invalid.value.code == "invalid" and invalid.value.details["field"] == "technique"
        await reader.wait_for(again)
        assert reader.seqs() == list(range(1, again + 1))
        assert obs.last_seq == again
        by_seq = {e.seq: e for e in reader.events}
        assert by_seq[seqs[0]].data == {"message": "m0"} and by_seq[seqs[0]].actor is not None
        assert by_seq[seqs[0]].actor.role == "instructor"
    assert states[-1].state == "closed"
    await asyncio.wait_for(reader.task, 5)  # the app's loop ends when the client is closed


async def test_closing_a_client_whose_app_stopped_reading_does_not_hang(shared: HubProcess):
    hub = shared
    session_id = await create_session(hub)
    async with HubClient(hub.base_url, session_id=session_id, role="instructor") as writer:
        idle = HubClient(hub.base_url, session_id=session_id, role="observer", since=0, buffer_size=1)
        await idle.connect()
        await asyncio.gather(*(writer.send("announcement", {"message": f"m{i}"}) for i in range(20)))
        await asyncio.sleep(0.3)  # the buffer is full and the client waits for room
        await asyncio.wait_for(idle.close(), 3)  # the closing handshake, not a 5 s timeout
        assert [e.seq async for e in idle.events()] == [1], "what was buffered, then the end"


async def test_the_hub_killed_mid_stream_and_restarted_loses_and_repeats_nothing(hub: HubProcess):
    session_id = await create_session(hub)
    states: list[StateChange] = []
    sent: dict[int, int] = {}
    writer = HubClient(hub.base_url, session_id=session_id, role="instructor", **FAST)
    observer = HubClient(
        hub.base_url, session_id=session_id, role="observer", since=0, on_state=states.append, **FAST
    )
    async with writer, observer:
        reader = Reader(observer)
        publishing = asyncio.create_task(publish(writer, 48, sent))
        await until(lambda: len(sent) >= 12)
        await asyncio.to_thread(hub.kill)
        await asyncio.to_thread(hub.start)
        await asyncio.wait_for(publishing, 60)
        head = max(sent.values())
        await reader.wait_for(head)
        assert reader.seqs() == list(range(1, head + 1)), "every event once, in order, across the restart"
    assert sorted(sent.values()) == list(range(2, head + 1)), "each acked send has its own seq"
    messages = await stored_messages(hub, session_id)
    assert sorted(messages) == sorted(f"m{i}" for i in range(48)), "nothing lost, nothing stored twice"
    assert any(s.state == "reconnecting" and s.code == 1006 for s in states)
    assert observer.stats.reconnects >= 1 and writer.stats.reconnects >= 1


async def test_a_cut_socket_resumes_from_the_last_event(shared: HubProcess):
    hub = shared
    session_id = await create_session(hub)
    proxy = await TcpProxy(hub.port).start()
    sent: dict[int, int] = {}
    try:
        async with (
            HubClient(proxy.base_url, session_id=session_id, role="instructor", **FAST) as writer,
            HubClient(proxy.base_url, session_id=session_id, role="observer", since=0, **FAST) as observer,
        ):
            reader = Reader(observer)
            publishing = asyncio.create_task(publish(writer, 60, sent))
            for _ in range(3):
                await until(lambda: len(sent) >= 10 * (proxy.cuts + 1))
                await until(lambda: writer.state == observer.state == "open")
                proxy.cut()
            await asyncio.wait_for(publishing, 30)
            head = max(sent.values())
            await reader.wait_for(head)
            assert reader.seqs() == list(range(1, head + 1))
            # Every cut found both connected (above), so each made both reconnect once.
            await until(lambda: observer.stats.reconnects == writer.stats.reconnects == 3)
            assert observer.stats.close_codes == [1006, 1006, 1006]
    finally:
        await proxy.close()
    assert sorted(await stored_messages(hub, session_id)) == sorted(f"m{i}" for i in range(60))


async def test_a_do_not_reconnect_close_ends_the_client_with_the_reason(shared: HubProcess):
    hub = shared
    client = HubClient(hub.base_url, session_id="no-such-session", role="observer", **FAST)
    with pytest.raises(HubClosed) as closed:
        await asyncio.wait_for(client.connect(), 10)
    assert closed.value.close_code == 3504 and "not_found" in str(closed.value)
    assert client.stats.connects == 1, "no retry after a do-not-reconnect code"
    with pytest.raises(HubClosed):
        await client.send("announcement", {"message": "too late"})
    with pytest.raises(HubClosed):
        async for _ in client.events():
            pass
    await client.close()


async def test_the_app_is_told_when_its_position_cannot_be_replayed(shared: HubProcess):
    hub = shared
    session_id = await create_session(hub)
    told: list[ResumeUnavailable] = []
    async with HubClient(
        hub.base_url, session_id=session_id, role="observer", since=500, on_resume_unavailable=told.append
    ) as client:
        assert told == [ResumeUnavailable(since=500, head_seq=1, reason="ahead_of_log", retained_from=1)]
        assert client.last_seq == 1, "the stream goes on after the hub's head"


async def test_the_http_side_runs_a_session(shared: HubProcess):
    hub = shared
    async with HubAPI(hub.base_url) as api:
        created = await api.create_session("Evening Calm", "Sarah Chen", session_id="api-1")
        assert created["session_id"] == "api-1" and created["status"] == "scheduled"
        steps: list[Callable[[str], Awaitable[dict[str, object]]]] = [
            api.start_session,
            api.pause_session,
            api.resume_session,
        ]
        for step in steps:
            await step("api-1")
        live = await api.live_sessions()
        assert "api-1" in [s["session_id"] for s in live["sessions"]]
        announced = await api.announce("Break in five", session_id="api-1")
        assert announced["sessions_notified"] == ["api-1"]
        ended = await api.end_session("api-1", message="Thank you")
        assert ended["status"] == "completed"
        content = await api.content("api-1", include_replay=True)
        # A completed session also gets its summary appended, soon after (hub/end_summary.py).
        types = [m["type"] for m in content["replay"]["messages"] if m["type"] != "session_summary"]
        lifecycle = ["session_started", "session_paused", "session_resumed"]
        assert types == [*lifecycle, "announcement", "session_ended"]
        page = await api.events("api-1", since=3)
        assert [e["seq"] for e in page["events"] if e["type"] != "session_summary"] == [4, 5]
        with pytest.raises(HubAPIError) as conflict:
            await api.start_session("api-1")
        assert conflict.value.status == 409 and conflict.value.code == "conflict"
        with pytest.raises(HubAPIError) as missing:
            await api.get_session("nope")
        assert missing.value.status == 404 and missing.value.code == "not_found"


async def test_a_backend_publishes_once_per_id_and_members_receive_it(shared: HubProcess):
    hub = shared
    async with HubAPI(hub.base_url) as api:
        await api.create_session("Agent session", "Coach", session_id="api-publish")
        async with HubClient(hub.base_url, session_id="api-publish", role="observer") as watcher:
            first = await api.publish("api-publish", "prompt", {"text": "How do you feel?"}, id="p-1")
            again = await api.publish("api-publish", "prompt", {"text": "How do you feel?"}, id="p-1")
            assert first["duplicate"] is False and again == {**first, "duplicate": True}
            batch = await api.publish_many(
                "api-publish",
                [
                    {"type": "announcement", "data": {"message": "Welcome"}, "id": "a-1"},
                    {"type": "prompt", "data": {"text": "Breathe in"}, "id": "p-2"},
                ],
            )
            seqs = [item["seq"] for item in batch]
            received = []
            async for event in watcher.events():
                received.append((event.type, event.seq))
                if len(received) == 3:
                    break
            assert [t for t, _ in received] == ["prompt", "announcement", "prompt"]
            assert received[0][1] == first["seq"]
            assert [s for _, s in received[1:]] == seqs
        with pytest.raises(HubAPIError) as bad:
            await api.publish("api-publish", "teleport", {})
        assert bad.value.status == 422


def test_backoff_is_exponential_with_full_jitter():
    assert backoff_delay(0, 0.5, 30, rand=lambda: 0.999) < 0.5
    assert backoff_delay(3, 0.5, 30, rand=lambda: 0.5) == pytest.approx(2.0)
    assert backoff_delay(40, 0.5, 30, rand=lambda: 0.999) < 30
    assert backoff_delay(5, 0.5, 30, rand=lambda: 0.0) == 0.0


async def test_a_participant_gets_its_view_without_taking_skipped_seqs_for_gaps(shared: HubProcess):
    session_id = await create_session(shared)
    async with (
        HubClient(shared.base_url, session_id=session_id, role="instructor") as writer,
        HubClient(shared.base_url, session_id=session_id, role="participant", name="Ana") as ana,
    ):
        reader = Reader(ana)
        note = await writer.send("note", {"content": "for staff only"})
        shared_seq = await writer.send("announcement", {"message": "for everyone"})
        await reader.wait_for(shared_seq)
        assert note not in reader.seqs() and reader.events[-1].prev_seq is not None
        assert ana.stats.gaps == 0 and ana.stats.connects == 1


def test_the_order_rule_follows_each_members_view():
    assert verdict(None, {"seq": 17}) == "deliver"
    assert verdict(4, {"seq": 4}) == "duplicate"
    assert verdict(4, {"seq": 5}) == "deliver"
    assert verdict(4, {"seq": 6}) == "gap", "without prev_seq every event is in the view"
    assert verdict(4, {"seq": 9, "prev_seq": 4}) == "deliver", "5-8 were not meant for this member"
    assert verdict(4, {"seq": 9, "prev_seq": 7}) == "gap", "7 was meant for it and never came"
