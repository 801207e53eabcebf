"""In-process presence for a single hub process."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

from .presence import Admission, MemberChange, Roster, counts_as_participant


class MemoryPresence:
    def __init__(self) -> None:
        # room -> member_key -> conn_id set; room -> member_key -> info
        self._conns: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._info: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        # room -> (participants, staff), each member_key -> info in join order
        self._kinds: dict[str, tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]] = {}
        # room -> member keys whose participant_left is being written
        self._departing: dict[str, set[str]] = defaultdict(set)
        # (account, user) -> conn_ids holding one of the user's connection slots
        self._slots: dict[tuple[str, str], set[str]] = {}

    async def add(self, room: str, member_key: str, conn_id: str, info: dict[str, Any]) -> bool:
        return (await self.join(room, member_key, conn_id, info, None)).first

    async def join(
        self, room: str, member_key: str, conn_id: str, info: dict[str, Any], participant_limit: int | None
    ) -> Admission:
        # No await inside: atomic with respect to every other coroutine of the process.
        participants, staff = self._kinds.setdefault(room, ({}, {}))
        present = member_key in self._info.get(room, {})
        if (
            counts_as_participant(info)
            and not present
            and participant_limit is not None
            and len(participants) >= participant_limit
        ):
            if not participants and not staff:
                del self._kinds[room]
            return Admission(False, False, len(participants))
        conns = self._conns[room][member_key]
        first = not conns
        conns.add(conn_id)
        if first:
            self._info[room][member_key] = info
            # dicts keep insertion order: join order
            (participants if counts_as_participant(info) else staff)[member_key] = info
        returning = member_key in self._departing.get(room, ())
        return Admission(True, first and not returning, len(participants))

    async def roster(self, room: str, limit: int) -> Roster:
        participants, staff = self._kinds.get(room, ({}, {}))
        return Roster(
            len(participants),
            list(itertools.islice(participants.values(), limit)),
            list(itertools.islice(staff.values(), limit)),
        )

    async def remove(self, room: str, member_key: str, conn_id: str) -> bool:
        members = self._conns.get(room)
        if members is None or member_key not in members:
            return False
        conns = members[member_key]
        conns.discard(conn_id)
        if conns:
            return False
        del members[member_key]
        self._info[room].pop(member_key, None)
        for kind in self._kinds.get(room, ()):
            kind.pop(member_key, None)
        if not members:
            self._conns.pop(room, None)
            self._info.pop(room, None)
            self._kinds.pop(room, None)
        departing = self._departing[room]
        if member_key in departing:
            return False  # its departure is being written already; `settle` tells of the return
        departing.add(member_key)
        return True

    async def settle(self, room: str, member_key: str) -> dict[str, Any] | None:
        departing = self._departing.get(room)
        if departing is None or member_key not in departing:
            return None
        departing.discard(member_key)
        if not departing:
            del self._departing[room]
        return self._info.get(room, {}).get(member_key)

    async def connection_count(self, room: str, member_key: str) -> int:
        return len(self._conns.get(room, {}).get(member_key, ()))

    async def members(self, room: str) -> dict[str, dict[str, Any]]:
        return dict(self._info.get(room, {}))

    async def claim_slots(self, account: str, conn_id: str, limits: dict[str, int]) -> str | None:
        # No await inside: atomic with respect to every other coroutine of the process.
        for user, limit in limits.items():
            held = self._slots.get((account, user), ())
            if conn_id not in held and len(held) >= limit:
                return user
        for user in limits:
            self._slots.setdefault((account, user), set()).add(conn_id)
        return None

    async def release_slots(self, account: str, users: list[str], conn_id: str) -> None:
        for user in users:
            held = self._slots.get((account, user))
            if held is None:
                continue
            held.discard(conn_id)
            if not held:
                del self._slots[(account, user)]

    async def refresh(self) -> list[MemberChange]:
        return []  # nothing expires, so nothing comes back

    async def rooms(self) -> list[str]:
        return list(dict.fromkeys([*self._conns, *self._departing]))

    async def reap(self, room: str, limit: int) -> list[MemberChange]:
        return []  # a single process never outlives its own entries

    async def close(self) -> None:
        self._conns.clear()
        self._info.clear()
        self._kinds.clear()
        self._departing.clear()
        self._slots.clear()
