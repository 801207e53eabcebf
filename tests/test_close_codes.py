"""One close-code table, four copies kept in step: the hub's (`hub/close_codes.py`), the
browser client's (`static/hub-client.js`), the Python client's
(`clients/python/session_hub_client/close_codes.py`) and the one in `docs/protocol.md`.
Same names, and the same answer to "reconnect after this code?" for every code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import session_hub_client.close_codes as python_client

from hub.close_codes import CloseCode, reason, should_reconnect
from tests.support import ROOT

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EVERY_CODE = range(1000, 5000)  # 4000–4999 are private: the clients' own, never the hub's


@pytest.fixture(scope="module")
def js_client() -> dict[str, object]:
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("node is missing: the close-code check of hub-client.js needs it (CI=true)")
        pytest.skip("node is missing")
    low, high = EVERY_CODE.start, EVERY_CODE.stop
    script = (
        "const m = await import('./static/hub-client.js');"
        f"const codes = []; for (let c = {low}; c < {high}; c++) codes.push(c);"
        "const reconnect = codes.filter((c) => m.shouldReconnect(c));"
        "console.log(JSON.stringify({names: m.CLOSE_NAMES, reconnect}));"
    )
    result = subprocess.run(
        [node, "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def docs_table() -> dict[int, tuple[str, bool]]:
    """code -> (name, reconnect) from the close-code table of docs/protocol.md."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d{4}) \| `?([a-z_ ]+?)`? \| (yes|no)\b", section, flags=re.M)
    return {int(code): (name.replace(" ", "_"), answer == "yes") for code, name, answer in rows}


def test_the_clients_name_every_code_the_hub_sends_as_the_hub_does(js_client: dict[str, object]) -> None:
    js_names = {int(code): name for code, name in dict(js_client["names"]).items()}  # type: ignore[call-overload]
    assert js_names == python_client.CLOSE_NAMES, "hub-client.js and the Python client disagree"
    for code in CloseCode:
        assert python_client.CLOSE_NAMES.get(code) == reason(code), f"{code} is named differently"


def test_the_clients_reconnect_exactly_when_the_hub_says_to(js_client: dict[str, object]) -> None:
    js_reconnect = set(js_client["reconnect"])  # type: ignore[call-overload]
    python_reconnect = {code for code in EVERY_CODE if python_client.should_reconnect(code)}
    assert js_reconnect == python_reconnect
    hub_reconnect = {code for code in EVERY_CODE if should_reconnect(code)}
    assert {c for c in python_reconnect if c < 4000} == hub_reconnect


def test_the_documented_table_is_the_hubs_table() -> None:
    documented = docs_table()
    for code in CloseCode:
        if code < 3000 and code not in documented:
            continue  # the RFC's own codes are summarised in prose
        assert code in documented, f"{code} ({reason(code)}) is not documented"
        name, reconnect = documented[code]
        assert reconnect == should_reconnect(code), f"{code}: the docs say reconnect={reconnect}"
        if code >= 3000:
            assert name == reason(code)
    unknown = set(documented) - {int(c) for c in CloseCode}
    assert not unknown, f"the docs list codes the hub does not send: {unknown}"
