"""`python -m hub archive ...`: archived session logs from the command line.

    python -m hub archive list [--account A]
    python -m hub archive export SESSION_ID [--account A] [-o FILE]
    python -m hub archive restore SESSION_ID [--account A]
    python -m hub archive restore --file FILE
    python -m hub archive run

`export` writes the session's log in the archive format (gzip'd JSON lines; `-o -` prints
the JSON lines) from its archive when it was trimmed, else from the database: the same
bytes either way. `restore` puts a log back, from the archive directory or from a file
(which may come from another deployment: the session is made where it does not exist).
`run` is one round of the retention job, as the hub runs it (it waits for no lock: if a
hub process holds it, it says so and does nothing).

Settings come from the environment like the hub's (`DATABASE_URL` or the embedded
PostgreSQL under `HUB_DATA_DIR`, `HUB_ARCHIVE_DIR`, `HUB_RETENTION_*`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from hub.config import ConfigError, Settings
from hub.events import iso
from hub.retention import ArchivedLog, RetentionJob, RetentionPolicy, archive_header, archive_root

from .archive import ArchiveFormatError, DirectoryArchive, read_file, sha256_of, write_file, write_lines
from .embedded import EmbeddedPostgres
from .pg_store import PgStore
from .retention import PgRetentionStore


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m hub archive", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="action", required=True)
    listing = commands.add_parser("list", help="archived sessions, oldest first")
    listing.add_argument("--account", help="only this account's")
    export = commands.add_parser("export", help="a session's log in the archive format")
    export.add_argument("session_id")
    export.add_argument("--account", default="default")
    export.add_argument("-o", "--output", help="file to write (default SESSION_ID.jsonl.gz; '-': JSON lines)")
    restore = commands.add_parser("restore", help="put an archived log back into the database")
    restore.add_argument("session_id", nargs="?")
    restore.add_argument("--account", default="default")
    restore.add_argument("--file", help="an archive file (e.g. from export) instead of the archive directory")
    commands.add_parser("run", help="one round of the retention job now")
    return top


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.action == "restore" and (args.session_id is None) == (args.file is None):
        print("error: restore takes a SESSION_ID or --file FILE", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(settings, args))
    except ArchiveFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    embedded = EmbeddedPostgres(settings.data_dir) if not settings.database_url else None
    dsn = settings.database_url or (embedded.start() if embedded is not None else "")
    store = await PgStore.connect(dsn, 1, 2)
    try:
        commands = _Commands(settings, store)
        return await getattr(commands, args.action)(args)
    finally:
        await store.close()
        if embedded is not None:
            embedded.stop()


class _Commands:
    def __init__(self, settings: Settings, store: PgStore):
        self.settings = settings
        self.store = store
        self.retention = PgRetentionStore(store.pool)
        self.files = DirectoryArchive(archive_root(settings))

    async def list(self, args: argparse.Namespace) -> int:
        entries = await self.retention.archives(args.account, 100_000)
        print("account\tsession_id\tevents\tseqs\tarchived_at\tstate\tlocation")
        for e in entries:
            state = "restored" if e.restored_at else "trimmed" if e.trimmed_at else "trimming"
            where = self.files.uri(e.location)
            seqs = f"{e.first_seq}-{e.last_seq}"
            print(
                f"{e.account_id}\t{e.session_id}\t{e.event_count}\t{seqs}\t{iso(e.archived_at)}\t{state}\t{where}"
            )
        return 0

    async def export(self, args: argparse.Namespace) -> int:
        archived = await self._log_of(args.session_id, args.account)
        if archived is None:
            print(f"error: no session {args.session_id!r} in account {args.account!r}", file=sys.stderr)
            return 1
        if args.output == "-":
            write_lines(sys.stdout.buffer, archived)
            return 0
        out = Path(args.output or f"{args.session_id}.jsonl.gz")
        await asyncio.to_thread(write_file, out, archived)
        print(f"{out}\t{len(archived.events)} events\tsha256 {sha256_of(out)}")
        return 0

    async def _log_of(self, session_id: str, account: str) -> ArchivedLog | None:
        """From the archive once trimmed, else from the database: the same log either way."""
        record = await self.store.get_session(account, session_id)
        if record is None:
            return None
        entry = await self.retention.archive_of(record.pk)
        if entry is not None and entry.restored_at is None and record.retained_from > 1:
            return self.files.read(entry.location)
        read = await self.retention.read_log(record.pk)
        if read is None:
            return None
        record, events = read
        return ArchivedLog(archive_header(record, events), events)

    async def restore(self, args: argparse.Namespace) -> int:
        if args.file:
            archived = read_file(Path(args.file))
        else:
            record = await self.store.get_session(args.account, args.session_id)
            entry = await self.retention.archive_of(record.pk) if record is not None else None
            if entry is None:
                print(f"error: no archive of {args.session_id!r} in {args.account!r}", file=sys.stderr)
                return 1
            if sha256_of(self.files.path_of(entry.location)) != entry.sha256:
                print(f"error: {self.files.uri(entry.location)} is not the file archived", file=sys.stderr)
                return 1
            archived = self.files.read(entry.location)
        _, inserted = await self.retention.restore(archived)
        session = archived.header["session"]
        print(f"{session['account_id']}\t{session['session_id']}\t{inserted} events restored")
        return 0

    async def run(self, args: argparse.Namespace) -> int:
        job = RetentionJob(self.retention, self.files, RetentionPolicy.from_settings(self.settings))
        result = await job.run_once()
        if not result.held:
            print("another process is running the retention job now; nothing done")
        else:
            print(f"{result.archived} sessions archived, {result.trimmed_events} events trimmed")
        return 0
