"""Join links over HTTP and WebSocket in token mode (hub/invites.py, handlers/invites.py):
who may create, list and revoke them; a seat's token names the session, role and chosen
name (and that name cannot be replaced by the socket's `name`); renewal; every refusal
typed; max_uses holds under racing claims; another account sees nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import jwt
import pytest

from tests.auth_support import SECRET, token
from tests.support import HubProcess, LiveClient, api

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def hub(hub_factory: Any) -> HubProcess:
    return hub_factory(HUB_DEV="0", HUB_SECRET=SECRET, HUB_INVITE_TOKEN_TTL="120")  # type: ignore[no-any-return]


def auth(role: str = "instructor", account: str = "acme", **claims: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {token(account=account, role=role, **claims)}"}


async def new_session(hub: HubProcess, session_id: str = "yoga-1", account: str = "acme") -> str:
    body = {"session_id": session_id, "title": "Sunrise Yoga", "instructor": "Sarah"}
    response = await api(hub, "POST", "/api/v2/sessions/create", body, headers=auth(account=account))
    assert response.status_code == 201, response.text
    started = await api(hub, "POST", f"/api/v2/session/{session_id}/start", headers=auth(account=account))
    assert started.status_code == 200, started.text
    return session_id


async def invite(hub: HubProcess, session_id: str, **body: Any) -> dict[str, Any]:
    response = await api(hub, "POST", f"/api/v2/session/{session_id}/invites", body, headers=auth())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def join(hub: HubProcess, code: str, name: str) -> Any:
    return await api(hub, "POST", f"/j/{code}/token", {"name": name})


async def test_create_list_join_renew_revoke(hub: HubProcess) -> None:
    session_id = await new_session(hub)
    created = await invite(hub, session_id, max_uses=5, expires_in=3600, label="Front desk")
    code = created["code"]
    assert created["url"] == f"{hub.base_url}/j/{code}"
    assert (created["role"], created["state"], created["uses"], created["max_uses"]) == (
        "participant",
        "active",
        0,
        5,
    )
    page = await api(hub, "GET", f"/j/{code}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    shown = (await api(hub, "GET", f"/j/{code}/invite")).json()
    assert shown["title"] == "Sunrise Yoga" and shown["state"] == "active" and shown["role"] == "participant"

    seat = await join(hub, code, "  Ana  ")
    assert seat.status_code == 201, seat.text
    body = seat.json()
    claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert claims["account"] == "acme" and claims["role"] == "participant"
    assert claims["sessions"] == [session_id] and claims["name"] == "Ana"
    assert claims["sub"] == body["user_id"] and body["user_id"].startswith("guest-")
    assert 110 <= claims["exp"] - claims["iat"] <= 120
    assert body["page"] == "/participant" and body["renewal"]

    # The socket takes the token's name, whatever name the query asks for.
    url = hub.ws_url(session_id, "participant", name="Someone Else")
    ana = await LiveClient.connect(url, subprotocols=[f"bearer.{body['token']}"])
    assert ana.welcome["data"]["role"] == "participant"
    assert ana.welcome["actor"]["name"] == "Ana"
    sent = await ana.request("hrv_update", {"hrv": 50})
    assert sent["type"] == "ack"
    # The token opens only this session.
    other = await LiveClient.connect(
        hub.ws_url("yoga-2", "participant"), subprotocols=[f"bearer.{body['token']}"], expect_welcome=False
    )
    assert (await other.next())["data"]["code"] == "not_found"

    renewed = await api(hub, "POST", f"/j/{code}/token", {"renewal": body["renewal"]})
    assert renewed.status_code == 200, renewed.text
    again = jwt.decode(renewed.json()["token"], SECRET, algorithms=["HS256"])
    assert (again["sub"], again["name"], again["role"]) == (claims["sub"], "Ana", "participant")
    assert "renewal" not in renewed.json()
    forged = await api(hub, "POST", f"/j/{code}/token", {"renewal": "x" * 43})
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "unauthorized"

    listed = (await api(hub, "GET", f"/api/v2/session/{session_id}/invites", headers=auth())).json()
    assert listed["count"] == 1 and listed["invites"][0]["uses"] == 1

    revoked = await api(hub, "DELETE", f"/api/v2/session/{session_id}/invites/{code}", headers=auth())
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    for refused in (
        await join(hub, code, "Ben"),
        await api(hub, "POST", f"/j/{code}/token", {"renewal": body["renewal"]}),
    ):
        assert refused.status_code == 410, refused.text
        assert refused.json()["error"]["code"] == "gone"
        assert refused.json()["error"]["details"] == {"reason": "revoked"}
        assert "revoked" in refused.json()["error"]["message"]
    assert (await api(hub, "GET", f"/j/{code}/invite")).json()["state"] == "revoked"
    await ana.close()
    await other.close()


async def test_who_may_manage_invites(hub: HubProcess) -> None:
    session_id = await new_session(hub)
    await new_session(hub, "rival-1", account="rival")
    path = f"/api/v2/session/{session_id}/invites"
    assert (await api(hub, "POST", path, {})).status_code == 401
    for role in ("participant", "observer"):
        refused = await api(hub, "POST", path, {}, headers=auth(role))
        assert refused.status_code == 403, refused.text
    assert (await api(hub, "POST", path, {}, headers=auth("admin"))).status_code == 201
    # Another account's instructor: the session is not there.
    assert (await api(hub, "POST", path, {}, headers=auth(account="rival"))).status_code == 404
    assert (await api(hub, "GET", path, headers=auth(account="rival"))).status_code == 404
    code = (await invite(hub, session_id))["code"]
    rival_path = f"/api/v2/session/rival-1/invites/{code}"
    assert (await api(hub, "DELETE", rival_path, headers=auth(account="rival"))).status_code == 404
    # A token restricted to other sessions cannot manage this one's invites.
    narrow = auth(sessions=["elsewhere"])
    assert (await api(hub, "GET", path, headers=narrow)).status_code == 404


async def test_bad_requests_and_unknown_codes_are_typed(hub: HubProcess) -> None:
    session_id = await new_session(hub)
    path = f"/api/v2/session/{session_id}/invites"
    bad = await api(
        hub, "POST", path, {"role": "instructor", "expires_in": 5, "max_uses": 0, "x": 1}, headers=auth()
    )
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["error"]["details"]["errors"]}
    assert fields == {"role", "expires_in", "max_uses", "x"}
    code = (await invite(hub, session_id))["code"]
    for body in ({}, {"name": ""}, {"name": "x" * 101}, {"name": "A", "renewal": "r"}, {"name": "\x07"}):
        refused = await api(hub, "POST", f"/j/{code}/token", body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["error"]["code"] == "invalid"
    for unknown in ("zzzzzzzzzz", "nope", "a" * 300):
        assert (await api(hub, "GET", f"/j/{unknown}/invite")).status_code == 404
        assert (await join(hub, unknown, "Ana")).status_code == 404


async def test_expired_used_up_and_ended(hub: HubProcess, database: str) -> None:
    session_id = await new_session(hub)
    once = await invite(hub, session_id, max_uses=3)
    results = await asyncio.gather(*(join(hub, once["code"], f"P{i}") for i in range(8)))
    assert sorted(r.status_code for r in results) == [201] * 3 + [410] * 5, "max_uses holds under a race"
    assert {r.json()["error"]["details"]["reason"] for r in results if r.status_code == 410} == {"used_up"}

    late = await invite(hub, session_id)
    seat = (await join(hub, late["code"], "Ana")).json()
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            "UPDATE hub_invites SET expires_at = now() - interval '1 second' WHERE code = $1", late["code"]
        )
    finally:
        await conn.close()
    expired = await join(hub, late["code"], "Ben")
    assert expired.status_code == 410 and expired.json()["error"]["details"]["reason"] == "expired"
    # A seat claimed before the expiry keeps renewing: the link stops admitting, not the class.
    renewed = await api(hub, "POST", f"/j/{late['code']}/token", {"renewal": seat["renewal"]})
    assert renewed.status_code == 200, renewed.text

    assert (await api(hub, "POST", f"/api/v2/session/{session_id}/end", headers=auth())).status_code == 200
    ended = await api(hub, "POST", f"/j/{late['code']}/token", {"renewal": seat["renewal"]})
    assert ended.status_code == 410 and ended.json()["error"]["details"]["reason"] == "session_ended"
    listed = (await api(hub, "GET", f"/api/v2/session/{session_id}/invites", headers=auth())).json()
    assert [i["state"] for i in listed["invites"]] == ["session_ended"] * 2


async def test_a_named_token_keeps_its_name(hub: HubProcess) -> None:
    session_id = await new_session(hub)
    named = token(role="participant", user="u1", name="Ana Real")
    unnamed = token(role="participant", user="u2")
    first = await LiveClient.connect(
        hub.ws_url(session_id, "participant", name="Mallory"), subprotocols=[f"bearer.{named}"]
    )
    second = await LiveClient.connect(
        hub.ws_url(session_id, "participant", name="Ben"), subprotocols=[f"bearer.{unnamed}"]
    )
    assert first.welcome["actor"]["name"] == "Ana Real"
    assert second.welcome["actor"]["name"] == "Ben", "a token without a name still takes the one asked for"
    await first.close()
    await second.close()


async def test_whoami_tells_the_pages_who_they_are(hub: HubProcess, hub_factory: Any) -> None:
    me = await api(hub, "GET", "/api/v2/whoami", headers=auth("participant", sessions=["yoga-1"], name="Ana"))
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["role"], body["name"], body["sessions"], body["dev_mode"], body["token"]) == (
        "participant",
        "Ana",
        ["yoga-1"],
        False,
        True,
    )
    assert body["expires_at"].endswith("Z")
    assert (await api(hub, "GET", "/api/v2/whoami")).status_code == 401
    dev = hub_factory()
    open_hub = (await api(dev, "GET", "/api/v2/whoami")).json()
    assert (open_hub["dev_mode"], open_hub["token"], open_hub["role"]) == (True, False, "admin")


async def test_the_start_banner_prints_links_that_work_in_its_mode(hub: HubProcess) -> None:
    from handlers.server import banner
    from hub.config import Settings

    token_mode = Settings(dev_mode=False, secret=SECRET)
    printed = banner("127.0.0.1", hub.port, token_mode, interactive=True)
    console = next(line.split()[-1] for line in printed.splitlines() if "instructor console" in line)
    path, _, fragment = console.removeprefix(hub.base_url).partition("#token=")
    assert path == "/instructor" and (await api(hub, "GET", path)).status_code == 200
    me = await api(hub, "GET", "/api/v2/whoami", headers={"authorization": f"Bearer {fragment}"})
    assert me.status_code == 200 and me.json()["role"] == "admin"
    # In a log (not a terminal) no token is printed, only how to make one.
    logged = banner("127.0.0.1", hub.port, token_mode, interactive=False)
    assert "token=" not in logged and "python -m hub token" in logged
    dev = banner("127.0.0.1", hub.port, Settings(dev_mode=True))
    assert "/instructor?as=instructor" in dev and "open dev mode" in dev
