"""The client's own tasks (heartbeats, renewals, resends) and the app's callbacks: a
failure in either is logged, never raised into the connection loop."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("session_hub_client")


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def call(self, callback: Callable[[Any], Any] | None, payload: Any) -> None:
        """Run an app callback, plain or async."""
        if callback is None:
            return
        try:
            result = callback(payload)
            if inspect.isawaitable(result):
                self.spawn(result)
        except Exception:
            log.exception("hub client callback failed")

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("hub client task failed", exc_info=task.exception())
