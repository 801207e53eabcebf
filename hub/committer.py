"""Group commit: events arriving together share one round trip to PostgreSQL.

Each *lane* has one writer task that takes everything queued on it (up to `batch_max`),
appends it with a single `append_batch` call, and only then reports the batch's results,
in order, to the listener (which acks and fans out) and to whoever waits for each event.
While a batch is in flight new events queue up, so batching grows with load instead of
adding latency when idle.

A session's events always take the same lane (`session_pk % lanes`), so they are stored,
acked and delivered in the order they were submitted; different sessions' batches are
in flight at once on separate connections, so the hub keeps working while PostgreSQL
writes (a single writer would leave the process idle for every round trip).

An event is waited for in one of two ways: a future (`PendingAppend.waited`, the
default: HTTP and the hub's own events await it) or, on the hot path of client frames,
`on_done(pending, result, error)` called synchronously once the batch is settled, which
spares an asyncio future and a loop callback per event.

The queues are bounded (together): when they are full `submit` raises `CommitOverloaded`
at once rather than letting memory grow; the caller answers `unavailable` and the client
resends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .errors import Unavailable
from .store import AppendRequest, AppendResult, EventLog, SessionRecord, StoreUnavailable

log = logging.getLogger("hub.commit")


class CommitOverloaded(Unavailable):
    pass


class CommitFailed(Unavailable):
    """The batch holding this event could not be written; nothing was acknowledged."""


# on_done(pending, result, error): exactly one of result and error is set
DoneCallback = Callable[["PendingAppend", AppendResult | None, BaseException | None], None]


class PendingAppend:
    """One event waiting for its commit. `waited=False` with `on_done`: no future."""

    __slots__ = ("client_id", "future", "on_done", "origin", "request", "session_id")

    def __init__(
        self,
        request: AppendRequest,
        session_id: str,  # the public id, for the envelope (the request carries the pk)
        origin: Any = None,  # the sending connection, or None for events the hub writes itself
        client_id: str | None = None,
        on_done: DoneCallback | None = None,
    ):
        self.request = request
        self.session_id = session_id
        self.origin = origin
        self.client_id = client_id
        self.on_done = on_done
        self.future: asyncio.Future[AppendResult] | None = (
            asyncio.get_running_loop().create_future() if on_done is None else None
        )

    def settle(self, result: AppendResult | None, error: BaseException | None) -> None:
        if self.on_done is not None:
            self.on_done(self, result, error)
            return
        future = self.future
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]


# listener(batch, results): once per stored batch, results in the batch's order
CommitListener = Callable[[Sequence[PendingAppend], Sequence[AppendResult]], None]
BatchObserver = Callable[[int, float, bool], None]  # (size, seconds, ok)


class _Lane:
    __slots__ = ("queue", "wakeup")

    def __init__(self) -> None:
        self.queue: deque[PendingAppend] = deque()
        self.wakeup = asyncio.Event()


class GroupCommitter:
    def __init__(
        self,
        log_store: EventLog,
        listener: CommitListener,
        batch_max: int = 512,
        queue_max: int = 10_000,
        observer: BatchObserver | None = None,
        lanes: int = 1,
    ):
        self._store = log_store
        self._listener = listener
        self._observer = observer
        self._batch_max = batch_max
        self._queue_max = queue_max
        self._lanes = [_Lane() for _ in range(max(1, lanes))]
        self._queued = 0  # over every lane
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def depth(self) -> int:
        return self._queued

    def submit(self, pending: PendingAppend) -> asyncio.Future[AppendResult]:
        """Queue an event and return the future of its result."""
        future = pending.future
        if future is None:
            raise ValueError("a pending settled through on_done is queued with enqueue()")
        self.enqueue(pending)
        return future

    def enqueue(self, pending: PendingAppend) -> None:
        """Queue an event; its outcome goes to the future or to `on_done`."""
        if self._closing:
            raise CommitOverloaded("the hub is shutting down")
        if self._queued >= self._queue_max:
            raise CommitOverloaded("too many events waiting to be stored")
        lanes = self._lanes
        lane = lanes[pending.request.session_pk % len(lanes)]
        lane.queue.append(pending)
        self._queued += 1
        lane.wakeup.set()

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
        while self._queued and time.monotonic() < deadline:
            for lane in self._lanes:
                lane.wakeup.set()
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for lane in self._lanes:
            left, lane.queue = list(lane.queue), deque()
            self._fail(left, "the hub stopped")
        self._queued = 0

    async def _run(self) -> None:
        # One task per lane under this one (what the supervisor watches): cancelling it
        # cancels every lane; a lane that fails takes the others down with it.
        await asyncio.gather(*(self._run_lane(lane) for lane in self._lanes))

    async def _run_lane(self, lane: _Lane) -> None:
        queue = lane.queue
        while True:
            if not queue:
                lane.wakeup.clear()
                await lane.wakeup.wait()
            batch = [queue.popleft() for _ in range(min(len(queue), self._batch_max))]
            self._queued -= len(batch)
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
        try:
            self._listener(batch, results)
        except Exception:  # a bad listener call must not strand the waiting callers
            log.exception("commit listener failed")
        for pending, result in zip(batch, results, strict=True):
            try:
                pending.settle(result, None)
            except Exception:  # nor one bad callback its neighbours
                log.exception("commit callback failed")

    def _report_failure(self, batch: list[PendingAppend], started: float, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.error("event batch not stored", extra={"size": len(batch), "error": self.last_error})
        if self._observer:
            self._observer(len(batch), time.perf_counter() - started, False)

    @staticmethod
    def _fail(batch: list[PendingAppend], reason: str) -> None:
        for pending in batch:
            try:
                pending.settle(None, CommitFailed(reason))
            except Exception:
                log.exception("commit callback failed")
