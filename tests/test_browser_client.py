"""The browser client's own unit tests (static/tests/*.test.mjs) under `node --test`.

They cover hub-client.js's ordering, dedupe, gap, backoff, resend and close-code logic
with a fake WebSocket. Without node they skip, except under CI=true where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support import ROOT

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_hub_client_unit() -> None:
    node = shutil.which("node")
    if node is None:
        message = "node is missing: the hub-client unit tests need it"
        if IN_CI:
            pytest.fail(message + " (CI=true)", pytrace=False)
        pytest.skip(message)
    result = subprocess.run(
        [node, "--test", "static/tests/"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
