"""Delivers the log to webhook endpoints: the background task behind every endpoint.

Work is a cursor (endpoint, session) with events after it. The dispatcher leases such
cursors from the store, one process at a time per cursor, and drives each leased cursor
in a task of its own: the session's events in seq order, one request at a time, an event
retried on the schedule of `hub.webhooks.retry` before any later one goes out. So a
failing event holds back that session for that endpoint only. Progress and attempts are
saved in batches; a process that dies re-sends at most the events it delivered since its
last save (at least once, never lost), after its leases expire.

An attempt starts only while the lease has at least the attempt's timeout (plus a
margin) left, renewing it first if needed: the lease cannot expire during an attempt, so
no other process can start delivering the same cursor while one is in flight.

Wake-ups: this process's commits (`notify`) at once; other processes' commits by a poll
every `POLL_INTERVAL`; sessions new to the endpoints and endpoints created elsewhere by a
sweep every `SWEEP_INTERVAL`; a pending retry at its due time.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..store import StoredEvent
from . import signing
from .retry import retry_delay
from .sender import Outcome, Sender
from .store import Attempt, Lease, Progress, Saved, WebhookStore
from .tail import Tails

log = logging.getLogger("hub.webhooks")

POLL_INTERVAL = 0.5
SWEEP_INTERVAL = 2.0
PRUNE_INTERVAL = 300.0
KEEP_ATTEMPTS = 1000  # per endpoint, for GET /webhooks/{id}/deliveries
PAGE = 200
FLUSH_EVERY = 100  # attempts
FLUSH_INTERVAL = 1.0  # seconds
LINGER = 2.0  # seconds a caught-up cursor stays leased, waiting for the next event
LEASE_MARGIN = 2.0  # seconds of lease beyond an attempt's timeout


@dataclass(frozen=True)
class DeliveryConfig:
    retry_base: float = 5.0
    max_attempts: int = 8
    timeout: float = 10.0
    lease_ttl: float = 30.0
    max_workers: int = 256


class _Lost(Exception):
    """The lease went to another owner (or the cursor was deleted): stop at once."""


class Dispatcher:
    def __init__(self, store: WebhookStore, sender: Sender, config: DeliveryConfig):
        self.store = store
        self.sender = sender
        self.config = config
        self.owner = uuid.uuid4().hex
        self.delivered = 0
        self.failed_attempts = 0
        self._enabled = False  # any endpoint exists (set by the sweep and by `webhooks_changed`)
        self._dirty: set[int] = set()
        self._recheck: set[int] = set()
        self._tracked: set[int] = set()
        self._poll_now = False
        self._wake = asyncio.Event()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._busy_sessions: Counter[int] = Counter()
        self._failure: BaseException | None = None
        self._commits: dict[int, asyncio.Event] = {}  # sessions whose workers wait for a commit
        self.tails = Tails(store, PAGE)

    # signals

    def notify(self, session_pk: int) -> None:
        """An event of the session was committed here (never blocks, never fails)."""
        if self._enabled:
            self._dirty.add(session_pk)
            self._wake.set()
            self.tails.committed(session_pk)
            signal = self._commits.pop(session_pk, None)
            if signal is not None:
                signal.set()

    def commit_signal(self, session_pk: int) -> asyncio.Event:
        """Set by the session's next commit here: take it before looking for new events,
        so a commit in between is not missed."""
        signal = self._commits.get(session_pk)
        if signal is None:
            signal = self._commits[session_pk] = asyncio.Event()
        return signal

    def webhooks_changed(self) -> None:
        self._enabled = True
        self._tracked.clear()
        self._poll_now = True
        self._wake.set()

    # the supervised loop

    async def run(self) -> None:
        try:
            await self._sweep()
            last_sweep = last_poll = last_prune = time.monotonic()
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
                except TimeoutError:
                    pass
                self._wake.clear()
                if self._failure is not None:
                    failure, self._failure = self._failure, None
                    raise failure
                now = time.monotonic()
                if now - last_sweep >= SWEEP_INTERVAL:
                    await self._sweep()
                    last_sweep = last_poll = now
                elif self._poll_now or now - last_poll >= POLL_INTERVAL:
                    self._poll_now = False
                    if self._enabled:
                        await self._claim(None)
                    last_poll = now
                if self._dirty:
                    await self._claim_dirty()
                if now - last_prune >= PRUNE_INTERVAL:
                    await self.store.prune(KEEP_ATTEMPTS)
                    last_prune = now
        finally:
            await self._stop_workers()

    async def _sweep(self) -> None:
        self._enabled = await self.store.any_webhooks()
        self._tracked.clear()
        if self._enabled:
            await self.store.track(None)
            await self._claim(None)

    async def _claim_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for session_pk in [pk for pk in dirty if self._busy_sessions[pk]]:
            # Its workers here are woken by the commit itself; any other endpoint's cursor
            # of it is found by the poll, and it is looked at again when they finish.
            self._recheck.add(session_pk)
            dirty.discard(session_pk)
        if not dirty:
            return
        untracked = [pk for pk in dirty if pk not in self._tracked]
        if untracked:
            await self.store.track(untracked)
            self._tracked.update(untracked)
            if len(self._tracked) > 100_000:
                self._tracked.clear()
        await self._claim(sorted(dirty))

    async def _claim(self, session_pks: list[int] | None) -> None:
        room = self.config.max_workers - len(self._workers)
        if room <= 0:
            return
        started = time.monotonic()
        leases = await self.store.claim(
            self.owner, self.config.lease_ttl, room, session_pks, list(self._workers)
        )
        for lease in leases:
            if lease.key in self._workers:
                continue  # still driven here (its lease had run out meanwhile): one worker only
            self._start(lease, started + self.config.lease_ttl)

    def _start(self, lease: Lease, deadline: float) -> None:
        task = asyncio.create_task(self._drive(lease, deadline), name=f"webhook-{lease.key}")
        self._workers[lease.key] = task
        self._busy_sessions[lease.session_pk] += 1
        task.add_done_callback(lambda t: self._finished(lease, t))

    def _finished(self, lease: Lease, task: asyncio.Task[None]) -> None:
        self._workers.pop(lease.key, None)
        self._busy_sessions[lease.session_pk] -= 1
        if self._busy_sessions[lease.session_pk] <= 0:
            del self._busy_sessions[lease.session_pk]
            self._commits.pop(lease.session_pk, None)
            self.tails.forget(lease.session_pk)
            if lease.session_pk in self._recheck:
                self._recheck.discard(lease.session_pk)
                self._dirty.add(lease.session_pk)
                self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            # Surfaces through run(): logged, counted and shown in /readyz by the supervisor.
            self._failure = task.exception()
            self._wake.set()

    async def _stop_workers(self) -> None:
        tasks = list(self._workers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake_at(self, when: datetime) -> None:
        """Look for due work again at `when` (a retry becomes due then)."""
        delay = max(0.0, (when - datetime.now(UTC)).total_seconds())

        def due() -> None:
            self._poll_now = True
            self._wake.set()

        asyncio.get_running_loop().call_later(delay + 0.01, due)

    # one cursor

    async def _drive(self, lease: Lease, deadline: float) -> None:
        run = _CursorRun(self, lease, deadline)
        try:
            await run.go()
        except _Lost:
            log.info("webhook lease lost", extra={"webhook": lease.webhook.id, "session": lease.session_id})


class _CursorRun:
    """Delivering one leased cursor until it is caught up, waits for a retry, or is lost."""

    def __init__(self, dispatcher: Dispatcher, lease: Lease, deadline: float):
        self.d = dispatcher
        self.lease = lease
        self.deadline = deadline
        self.seq = lease.delivered_seq
        self.attempts = lease.attempts
        self.made: list[Attempt] = []
        self.saved_at = time.monotonic()

    async def go(self) -> None:
        hook, pk = self.lease.webhook, self.lease.session_pk
        idle_since: float | None = None
        while True:
            signal = self.d.commit_signal(pk)
            scanned, events = await self.d.tails.read(pk, self.seq, hook.event_types, PAGE)
            restarted = False
            for event in events:
                if self.deadline - time.monotonic() < self.d.config.timeout + LEASE_MARGIN:
                    restarted = self._apply(await self._save("renew"))
                    if restarted:
                        break
                if not await self._deliver(event):
                    return  # waiting for a retry: the lease is released
                if self._due_for_save():
                    restarted = self._apply(await self._save("renew"))
                    if restarted:
                        break
            if restarted:
                continue
            self.seq = max(self.seq, scanned)  # the rest of the range is of other types
            if events or idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= LINGER:
                saved = await self._save("if_idle")
                if saved.released:
                    return
                self._apply(saved)
                idle_since = time.monotonic()
            elif self._due_for_save():
                self._apply(await self._save("renew"))
            if not events:
                # Caught up: keep the lease a little, woken by this process's next commit
                # of the session (or the poll interval, for commits of other processes).
                try:
                    await asyncio.wait_for(signal.wait(), POLL_INTERVAL)
                except TimeoutError:
                    pass

    def _due_for_save(self) -> bool:
        """Progress is saved in batches; an idle cursor only renews its lease in time."""
        if len(self.made) >= FLUSH_EVERY:
            return True
        if self.made and time.monotonic() - self.saved_at >= FLUSH_INTERVAL:
            return True
        return self.deadline - time.monotonic() < self.d.config.timeout + LEASE_MARGIN + FLUSH_INTERVAL

    async def _deliver(self, event: StoredEvent) -> bool:
        """Attempt one event; False when it failed and waits for a retry."""
        hook, config = self.lease.webhook, self.d.config
        msg_id = signing.message_id(self.lease.session_pk, event.seq)
        payload = signing.body(hook.account_id, self.lease.session_id, event)
        now = datetime.now(UTC)
        headers = signing.headers(hook.secret, msg_id, int(now.timestamp()), payload)
        outcome = await self.d.sender.send(hook.url, headers, payload)
        self.attempts += 1
        if outcome.delivered:
            self._record(event, msg_id, outcome, "delivered", None, now)
            self.d.delivered += 1
            self.seq, self.attempts = event.seq, 0
            return True
        self.d.failed_attempts += 1
        if self.attempts >= config.max_attempts:
            self._record(event, msg_id, outcome, "failed", None, now)
            log.warning(
                "webhook event given up",
                extra={"webhook": hook.id, "session": self.lease.session_id, "seq": event.seq},
            )
            self.seq, self.attempts = event.seq, 0
            return True
        retry_at = datetime.now(UTC) + timedelta(seconds=retry_delay(self.attempts, config.retry_base))
        self._record(event, msg_id, outcome, "retrying", retry_at, now)
        self._apply(await self._save("release", retry_at))
        self.d.wake_at(retry_at)
        return False

    def _record(
        self, event: StoredEvent, msg_id: str, outcome: Outcome, status: str, retry_at: datetime | None,
        at: datetime,
    ) -> None:  # fmt: skip
        self.made.append(
            Attempt(
                webhook_id=self.lease.webhook.id,
                session_id=self.lease.session_id,
                seq=event.seq,
                event_type=event.type,
                message_id=msg_id,
                attempt=self.attempts,
                status=status,
                response_code=outcome.response_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                next_retry_at=retry_at,
                attempted_at=at,
            )
        )

    async def _save(self, mode: str, retry_at: datetime | None = None) -> Saved:
        progress = Progress(self.seq, self.attempts, retry_at, self.made)
        started = time.monotonic()
        saved = await self.d.store.save(self.d.owner, self.lease, progress, self.d.config.lease_ttl, mode)
        if saved is None:
            raise _Lost()
        self.made = []
        self.saved_at = started
        self.deadline = started + self.d.config.lease_ttl
        return saved

    def _apply(self, saved: Saved) -> bool:
        """Take the cursor as saved; True when a replay moved it back (re-read from there)."""
        if saved.delivered_seq != self.seq:
            self.seq, self.attempts = saved.delivered_seq, 0
            return True
        return False
