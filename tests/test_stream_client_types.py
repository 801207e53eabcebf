"""hub-stream.js lists every message type a stream may carry, because the browser's
EventSource only dispatches the `event:` names it was told about: a durable type added to
the hub (`hub.events.DURABLE_TYPES`) but not to `STREAM_TYPES` would be silently dropped
by every SSE page. This keeps the list in step with the hub's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from hub.events import CONTROL_TYPES, DURABLE_TYPES
from tests.support import ROOT

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# What a stream carries beside the durable events: the control messages a read-only member
# gets (no ack, pong or refreshed: it sends nothing), the coalesced presence count, and the
# stream's own `close` (hub/stream_member.py).
STREAM_CONTROL = {"welcome", "error", "token_expiring"}
STREAM_ONLY = {"presence", "close"}


def stream_types() -> list[str]:
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("node is missing: the hub-stream.js check needs it (CI=true)")
        pytest.skip("node is missing")
    script = "const m = await import('./static/hub-stream.js'); console.log(JSON.stringify(m.STREAM_TYPES));"
    result = subprocess.run(
        [node, "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_the_stream_client_listens_for_every_type_the_hub_streams() -> None:
    assert STREAM_CONTROL <= CONTROL_TYPES
    listed = stream_types()
    assert len(listed) == len(set(listed)), "a type is listed twice"
    assert set(listed) == DURABLE_TYPES | STREAM_CONTROL | STREAM_ONLY
