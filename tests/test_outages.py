"""Dependencies that go away while clients publish: Redis restarts, PostgreSQL stops.

Both use private servers (a redis-server and a pgserver PostgreSQL of the test's own):
the machine's services are shared and must never be stopped by a test.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cluster_tools import Publisher, assert_gap_free, head_seq, log_seqs, start_nodes
from tests.redis_tools import PrivateRedis, private_redis_server
from tests.support import LiveClient, create_session

# A stuck test fails fast instead of eating the suite budget.
pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    yield from private_redis_server()


class PrivatePostgres:
    def __init__(self) -> None:
        import pgserver

        self.server: Any = pgserver.get_server(tempfile.mkdtemp(prefix="hub-pg-"), cleanup_mode="delete")
        self.uri: str = self.server.get_uri()

    def stop(self) -> None:
        from pgserver import _commands

        _commands.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=30
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.server.cleanup()


async def ready_status(hub: Any) -> int:
    async with httpx.AsyncClient(base_url=hub.base_url, timeout=5) as http:
        return (await http.get("/readyz")).status_code


async def wait_ready_status(hub: Any, status: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while await ready_status(hub) != status:
        assert time.monotonic() < deadline, f"/readyz never answered {status}"
        await asyncio.sleep(0.1)


async def test_redis_restart_while_events_flow(hub_factory, private_redis, redis_prefix):
    a, b = await start_nodes(hub_factory, private_redis.url, redis_prefix, 2)
    session_id = await create_session(a)
    instructor = await LiveClient.connect(a.ws_url(session_id, "instructor", name="Sarah"))
    receivers = [await LiveClient.connect(b.ws_url(session_id, "observer")) for _ in range(3)]
    publisher = Publisher(instructor, count=150, interval=0.01)
    flow = asyncio.create_task(publisher.run())
    await publisher.wait_acked(30)
    await asyncio.to_thread(private_redis.stop)
    await wait_ready_status(b, 503, timeout=5)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(private_redis.start)
    await wait_ready_status(b, 200)
    await flow
    await publisher.wait_answered()
    head = await head_seq(a, session_id)
    for receiver in receivers:
        await receiver.wait_for_seq(head)
        assert_gap_free(receiver.seqs(), head, start=receiver.seqs()[0])
    assert set(publisher.acked_seqs()) <= set(receivers[0].seqs())
    assert "redis subscriber reconnected" in b.logs()
    await asyncio.gather(instructor.close(), *(r.close() for r in receivers))


async def test_postgres_stop_and_start_while_clients_publish(
    hub_factory, redis_base, redis_prefix, private_postgres
):
    # HUB_MAX_ERRORS=20: `unavailable` is the hub's fault and must not count towards it
    env = {"DATABASE_URL": private_postgres.uri, "HUB_MAX_ERRORS": "20"}
    a, b = await start_nodes(hub_factory, redis_base, redis_prefix, 2, **env)
    session_id = await create_session(a)
    instructor = await LiveClient.connect(a.ws_url(session_id, "instructor", name="Sarah"))
    receiver = await LiveClient.connect(b.ws_url(session_id, "observer"))
    publisher = Publisher(instructor, count=400, interval=0.01)
    publisher_task = asyncio.create_task(publisher.run())
    await publisher.wait_acked(20)
    await asyncio.to_thread(private_postgres.stop)
    down_from = len(publisher.sent)  # everything sent from here on meets a stopped database
    await wait_ready_status(a, 503, timeout=5)
    await asyncio.sleep(0.5)
    down_until = len(publisher.sent)
    await asyncio.to_thread(private_postgres.start)
    await wait_ready_status(a, 200, timeout=20)
    await publisher_task
    await publisher.wait_answered(timeout=20)

    answers = {m["data"]["id"]: m for m in instructor.messages if m["type"] in ("ack", "error")}
    while_down = [answers[i] for i in publisher.sent[down_from:down_until]]
    assert while_down and all(m["type"] == "error" for m in while_down), "acked while PG was down"
    assert {m["data"]["code"] for m in while_down} == {"unavailable"}
    assert answers[publisher.sent[-1]]["type"] == "ack", "the hub did not recover by itself"
    stored = await log_seqs(a, session_id)
    head = await head_seq(a, session_id)
    assert_gap_free(stored, head)
    acked = publisher.acked_seqs()
    assert len(acked) == len(set(acked)) and set(acked) <= set(stored)
    await receiver.wait_for_seq(head)
    assert_gap_free(receiver.seqs(), head, start=receiver.seqs()[0])
    await asyncio.gather(instructor.close(), receiver.close())
