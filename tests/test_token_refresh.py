"""In-band token renewal (hub/token_refresh.py) on a real hub in token mode: the warning
before expiry, `refresh` moving the expiry without dropping the connection, the close at
the new expiry, and every kind of unacceptable refresh token refused with its code while
the connection stays open.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.auth_support import OTHER_SECRET, make_session, token, token_hub
from tests.support import HubProcess, LiveClient

SESSION = "renewals"


@pytest.fixture(scope="module")
def hub(pg_base: str) -> Iterator[HubProcess]:
    with token_hub(pg_base, HUB_TOKEN_WARNING="2") as (process, _dsn):
        make_session(process, "acme", SESSION)
        make_session(process, "acme", "elsewhere")
        yield process


async def _connect(hub: HubProcess, token_text: str, role: str = "observer") -> LiveClient:
    return await LiveClient.connect(hub.ws_url(SESSION, role), subprotocols=[f"bearer.{token_text}"])


async def test_a_refreshed_token_keeps_the_connection_until_its_own_expiry(hub: HubProcess) -> None:
    # An instructor's token watching as observer: the renewal must name the token's role.
    client = await _connect(hub, token(role="instructor", ttl=3))
    warning = await client.next_of("token_expiring", timeout=5)
    assert warning["seq"] is None and 0 <= warning["data"]["expires_in"] <= 2
    assert warning["data"]["expires_at"].endswith("Z")

    await client.send({"type": "refresh", "id": "r1", "data": {"token": token(role="instructor", ttl=6)}})
    refreshed = await client.next_of("refreshed")
    renewed_at = time.monotonic()
    assert refreshed["seq"] is None and refreshed["data"]["id"] == "r1"
    assert 4 <= refreshed["data"]["expires_in"] <= 6

    # Past the first token's expiry the connection lives on, and is warned again for the new one.
    second = await client.next_of("token_expiring", timeout=8)
    assert second["data"]["expires_at"] == refreshed["data"]["expires_at"]
    await client.send({"type": "heartbeat"})
    await client.next_of("pong")
    assert client.close_code is None
    # Not renewed again: closed (reconnect range) at the new expiry, not the first one.
    assert await client.wait_closed(10) == 3003
    assert time.monotonic() - renewed_at > 4


@pytest.mark.parametrize(
    ("case", "code", "reason"),
    [
        ("other_user", "forbidden", "other_user"),
        ("other_account", "forbidden", "other_account"),
        ("other_role", "forbidden", "other_role"),
        ("session_not_allowed", "forbidden", "session_not_allowed"),
        ("expired", "unauthorized", None),
        ("forged", "unauthorized", None),
        ("garbage", "unauthorized", None),
        ("missing", "invalid", None),
    ],
)
async def test_an_unacceptable_refresh_token_is_refused_and_the_connection_stays(
    hub: HubProcess, case: str, code: str, reason: str | None
) -> None:
    replacement = {
        "other_user": token(user="bob"),
        "other_account": token(account="globex"),
        "other_role": token(role="admin"),
        "session_not_allowed": token(sessions=["elsewhere"]),
        "expired": token(ttl=-5),
        "forged": token(key=OTHER_SECRET),
        "garbage": "not-a-jwt",
        "missing": None,
    }[case]
    client = await _connect(hub, token(ttl=600))
    data = {} if replacement is None else {"token": replacement}
    await client.send({"type": "refresh", "id": f"r-{case}", "data": data})
    error = await client.next_of("error", "refreshed")
    assert error["type"] == "error", error
    assert error["data"]["code"] == code and error["data"]["id"] == f"r-{case}"
    assert error["data"]["details"]["field"] == "token"
    assert error["data"]["details"].get("reason") == reason
    if case == "expired":
        assert "expired" in error["data"]["message"]
    await client.send({"type": "heartbeat"})
    await client.next_of("pong")
    assert client.close_code is None
    await client.close()
