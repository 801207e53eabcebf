"""Background tasks that cannot die unseen.

Every long-running loop runs under `loop()`: a crash is logged with its traceback,
counted in metrics, remembered for `/readyz`, and the loop restarts after a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .metrics import HubMetrics

log = logging.getLogger("hub.tasks")


class Supervisor:
    def __init__(self, metrics: HubMetrics):
        self.metrics = metrics
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._failures: dict[str, tuple[float, str]] = {}

    def loop(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        self.tasks[name] = asyncio.create_task(self._run(name, body), name=name)

    def once(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Like `loop`, for work that ends: retried after a failure, forgotten once done
        (so that /readyz does not report it as stopped)."""
        task = asyncio.create_task(self._run(name, body), name=name)
        self.tasks[name] = task

        def done(t: asyncio.Task[None]) -> None:
            if self.tasks.get(name) is t and not t.cancelled():
                del self.tasks[name]

        task.add_done_callback(done)

    def watch(self, name: str, task: asyncio.Task[None] | None) -> None:
        """Track a task started elsewhere; its death is reported like a loop's."""
        if task is None:
            return
        self.tasks[name] = task

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                self._record(name, t.exception())

        task.add_done_callback(done)

    async def _run(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        backoff = 0.1
        while True:
            try:
                await body()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._record(name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _record(self, name: str, exc: BaseException | None) -> None:
        message = f"{type(exc).__name__}: {exc}"
        self._failures[name] = (time.time(), message)
        self.metrics.background_failures.labels(name).inc()
        log.error("background task failed", exc_info=exc, extra={"task": name, "error": message})

    def failures(self, within: float = 30.0) -> dict[str, str]:
        """Failures seen recently, and tasks that stopped when they should not have."""
        now = time.time()
        recent = {n: msg for n, (t, msg) in self._failures.items() if now - t <= within}
        for name, task in self.tasks.items():
            if task.done() and not task.cancelled():
                recent.setdefault(name, "stopped")
        return recent

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self.tasks.clear()
