"""The browser side of renewals and streams, in real headless Chromium: hub-client.js keeps
its socket open past its token's expiry (renewing through `getToken`, the token in the
subprotocol, never the URL), and a plain EventSource and hub-stream.js read a session's
Server-Sent Events across a hub killed and restarted, each event once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.auth_support import SECRET, token
from tests.support import HubProcess, api, create_session

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing: run `make browser-deps`"
        if IN_CI:
            pytest.fail(message + " (CI=true)", pytrace=False)
        pytest.skip(message)
    async with playwright_api.async_playwright() as pw:
        instance = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"], headless=True
        )
        yield instance
        await instance.close()


async def page_on(browser: Any, hub: HubProcess) -> Any:
    """A page on the hub's origin, to import the clients from /static and reach its API."""
    context = await browser.new_context(base_url=hub.base_url)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    await page.goto("/healthz")
    return page


async def wait_js(page: Any, expression: str, timeout_ms: int = 20_000) -> None:
    await page.wait_for_function(expression, timeout=timeout_ms)


async def test_the_js_client_renews_its_token_without_reconnecting(browser: Any, hub_factory: Any) -> None:
    hub = hub_factory(HUB_DEV="0", HUB_SECRET=SECRET, HUB_TOKEN_WARNING="2")
    admin = {"Authorization": f"Bearer {token(role='admin')}"}
    body = {"session_id": "renew", "title": "Long class", "instructor": "Sarah"}
    assert (await api(hub, "POST", "/api/v2/sessions/create", body, headers=admin)).status_code == 201
    assert (await api(hub, "POST", "/api/v2/session/renew/start", headers=admin)).status_code == 200
    page = await page_on(browser, hub)
    minted: list[str] = []

    def mint() -> str:
        minted.append(token(user="sarah", role="instructor", ttl=3))
        return minted[-1]

    await page.expose_function("mintToken", mint)
    await page.evaluate(
        """async () => {
          const { connect } = await import("/static/hub-client.js");
          window.opened = [];
          class Spy extends WebSocket {
            constructor(url, protocols) { super(url, protocols); window.opened.push({ url, protocols }); }
          }
          window.client = connect("renew", "instructor", "Sarah", null, {
            WebSocket: Spy, getToken: () => window.mintToken() });
        }"""
    )
    await wait_js(page, "window.client.state === 'open'")
    first = await page.evaluate("window.client.send('announcement', {message: 'before'})")
    await asyncio.sleep(4.5)  # past the first token's expiry
    after = await page.evaluate("window.client.send('announcement', {message: 'after expiry'})")
    stats = await page.evaluate("window.client.stats")
    assert after > first and stats["refreshes"] >= 2 and stats["connects"] == 1, stats
    assert await page.evaluate("window.client.state") == "open"
    opened = await page.evaluate("window.opened")
    assert len(opened) == 1 and "token" not in opened[0]["url"]
    assert opened[0]["protocols"] == [f"bearer.{minted[0]}"]
    assert not page.errors, page.errors
    await page.evaluate("window.client.close()")


async def test_event_streams_in_chromium_resume_after_the_hub_restarts(browser: Any, hub: HubProcess) -> None:
    session_id = await create_session(hub)
    page = await page_on(browser, hub)
    await page.evaluate(
        """async (sid) => {
          window.raw = []; window.opens = 0;
          const es = new EventSource(`/api/v2/session/${sid}/stream?since=0`);
          for (const type of ["session_started", "announcement"]) {
            es.addEventListener(type, (ev) => window.raw.push(Number(ev.lastEventId)));
          }
          es.onopen = () => { window.opens += 1; };
          const { connectStream } = await import("/static/hub-stream.js");
          window.stream = connectStream(sid, "observer", "watcher", null, { since: 0 });
          window.streamed = [];
          window.stream.on("event", (m) => window.streamed.push(m.seq));
        }""",
        session_id,
    )
    for message in ("one", "two"):
        body = {"announcement": {"message": message}, "session_id": session_id}
        assert (await api(hub, "POST", "/api/v2/live-announce", body)).status_code == 200
    await wait_js(page, "window.raw.length === 3 && window.streamed.length === 3")
    await asyncio.to_thread(hub.kill)
    await asyncio.to_thread(hub.start)
    body = {"announcement": {"message": "after the restart"}, "session_id": session_id}
    assert (await api(hub, "POST", "/api/v2/live-announce", body)).status_code == 200
    # EventSource comes back by itself (after its `retry:`, at most 5 s) with Last-Event-ID: 3.
    await wait_js(page, "window.raw.length >= 4 && window.streamed.length >= 4")
    await asyncio.sleep(0.3)
    assert await page.evaluate("window.raw") == [1, 2, 3, 4]
    assert await page.evaluate("window.streamed") == [1, 2, 3, 4]
    assert await page.evaluate("window.opens") == 2
    stats = await page.evaluate("window.stream.stats")
    assert stats["reconnects"] == 1 and stats["duplicatesDropped"] == 0, stats
    assert not page.errors, page.errors
