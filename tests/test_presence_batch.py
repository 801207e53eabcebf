"""The presence's pipelining of commands issued together (hub/presence_redis_batch.py),
against a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from hub.presence_redis_batch import MAX_BATCH, Batcher

pytestmark = pytest.mark.timeout(30)


async def test_commands_issued_together_share_pipelines_and_keep_their_own_answers(redis_base, redis_prefix):
    client = redis.Redis.from_url(redis_base)
    sent: list[int] = []

    async def send(commands: list[tuple[Any, ...]]) -> list[Any]:
        sent.append(len(commands))
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute(raise_on_error=False)

    batch = Batcher(send)
    counter, text = redis_prefix + "counter", redis_prefix + "text"
    await client.set(text, "not a hash")
    # A script Redis has not cached yet: NOSCRIPT, then sent again whole, still once each.
    script = client.register_script(f"-- {redis_prefix}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    calls = [batch.script(script, [counter], [1]) for _ in range(MAX_BATCH + 44)]
    calls.append(batch.command("HGET", text, "x"))  # fails alone
    calls.append(batch.command("GET", counter))
    answers = await asyncio.gather(*calls, return_exceptions=True)

    assert sorted(answers[: MAX_BATCH + 44]) == list(range(1, MAX_BATCH + 45))
    assert isinstance(answers[-2], ResponseError)  # WRONGTYPE: its neighbours are answered
    assert answers[-1] is not None
    assert await client.get(counter) == str(MAX_BATCH + 44).encode()
    # One turn's commands: two pipelines (MAX_BATCH each at most), plus the NOSCRIPT
    # resends (the second pipeline may find the script cached by the first's resend).
    assert sent[:2] == [MAX_BATCH, 46] and sorted(sent[2:]) in ([MAX_BATCH], [44, MAX_BATCH]), sent
    assert batch.pipelines == 2

    # Cached now: the same calls go in one pipeline each turn, nothing resent.
    sent.clear()
    answers = await asyncio.gather(*(batch.script(script, [counter], [1]) for _ in range(10)))
    assert sorted(answers) == list(range(MAX_BATCH + 45, MAX_BATCH + 55))
    assert sent == [10]
    await batch.close()
    await client.aclose()
