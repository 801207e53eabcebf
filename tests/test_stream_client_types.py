"""hub-stream.js keeps two copies of the hub's rules, kept in step here:

- `STREAM_TYPES`: every message type a stream may carry, because the browser's EventSource
  only dispatches the `event:` names it was told about; a durable type added to the hub
  (`hub.events.DURABLE_TYPES`) but not to the list would be silently dropped by every SSE
  page;
- `STATUS_CLOSE`: a refused stream's HTTP status as the close code a WebSocket refused the
  same way gets (`hub.errors`), which decides whether the client tries again; a status
  missing there would be retried forever (a 422 for a bad `since`, say)."""

from __future__ import annotations

from typing import Any

from hub.close_codes import CloseCode
from hub.errors import CLOSE_CODE, HTTP_STATUS, SessionFull, TooManyConnections
from hub.events import CONTROL_TYPES, DURABLE_TYPES
from tests.support import run_js

# What a stream carries beside the durable events: the control messages a read-only member
# gets (no ack, pong or refreshed: it sends nothing), the coalesced presence count, and the
# stream's own `close` (hub/stream_member.py).
STREAM_CONTROL = {"welcome", "error", "token_expiring"}
STREAM_ONLY = {"presence", "close"}


def stream_module() -> dict[str, Any]:
    script = (
        "const m = await import('./static/hub-stream.js');"
        "console.log(JSON.stringify({types: m.STREAM_TYPES, statuses: m.STATUS_CLOSE}));"
    )
    loaded: dict[str, Any] = run_js(script, "the hub-stream.js check")
    return loaded


def test_the_stream_client_listens_for_every_type_the_hub_streams() -> None:
    assert STREAM_CONTROL <= CONTROL_TYPES
    listed = stream_module()["types"]
    assert len(listed) == len(set(listed)), "a type is listed twice"
    assert set(listed) == DURABLE_TYPES | STREAM_CONTROL | STREAM_ONLY


def test_a_refused_stream_closes_as_a_refused_socket_would() -> None:
    expected = {HTTP_STATUS[code]: int(CLOSE_CODE[code]) for code in HTTP_STATUS}
    # The refusals of a join whose close is more precise than their code's; a 429 may also
    # be the HTTP rate limit (3508), which a client treats as 3509 (neither is retried).
    # An ended session answers 204.
    for refusal in (SessionFull, TooManyConnections):
        assert refusal.close is not None
        expected[HTTP_STATUS[refusal.kind]] = int(refusal.close)
    expected[204] = int(CloseCode.SESSION_ENDED)
    listed = {int(status): close for status, close in stream_module()["statuses"].items()}
    assert listed == expected
