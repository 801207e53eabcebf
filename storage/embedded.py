"""The embedded PostgreSQL used when DATABASE_URL is unset.

`pgserver` ships a real PostgreSQL in a wheel; its data directory lives under the hub's
data directory so sessions and events survive a restart.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("hub.storage")


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

        self.path.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(str(self.path), cleanup_mode="stop")
        uri: str = self._server.get_uri()
        log.info("embedded postgres ready", extra={"data_dir": str(self.path)})
        return uri

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:
                server.cleanup()
            except Exception:  # the process is exiting anyway; report, don't mask the exit
                log.exception("embedded postgres did not stop cleanly")
