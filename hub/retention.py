"""Retention: the log of a session that ended long ago is archived, then trimmed.

The policy (docs/operations.md, "Retention"): once a session has ended (`ended_at` set:
completed or cancelled) more than `HUB_RETENTION_DAYS` days ago (per account:
`HUB_RETENTION_ACCOUNT_DAYS`, where `never` keeps an account's logs whole), its whole log
is written to an archive file, then deleted from the database. A session whose log is
live, whose records projection has not caught up with it yet, or whose webhook
deliveries have not (every endpoint served, or given up), is not trimmed yet.

What a trimmed session keeps: its record (the session row, untouched), its records (the
projection: interactions, summaries, notes), and its metrics, stored with the archive
entry because they are a fold over the log (`hub.records.session_metrics`). Its
`retained_from` moves past the head, so a resume into the trimmed range answers
`resume_unavailable` with reason `trimmed`, and the content endpoint says where the
replay went (`archived`). `python -m hub archive restore` puts a log back.

Steps for one session, each safe to repeat after a crash at any point:

1. read the session and its whole log; compute its metrics;
2. write the archive file (`ArchiveFiles.write`: written aside, then renamed into place);
3. record the archive entry and move `retained_from` past the head, in one transaction;
4. delete the events in short batches (writers of other sessions never wait on it),
   then mark the entry trimmed. An entry left untrimmed is finished by the next run.

Exactly one process runs the job at a time: `RetentionStore.exclusive` (a PostgreSQL
advisory lock, released if the process dies). Every process runs the loop under its
supervisor; whichever takes the lock does the work, the others skip that round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from .config import Settings
from .events import iso
from .records.session_metrics import compute_metrics
from .store import SessionRecord, StoredEvent

log = logging.getLogger("hub.retention")

ARCHIVE_FORMAT = "session-hub-archive/1"
SESSION_FIELDS = (
    "account_id",
    "session_id",
    "title",
    "session_type",
    "status",
    "instructor",
    "max_participants",
    "head_seq",
    "current_technique",
    "scheduled_start",
    "started_at",
    "ended_at",
    "created_at",
    "attributes",
)


@dataclass(frozen=True)
class RetentionPolicy:
    default_days: float
    account_days: dict[str, float | None] = field(default_factory=dict)  # None: never

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(settings.retention_days, dict(settings.retention_account_days))

    def days_for(self, account_id: str) -> float | None:
        return self.account_days.get(account_id, self.default_days)

    def never(self) -> list[str]:
        return [account for account, days in self.account_days.items() if days is None]

    def overrides(self) -> dict[str, float]:
        return {account: days for account, days in self.account_days.items() if days is not None}


def archive_root(settings: Settings) -> Path:
    """`HUB_ARCHIVE_DIR`, or `archive` under `HUB_DATA_DIR`."""
    return Path(settings.archive_dir) if settings.archive_dir else Path(settings.data_dir) / "archive"


@dataclass(frozen=True)
class ArchivedEvent:
    """One event as an archive holds it: the log row, dedupe key included (a resent id
    after a restore must still answer the first ack)."""

    seq: int
    type: str
    ts: datetime
    actor: dict[str, Any] | None
    data: dict[str, Any]
    dedupe_key: str | None = None

    def stored(self, session_pk: int) -> StoredEvent:
        return StoredEvent(session_pk, self.seq, self.type, self.ts, self.actor, self.data)


@dataclass(frozen=True)
class ArchivedLog:
    """A session's log with the session it belongs to: what an archive file holds."""

    header: dict[str, Any]
    events: list[ArchivedEvent]


@dataclass(frozen=True)
class ArchiveFile:
    location: str  # where `ArchiveFiles.read` finds it again (a path under the archive root)
    sha256: str  # of the file's bytes: a restore from the archive checks it


@dataclass(frozen=True)
class ArchiveEntry:
    session_pk: int
    account_id: str
    session_id: str
    location: str
    sha256: str
    event_count: int
    first_seq: int
    last_seq: int
    metrics: dict[str, Any]
    archived_at: datetime
    trimmed_at: datetime | None
    restored_at: datetime | None


class ArchiveFiles(Protocol):
    """Where archives are written (`storage.archive.DirectoryArchive`). Blocking file I/O:
    the job calls it from a thread."""

    def write(self, archived: ArchivedLog) -> ArchiveFile:
        """Write (or overwrite) the session's archive, completely or not at all."""
        ...

    def read(self, location: str) -> ArchivedLog: ...

    def uri(self, location: str) -> str:
        """The archive's address for people (the content endpoint, `archive list`)."""
        ...


