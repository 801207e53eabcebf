"""The Python client through what ends connections in production: a token that expires
(renewed in-band and on reconnect through `token_provider`), an app too slow for the hub
(closed as a slow consumer, resumed), and one of two hub processes on Redis killed.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from session_hub_client import HubAPI, HubClient

from tests.auth_support import SECRET, token
from tests.cluster_tools import start_nodes
from tests.support import HubProcess, create_session
from tests.tcp_proxy import TcpProxy
from tests.test_python_client import FAST, Reader, publish, stored_messages, until

pytestmark = pytest.mark.timeout(120)


async def test_an_expiring_token_is_renewed_in_band_and_on_reconnect(hub_factory):
    hub = hub_factory(HUB_DEV="0", HUB_SECRET=SECRET, HUB_TOKEN_WARNING="2")
    async with HubAPI(hub.base_url, token=token(role="admin")) as api:
        await api.create_session("Long class", "Sarah", session_id="long")
        await api.start_session("long")
    minted: list[str] = []

    async def provider() -> str:
        minted.append(token(user="sarah", role="instructor", ttl=3))
        return minted[-1]

    proxy = await TcpProxy(hub.port).start()
    try:
        async with HubClient(
            proxy.base_url, session_id="long", role="instructor", token_provider=provider, **FAST
        ) as client:
            first = await client.send("announcement", {"message": "before"})
            # Past the first token's expiry: renewed in-band, the connection never dropped.
            await asyncio.sleep(4.5)
            assert client.stats.refreshes >= 2 and client.stats.connects == 1
            second = await client.send("announcement", {"message": "after expiry"})
            # A reconnect now needs a fresh token: the one it connected with has expired.
            proxy.cut()
            await until(lambda: client.stats.reconnects == 1)
            third = await client.send("announcement", {"message": "after reconnect"})
            assert first < second < third
            assert client.stats.close_codes == [1006], "no 3003, no 3501"
    finally:
        await proxy.close()
    assert len(minted) >= 4  # connect, two renewals, reconnect


async def test_a_slow_consumer_is_closed_and_resumes_without_loss(hub_factory):
    hub = hub_factory(HUB_OUTBOUND_QUEUE="16", HUB_RATE_LIMIT="1000", HUB_RATE_BURST="1000")
    session_id = await create_session(hub)
    proxy = await TcpProxy(hub.port).start()
    blob = "x" * 48_000
    writer = HubClient(hub.base_url, session_id=session_id, role="instructor", **FAST)
    slow = HubClient(proxy.base_url, session_id=session_id, role="observer", since=0, buffer_size=4, **FAST)
    try:
        async with writer, slow:
            # The app reads nothing and its network stalls while 7 MB go out: the hub's
            # queue for it overflows and the hub closes it (3001) instead of holding memory.
            reader = Reader(slow, held=True)
            proxy.stall()
            seqs: list[int] = []
            for start in range(0, 150, 5):  # several commits: each backs the queue up further
                sends = [writer.send("session_update", {"i": i, "b": blob}) for i in range(start, start + 5)]
                seqs += await asyncio.gather(*sends)
            await until(lambda: "hub_slow_consumer_closes_total 1.0" in metrics_text(hub), 20)
            proxy.resume()
            reader.reading.set()
            await reader.wait_for(max(seqs), timeout=60)
            assert reader.seqs() == list(range(1, max(seqs) + 1))
            assert slow.stats.close_codes == [3001] and slow.stats.reconnects == 1
    finally:
        await proxy.close()


def metrics_text(hub: HubProcess) -> str:
    return httpx.get(hub.base_url + "/metrics", timeout=5).text


async def test_one_of_two_hub_processes_on_redis_killed(hub_factory, redis_base, redis_prefix):
    doomed, survivor = await start_nodes(hub_factory, redis_base, redis_prefix, 2)
    session_id = await create_session(doomed)
    sent: dict[int, int] = {}
    urls = [doomed.base_url, survivor.base_url]  # each reconnect tries the next process
    async with (
        HubClient(survivor.base_url, session_id=session_id, role="instructor", **FAST) as writer,
        HubClient(urls, session_id=session_id, role="observer", since=0, **FAST) as observer,
    ):
        reader = Reader(observer)
        publishing = asyncio.create_task(publish(writer, 40, sent))
        await until(lambda: len(sent) >= 12)
        await asyncio.to_thread(doomed.kill)
        await asyncio.wait_for(publishing, 30)
        head = max(sent.values())
        await reader.wait_for(head)
        assert reader.seqs() == list(range(1, head + 1)), "every event once, in order, across processes"
        assert observer.stats.reconnects == 1 and writer.stats.reconnects == 0
    assert sorted(await stored_messages(survivor, session_id)) == sorted(f"m{i}" for i in range(40))
