"""Batched reads (hub/session_reads.py): joins that ask together share a read, every answer
comes from a read that started after its ask, and one ask going away hurts no other."""

from __future__ import annotations

import asyncio

import pytest

from hub.session_reads import Batched


class Source:
    """A value that changes; each read sees it as it is when the read starts."""

    def __init__(self) -> None:
        self.value = 0
        self.started = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def read(self) -> int:
        self.started += 1
        seen = self.value
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("the database went away")
        return seen


async def test_asks_during_a_read_share_the_next_one_which_sees_what_changed_before_them():
    batched, source = Batched(), Source()
    first = asyncio.ensure_future(batched.get("k", source.read))
    while not source.started:
        await asyncio.sleep(0)
    source.value = 1  # changed after the first read started
    later = [asyncio.ensure_future(batched.get("k", source.read)) for _ in range(50)]
    await asyncio.sleep(0)
    source.gate.set()
    assert await first == 0
    assert await asyncio.gather(*later) == [1] * 50
    assert (source.started, batched.reads) == (2, 2)


async def test_a_cancelled_ask_leaves_the_read_and_the_others_answered():
    batched, source = Batched(), Source()
    asks = [asyncio.ensure_future(batched.get("k", source.read)) for _ in range(3)]
    await asyncio.sleep(0)
    asks[0].cancel()  # the one that started the read
    await asyncio.sleep(0)
    source.gate.set()
    assert await asks[1] == await asks[2] == 0
    with pytest.raises(asyncio.CancelledError):
        await asks[0]
    assert await batched.get("k", source.read) == 0  # and the key reads afresh afterwards
    assert source.started == 3


async def test_a_failed_read_reaches_every_ask_that_shared_it():
    batched, source = Batched(), Source()
    source.fail = True
    asks = [asyncio.ensure_future(batched.get("k", source.read)) for _ in range(3)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    source.fail = False
    assert await batched.get("k", source.read) == 0
