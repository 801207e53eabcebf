"""The per-user connection limit holds across hub processes sharing one Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.cluster_tools import start_nodes
from tests.support import HubProcess, LiveClient, create_session

# A stuck test fails fast instead of eating the suite budget.
pytestmark = pytest.mark.timeout(60)


async def _refused(hub: HubProcess, session_id: str, user: str) -> None:
    client = await LiveClient.connect(hub.ws_url(session_id, "observer", user_id=user), expect_welcome=False)
    assert await client.wait_closed() == 3509
    assert "HUB_MAX_CONNECTIONS_PER_USER" in client.messages[0]["data"]["message"]


async def _admitted_soon(hub: HubProcess, session_id: str, user: str, within: float) -> LiveClient:
    """Connect until admitted: a slot is freed just after its socket closed (or expired)."""
    deadline = time.monotonic() + within
    while True:
        url = hub.ws_url(session_id, "observer", user_id=user)
        client = await LiveClient.connect(url, expect_welcome=False)
        first = await client.next(timeout=5)
        if first["type"] == "welcome":
            return client
        assert await client.wait_closed() == 3509, first
        assert time.monotonic() < deadline, f"not admitted within {within} s"
        await asyncio.sleep(0.1)


async def test_a_users_connections_are_capped_across_processes_and_die_with_them(
    hub_factory, redis_base, redis_prefix
):
    a, b = await start_nodes(
        hub_factory, redis_base, redis_prefix, 2, HUB_MAX_CONNECTIONS_PER_USER="2", HUB_PRESENCE_TTL="3"
    )
    session_id = await create_session(a)
    user = f"u-{uuid.uuid4().hex[:8]}"
    first = await LiveClient.connect(a.ws_url(session_id, "observer", user_id=user))
    second = await LiveClient.connect(b.ws_url(session_id, "observer", user_id=user))
    await _refused(a, session_id, user)
    await _refused(b, session_id, user)
    someone_else = await LiveClient.connect(a.ws_url(session_id, "observer", user_id=user + "-x"))

    # One closes on A: one new connection is admitted on B, and only one (the refusals
    # above held no slot).
    await first.close()
    third = await _admitted_soon(b, session_id, user, within=2.0)
    await _refused(a, session_id, user)

    # B dies with both of the user's connections: its slots are not released, they expire
    # (HUB_PRESENCE_TTL 3 s), after which A admits the user again, up to the limit.
    b.kill()
    killed = time.monotonic()
    await _refused(a, session_id, user)
    again = await _admitted_soon(a, session_id, user, within=3 + 1.5)
    assert time.monotonic() - killed > 0.5
    more = await LiveClient.connect(a.ws_url(session_id, "observer", user_id=user))
    await _refused(a, session_id, user)
    del second, third  # their process is gone
    await asyncio.gather(someone_else.close(), again.close(), more.close())
