"""Starting and stopping the hub as a newcomer does: bad settings, a busy port, Ctrl-C."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time

import annotated_types
import pytest

from handlers.server import GC_YOUNG_THRESHOLD, settle_heap
from hub.config import Settings
from tests.support import ROOT, HubProcess, free_port


def serve(*args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "serve", "--no-links", *args],
        cwd=ROOT,
        env={**os.environ, "HUB_DEV": "1", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("HUB_RATE_BURST", "abc", "valid integer"),
        ("HUB_PRESENCE_TTL", "-5", "greater than or equal to 1"),
        ("HUB_IDLE_TIMEOUT", "0", "greater than 0"),
        ("HUB_MAX_FRAME_BYTES", "99999999999", "less than or equal to"),
        ("HUB_DEV", "maybe", "valid boolean"),
        ("HUB_LOG_FORMAT", "xml", "'json'"),
        ("REDIS_URL", "localhost:6379", "redis://"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_exit_status_2(name, value, why):
    done = serve("--port", "1", **{name: value})
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {name}"), done.stderr
    assert why in lines[0], lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_every_numeric_setting_has_a_range():
    numeric = {n: f for n, f in Settings.model_fields.items() if f.annotation in (int, float)}
    assert len(numeric) >= 25
    for name, field in numeric.items():
        kinds = {type(rule) for rule in field.metadata}
        assert kinds & {annotated_types.Ge, annotated_types.Gt}, f"{name} has no lower bound"
        assert kinds & {annotated_types.Le, annotated_types.Lt}, f"{name} has no upper bound"


def test_a_busy_port_fails_at_once_saying_how_to_pick_another():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        # No DATABASE_URL: an embedded PostgreSQL would start first if the port were
        # checked late; it is not, so this fails within a second or two.
        done = serve("--host", "127.0.0.1", "--port", str(port), DATABASE_URL="", HUB_DATA_DIR="/nonexistent")
    assert done.returncode == 2 and time.monotonic() - started < 10, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0], done.stderr
    assert f"make run PORT={port + 1}" in lines[0] and f"--port {port + 1}" in lines[0]
    assert "ready" not in done.stdout + done.stderr


def test_make_run_passes_the_port_and_installs_only_the_running_lock():
    done = subprocess.run(
        ["make", "-n", "-B", "run", "PORT=8123"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "hub serve --port 8123" in done.stdout
    assert "requirements/run.txt" in done.stdout and "requirements/test.txt" not in done.stdout


def test_ctrl_c_drains_and_exits_without_a_traceback(database):
    hub = HubProcess({"HUB_DEV": "1", "DATABASE_URL": database}, port=free_port()).start()
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGINT)
    assert hub.proc.wait(20) == 130
    logs = hub.logs()
    assert '"msg":"draining"' in logs
    assert "Traceback" not in logs and "KeyboardInterrupt" not in logs, logs[-2000:]


def test_every_setting_is_documented_in_operations_md():
    page = (ROOT / "docs" / "operations.md").read_text()
    aliases = [field.validation_alias for field in Settings.model_fields.values()]
    names = [alias for alias in aliases if isinstance(alias, str)]
    assert len(names) >= 35
    missing = [name for name in names if f"`{name}`" not in page]
    assert not missing, f"docs/operations.md does not list {missing}"


def test_settling_the_heap_freezes_startup_objects_and_spaces_young_collections():
    """What `python -m hub serve` does once it serves (handlers/server.py)."""
    threshold = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 10_000  # modules, models, the app
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
