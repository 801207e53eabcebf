"""The welcome carries the session's current state (hub/session_state.py): a late joiner
or a reload sees the open prompt and the latest announcement at once, as its view holds
them, whether the room was already open on this process or is opened by this join."""

from __future__ import annotations

import asyncio

from tests.support import LiveClient, api, create_session


def state_of(client: LiveClient) -> tuple[object, object]:
    data = client.welcome["data"]
    prompt, announcement = data["open_prompt"], data["latest_announcement"]
    return (
        prompt and (prompt["seq"], prompt["data"]["text"]),
        announcement and (announcement["seq"], announcement["data"]["message"]),
    )


async def test_late_joiners_see_the_open_prompt_and_the_last_announcement(hub_factory):
    hub = hub_factory(HUB_ROOM_LINGER="0.1")
    session_id = await create_session(hub)
    early = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Ana", user_id="ana"))
    assert state_of(early) == (None, None)
    instructor = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    first = (await instructor.request("prompt", {"text": "How do you feel?"}))["data"]["seq"]
    said = (await instructor.request("announcement", {"message": "Welcome", "title": "Hi"}))["data"]["seq"]
    prompt = (await instructor.request("prompt", {"text": "Where is your breath?"}))["data"]["seq"]
    assert first < said < prompt

    # The room is open here: the state comes from the events it delivered.
    late = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Ben", user_id="ben"))
    assert state_of(late) == ((prompt, "Where is your breath?"), (said, "Welcome"))
    announcement = late.welcome["data"]["latest_announcement"]
    assert announcement["actor"]["name"] == "Sarah" and announcement["ts"].endswith("Z")
    assert announcement["data"] == {"message": "Welcome", "title": "Hi"}

    # Prompts become staff-only; the next one is not the participants' open prompt.
    response = await api(
        hub, "PATCH", f"/api/v2/session/{session_id}/audience", {"audience": {"prompt": "staff"}}
    )
    assert response.status_code == 200, response.text
    secret = (await instructor.request("prompt", {"text": "For the staff only"}))["data"]["seq"]
    reload = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Ben", user_id="ben"))
    assert state_of(reload) == ((prompt, "Where is your breath?"), (said, "Welcome"))
    observer = await LiveClient.connect(hub.ws_url(session_id, "observer", name="Dash"))
    assert state_of(observer) == ((secret, "For the staff only"), (said, "Welcome"))

    # Everyone leaves, the room closes; the next join opens it and reads the log back.
    for client in (early, instructor, late, reload, observer):
        await client.close()
    await asyncio.sleep(2.5)  # presence grace, then the room's linger
    again = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Cleo", user_id="cleo"))
    assert state_of(again) == ((prompt, "Where is your breath?"), (said, "Welcome"))
    staff = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Sarah"))
    assert state_of(staff) == ((secret, "For the staff only"), (said, "Welcome"))
    await again.close()
    await staff.close()
