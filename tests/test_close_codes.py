"""One close-code table: the browser client's (`static/hub-client.js`) and the Python
client's (`clients/python/session_hub_client/close_codes.py`) are kept in step with the
hub's (`hub/close_codes.py`; `tests/test_errors.py` keeps `docs/protocol.md` in step).
Same names, and the same answer to "reconnect after this code?" for every code.
"""

from __future__ import annotations

import pytest
import session_hub_client.close_codes as python_client

from hub.close_codes import CloseCode, reason, should_reconnect
from tests.support import run_js

EVERY_CODE = range(1000, 5000)  # 4000–4999 are private: the clients' own, never the hub's


@pytest.fixture(scope="module")
def js_client() -> dict[str, object]:
    low, high = EVERY_CODE.start, EVERY_CODE.stop
    script = (
        "const m = await import('./static/hub-client.js');"
        f"const codes = []; for (let c = {low}; c < {high}; c++) codes.push(c);"
        "const reconnect = codes.filter((c) => m.shouldReconnect(c));"
        "console.log(JSON.stringify({names: m.CLOSE_NAMES, reconnect}));"
    )
    loaded: dict[str, object] = run_js(script, "the close-code check of hub-client.js")
    return loaded


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
