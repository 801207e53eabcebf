"""The sends the hub has not acknowledged yet.

Each keeps its client id for its whole life: it goes out again with the same id after
every reconnect (the hub stores an id once and answers a repeat with the first ack), until
the ack resolves it with its seq or a refusal fails it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from .errors import HubError


@dataclass
class Pending:
    id: str
    type: str
    data: dict[str, Any]
    future: asyncio.Future[int]
    sends: int = 0
    retries: int = 0  # `unavailable` answers: the hub asked for it again

    def frame(self) -> str:
        return json.dumps({"type": self.type, "id": self.id, "data": self.data})


class Outbox:
    def __init__(self) -> None:
        self._pending: dict[str, Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, client_id: str, type: str, data: dict[str, Any]) -> tuple[Pending, bool]:
        """The pending send for `client_id` (a new one unless it is already waiting), and
        whether it is new."""
        pending = self._pending.get(client_id)
        if pending is not None:
            return pending, False
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        pending = self._pending[client_id] = Pending(client_id, type, data, future)
        return pending, True

    def get(self, client_id: str | None) -> Pending | None:
        return self._pending.get(client_id) if client_id is not None else None

    def waiting(self) -> list[Pending]:
        return list(self._pending.values())

    def forget(self, client_id: str) -> None:
        self._pending.pop(client_id, None)

    def acked(self, client_id: str, seq: int) -> None:
        pending = self._pending.pop(client_id, None)
        if pending is not None and not pending.future.done():
            pending.future.set_result(seq)

    def refused(self, client_id: str, error: HubError) -> None:
        pending = self._pending.pop(client_id, None)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(error)

    def fail_all(self, error: HubError) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        self._pending.clear()
