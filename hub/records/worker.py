"""Runs the records projector behind the commit path.

`Hub._on_committed` calls `notify(session_pk)` for every event this process commits; it
never blocks and never fails. The worker does not carry events: it marks the session
dirty and later catches the session up from the log, starting at its stored checkpoint
(`projected_seq`). So a full queue, a crash or a restart loses nothing: the periodic
sweep finds every session whose log is ahead of its projection (including sessions
written by other hub processes that died before projecting) and catches it up. The
store serialises catch-ups of one session across processes and writes idempotently
by (session, seq), so running the same catch-up twice is harmless.

Catch-ups start at most once per `linger` (0.2 s): a commit after a quiet spell is
projected at once, while under a stream of commits the worker waits out the rest of the
linger so that the commits of those moments join one catch-up (a busy session costs one
catch-up per linger, not one per commit batch). The HTTP readers call `ensure` first
(read-your-writes), so they never see the delay.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .store import ProjectionStore

log = logging.getLogger("hub.records")


class RecordsWorker:
    def __init__(
        self,
        store: ProjectionStore,
        queue_max: int = 10_000,
        sweep_interval: float = 5.0,
        linger: float = 0.2,
    ):
        self.store = store
        self.queue_max = queue_max
        self.sweep_interval = sweep_interval
        self.linger = linger
        self._last_drain = -linger
        self._dirty: dict[int, None] = {}  # insertion-ordered set
        self._overflowed = False
        self._wake = asyncio.Event()
        self.failures = 0

    def notify(self, session_pk: int) -> None:
        if session_pk in self._dirty:
            return
        if len(self._dirty) >= self.queue_max:
            self._overflowed = True  # the next sweep finds it from the checkpoints
        else:
            self._dirty[session_pk] = None
        self._wake.set()

    async def ensure(self, session_pk: int) -> None:
        """Read-your-writes for the HTTP readers: project what is committed now."""
        await self.store.catch_up(session_pk)

    async def run(self) -> None:
        """The supervised loop; a failure restarts it and the sweep repairs what it missed."""
        await self._sweep()  # after a restart: whatever was committed but never projected
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.sweep_interval)
            except TimeoutError:
                await self._sweep()
                continue
            pause = self._last_drain + self.linger - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            self._last_drain = time.monotonic()
            self._wake.clear()
            if self._overflowed:
                self._overflowed = False
                await self._sweep()
            await self._drain()

    async def _drain(self) -> None:
        failed: list[int] = []
        # The sessions dirty now; those dirtied meanwhile wait for the next round (a linger
        # later), or a busy session would be caught up again after every commit.
        dirty, self._dirty = self._dirty, {}
        for session_pk in dirty:
            try:
                await self.store.catch_up(session_pk)
            except Exception:
                # One failing session must not hold up the others; the sweep retries it.
                log.exception("records projection failed", extra={"session_pk": session_pk})
                failed.append(session_pk)
        if failed:
            self.failures += len(failed)

    async def _sweep(self) -> None:
        for session_pk in await self.store.behind(self.queue_max):
            self._dirty.setdefault(session_pk, None)
        await self._drain()
