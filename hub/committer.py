"""Group commit: events arriving together share one round trip to PostgreSQL.

One writer task takes everything queued (up to `batch_max`), appends it with a single
`append_batch` call, and only then reports each result, in order, to the listener (which
acks and fans out) and to the waiting caller. While a batch is in flight new events
queue up, so batching grows with load instead of adding latency when idle.

The queue is bounded: when it is full `submit` raises `CommitOverloaded` at once rather
than letting memory grow; the caller answers `unavailable` and the client resends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import Unavailable
from .store import AppendRequest, AppendResult, EventLog, SessionRecord, StoreUnavailable

log = logging.getLogger("hub.commit")


class CommitOverloaded(Unavailable):
    pass


class CommitFailed(Unavailable):
    """The batch holding this event could not be written; nothing was acknowledged."""


@dataclass
class PendingAppend:
    request: AppendRequest
    session_id: str  # the public id, for the envelope (the request carries the pk)
    origin: Any = None  # the sending connection, or None for events the hub writes itself
    client_id: str | None = None
    future: asyncio.Future[AppendResult] = field(default_factory=lambda: asyncio.Future())


CommitListener = Callable[[PendingAppend, AppendResult], None]
BatchObserver = Callable[[int, float, bool], None]  # (size, seconds, ok)


class GroupCommitter:
    def __init__(
        self,
        log_store: EventLog,
        listener: CommitListener,
        batch_max: int = 512,
        queue_max: int = 10_000,
        observer: BatchObserver | None = None,
    ):
        self._store = log_store
        self._listener = listener
        self._observer = observer
        self._batch_max = batch_max
        self._queue_max = queue_max
        self._queue: deque[PendingAppend] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def depth(self) -> int:
        return len(self._queue)

    def submit(self, pending: PendingAppend) -> asyncio.Future[AppendResult]:
        if self._closing:
            raise CommitOverloaded("the hub is shutting down")
        if len(self._queue) >= self._queue_max:
            raise CommitOverloaded("too many events waiting to be stored")
        self._queue.append(pending)
        self._wakeup.set()
        return pending.future

    async def append(
        self,
        session: SessionRecord,
        event_type: str,
        data: dict[str, Any],
        actor: dict[str, Any] | None,
        dedupe_key: str | None = None,
    ) -> AppendResult:
        """Store one event written by the hub itself (HTTP, presence); it is delivered and
        acknowledged like a client's. Raises `CommitOverloaded` / `CommitFailed`."""
        request = AppendRequest(session.pk, event_type, data, actor, dedupe_key)
        return await self.submit(PendingAppend(request, session.session_id))

    async def drain(self, timeout: float) -> None:
        """Refuse new events and wait until everything accepted is written."""
        self._closing = True
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            self._wakeup.set()
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(CommitFailed("the hub stopped"))
        self._queue.clear()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._batch_max))]
            await self._write(batch)

    async def _write(self, batch: list[PendingAppend]) -> None:
        started = time.perf_counter()
        try:
            results = await self._store.append_batch([p.request for p in batch])
        except asyncio.CancelledError:
            self._fail(batch, "the hub stopped")
            raise
        except StoreUnavailable as exc:
            self._report_failure(batch, started, exc)
            self._fail(batch, self.last_error or "database unreachable")
            await asyncio.sleep(0.05)  # don't spin against a database that is down
            return
        except Exception as exc:
            self._report_failure(batch, started, exc)
            if len(batch) > 1:
                # A data error in one item must not cost its neighbours their events.
                for pending in batch:
                    await self._write([pending])
            else:
                self._fail(batch, self.last_error or "not stored")
            return
        self.last_error = None
        if self._observer:
            self._observer(len(batch), time.perf_counter() - started, True)
        for pending, result in zip(batch, results, strict=True):
            try:
                self._listener(pending, result)
            except Exception:  # one bad listener call must not strand the rest of the batch
                log.exception("commit listener failed")
            if not pending.future.done():
                pending.future.set_result(result)

    def _report_failure(self, batch: list[PendingAppend], started: float, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.error("event batch not stored", extra={"size": len(batch), "error": self.last_error})
        if self._observer:
            self._observer(len(batch), time.perf_counter() - started, False)

    @staticmethod
    def _fail(batch: list[PendingAppend], reason: str) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(CommitFailed(reason))
