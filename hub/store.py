"""The store seam: what the hub needs from durable storage.

`storage.pg_store.PgStore` implements it on PostgreSQL. The guarantees below are the
ones the rest of the hub relies on; an implementation that cannot keep one must not
pretend to.

- **Seq.** `append_batch` gives each accepted event the next seq of its session: 1, 2, 3,
  … with no gap and no reuse, across every hub process sharing the database. Within one
  batch, events of one session get ascending seqs in the order given.
- **Durability.** When `append_batch` returns, every accepted event is committed. If it
  raises, none of the batch may be assumed stored; the caller reports `unavailable`.
  `StoreUnavailable` means the database is unreachable; any other error is about the
  data, and the caller may retry the items one by one to find the one at fault.
- **Idempotency.** An item with a `dedupe_key` already stored for its session is not stored
  again; its result carries the first seq and `duplicate=True`.
- **Status.** Each item is checked against the session's status at the moment its seq is
  assigned (the lifecycle table, `hub.lifecycle`); lifecycle items move the status
  atomically with their append. A refused item has `error` set (`not_found` or `conflict`) and takes no seq.
- **Visibility.** If seq n is visible to `read_events`, so is every seq below n.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from .errors import Conflict, Unavailable


@dataclass
class SessionRecord:
    pk: int
    account_id: str
    session_id: str
    title: str
    session_type: str
    status: str
    instructor: str | None
    max_participants: int
    head_seq: int
    retained_from: int
    current_technique: dict[str, Any] | None
    scheduled_start: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attributes: dict[str, Any] = field(default_factory=dict)
    audience: dict[str, str] = field(default_factory=dict)  # overrides set at creation


# The write path's records are named tuples: immutable, and built several times per event
# on the hot path, where a frozen dataclass costs three times as much to construct.
class AppendRequest(NamedTuple):
    session_pk: int
    type: str
    data: dict[str, Any]
    actor: dict[str, Any] | None
    dedupe_key: str | None = None


class AppendResult(NamedTuple):
    seq: int | None
    ts: datetime | None
    data: dict[str, Any] | None  # the data as stored (lifecycle events gain fields)
    duplicate: bool = False
    error: str | None = None  # an ErrorCode: not_found | conflict
    status: str | None = None  # the session status after this item


@dataclass(frozen=True)
class StoredEvent:
    session_pk: int
    seq: int
    type: str
    ts: datetime
    actor: dict[str, Any] | None
    data: dict[str, Any]


class SessionStore(Protocol):
    async def create_session(self, account_id: str, fields: dict[str, Any]) -> SessionRecord:
        """Insert a new scheduled session. Raises `SessionExists` when the id is taken."""
        ...

    async def get_session(self, account_id: str, session_id: str) -> SessionRecord | None: ...

    async def get_session_by_pk(self, pk: int) -> SessionRecord | None: ...

    async def list_sessions(
        self,
        account_id: str | None,
        statuses: Sequence[str] | None = None,
        session_type: str | None = None,
        limit: int = 100,
        after_pk: int | None = None,
    ) -> list[SessionRecord]:
        """Sessions in creation order (pk ascending); `account_id=None` spans accounts."""
        ...


class EventLog(Protocol):
    async def append_batch(self, items: Sequence[AppendRequest]) -> list[AppendResult]:
        """Store every item in one round trip; results in the order of `items`."""
        ...

    async def read_events(
        self, session_pk: int, after_seq: int, limit: int, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """Events with after_seq < seq (≤ upto_seq), ascending, at most `limit`."""
        ...

    async def count_events(self, session_pk: int) -> int: ...

    async def heads(self, session_pks: Sequence[int]) -> dict[int, int]:
        """The current head seq of each session, in one query."""
        ...

    async def trim_log(self, session_pk: int, before_seq: int) -> int:
        """Drop events below `before_seq` (retention); resume before it is then refused."""
        ...

    async def read_typed(
        self, session_pk: int, types: Sequence[str], after_seq: int, limit: int, newest_first: bool = False
    ) -> list[StoredEvent]:
        """Events of the given types with seq > after_seq, ascending (or the newest first)."""
        ...

    async def latest_seq_of(
        self, session_pk: int, types: Sequence[str], after_seq: int, upto_seq: int
    ) -> int:
        """The highest seq in (after_seq, upto_seq] of one of `types`; 0 when there is none."""
        ...

    async def latest_audience_change(self, session_pk: int, upto_seq: int) -> StoredEvent | None:
        """The last `session_update` at or below `upto_seq` whose data sets `audience`."""
        ...


class Store(SessionStore, EventLog, Protocol):
    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        ...

    async def close(self) -> None: ...


class SessionExists(Conflict):
    pass


class StoreUnavailable(Unavailable):
    """The database cannot be reached: nothing of the call was stored or read."""
