"""Every limit the hub enforces, each set low through its environment variable.

One hub with small limits serves the module; every test uses sessions and users of its
own so that the limits of one test do not touch another.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
import websockets

from hub.config import Settings
from tests.auth_support import auth, make_session, snapshot, token, token_hub
from tests.support import ROOT, HubProcess, LiveClient, api

LIMITS = {
    "HUB_MAX_FRAME_BYTES": "4096",
    "HUB_RATE_LIMIT": "5",
    "HUB_RATE_BURST": "10",
    "HUB_RATE_STRIKES": "30",
    "HUB_MAX_CONNECTIONS_PER_USER": "2",
    "HUB_MAX_BODY_BYTES": "2048",
    "HUB_ALLOWED_ORIGINS": "https://good.example",
}


@pytest.fixture(scope="module")
def limited(pg_base: str) -> Iterator[tuple[HubProcess, str]]:
    with token_hub(pg_base, **LIMITS) as (hub, dsn):
        yield hub, dsn


def new_session(hub: HubProcess, **fields: object) -> str:
    session_id = f"lim-{uuid.uuid4().hex[:8]}"
    make_session(hub, "acme", session_id, **fields)
    return session_id


def user_token(role: str = "instructor") -> str:
    return token(user=f"u-{uuid.uuid4().hex[:8]}", role=role)


DOCUMENTED = {
    "HUB_MAX_FRAME_BYTES": "max_frame_bytes",
    "HUB_RATE_LIMIT": "rate_limit_per_second",
    "HUB_RATE_BURST": "rate_limit_burst",
    "HUB_RATE_STRIKES": "rate_limit_strikes",
    "HUB_MAX_ERRORS": "max_errors_per_connection",
    "HUB_MAX_CONNECTIONS_PER_USER": "max_connections_per_user",
    "HUB_DEFAULT_MAX_PARTICIPANTS": "default_max_participants",
    "HUB_MAX_BODY_BYTES": "max_body_bytes",
    "HUB_ALLOWED_ORIGINS": "allowed_origins",
    "HUB_IDLE_TIMEOUT": "idle_timeout",
}


def test_every_limit_is_documented_with_its_real_default(monkeypatch):
    table = (ROOT / "docs" / "auth.md").read_text()
    documented = dict(re.findall(r"^\| `(HUB_[A-Z_]+)` \| ([^|]+?) \|", table, re.MULTILINE))
    assert set(DOCUMENTED) <= set(documented)
    for name in DOCUMENTED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HUB_SECRET", "x")
    monkeypatch.delenv("HUB_DEV", raising=False)
    settings = Settings.from_env()
    assert settings.max_frame_bytes == 64 * 1024  # the default
    for name, attribute in DOCUMENTED.items():
        actual = getattr(settings, attribute)
        if isinstance(actual, list):
            assert actual == [] and documented[name].startswith("(empty"), name
        else:
            assert float(documented[name]) == actual, (name, documented[name], actual)


async def test_a_frame_over_the_limit_closes_with_1009_and_the_room_goes_on(limited):
    hub, _ = limited
    session_id = new_session(hub)
    sender = await LiveClient.connect(hub.ws_url(session_id, "instructor", token=user_token()))
    other = await LiveClient.connect(hub.ws_url(session_id, "instructor", token=user_token()))
    neighbour = await LiveClient.connect(hub.ws_url(session_id, "observer", token=user_token("observer")))
    head = '{"type":"note","id":"fits","data":{"content":"'
    fits = head + "x" * (4096 - len(head) - 3) + '"}}'
    assert len(fits.encode()) == 4096
    await sender.ws.send(fits)
    assert (await sender.next_of("ack", "error"))["type"] == "ack"
    await sender.ws.send(fits.replace("fits", "over") + " ")
    assert await sender.wait_closed() == 1009
    ack = await other.request("note", {"content": "still here"})
    assert ack["type"] == "ack"
    await neighbour.wait_for_seq(ack["data"]["seq"])
    for client in (other, neighbour):
        await client.close()


async def test_sustained_flooding_gets_rate_limited_then_closed_with_3508(limited):
    hub, _ = limited
    session_id = new_session(hub)
    flooder = await LiveClient.connect(hub.ws_url(session_id, "observer", token=user_token("observer")))
    neighbour = await LiveClient.connect(hub.ws_url(session_id, "observer", token=user_token("observer")))
    try:
        for _ in range(200):
            await flooder.send({"type": "heartbeat"})
    except websockets.ConnectionClosed:
        pass
    assert await flooder.wait_closed() == 3508
    kinds = [m["type"] for m in flooder.messages]
    assert kinds.count("pong") >= 10
    refusals = [m["data"] for m in flooder.messages if m["type"] == "error"]
    assert refusals and {r["code"] for r in refusals} == {"rate_limited"}
    await neighbour.send({"type": "heartbeat"})
    assert (await neighbour.next_of("pong"))["type"] == "pong"
    await neighbour.close()


async def test_a_client_that_slows_down_is_forgiven(limited):
    hub, _ = limited
    session_id = new_session(hub)
    client = await LiveClient.connect(hub.ws_url(session_id, "observer", token=user_token("observer")))
    for _ in range(20):
        await client.send({"type": "heartbeat"})
    await client.next_of("error")
    await asyncio.sleep(2.5)  # the bucket refills at 5 a second
    for _ in range(8):
        await client.send({"type": "heartbeat"})
    await asyncio.sleep(0.3)
    last = client.messages[-8:]
    assert [m["type"] for m in last] == ["pong"] * 8
    assert client.close_code is None
    await client.close()


async def test_connections_per_user_are_capped_with_3509(limited):
    hub, _ = limited
    session_id = new_session(hub)
    mine = user_token("observer")
    first = await LiveClient.connect(hub.ws_url(session_id, "observer", token=mine))
    second = await LiveClient.connect(hub.ws_url(session_id, "observer", token=mine))
    third = await LiveClient.connect(hub.ws_url(session_id, "observer", token=mine), expect_welcome=False)
    assert await third.wait_closed() == 3509
    assert "HUB_MAX_CONNECTIONS_PER_USER" in third.messages[0]["data"]["message"]
    someone_else = await LiveClient.connect(hub.ws_url(session_id, "observer", token=user_token("observer")))
    await first.close()
    await asyncio.sleep(0.2)
    again = await LiveClient.connect(hub.ws_url(session_id, "observer", token=mine))
    for client in (second, someone_else, again):
        await client.close()


async def test_max_participants_closes_the_next_one_with_3505(limited):
    hub, _ = limited
    session_id = new_session(hub, max_participants=1)
    one = token(user="p-one", role="participant")
    first = await LiveClient.connect(hub.ws_url(session_id, "participant", token=one))
    second = await LiveClient.connect(
        hub.ws_url(session_id, "participant", token=token(user="p-two", role="participant")),
        expect_welcome=False,
    )
    assert await second.wait_closed() == 3505
    # instructors and observers do not take a participant's seat; the same user may come back
    teacher = await LiveClient.connect(hub.ws_url(session_id, "instructor", token=user_token()))
    again = await LiveClient.connect(hub.ws_url(session_id, "participant", token=one))
    assert again.welcome["data"]["participant_count"] == 1
    for client in (first, teacher, again):
        await client.close()


async def test_http_bodies_over_the_limit_answer_413_and_store_nothing(limited):
    hub, dsn = limited
    before = await snapshot(dsn)
    headers = auth(token(role="admin"))
    big = {"title": "t", "instructor": "i", "notes": "x" * 3000}
    response = await api(hub, "POST", "/api/v2/sessions/create", big, headers=headers)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(10):
            yield b'{"padding": "' + b"y" * 500 + b'",'
        yield b'"title": "t"}'

    async with httpx.AsyncClient(base_url=hub.base_url, headers=headers, timeout=15) as client:
        streamed = await client.post("/api/v2/sessions/create", content=chunks())
    assert streamed.status_code == 413
    assert await snapshot(dsn) == before


async def test_browsers_from_other_origins_are_refused(limited):
    hub, _ = limited
    session_id = new_session(hub)
    url = hub.ws_url(session_id, "observer", token=user_token("observer"))
    evil = await LiveClient.connect(url, expect_welcome=False, origin="https://evil.example")
    assert await evil.wait_closed() == 3503
    assert "HUB_ALLOWED_ORIGINS" in evil.messages[0]["data"]["message"]
    for origin in ("https://good.example", f"http://127.0.0.1:{hub.port}", None):
        allowed = await LiveClient.connect(url, origin=origin)
        await allowed.close()
    headers = auth(token(role="admin"))
    path = f"/api/v2/session/{session_id}"
    refused = await api(hub, "GET", path, headers={**headers, "Origin": "https://evil.example"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    allowed_http = await api(hub, "GET", path, headers={**headers, "Origin": "https://good.example"})
    assert allowed_http.status_code == 200
