"""The pages in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

One browser per module; every test opens its own contexts (phone- or desktop-sized),
drives a real dev-mode hub and saves a screenshot under test-output/browser/.
Without chromium these tests skip, except under CI=true where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.support import OUTPUT, HubProcess, LiveClient, api, create_session

playwright_api = pytest.importorskip("playwright.async_api")
async_playwright = playwright_api.async_playwright
expect = playwright_api.expect

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHOTS = OUTPUT / "browser"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000

expect.set_options(timeout=TIMEOUT_MS)


def _unavailable(message: str) -> None:
    if IN_CI:
        pytest.fail(message + " (CI=true requires the browser tests to run)", pytrace=False)
    pytest.skip(message)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        await instance.close()


class Pages:
    """Opens pages in fresh contexts; records page errors; screenshots; closes all at the end."""

    def __init__(self, browser: Any, hub: HubProcess, name: str):
        self.browser = browser
        self.hub = hub
        self.name = name
        self.contexts: list[Any] = []
        self.errors: list[str] = []

    async def open(self, path: str, viewport: dict[str, int] = DESKTOP) -> Any:
        context = await self.browser.new_context(viewport=viewport, base_url=self.hub.base_url)
        self.contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{path}: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"{path}: console {msg.text}")
                if msg.type == "error" and "WebSocket" not in msg.text and "ERR_CONNECTION" not in msg.text
                else None
            ),
        )
        await page.goto(path)
        return page

    async def shot(self, page: Any, label: str) -> Path:
        path = SHOTS / f"{self.name}-{label}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def pages(browser: Any, hub: HubProcess, request: pytest.FixtureRequest) -> AsyncIterator[Pages]:
    opened = Pages(browser, hub, request.node.name.removeprefix("test_"))
    yield opened
    await opened.close()
    assert not opened.errors, opened.errors


async def live(page: Any) -> None:
    await expect(page.locator("#badge")).to_have_text("Live")


async def instructor_client(hub: HubProcess, session_id: str) -> LiveClient:
    return await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah Chen", user_id="sarah"))


async def test_instructor_changes_technique_participant_sees_it(pages: Pages) -> None:
    session_id = await create_session(pages.hub, title="Morning Mindfulness")
    instructor = await pages.open(f"/instructor?session_id={session_id}&as=instructor")
    participant = await pages.open(f"/participant?session_id={session_id}&name=Ana", PHONE)
    await live(instructor)
    await live(participant)
    await expect(instructor.locator("#people li[data-participant-id]")).to_have_text(["Ana"])

    await instructor.get_by_label("Technique", exact=True).fill("Box Breathing")
    await instructor.get_by_label("Duration (seconds)").fill("240")
    await instructor.get_by_label("Instructions (optional)").fill("In 4, hold 4, out 4, hold 4.")
    await instructor.get_by_role("button", name="Change technique").click()

    await expect(participant.locator("#technique-name")).to_have_text("Box Breathing")
    await expect(participant.locator("#technique-timer")).to_have_text(re.compile(r"^(4:00|3:5\d)$"))
    await expect(participant.locator("#technique-instructions")).to_have_text("In 4, hold 4, out 4, hold 4.")
    await expect(instructor.locator("#current-technique")).to_have_text("Box Breathing (4:00)")

    # The participant answers a prompt and sends HRV; the console shows both.
    await instructor.get_by_label("Prompt", exact=True).fill("How does your body feel?")
    await instructor.get_by_role("button", name="Send prompt").click()
    await participant.get_by_label("Your answer").fill("Calm and warm")
    await participant.get_by_role("button", name="Send answer").click()
    await expect(participant.locator(".prompt-card [role=status]")).to_have_text(re.compile("Answer sent"))
    await participant.get_by_label("HRV reading (ms RMSSD)").fill("54.5")
    await participant.get_by_role("button", name="Send reading").click()
    await expect(participant.locator("#hrv-status")).to_have_text(re.compile("54.5 ms sent"))
    await expect(instructor.locator("#responses li").first).to_contain_text("Ana: Calm and warm")
    await expect(instructor.locator("#responses li").first).to_contain_text("How does your body feel?")
    await expect(instructor.locator("#people li").first).to_have_text("Ana · HRV 54.5 ms")
    await expect(instructor.locator("#hrv-legend")).to_have_text("Ana")

    await pages.shot(participant, "participant-phone")
    await pages.shot(instructor, "instructor-desktop")


async def test_announcement_reaches_two_participants(pages: Pages) -> None:
    first = await create_session(pages.hub, title="Morning Mindfulness")
    second = await create_session(pages.hub, title="Evening Wind-down")
    ana = await pages.open(f"/participant?session_id={first}&name=Ana", PHONE)
    ben = await pages.open(f"/participant?session_id={first}&name=Ben", DESKTOP)
    cleo = await pages.open(f"/participant?session_id={second}&name=Cleo", PHONE)
    instructor = await pages.open(f"/instructor?session_id={first}&as=instructor")
    for page in (ana, ben, cleo, instructor):
        await live(page)

    await instructor.get_by_label("Title (optional)").fill("Water break")
    await instructor.get_by_label("Message").fill("Two minutes, then we continue")
    await instructor.get_by_role("button", name="Broadcast").click()
    await expect(instructor.locator("#page-status")).to_have_text(re.compile(r"Announced to 1 session \(2"))
    text = "Water break: Two minutes, then we continue"
    for page in (ana, ben):
        await expect(page.locator("#feed li[data-type=announcement] .text")).to_have_text([text])
    await expect(cleo.locator("#feed li[data-type=announcement]")).to_have_count(0)

    # To every live session: Cleo's too.
    await instructor.get_by_label("Message").fill("Class ends in five minutes")
    await instructor.get_by_label("All live sessions").check()
    await instructor.get_by_role("button", name="Broadcast").click()
    await expect(instructor.locator("#page-status")).to_have_text(re.compile(r"Announced to 2 sessions \(3"))
    for page in (ana, ben, cleo):
        await expect(page.locator("#feed li[data-type=announcement] .text").last).to_have_text(
            "Announcement: Class ends in five minutes"
        )
    await pages.shot(ana, "ana-phone")
    await pages.shot(ben, "ben-desktop")
    await pages.shot(cleo, "cleo-phone")


async def feed_seqs(page: Any) -> list[int]:
    values = await page.locator("#feed li").evaluate_all("els => els.map(e => Number(e.dataset.seq))")
    return [int(v) for v in values]


async def test_reconnect_shows_missed_events_once_in_order(pages: Pages) -> None:
    hub = pages.hub
    # Joins and leaves open to everyone: the page's feed shows its own join.
    opened = {"participant_joined": "everyone", "participant_left": "everyone"}
    session_id = await create_session(hub, audience=opened)
    participant = await pages.open(f"/participant?session_id={session_id}&name=Ana", PHONE)
    await live(participant)
    instructor = await instructor_client(hub, session_id)
    await expect(participant.locator("#feed li[data-type=participant_joined]")).to_have_count(1)

    # Cut the socket and hold the reconnect while the instructor carries on.
    await participant.evaluate("window.hubClient.drop(60000)")
    await expect(participant.locator("#badge")).to_have_text("Reconnecting…")
    await expect(participant.get_by_test_id("reconnecting")).to_contain_text("Connection lost")
    await pages.shot(participant, "reconnecting")
    missed = ["first while away", "second while away", "third while away"]
    for message in missed:
        assert (await instructor.request("announcement", {"message": message}))["type"] == "ack"
    change = {"technique": "Coherent Breathing", "duration": 300}
    assert (await instructor.request("technique_changed", change))["type"] == "ack"

    await participant.get_by_role("button", name="Reconnect now").click()
    await live(participant)
    texts = participant.locator("#feed li[data-type=announcement] .text")
    await expect(texts).to_have_text([f"Announcement: {m}" for m in missed])
    await expect(participant.locator("#technique-name")).to_have_text("Coherent Breathing")

    # A hub restart (close 3000, then refused connections while it is down): the page comes
    # back by itself with since = last seq and gets what was written meanwhile.
    await instructor.close()
    await asyncio.to_thread(hub.restart)
    body = {"session_id": session_id, "announcement": {"message": "after restart"}}
    response = await api(hub, "POST", "/api/v2/live-announce", body)
    assert response.status_code == 200, response.text
    expected = [f"Announcement: {m}" for m in [*missed, "after restart"]]
    await expect(texts).to_have_text(expected, timeout=30_000)
    await live(participant)

    seqs = await feed_seqs(participant)
    assert seqs == sorted(set(seqs)), seqs
    stats = await participant.evaluate("window.hubClient.stats")
    assert stats["gaps"] == 0 and stats["reconnects"] >= 2, stats
    # Every event the log holds after the join reached the page exactly once, in order.
    content = (await api(hub, "GET", f"/api/v2/session/{session_id}/content?include_replay=true")).json()
    shown_types = {"announcement", "technique_changed", "participant_joined", "participant_left"}
    logged = [m["seq"] for m in content["replay"]["messages"] if m["type"] in shown_types]
    assert seqs == logged and seqs[0] == 2  # 1 is session_started, before the page joined
    await pages.shot(participant, "after-restart")


async def test_dashboard_lists_session_with_count(pages: Pages) -> None:
    hub = pages.hub
    session_id = await create_session(hub, title="Lunchtime Reset")
    await create_session(hub, title="Not started yet", start=False)
    members = [
        await LiveClient.connect(hub.ws_url(session_id, "participant", name=name, user_id=name.lower()))
        for name in ("Ana", "Ben", "Cleo")
    ]
    dashboard = await pages.open("/dashboard")
    row = dashboard.locator(f"tr[data-session-id='{session_id}']")
    await expect(row.locator("td.participants")).to_have_text("3")
    await expect(dashboard.locator("#sessions-body tr")).to_have_count(1)  # scheduled ones are not live
    await expect(dashboard.locator("#total-participants")).to_have_text("3")

    await row.get_by_role("button", name=re.compile("Watch")).click()
    await expect(dashboard.locator("#badge")).to_have_text("Live")
    await members[0].request("hrv_update", {"hrv": 48})
    await members[1].request("hrv_update", {"hrv": 61.5})
    await members[0].request("hrv_update", {"hrv": 55})
    await expect(dashboard.locator("#hrv-legend span")).to_have_text(["Ana", "Ben"])
    await expect(dashboard.locator("#feed li[data-type=hrv_update]")).to_have_count(3)
    await members[2].close()
    await expect(row.locator("td.participants")).to_have_text("2", timeout=20_000)
    await expect(dashboard.locator("#feed li[data-type=participant_left]")).to_have_count(1, timeout=20_000)
    # A reconnect of the watching client shows in its connection log.
    await dashboard.evaluate("window.hubClient.drop(0)")
    await expect(dashboard.locator("#conn-log li[data-state=resuming]").first).to_contain_text("closed 4000")
    await expect(dashboard.locator("#badge")).to_have_text("Live")
    await expect(dashboard.locator("#w-reconnects")).to_have_text("1")
    await pages.shot(dashboard, "desktop")
    await dashboard.set_viewport_size(PHONE)
    await pages.shot(dashboard, "phone")
    for member in members[:2]:
        await member.close()


async def test_participant_cannot_send_instructor_event(pages: Pages) -> None:
    session_id = await create_session(pages.hub)
    participant = await pages.open(f"/participant?session_id={session_id}&name=Ana&debug=1", PHONE)
    await live(participant)
    await participant.get_by_text("Advanced: send a raw event").click()
    await participant.get_by_label("Event type").fill("technique_changed")
    await participant.get_by_label("Data (JSON)").fill('{"technique": "Box Breathing"}')
    await participant.get_by_role("button", name="Send", exact=True).click()
    await expect(participant.locator("#send-error")).to_contain_text("forbidden")
    code = await participant.evaluate(
        "window.hubClient.send('announcement', {message: 'hi'}).then(() => 'sent', (e) => e.code)"
    )
    assert code == "forbidden"
    await expect(participant.locator("#badge")).to_have_text("Live")  # the connection stays open
    await expect(participant.locator("#technique-name")).to_have_text("Waiting for the instructor…")
    await pages.shot(participant, "forbidden")


async def test_session_end_and_pages_load(pages: Pages) -> None:
    """The instructor creates, starts and ends a session from the console; the participant sees the end."""
    instructor = await pages.open("/instructor?as=instructor", PHONE)
    await instructor.get_by_label("Title", exact=True).fill("Box Breathing Basics")
    await instructor.get_by_label("Session id (optional)").fill("box-basics-1")
    await instructor.get_by_label("Max participants").fill("12")
    await instructor.get_by_role("button", name="Create session").click()
    await live(instructor)
    await expect(instructor.locator("#status")).to_have_text("scheduled")
    participant = await pages.open("/participant?session_id=box-basics-1", PHONE)
    await participant.get_by_label("Your display name").fill("Ana")
    await participant.get_by_role("button", name="Join session").click()
    await live(participant)
    await instructor.get_by_role("button", name="Start", exact=True).click()
    await expect(instructor.locator("#status")).to_have_text("in progress")
    await expect(participant.locator("#session-line")).to_have_text("live · 1 participant")
    await pages.shot(instructor, "console-phone")
    await instructor.get_by_role("button", name="End", exact=True).click()
    await expect(participant.locator("#ended")).to_be_visible()
    await expect(participant.get_by_test_id("closed-reason")).to_have_text("The session has ended.")
    await expect(participant.locator("#badge")).to_have_text("Session ended")
    record = (await api(pages.hub, "GET", "/api/v2/session/box-basics-1")).json()
    assert record["max_participants"] == 12 and record["status"] == "completed"
    await pages.shot(participant, "ended-phone")


async def test_unknown_session_offers_the_form_again(pages: Pages) -> None:
    participant = await pages.open("/participant?session_id=no-such-session&name=Ana", PHONE)
    await expect(participant.get_by_test_id("closed-reason")).to_have_text("No such session.")
    await expect(participant.get_by_label("Session id")).to_have_value("no-such-session")
    await expect(participant.locator("#live")).to_be_hidden()
    await pages.shot(participant, "not-found")


class Bots:
    """Participants without a browser: raw sockets that read everything and can send HRV."""

    def __init__(self) -> None:
        self.sockets: list[tuple[int, Any]] = []
        self.readers: list[asyncio.Task[None]] = []

    async def join(self, hub: HubProcess, session_id: str, count: int) -> None:
        import websockets

        async def one(i: int) -> None:
            ws = await websockets.connect(
                hub.ws_url(session_id, "participant", name=f"Guest {i:03}", user_id=f"g{i}")
            )
            await ws.recv()  # the welcome
            self.sockets.append((i, ws))
            self.readers.append(asyncio.create_task(self._drain(ws)))

        for start in range(0, count, 100):
            await asyncio.gather(*(one(i) for i in range(start, min(start + 100, count))))

    @staticmethod
    async def _drain(ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass

    async def send_hrv(self, step: int) -> None:
        import orjson

        for n, (i, ws) in enumerate(self.sockets):  # spread over the second, as real sensors are
            hrv = round(40 + (i % 30) + step * 2.5, 1)
            await ws.send(
                orjson.dumps({"type": "hrv_update", "id": f"{i}-{step}", "data": {"hrv": hrv}}).decode()
            )
            if n % 100 == 99:
                await asyncio.sleep(0.08)

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for _, ws in self.sockets), return_exceptions=True)
        for task in self.readers:
            task.cancel()


FRAME_GAPS = """() => {
  window.__gaps = [];
  let last = performance.now();
  const tick = (t) => { window.__gaps.push(t - last); last = t; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


async def test_a_class_of_a_thousand(pages: Pages) -> None:
    hub = pages.hub
    session_id = await create_session(hub, title="Thousand Breaths", max_participants=1000)
    bots = Bots()
    await bots.join(hub, session_id, 999)
    instructor = await pages.open(f"/instructor?session_id={session_id}&as=instructor")
    participant = await pages.open(f"/participant?session_id={session_id}&name=Ana", PHONE)
    dashboard = await pages.open("/dashboard")
    await live(instructor)
    await live(participant)
    await expect(instructor.locator("#people li")).to_have_count(1000, timeout=30_000)
    await expect(participant.locator("#session-line")).to_have_text(re.compile("1000 participants"))

    await instructor.evaluate(FRAME_GAPS)
    for step in range(4):  # the whole class streams HRV, once a second
        await bots.send_hrv(step)
        await participant.get_by_label("HRV reading (ms RMSSD)").fill(str(50 + step))
        await participant.get_by_role("button", name="Send reading").click()
    await expect(instructor.locator("#g-reporting")).to_have_text("1000", timeout=10_000)
    await expect(participant.locator("#g-reporting")).to_have_text("1000")
    await expect(participant.locator("#my-count")).to_have_text("4")
    await expect(participant.locator("#my-change")).to_have_text("+6%")
    await expect(instructor.locator("#people li[data-participant-id=g7]")).to_have_text(
        re.compile(r"Guest 007 · HRV 54\.5 ms")
    )
    gaps = await instructor.evaluate("window.__gaps")
    # Loose bounds for a loaded 2-core CI: redrawing the list per reading (the old
    # console) freezes the page for seconds at this rate.
    assert max(gaps) < 3000, f"the console froze for {max(gaps):.0f} ms"
    assert sorted(gaps)[len(gaps) * 95 // 100] < 500, "the console kept up with a thousand readings a second"
    row = dashboard.locator(f"tr[data-session-id='{session_id}']")
    await expect(row.locator("td.participants")).to_have_text("1000")
    await expect(row.locator("td.group-hrv")).to_have_text(re.compile("1000 reporting"), timeout=10_000)
    legend = instructor.locator("#hrv-legend")
    await expect(legend.locator("span")).to_have_count(8)
    await expect(legend).to_contain_text("+992 more")

    await pages.shot(instructor, "thousand-instructor-desktop")
    await pages.shot(participant, "thousand-participant-phone")
    await pages.shot(dashboard, "thousand-dashboard-desktop")
    await instructor.set_viewport_size(PHONE)
    await participant.set_viewport_size(DESKTOP)
    await dashboard.set_viewport_size(PHONE)
    await pages.shot(instructor, "thousand-instructor-phone")
    await pages.shot(participant, "thousand-participant-desktop")
    await pages.shot(dashboard, "thousand-dashboard-phone")
    await bots.close()


async def test_dashboard_shows_each_webhooks_state_and_failures(browser: Any, hub_factory: Any) -> None:
    from tests.support import free_port

    hub = hub_factory(HUB_WEBHOOK_ALLOW_PRIVATE="1", HUB_WEBHOOK_RETRY_BASE="0.2")
    pages = Pages(browser, hub, "dashboard_webhooks")
    try:
        nobody = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: every attempt fails
        created = await api(hub, "POST", "/api/v2/webhooks", {"url": nobody, "events": ["*"]})
        assert created.status_code == 201
        await create_session(hub, title="Webhook Watch")
        dashboard = await pages.open("/dashboard")
        row = dashboard.locator(f"tr[data-webhook-id='{created.json()['id']}']")
        await expect(row).to_contain_text(nobody)
        await expect(row).to_have_attribute("data-state", re.compile("retrying|failing"), timeout=15_000)
        await expect(row.locator("td[data-label='Last error']")).to_contain_text("ClientConnectorError")
        await row.get_by_role("button", name=re.compile("Recent failures")).click()
        await expect(dashboard.locator("#webhook-failures li[data-status=retrying]").first).to_contain_text(
            "session_started seq 1"
        )
        await pages.shot(dashboard, "webhooks")
    finally:
        await pages.close()
    assert not pages.errors, pages.errors
