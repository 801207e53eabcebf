"""Join links in real Chromium on a hub in token mode: the instructor creates a link in
the console, a participant opens it, picks a name and joins under it; the seat's token
is renewed while the page is open (it outlives several token lifetimes); a revoked link
is refused clearly, to newcomers and to a reload. The console without a token asks for
one. Screenshots of the join page and the pages it leads to, at desktop and phone sizes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests import test_browser as shared
from tests.auth_support import SECRET, token
from tests.support import HubProcess, api
from tests.test_browser import DESKTOP, PHONE, SHOTS, Pages, expect, live

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(180)]
browser = shared.browser  # one browser for this module

TOKEN_TTL = 8  # seconds a seat's token lives: the test outlives two of them (several renewals)
# Refusals logged by the browser and by hub-client.js themselves (a revoked seat's renewal).
EXPECTED = ("status of 401", "status of 410", "getToken failed SeatRefused")


@pytest_asyncio.fixture(loop_scope="module")
async def studio(browser: Any, hub_factory: Any, request: pytest.FixtureRequest) -> AsyncIterator[Pages]:
    hub: HubProcess = hub_factory(
        HUB_DEV="0",
        HUB_SECRET=SECRET,
        HUB_INVITE_TOKEN_TTL=str(TOKEN_TTL),
        HUB_TOKEN_WARNING="5",  # the in-band renewal starts 5 s before expiry
    )
    opened = Pages(browser, hub, request.node.name.removeprefix("test_"))
    yield opened
    await opened.close()
    unexpected = [e for e in opened.errors if not any(known in e for known in EXPECTED)]
    assert not unexpected, unexpected


def instructor_token() -> str:
    return token(account="studio", user="sarah", role="instructor", name="Sarah Chen")


async def new_session(hub: HubProcess) -> str:
    headers = {"authorization": f"Bearer {instructor_token()}"}
    body = {"session_id": "sunrise-1", "title": "Sunrise Breathing", "instructor": "Sarah Chen"}
    assert (await api(hub, "POST", "/api/v2/sessions/create", body, headers=headers)).status_code == 201
    assert (await api(hub, "POST", "/api/v2/session/sunrise-1/start", headers=headers)).status_code == 200
    return "sunrise-1"


async def test_join_link_flow(studio: Pages) -> None:
    hub = studio.hub
    session_id = await new_session(hub)
    console = await studio.open(f"/instructor?session_id={session_id}#token={instructor_token()}")
    await live(console)
    assert "token=" not in console.url, "the token left the address bar"
    # An instructor announces to this session only (all live sessions are an admin's).
    await expect(console.get_by_label("All live sessions")).to_be_hidden()
    await console.get_by_role("button", name="Create join link").click()
    link = console.locator("#invites li[data-state=active] a.invite-url")
    await expect(link).to_have_count(1)
    url = await link.inner_text()
    assert url.startswith(f"{hub.base_url}/j/")
    path = url.removeprefix(hub.base_url)

    ana = await studio.open(path, PHONE)
    await expect(ana.locator("#join-title")).to_have_text("Sunrise Breathing")
    await studio.shot(ana, "join-phone")
    await ana.get_by_label("Your display name").fill("Ana")
    await ana.get_by_role("button", name="Join", exact=True).click()
    await live(ana)
    assert "/participant?invite=" in ana.url and "token" not in ana.url
    await expect(ana.locator("#heading")).to_have_text("Sunrise Breathing")
    await expect(console.locator("#people li")).to_have_text(["Ana"])
    await expect(console.locator("#invites li").first).to_contain_text("1 joined")
    first_token = await ana.evaluate("window.hubClient.token")

    await ana.get_by_label("HRV reading (ms RMSSD)").fill("52")
    await ana.get_by_role("button", name="Send reading").click()
    await expect(console.locator("#people li").first).to_have_text("Ana · HRV 52 ms")
    await studio.shot(ana, "participant-phone")

    # The class outlives the token: the page renews it and stays live throughout.
    deadline = time.monotonic() + 2 * TOKEN_TTL + 5
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        assert await ana.locator("#badge").inner_text() == "Live", "the connection stayed up"
    assert await ana.evaluate("window.hubClient.token") != first_token, "the token was renewed"
    stats = await ana.evaluate("window.hubClient.stats")
    assert stats["refreshes"] >= 2 and stats["reconnects"] == 0, f"renewed in-band, on one socket: {stats}"
    await ana.get_by_label("HRV reading (ms RMSSD)").fill("58.5")
    await ana.get_by_role("button", name="Send reading").click()
    await expect(console.locator("#people li").first).to_have_text("Ana · HRV 58.5 ms")

    # Revoked: nobody new joins, and a reload of Ana's page is told why.
    await console.locator("#invites li").first.get_by_role("button", name="Revoke").click()
    await expect(console.locator("#invites li").first).to_have_attribute("data-state", "revoked")
    await expect(console.locator(".toast")).to_contain_text(
        ["Join link revoked: nobody new can join with it."]
    )
    ben = await studio.open(path, DESKTOP)
    await expect(ben.locator("#refused")).to_have_text(
        "This invite was revoked. Ask the instructor for a new link."
    )
    await expect(ben.get_by_label("Your display name")).to_be_hidden()
    await studio.shot(ben, "revoked-desktop")
    await ana.reload()
    await expect(ana.get_by_test_id("closed-reason")).to_contain_text("revoked")
    await studio.shot(ana, "revoked-phone")
    await console.evaluate("window.scrollTo(0, 0)")
    await studio.shot(console, "console-desktop")


async def test_the_console_needs_an_instructor_token(studio: Pages) -> None:
    console = await studio.open("/instructor", PHONE)
    await expect(console.locator("#gate")).to_contain_text("needs an instructor token")
    await expect(console.locator("#setup")).to_be_hidden()
    await studio.shot(console, "no-token-phone")
    participant = token(account="studio", user="ana", role="participant", name="Ana")
    await console.get_by_label("Instructor token").fill(participant)
    await console.get_by_role("button", name="Use this token").click()
    await expect(console.locator("#gate")).to_contain_text("This token is for Ana as participant")
    await console.get_by_label("Instructor token").fill(instructor_token())
    await console.get_by_role("button", name="Use this token").click()
    await expect(console.get_by_role("button", name="Create session")).to_be_visible()
    await console.screenshot(path=str(SHOTS / f"{studio.name}-console-desktop.png"), full_page=True)


async def test_an_observer_link_opens_the_dashboard_watching(studio: Pages) -> None:
    hub = studio.hub
    session_id = await new_session(hub)
    headers = {"authorization": f"Bearer {instructor_token()}"}
    path = f"/api/v2/session/{session_id}/invites"
    created = await api(hub, "POST", path, {"role": "observer", "max_uses": 1}, headers=headers)
    assert created.status_code == 201, created.text
    viewer = await studio.open(created.json()["url"].removeprefix(hub.base_url), DESKTOP)
    await expect(viewer.locator("#invite-line")).to_have_text("You are invited to watch.")
    await viewer.get_by_label("Your display name").fill("Front desk")
    await viewer.get_by_role("button", name="Join", exact=True).click()
    await expect(viewer.locator("#badge")).to_have_text("Live")
    await expect(viewer.locator("#watch-title")).to_have_text("Watching Sunrise Breathing")
    await expect(viewer.locator("#feed li").first).to_contain_text("Session started")
    await studio.shot(viewer, "observer-desktop")
