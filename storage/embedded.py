"""The embedded PostgreSQL used when DATABASE_URL is unset.

`pgserver` ships a real PostgreSQL in a wheel; its data directory lives under the hub's
data directory so sessions and events survive a restart. pgserver logs every initdb and
pg_ctl run with its full output; that is kept aside and shown only when starting or
stopping fails, so a first `make run` reads as a few lines, not a wall of initdb.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("hub.storage")

T = TypeVar("T")


class _Held(logging.Handler):
    """pgserver's log records, kept (bounded) instead of printed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: deque[logging.LogRecord] = deque(maxlen=200)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_HELD = _Held()


def _hold_pgserver_logs() -> None:
    """For the life of the process: pgserver also logs from its exit handler."""
    chatter = logging.getLogger("pgserver")
    chatter.handlers[:] = [_HELD]
    chatter.propagate = False
    chatter.setLevel(logging.INFO)


@contextmanager
def _quiet(what: str) -> Iterator[None]:
    """Replay pgserver's output, at its own levels, when `what` fails."""
    _HELD.records.clear()
    try:
        yield
    except BaseException:
        log.error(f"embedded postgres: {what} failed; its output follows")
        for record in _HELD.records:
            log.handle(record)
        raise


class EmbeddedPostgres:
    def __init__(self, data_dir: str):
        self.path = Path(data_dir).resolve() / "postgres"
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server; return an asyncpg-usable DSN."""
        # pgserver asks platformdirs for a runtime dir it does not use here; the
        # warning about XDG_RUNTIME_DIR would be the first thing a newcomer reads.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver  # imported lazily: only the embedded mode needs it

        _hold_pgserver_logs()

        self.path.mkdir(parents=True, exist_ok=True)
        self._server = _run("start", lambda: pgserver.get_server(str(self.path), cleanup_mode="stop"))
        uri: str = self._server.get_uri()
        log.info("embedded postgres ready", extra={"data_dir": str(self.path)})
        return uri

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:
                _run("stop", server.cleanup)
            except Exception:  # the process is exiting anyway; report, don't mask the exit
                log.exception("embedded postgres did not stop cleanly")


def _run(what: str, action: Callable[[], T]) -> T:
    with _quiet(what):
        return action()