class RetentionStore(Protocol):
    """The database side (`storage.retention.PgRetentionStore`)."""

    def exclusive(self) -> AbstractAsyncContextManager[bool]:
        """Hold the job's lock for the block; yields False when another process holds it."""
        ...

    async def due(self, policy: RetentionPolicy, limit: int) -> list[int]:
        """Sessions to archive now (ended before their account's cutoff, not archived
        yet, the records projection and webhook deliveries caught up), oldest end first."""
        ...

    async def unfinished(self) -> list[int]:
        """Sessions archived whose trim did not finish."""
        ...

    async def read_log(self, session_pk: int) -> tuple[SessionRecord, list[ArchivedEvent]] | None: ...

    async def record(
        self,
        record: SessionRecord,
        file: ArchiveFile,
        events: Sequence[ArchivedEvent],
        metrics: dict[str, Any],
    ) -> bool:
        """Store the entry and move `retained_from` past the head, atomically; False (and
        nothing changed) when the log moved since it was read."""
        ...

    async def trim(self, session_pk: int) -> int:
        """Delete the archived events in short batches, then mark the entry trimmed."""
        ...

    async def archive_of(self, session_pk: int) -> ArchiveEntry | None: ...

    async def archives(self, account_id: str | None, limit: int) -> list[ArchiveEntry]: ...

    async def restore(self, archived: ArchivedLog) -> tuple[int, int]:
        """Put an archived log back (creating the session where it does not exist, as in
        another deployment); answers (session pk, events inserted). Events already there
        are left as they are."""
        ...


def archive_header(record: SessionRecord, events: Sequence[ArchivedEvent]) -> dict[str, Any]:
    session = {name: getattr(record, name) for name in SESSION_FIELDS}
    for name, value in session.items():
        if isinstance(value, datetime):
            session[name] = iso(value)
    return {
        "format": ARCHIVE_FORMAT,
        "session": session,
        "event_count": len(events),
        "first_seq": events[0].seq if events else None,
        "last_seq": events[-1].seq if events else None,
    }


@dataclass
class RetentionRun:
    held: bool  # False: another process ran the job this round
    archived: int = 0
    trimmed_events: int = 0


class RetentionJob:
    def __init__(
        self,
        store: RetentionStore,
        files: ArchiveFiles,
        policy: RetentionPolicy,
        on_archived: Callable[[int, int], None] | None = None,  # (sessions, events) of a run
        sessions_per_run: int = 200,
    ):
        self.store = store
        self.files = files
        self.policy = policy
        self.on_archived = on_archived
        self.sessions_per_run = sessions_per_run
        self.last_run: float | None = None  # time.time() of the last completed run

    async def run_once(self) -> RetentionRun:
        async with self.store.exclusive() as held:
            run = RetentionRun(held)
            if not held:
                return run
            for session_pk in await self.store.unfinished():
                run.trimmed_events += await self.store.trim(session_pk)
            for session_pk in await self.store.due(self.policy, self.sessions_per_run):
                trimmed = await self.archive(session_pk)
                if trimmed is not None:
                    run.archived += 1
                    run.trimmed_events += trimmed
        self.last_run = time.time()
        if run.archived or run.trimmed_events:
            log.info("sessions archived", extra={"sessions": run.archived, "events": run.trimmed_events})
            if self.on_archived is not None:
                self.on_archived(run.archived, run.trimmed_events)
        return run

    async def archive(self, session_pk: int) -> int | None:
        """Archive and trim one session; None when it was not archived (gone, or it moved)."""
        read = await self.store.read_log(session_pk)
        if read is None:
            return None
        record, events = read
        metrics = compute_metrics(e.stored(session_pk) for e in events)
        file = await asyncio.to_thread(self.files.write, ArchivedLog(archive_header(record, events), events))
        if not await self.store.record(record, file, events, metrics):
            return None
        return await self.store.trim(session_pk)

    async def run_forever(self, interval: float) -> None:
        """The supervised loop: a failure is logged and counted by the supervisor, which
        restarts it; a half-done session is finished by the next run."""
        while True:
            await self.run_once()
            await asyncio.sleep(interval)


class Archives:
    """What readers of a session learn about its archive: the content endpoint's note on
    the replay, and the metrics that outlive the log."""

    def __init__(self, store: RetentionStore, files: ArchiveFiles):
        self.store = store
        self.files = files

    async def replay_note(self, record: SessionRecord) -> dict[str, Any] | None:
        """None while the whole log is in the database."""
        if record.retained_from <= 1:
            return None
        note: dict[str, Any] = {"reason": "trimmed", "retained_from": record.retained_from}
        entry = await self.store.archive_of(record.pk)
        if entry is not None and entry.restored_at is None:
            note.update(
                location=self.files.uri(entry.location),
                format="gzip JSON lines (" + ARCHIVE_FORMAT + ")",
                event_count=entry.event_count,
                first_seq=entry.first_seq,
                last_seq=entry.last_seq,
                archived_at=iso(entry.archived_at),
                restore=f"python -m hub archive restore {record.session_id} --account {record.account_id}",
            )
        return note

    async def metrics(self, record: SessionRecord) -> dict[str, Any] | None:
        """A trimmed session's metrics, as computed from its whole log just before; None
        while the log is whole (its metrics are the log's)."""
        if record.retained_from <= 1:
            return None
        entry = await self.store.archive_of(record.pk)
        return dict(entry.metrics) if entry is not None else None
