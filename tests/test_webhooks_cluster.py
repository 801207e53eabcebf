"""Webhooks with several hub processes on one database: a process killed with deliveries
in flight is taken over from the cursor in PostgreSQL, and two processes never deliver
the same endpoint and session at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support import api, create_session
from tests.webhook_support import FAST_RETRIES, Receiver, in_order_once_each


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver().start()
    yield started
    await started.stop()


async def test_a_killed_process_is_taken_over_without_losing_events(hub_factory, receiver):
    first = hub_factory(**FAST_RETRIES)
    created = await api(first, "POST", "/api/v2/webhooks", {"url": receiver.url("/in")})
    receiver.secrets["/in"] = created.json()["secret"]
    session_id = await create_session(first)
    receiver.delay = 0.03  # keep deliveries in flight
    events = [{"type": "note", "data": {"content": f"n{i}"}} for i in range(100)]
    published = await api(first, "POST", f"/api/v2/session/{session_id}/events", {"events": events})
    assert published.status_code == 201
    # Started in a thread: the receiver shares this event loop and keeps answering.
    second = await asyncio.to_thread(hub_factory, **FAST_RETRIES)
    await receiver.wait_for("/in", 60)
    first.kill()
    receiver.delay = 0
    await receiver.wait_for("/in", 101, timeout=30)
    seqs = receiver.seqs("/in")
    assert sorted(set(seqs)) == list(range(1, 102)) and in_order_once_each(seqs)
    assert receiver.max_in_flight == 1 and receiver.bad_signatures == 0
    more = await api(second, "POST", f"/api/v2/session/{session_id}/events", {"events": events[:5]})
    assert more.status_code == 201
    await receiver.wait_for("/in", 106)


async def test_two_processes_share_the_work_but_never_one_cursor(hub_factory, receiver):
    first = hub_factory(**FAST_RETRIES)
    second = hub_factory(**FAST_RETRIES)
    created = await api(second, "POST", "/api/v2/webhooks", {"url": receiver.url("/both")})
    receiver.secrets["/both"] = created.json()["secret"]
    sessions = [await create_session(first) for _ in range(4)]
    receiver.delay = 0.005

    async def write(session_id: str, index: int) -> None:
        for round_ in range(4):
            hub = (first, second)[(index + round_) % 2]  # both processes commit to every session
            batch = [{"type": "note", "data": {"content": f"{round_}-{i}"}} for i in range(10)]
            answer = await api(hub, "POST", f"/api/v2/session/{session_id}/events", {"events": batch})
            assert answer.status_code == 201

    await asyncio.gather(*(write(s, i) for i, s in enumerate(sessions)))
    for session_id in sessions:
        await receiver.wait_for("/both", 41, session_id=session_id, timeout=30)
        assert receiver.seqs("/both", session_id) == list(range(1, 42)), "once each, in order"
    assert receiver.max_in_flight == 1, "never two requests at once for one endpoint and session"
