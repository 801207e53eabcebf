"""Archive files in a directory (implements `hub.retention.ArchiveFiles`).

One file per session, `<root>/<account>/<session_id>.jsonl.gz` (account and session ids
percent-encoded, so any id is one safe path component): gzip'd JSON lines, readable
with `zcat` and any JSON tool, independent of this hub's database. Line 1 is the header
(`format`, the session's fields, event count, first and last seq); every further line
is one event, in seq order: `{"seq", "type", "ts", "actor", "data", "dedupe_key"}`.

A file is written under a temporary name, flushed to disk and renamed into place, so a
reader (or a crash) never meets half a file. The directory may be a mounted bucket
(s3fs, gcsfuse, an NFS share); the hub speaks no object-store protocol itself.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import orjson

from hub.events import iso
from hub.retention import ARCHIVE_FORMAT, ArchivedEvent, ArchivedLog, ArchiveFile


class ArchiveFormatError(Exception):
    """Not an archive this hub can read (or a damaged one)."""


def _component(value: str) -> str:
    encoded = quote(value, safe="-_.:")
    return encoded if encoded not in (".", "..") else encoded.replace(".", "%2E")


def event_line(event: ArchivedEvent) -> bytes:
    return orjson.dumps(
        {
            "seq": event.seq,
            "type": event.type,
            "ts": iso(event.ts),
            "actor": event.actor,
            "data": event.data,
            "dedupe_key": event.dedupe_key,
        }
    )


def write_lines(out: IO[bytes] | gzip.GzipFile, archived: ArchivedLog) -> None:
    out.write(orjson.dumps(archived.header) + b"\n")
    for event in archived.events:
        out.write(event_line(event) + b"\n")


def read_lines(lines: Iterable[bytes]) -> ArchivedLog:
    """An archive's JSON lines (decompressed) back into a log; checks what it can."""
    rows = iter(lines)
    try:
        header = orjson.loads(next(rows))
    except (StopIteration, orjson.JSONDecodeError) as exc:
        raise ArchiveFormatError("no archive header") from exc
    if not isinstance(header, dict) or header.get("format") != ARCHIVE_FORMAT:
        raise ArchiveFormatError(f"not a {ARCHIVE_FORMAT} archive")
    events = list(_events(rows))
    seqs = [e.seq for e in events]
    if len(events) != header.get("event_count") or seqs != sorted(set(seqs)):
        raise ArchiveFormatError("the events do not match the header (a truncated or damaged file?)")
    return ArchivedLog(header, events)


def _events(rows: Iterator[bytes]) -> Iterator[ArchivedEvent]:
    for number, raw in enumerate(rows, start=2):
        if not raw.strip():
            continue
        try:
            row: dict[str, Any] = orjson.loads(raw)
            yield ArchivedEvent(
                seq=int(row["seq"]),
                type=str(row["type"]),
                ts=datetime.fromisoformat(str(row["ts"]).replace("Z", "+00:00")),
                actor=row.get("actor"),
                data=row.get("data") or {},
                dedupe_key=row.get("dedupe_key"),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ArchiveFormatError(f"line {number}: {exc}") from exc


def write_file(path: Path, archived: ArchivedLog) -> None:
    """The archive format, flushed to disk. mtime 0 in the gzip header: the same log makes
    the same bytes (and the same sha256), whoever writes it and when."""
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
            write_lines(out, archived)
        raw.flush()
        os.fsync(raw.fileno())


def read_file(path: Path) -> ArchivedLog:
    try:
        with gzip.open(path, "rb") as raw:
            return read_lines(raw)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ArchiveFormatError(f"{path}: {exc}") from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as raw:
        for chunk in iter(lambda: raw.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class DirectoryArchive:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def path_of(self, location: str) -> Path:
        path = (self.root / location).resolve()
        if self.root not in path.parents:
            raise ArchiveFormatError(f"{location!r} is outside the archive directory")
        return path

    def write(self, archived: ArchivedLog) -> ArchiveFile:
        """`<root>/<account>/<session_id>.jsonl.gz`, replacing an earlier one whole."""
        session = archived.header["session"]
        location = f"{_component(session['account_id'])}/{_component(session['session_id'])}.jsonl.gz"
        path = self.path_of(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            write_file(partial, archived)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return ArchiveFile(location, sha256_of(path))

    def read(self, location: str) -> ArchivedLog:
        return read_file(self.path_of(location))

    def uri(self, location: str) -> str:
        return self.path_of(location).as_uri()
