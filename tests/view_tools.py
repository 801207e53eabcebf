"""Members' views of the log, checked from outside: the documented audience table and
the `prev_seq` rule of docs/protocol.md ("Views"), written out here independently of
hub/audience.py so that a drift in either shows."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

from tests.support import LiveClient

# docs/protocol.md, "Audiences": the default audience of every durable type.
EVERYONE_TYPES = frozenset(
    {
        "session_started",
        "session_paused",
        "session_resumed",
        "session_ending",
        "session_ended",
        "technique_changed",
        "hrv_summary",
        "hrv_milestone",
        "achievement_unlocked",
        "prompt",
        "announcement",
        "session_update",
        "session_summary",
    }
)
STAFF_TYPES = frozenset(
    {"participant_joined", "participant_left", "hrv_update", "response", "feedback", "note"}
)


def expected_view(log: list[dict[str, Any]], role: str, opened: frozenset[str] = frozenset()) -> list[int]:
    """Seqs of `log` that `role` receives; `opened` are staff types a session opened to everyone."""
    if role != "participant":
        return [m["seq"] for m in log]
    return [m["seq"] for m in log if m["type"] in EVERYONE_TYPES or m["type"] in opened]


def assert_chain(events: list[dict[str, Any]], first_prev_at_most: int) -> None:
    """Each event names the one before it in the view; the first names one already held."""
    assert events, "no events"
    assert events[0]["prev_seq"] <= first_prev_at_most, events[0]
    for before, after in itertools.pairwise(events):
        assert after["prev_seq"] == before["seq"], (before["seq"], after)


class ViewClient:
    """A member following the client rule: keep `last` (every event of the view up to it
    is held); an event with `prev_seq > last` reveals a gap: reconnect with `since=last`."""

    def __init__(self, url: Callable[[int | None], str]):
        self._url = url
        self.client: LiveClient | None = None
        self.last = 0
        self.accepted: list[dict[str, Any]] = []
        self.gaps = 0
        self.connects = 0
        self.duplicates = 0

    async def connect(self, since: int | None = None) -> ViewClient:
        self.client = await LiveClient.connect(self._url(since))
        self.connects += 1
        if since is None:
            self.last = self.client.welcome["data"]["head_seq"]
        return self

    def _take(self, message: dict[str, Any]) -> bool:
        """Apply the rule to one message; False when the view has a gap."""
        if message.get("seq") is None:
            return True
        if message["seq"] <= self.last:
            self.duplicates += 1
            return True
        if message["prev_seq"] > self.last:
            return False
        self.accepted.append(message)
        self.last = message["seq"]
        return True

    async def follow(self, until: Callable[[ViewClient], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not until(self):
            assert time.monotonic() < deadline, f"view stuck at {self.last}"
            assert self.client is not None
            try:
                message = await self.client.next(timeout=0.2)
            except TimeoutError:
                if self.client.close_code is not None:  # dropped: resume where the view stands
                    await self.connect(self.last)
                continue
            if not self._take(message):
                self.gaps += 1
                await self.client.close()
                await self.connect(self.last)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


async def settle(*clients: LiveClient, quiet: float = 0.3, timeout: float = 10.0) -> None:
    """Wait until no client has received anything for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    counts = [len(c.messages) for c in clients]
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet)
        now = [len(c.messages) for c in clients]
        if now == counts:
            return
        counts = now
    raise TimeoutError("clients kept receiving")
