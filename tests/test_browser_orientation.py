"""Pages that keep people oriented, in real Chromium on a dev-mode hub: a late joiner sees
the open prompt and the last announcement at once; every refusal and connection change
shows as a toast in view wherever the page is scrolled; a hub restart is caught up within
seconds; developer tools only with ?debug=1; HRV from a (simulated) Bluetooth strap; the
dashboard's watch link loads recent history; the dev console asks for the instructor role.
Screenshots of each page at desktop and phone sizes go to test-output/browser/."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from tests import test_browser as shared
from tests.support import LiveClient, api, create_session
from tests.test_browser import DESKTOP, PHONE, SHOTS, Pages, expect, live

browser, pages = shared.browser, shared.pages  # the same fixtures: one browser for this module

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def seen(pages: Pages, page: Any, label: str) -> None:
    """A screenshot of what the person sees now (the viewport, where it is scrolled)."""
    await page.screenshot(path=str(SHOTS / f"{pages.name}-{label}.png"))


async def whole(pages: Pages, page: Any, label: str) -> None:
    """A screenshot of the whole page from its top."""
    await page.evaluate("window.scrollTo(0, 0)")
    await pages.shot(page, label)


async def in_view(page: Any, selector: str) -> None:
    """The element is inside the viewport (not just somewhere on the page)."""
    box = await page.locator(selector).last.bounding_box()
    size = page.viewport_size
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= size["height"], (box, size)


async def test_late_joiner_sees_the_open_prompt_and_the_last_announcement(pages: Pages) -> None:
    session_id = await create_session(pages.hub, title="Evening Wind-down")
    instructor = await LiveClient.connect(pages.hub.ws_url(session_id, "instructor", name="Sarah Chen"))
    await instructor.request(
        "announcement", {"title": "Water break", "message": "Two minutes, then we continue"}
    )
    await instructor.request("prompt", {"text": "Where do you feel your breath?"})
    await instructor.request("announcement", {"message": "Lights down for the last round"})

    participant = await pages.open(f"/participant?session_id={session_id}&name=Ana", PHONE)
    await live(participant)
    await expect(participant.locator("#announcement-message")).to_have_text("Lights down for the last round")
    await expect(participant.locator("#no-prompts")).to_have_count(0)
    card = participant.locator(".prompt-card")
    await expect(card).to_have_count(1)
    await expect(card.locator("p").first).to_have_text("Where do you feel your breath?")
    await pages.shot(participant, "late-joiner-phone")
    await card.get_by_label("Your answer").fill("In my belly")
    await card.get_by_role("button", name="Send answer").click()
    await expect(card.locator("[role=status]")).to_have_text("Answer sent.")

    # A reload: the same state at once, and the prompt is not asked again.
    await participant.reload()
    await live(participant)
    await expect(participant.locator("#announcement-message")).to_have_text("Lights down for the last round")
    await expect(participant.locator(".prompt-card")).to_contain_text("You answered this prompt.")
    # A new announcement is prominent and also a toast.
    await instructor.request("announcement", {"title": "Almost done", "message": "One more minute"})
    await expect(participant.locator("#announcement-title")).to_have_text("Almost done")
    await expect(participant.locator(".toast")).to_contain_text(["Almost done: One more minute"])
    await participant.set_viewport_size(DESKTOP)
    await pages.shot(participant, "late-joiner-desktop")
    await instructor.close()


async def test_refusals_and_connection_changes_are_toasts_in_view(pages: Pages) -> None:
    hub = pages.hub
    session_id = await create_session(hub, title="Morning Mindfulness")
    participant = await pages.open(f"/participant?session_id={session_id}&name=Ana", PHONE)
    await live(participant)
    await participant.evaluate("window.scrollTo(0, document.body.scrollHeight)")

    # A refused action: the toast says why, in view, and the header with the badge too.
    code = await participant.evaluate(
        "window.hubClient.send('announcement', {message: 'hi'}).then(() => 'sent', e => e.code)"
    )
    assert code == "forbidden"
    toast = participant.locator(".toast[data-kind=error]")
    await expect(toast).to_contain_text("Not allowed — role 'participant' may not send 'announcement'")
    await in_view(participant, ".toast[data-kind=error]")
    await in_view(participant, "#badge")
    await seen(pages, participant, "refused-phone")

    # A dropped connection, and its return.
    await participant.evaluate("window.hubClient.drop(60000)")
    lost = participant.locator(".toast[data-key=connection]")
    await expect(lost).to_contain_text("Connection lost")
    await in_view(participant, ".toast[data-key=connection]")
    await seen(pages, participant, "connection-lost-phone")
    await lost.get_by_role("button", name="Retry now").click()
    await expect(lost).to_contain_text("Reconnected")

    # The hub restarts (SIGTERM: close 3000): back within a couple of seconds of the hub.
    await asyncio.to_thread(hub.terminate)
    await expect(lost).to_contain_text("Connection lost")
    await asyncio.to_thread(hub.start)
    back = time.monotonic()
    await live(participant)
    assert time.monotonic() - back < 3.5, "reconnected within the restart window (2 s) of the hub's return"
    await expect(lost).to_contain_text("Reconnected")

    # The console: a refused request is a toast as well as the status line.
    console = await pages.open(f"/instructor?as=instructor&session_id={session_id}", DESKTOP)
    await live(console)
    await console.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    await console.get_by_role("button", name="Start", exact=True).click(
        force=True
    )  # started already: disabled
    await console.evaluate("document.getElementById('btn-start').disabled = false")
    await console.get_by_role("button", name="Start", exact=True).click()
    await expect(console.locator(".toast[data-kind=error]")).to_contain_text("Could not start")
    await in_view(console, ".toast[data-kind=error]")
    await in_view(console, "#badge")
    await seen(pages, console, "refused-console-desktop")
    # The browser logs the refused request itself; that one is expected here.
    pages.errors[:] = [e for e in pages.errors if "status of 409" not in e]


async def test_developer_tools_only_with_debug(pages: Pages) -> None:
    session_id = await create_session(pages.hub)
    plain = await pages.open(f"/participant?session_id={session_id}&name=Ana", PHONE)
    debug = await pages.open(f"/participant?session_id={session_id}&name=Ben&debug=1", PHONE)
    await live(plain)
    await live(debug)
    body = {"session_id": session_id, "announcement": {"message": "Hi"}}
    assert (await api(pages.hub, "POST", "/api/v2/live-announce", body)).status_code == 200
    await expect(plain.get_by_text("Advanced: send a raw event")).to_be_hidden()
    await expect(plain.locator("nav")).to_be_hidden()
    await expect(plain.get_by_role("link", name="Instructor")).to_be_hidden()
    await expect(plain.locator("#feed li[data-type=announcement] .meta")).not_to_contain_text("#")
    await pages.shot(plain, "no-debug-phone")

    await expect(debug.get_by_text("Advanced: send a raw event")).to_be_visible()
    await expect(debug.get_by_role("link", name="Instructor")).to_be_visible()
    await expect(debug.locator("#feed li[data-type=announcement] .meta")).to_contain_text(
        re.compile(r"^#\d+ · ")
    )
    await pages.shot(debug, "debug-phone")


FAKE_STRAP = """() => {
  // A chest strap as Web Bluetooth shows it: Heart Rate Measurement notifications with
  // RR intervals in 1/1024 s, alternating 800 and 850 ms (RMSSD 50 ms).
  const listeners = [];
  const characteristic = {
    addEventListener: (type, fn) => listeners.push(fn),
    startNotifications: async () => {
      let beat = 0;
      window.__strapTimer = setInterval(() => {
        const ms = beat++ % 2 ? 850 : 800;
        const ticks = Math.round((ms * 1024) / 1000);
        const view = new DataView(Uint8Array.from([0x10, 72, ticks & 0xff, ticks >> 8]).buffer);
        for (const fn of listeners) fn({ target: { value: view } });
      }, 5);
      return characteristic;
    },
  };
  const device = {
    name: "Polar H10 TEST",
    addEventListener: () => {},
    gatt: {
      connected: true,
      connect: async () => ({
        getPrimaryService: async () => ({ getCharacteristic: async () => characteristic }),
      }),
      disconnect: () => clearInterval(window.__strapTimer),
    },
  };
  Object.defineProperty(navigator, "bluetooth", { value: { requestDevice: async () => device } });
}"""


async def test_hrv_from_a_bluetooth_strap(pages: Pages) -> None:
    session_id = await create_session(pages.hub)
    instructor = await LiveClient.connect(pages.hub.ws_url(session_id, "instructor", name="Sarah"))
    context = await pages.browser.new_context(viewport=PHONE, base_url=pages.hub.base_url)
    pages.contexts.append(context)
    await context.add_init_script(f"({FAKE_STRAP})()")
    participant = await context.new_page()
    participant.on("pageerror", lambda exc: pages.errors.append(str(exc)))
    await participant.goto(f"/participant?session_id={session_id}&name=Ana")
    await live(participant)
    await participant.get_by_role("button", name="Connect a heart-rate strap").click()
    await expect(participant.locator("#strap-bpm")).to_have_text("72 bpm")
    await expect(participant.locator("#hrv-status")).to_have_text(re.compile("from the strap"))
    update = await instructor.next_of("hrv_update", timeout=10)
    # 800 and 850 ms are sent as 819 and 870 ticks of 1/1024 s: 799.8 and 849.6 ms apart by 49.8
    assert update["data"]["hrv"] == 49.8, update
    assert update["actor"]["name"] == "Ana"
    await whole(pages, participant, "strap-phone")
    await participant.get_by_role("button", name="Disconnect strap").click()
    await expect(participant.get_by_role("button", name="Connect a heart-rate strap")).to_be_visible()
    await instructor.close()


async def test_dashboard_watch_link_loads_the_last_50_events(pages: Pages) -> None:
    session_id = await create_session(pages.hub, title="Busy Class")
    instructor = await LiveClient.connect(pages.hub.ws_url(session_id, "instructor", name="Sarah"))
    for i in range(60):
        await instructor.send_event("announcement", {"message": f"note {i}"})
    await instructor.wait_for_seq(61)
    dashboard = await pages.open(f"/dashboard?watch={session_id}", DESKTOP)
    await expect(dashboard.locator("#badge")).to_have_text("Live")
    feed = dashboard.locator("#feed li")
    await expect(feed).to_have_count(50)
    await expect(feed.first).to_contain_text("note 10")
    await expect(dashboard.locator("#watch-title")).to_have_text("Watching Busy Class")
    await pages.shot(dashboard, "watch-link-desktop")
    await dashboard.set_viewport_size(PHONE)
    await pages.shot(dashboard, "watch-link-phone")
    await instructor.close()


async def test_dev_console_asks_for_the_instructor_role(pages: Pages) -> None:
    session_id = await create_session(pages.hub, title="Open Hub Class")
    console = await pages.open(f"/instructor?session_id={session_id}", PHONE)
    await expect(console.locator("#gate")).to_contain_text("open development mode")
    await expect(console.locator("#console")).to_be_hidden()
    await expect(console.locator("#badge")).to_have_text("Not connected")
    await pages.shot(console, "dev-gate-phone")
    await console.get_by_role("button", name="Continue as instructor").click()
    await live(console)
    # Dev mode: the plain participant link works; the join links are there too.
    await expect(console.locator("#dev-link-line")).to_be_visible()
    await console.get_by_role("button", name="Create join link").click()
    await expect(console.locator("#invites li")).to_have_count(1)
    await whole(pages, console, "console-phone")
    await console.set_viewport_size(DESKTOP)
    await whole(pages, console, "console-desktop")
