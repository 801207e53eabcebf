"""The webhook store seam: endpoints, delivery cursors and the attempts made.

`storage.webhooks.PgWebhookStore` implements it on PostgreSQL. What the dispatcher
relies on:

- **Cursor.** Each (endpoint, session) pair has a cursor: every event up to
  `delivered_seq` is done. A cursor is created the first time the session has events for
  the endpoint; it starts at 0 for a session created after the endpoint, otherwise after
  the last event written before the endpoint existed (an endpoint receives what happens
  after it was registered; `replay` asks for older events).
- **Lease.** `claim` hands a cursor with work to one owner at a time, until its lease
  expires; only the owner may `save` it (a save by anyone else answers None and changes
  nothing), so two owners never work on one cursor at once.
- **Replay.** `replay` never moves a leased cursor under its owner's feet: it records
  the wish, and the owner's next `save` (or the next `claim`) restarts from there.
- **Atomicity.** A `save` records the attempts and moves the cursor in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..store import StoredEvent


@dataclass(frozen=True)
class Webhook:
    id: str
    account_id: str
    url: str
    event_types: tuple[str, ...] | None  # None: every type
    session_id: str | None  # None: every session of the account
    secret: str
    created_at: datetime


@dataclass(frozen=True)
class WebhookStatus:
    """An endpoint as its owner sees it: configuration and delivery health."""

    webhook: Webhook
    backlog: int  # events after the cursors, in sessions that have some
    lag_seconds: float | None  # age of the oldest event not yet done
    retrying_sessions: int
    failures_last_hour: int
    last_error: str | None
    last_delivered_at: datetime | None


@dataclass(frozen=True)
class Lease:
    """A cursor claimed by one owner: deliver events after `delivered_seq`, up to `head_seq`."""

    webhook: Webhook
    session_pk: int
    session_id: str
    delivered_seq: int
    attempts: int
    head_seq: int

    @property
    def key(self) -> str:
        return f"{self.webhook.id}:{self.session_pk}"


@dataclass(frozen=True)
class Attempt:
    webhook_id: str
    session_id: str
    seq: int
    event_type: str
    message_id: str
    attempt: int
    status: str  # "delivered" | "retrying" | "failed"
    response_code: int | None
    error: str | None
    duration_ms: int
    next_retry_at: datetime | None
    attempted_at: datetime
    id: int | None = None


@dataclass
class Progress:
    """Where the owner got to: written by `save`."""

    delivered_seq: int
    attempts: int = 0
    next_attempt_at: datetime | None = None
    attempts_made: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True)
class Saved:
    delivered_seq: int  # may be earlier than saved: a replay restarted the cursor
    head_seq: int
    released: bool


class WebhookStore(Protocol):
    # management, always within one account

    async def create(
        self,
        account_id: str,
        webhook_id: str,
        url: str,
        event_types: Sequence[str] | None,
        session_id: str | None,
        secret: str,
    ) -> Webhook: ...

    async def count(self, account_id: str) -> int: ...

    async def statuses(self, account_id: str) -> list[WebhookStatus]: ...

    async def status(self, account_id: str, webhook_id: str) -> WebhookStatus | None: ...

    async def delete(self, account_id: str, webhook_id: str) -> bool: ...

    async def attempts(self, webhook_id: str, limit: int, before_id: int | None) -> list[Attempt]:
        """The endpoint's attempts, newest first (`before_id` pages back)."""
        ...

    async def replay(self, webhook_id: str, session_pk: int, since: int) -> None:
        """Deliver the session's events after `since` again, in order."""
        ...

    # delivery

    async def any_webhooks(self) -> bool: ...

    async def track(self, session_pks: Sequence[int] | None) -> int:
        """Create the missing cursors of these sessions (None: of every session with events
        since its endpoints were created); answer how many were created."""
        ...

    async def claim(
        self, owner: str, ttl: float, limit: int, session_pks: Sequence[int] | None, busy: Sequence[str]
    ) -> list[Lease]:
        """Lease up to `limit` cursors that have work now (events after the cursor, no
        backoff pending), skipping those leased by others and the owner's `busy` keys."""
        ...

    async def events(
        self, session_pk: int, after: int, types: Sequence[str] | None, limit: int
    ) -> tuple[int, list[StoredEvent]]:
        """(scanned, events): every event of the given types (None: all) with
        after < seq ≤ scanned, ascending, at most `limit`. Read at one instant, so
        nothing up to `scanned` can still appear."""
        ...

    async def save(self, owner: str, lease: Lease, progress: Progress, ttl: float, mode: str) -> Saved | None:
        """Record the attempts and move the cursor. `mode`: "renew" the lease, "release"
        it, or release it "if_idle" (nothing after the cursor). None: the lease was lost
        (another owner has it, or the cursor is gone) and nothing was written."""
        ...

    async def prune(self, keep_per_webhook: int) -> int:
        """Forget all but the newest attempts of each endpoint."""
        ...
