"""End to end through a real hub process: events sent over WebSocket become records, and
after a kill -9 and restart the records rebuilt from the log equal the live ones."""

from __future__ import annotations

from typing import Any

from tests.support import HubProcess, LiveClient, api, create_session

KINDS = ("interactions", "notes", "feedback", "summaries")


async def derived(hub: HubProcess, base: str) -> dict[str, Any]:
    """The log-derived records; a rebuild gives notes and feedback new surrogate ids."""
    found = {}
    for kind in KINDS:
        items = (await api(hub, "GET", f"{base}/{kind}")).json()[kind]
        found[kind] = [{k: v for k, v in item.items() if k != "id"} for item in items]
    return found


async def test_live_events_become_records_and_survive_a_restart_and_rebuild(hub):
    session_id = await create_session(hub, session_type="coaching", instructor="Amora")
    coach = await LiveClient.connect(hub.ws_url(session_id, "instructor", name="Amora", user_id="amora"))
    user = await LiveClient.connect(hub.ws_url(session_id, "participant", name="Bob", user_id="bob"))
    prompt_seqs = []
    for turn in range(5):
        ack = await coach.request("prompt", {"text": f"Q{turn}", "category": "feelings"})
        prompt_seqs.append(ack["data"]["seq"])
        assert (await user.request("response", {"text": f"A{turn}", "prompt_seq": ack["data"]["seq"]}))[
            "type"
        ] == "ack"
    await user.request("feedback", {"message_seq": prompt_seqs[0], "feedback_type": "like"})
    await coach.request("note", {"content": "improving", "note_type": "insight", "is_important": True})
    await coach.close()
    await user.close()

    base = f"/api/v2/session/{session_id}"
    interactions = (await api(hub, "GET", f"{base}/interactions")).json()
    assert interactions["count"] == 10
    assert [
        i["prompt_seq"] for i in interactions["interactions"] if i["interaction_type"] == "response"
    ] == prompt_seqs
    summaries = (await api(hub, "GET", f"{base}/summaries")).json()
    assert [s["kind"] for s in summaries["summaries"]] == ["periodic"]
    feedback = (await api(hub, "GET", f"{base}/feedback")).json()
    assert [(f["user_id"], f["feedback_type"]) for f in feedback["feedback"]] == [("bob", "like")]
    before = await derived(hub, base)

    hub.kill()
    hub.start()
    rebuilt = await api(hub, "POST", f"{base}/records/rebuild")
    assert rebuilt.status_code == 200, rebuilt.text
    after = await derived(hub, base)
    assert after == before
    openapi = (await api(hub, "GET", "/openapi.json")).json()
    for path in (
        f"/api/v2/session/{{session_id}}/{p}" for p in ("interactions", "notes", "feedback", "summaries")
    ):
        assert path in openapi["paths"]
    assert "patch" in openapi["paths"]["/api/v2/session/{session_id}"]
    assert (
        "/api/v2/session-summary" in openapi["paths"] and "/api/v2/sessions/followups/due" in openapi["paths"]
    )
