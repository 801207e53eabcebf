"""Logs: a readable line per event at a terminal, JSON lines otherwise or when asked,
and the embedded PostgreSQL's own output only when it fails."""

from __future__ import annotations

import json
import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from hub.logs import JsonFormatter, TextFormatter
from storage.embedded import EmbeddedPostgres
from tests.support import ROOT

EMIT = (
    "import logging, sys\n"
    "from hub.logs import configure\n"
    "configure(sys.argv[1])\n"
    "logging.getLogger('hub').info('hub ready', extra={'node_id': 'n1', 'broker': 'in-process'})\n"
)


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("hub.ws", logging.WARNING, __file__, 1, "connection failed", (), None)
    record.__dict__.update(extra)
    return record


def test_text_lines_carry_time_level_logger_message_and_extras():
    line = TextFormatter().format(_record(session="morning 1", attempt=3))
    assert "\n" not in line
    time_part, rest = line.split(" ", 1)
    assert len(time_part) == len("12:34:56.789") and time_part[2] == ":"
    assert rest == "WARNING hub.ws  connection failed  session='morning 1' attempt=3"


def test_json_lines_keep_their_fields():
    entry = json.loads(JsonFormatter().format(_record(session="s1")))
    assert entry["level"] == "warning" and entry["logger"] == "hub.ws"
    assert entry["msg"] == "connection failed" and entry["session"] == "s1" and entry["ts"].endswith("Z")


def _emit_on_a_terminal(log_format: str) -> str:
    leader, follower = pty.openpty()
    try:
        subprocess.run(
            [sys.executable, "-c", EMIT, log_format], cwd=ROOT, stderr=follower, check=True, timeout=30
        )
        return os.read(leader, 65536).decode()
    finally:
        os.close(leader)
        os.close(follower)


def test_a_terminal_gets_readable_lines_unless_json_is_asked_for():
    readable = _emit_on_a_terminal("auto")
    assert "hub ready" in readable and "node_id=n1 broker=in-process" in readable
    assert not readable.lstrip().startswith("{")
    asked = _emit_on_a_terminal("json").strip()
    assert json.loads(asked)["node_id"] == "n1"


def test_not_a_terminal_gets_json_lines():
    done = subprocess.run(
        [sys.executable, "-c", EMIT, "auto"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert json.loads(done.stderr)["msg"] == "hub ready"


def test_the_embedded_postgres_output_is_shown_only_when_it_fails(tmp_path: Path, caplog):
    data = tmp_path / "postgres"
    data.mkdir()
    (data / "PG_VERSION").write_text("99\n")  # not a data directory PostgreSQL can start
    caplog.set_level(logging.INFO)
    with pytest.raises(Exception):  # noqa: B017  # pgserver's own error type
        EmbeddedPostgres(str(tmp_path)).start()
    said = caplog.text
    assert "embedded postgres: start failed; its output follows" in said
    assert "could not start server" in said  # pg_ctl's own words, replayed
