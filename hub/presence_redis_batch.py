"""Presence commands issued together, sent to Redis as one pipeline.

In a storm of joins (a process died and its clients all come back here) every join runs
its presence scripts (connection slots, room entry), and run one by one each costs a
pooled connection, a write, a read and a task switch: far more of the hub's CPU than the
script costs Redis (profiled: a third of the survivor's CPU in a failover storm). Here the
commands issued in one turn of the event loop are queued and sent at the next turn as
one pipeline (one connection, one write, one read for all of them, at most `MAX_BATCH`).
Each caller gets its own answer or its own error: a script that fails does not fail its
neighbours. A call alone in its turn costs what it did before: one round trip.

Scripts go by EVALSHA; one that Redis (or a cluster node, a replica promoted a moment
ago) has not cached answers NOSCRIPT without running, and is sent again whole (EVAL,
which caches it). Every script of the presence is idempotent for its connection entry, so
a pipeline whose connection broke is sent once more, as a single call was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import NoScriptError

MAX_BATCH = 256  # commands per pipeline: a turn's share of Redis stays short

# (script or None, command args, the caller's answer)
_Call = tuple[Any, tuple[Any, ...], "asyncio.Future[Any]"]


class Batcher:
    """Queues commands for the pipeline of the next loop turn. `send` runs one pipeline
    (the owner's: pool, retry and gate) and answers its results in order, errors in place."""

    def __init__(self, send: Callable[[list[tuple[Any, ...]]], Awaitable[list[Any]]]):
        self._send = send
        self._queue: list[_Call] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.pipelines = 0  # sent so far (tests read it)

    async def script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a registered script (redis-py's `AsyncScript`) in the next pipeline."""
        return await self._enqueue(script, ("EVALSHA", script.sha, len(keys), *keys, *args))

    async def command(self, *args: Any) -> Any:
        return await self._enqueue(None, args)

    async def _enqueue(self, script: Any, args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._queue.append((script, args, answer))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await answer

    def _flush(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), MAX_BATCH):
            task = asyncio.ensure_future(self._run(queue[start : start + MAX_BATCH]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, calls: list[_Call]) -> None:
        try:
            results = await self._send([args for _, args, _ in calls])
            self.pipelines += 1
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                whole = [_eval(calls[i][0], calls[i][1]) for i in missing]
                for i, result in zip(missing, await self._send(whole), strict=True):
                    results[i] = result
        except BaseException as exc:
            for _, _, answer in calls:
                if not answer.done():
                    answer.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, answer), result in zip(calls, results, strict=True):
            if answer.done():  # its caller was cancelled: the command ran all the same
                continue
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _eval(script: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """An EVALSHA sent again as EVAL with the script's text."""
    return ("EVAL", script.script, *args[2:])
