"""Webhooks end to end: a real receiver that checks every signature with the
`standardwebhooks` package; management API, order, retries, give-up and replay."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.webhooks import signing
from hub.webhooks.retry import nominal_delay, retry_delay, schedule
from hub.webhooks.targets import TargetRefused, check_url
from tests.auth_support import SECRET, auth, make_session, token
from tests.support import HubProcess, LiveClient, api, create_session
from tests.webhook_support import FAST_RETRIES, Receiver, in_order_once_each


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver().start()
    yield started
    await started.stop()


async def register(hub: HubProcess, receiver: Receiver, path: str, **body: Any) -> dict[str, Any]:
    response = await api(hub, "POST", "/api/v2/webhooks", {"url": receiver.url(path), **body})
    assert response.status_code == 201, response.text
    created = response.json()
    receiver.secrets[path] = created["secret"]
    return dict(created)


async def publish(hub: HubProcess, session_id: str, events: list[dict[str, Any]]) -> list[int]:
    response = await api(hub, "POST", f"/api/v2/session/{session_id}/events", {"events": events})
    assert response.status_code == 201, response.text
    return [item["seq"] for item in response.json()]


async def recorded(hub: HubProcess, webhook_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The endpoint's attempts once `count` are recorded (they are saved in batches)."""
    for _ in range(100):
        attempts = (await api(hub, "GET", f"/api/v2/webhooks/{webhook_id}/deliveries?limit=500")).json()
        if len(attempts["deliveries"]) >= count:
            break
        await asyncio.sleep(0.05)
    return list(attempts["deliveries"])


def notes(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"type": "note", "data": {"content": f"n{start + i}"}} for i in range(count)]


def test_urls_must_be_http_and_public_unless_allowed():
    for bad in ("ftp://example.com/x", "http:///x", "example.com/x", "http://u:p@example.com/x"):
        with pytest.raises(TargetRefused):
            check_url(bad, allow_private=False)
    for private in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://[::1]/x", "http://localhost/x",
                    "http://169.254.169.254/latest", "http://[::ffff:192.168.0.1]/x"):  # fmt: skip
        with pytest.raises(TargetRefused):
            check_url(private, allow_private=False)
        assert check_url(private, allow_private=True) == private
    assert check_url("https://hooks.example.com/in", allow_private=False)


def test_the_verification_examples_in_the_docs_accept_the_hubs_signatures():
    page = (Path(__file__).parent.parent / "docs" / "integration.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(block, namespace)
    secret, body = signing.new_secret(), b'{"type":"note","seq":1}'
    headers = signing.headers(secret, "msg_1_1", int(time.time()), body)
    assert namespace["verify"](secret, body, headers)["seq"] == 1
    assert namespace["verified_event"](secret, body, headers)["seq"] == 1
    with pytest.raises(ValueError):
        namespace["verify"](signing.new_secret(), body, headers)


def test_retry_schedule_grows_by_three_with_bounded_jitter():
    assert schedule(5, 8) == [5, 15, 45, 135, 405, 1215, 3600]
    for attempt in range(1, 9):
        delay = retry_delay(attempt, 5)
        assert 0.75 * nominal_delay(attempt, 5) <= delay <= 1.25 * nominal_delay(attempt, 5)


async def test_every_event_type_arrives_in_order_signed_and_as_members_see_it(hub_factory, receiver):
    hub = hub_factory(**FAST_RETRIES)
    created = await register(hub, receiver, "/all")
    assert created["secret"].startswith("whsec_") and created["events"] == ["*"]
    session_id = await create_session(hub)
    member = await LiveClient.connect(hub.ws_url(session_id, "participant", user_id="pat", name="Pat"))
    teacher = await LiveClient.connect(hub.ws_url(session_id, "instructor", user_id="sarah"))
    sent = [
        ("technique_changed", {"technique": "Box Breathing"}),
        ("prompt", {"text": "How do you feel?"}),
        ("announcement", {"message": "Break soon"}),
        ("achievement_unlocked", {"title": "Calm"}),
        ("hrv_milestone", {"improvement": 10}),
        ("session_update", {"phase": "cool-down"}),
        ("note", {"content": "steady"}),
        ("session_ending", {"seconds_remaining": 60}),
        ("session_paused", {}),
        ("session_resumed", {}),
    ]
    for event_type, data in sent:
        assert (await teacher.request(event_type, data))["type"] == "ack", event_type
    for event_type, data in (("hrv_update", {"hrv": 52}), ("response", {"text": "good"})):
        assert (await member.request(event_type, data))["type"] == "ack"
    feedback = {"message_seq": 3, "feedback_type": "like"}
    assert (await member.request("feedback", feedback))["type"] == "ack"
    await member.close()
    await asyncio.sleep(2.5)  # the presence grace: participant_left is written
    assert (await api(hub, "POST", f"/api/v2/session/{session_id}/end")).status_code == 200
    for _ in range(100):  # the hub appends the session's summary after it ended
        log = (await api(hub, "GET", f"/api/v2/session/{session_id}/events")).json()["events"]
        if log[-1]["type"] == "session_summary":
            break
        await asyncio.sleep(0.05)
    await receiver.wait_for("/all", len(log))
    received = [r.body for r in receiver.received["/all"]]
    assert [b["seq"] for b in received] == [e["seq"] for e in log] == list(range(1, len(log) + 1))
    as_staff_get_it = [{**event, "prev_seq": event["seq"] - 1, "account": "default"} for event in log]
    assert received == as_staff_get_it
    types = {b["type"] for b in received}
    assert {"session_started", "participant_joined", "participant_left", "session_ended"} <= types
    assert received[-2]["type"] == "session_ended" and received[-1]["type"] == "session_summary"
    assert {t for t, _ in sent} <= types and {"hrv_update", "response", "feedback"} <= types
    by_seq = {b["seq"]: b for b in received}
    seen = [m for m in teacher.messages if m.get("seq") is not None]
    assert len(seen) > 10 and all(by_seq[m["seq"]] == {**m, "account": "default"} for m in seen)
    assert all(r.message_id == f"msg_{1}_{r.body['seq']}" for r in receiver.received["/all"])
    assert receiver.bad_signatures == 0
    await teacher.close()


async def test_management_api_filters_and_typed_errors(hub_factory, receiver):
    hub = hub_factory(**FAST_RETRIES)
    session_id = await create_session(hub)
    other_id = await create_session(hub)
    only = await register(hub, receiver, "/prompts", events=["prompt"], session_id=session_id)
    listing = (await api(hub, "GET", "/api/v2/webhooks")).json()
    assert listing["count"] == 1 and "secret" not in listing["webhooks"][0]
    one = (await api(hub, "GET", f"/api/v2/webhooks/{only['id']}")).json()
    assert one["events"] == ["prompt"] and one["session_id"] == session_id and one["state"] == "healthy"
    prompt = {"type": "prompt", "data": {"text": "?"}}
    await publish(hub, other_id, [prompt])
    seqs = await publish(hub, session_id, [*notes(2), prompt, *notes(1)])
    await receiver.wait_for("/prompts", 1)
    await asyncio.sleep(0.5)
    assert receiver.seqs("/prompts") == [seqs[2]], "only the prompt of the one session"
    attempt = (await recorded(hub, only["id"]))[0]
    assert attempt["status"] == "delivered" and attempt["response_code"] == 204
    assert attempt["event"]["seq"] == seqs[2] and attempt["next_retry_at"] is None
    bad = [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": receiver.url("/x"), "events": ["dance"]}, "events"),
        ({"url": receiver.url("/x"), "events": []}, "events"),
        ({"url": receiver.url("/x"), "session_id": "has space"}, "session_id"),
        ({"events": ["*"]}, "url"),
        ({"url": receiver.url("/x"), "extra": True}, "extra"),
    ]
    for body, field in bad:
        response = await api(hub, "POST", "/api/v2/webhooks", body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid" and error["details"]["field"] == field
    assert (await api(hub, "POST", "/api/v2/webhooks", content=b"{")).status_code == 400
    assert (await api(hub, "GET", "/api/v2/webhooks/wh_nope")).status_code == 404
    replay = {"session_id": "missing", "since": 0}
    assert (await api(hub, "POST", f"/api/v2/webhooks/{only['id']}/replay", replay)).status_code == 404
    replay = {"session_id": other_id, "since": 0}
    assert (await api(hub, "POST", f"/api/v2/webhooks/{only['id']}/replay", replay)).status_code == 422
    deleted = await api(hub, "DELETE", f"/api/v2/webhooks/{only['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"id": only["id"], "deleted": True}
    assert (await api(hub, "GET", f"/api/v2/webhooks/{only['id']}")).status_code == 404
    assert (await api(hub, "GET", "/api/v2/webhooks")).json()["count"] == 0


async def test_failing_slow_and_absent_receivers_are_retried_in_order(hub_factory, receiver):
    hub = hub_factory(**FAST_RETRIES)
    hook = await register(hub, receiver, "/flaky")
    session_id = await create_session(hub)  # seq 1: session_started
    receiver.status = 500
    await publish(hub, session_id, notes(3))
    await asyncio.sleep(0.6)
    held = (await api(hub, "GET", f"/api/v2/webhooks/{hook['id']}")).json()
    assert held["state"] == "retrying" and held["backlog"] >= 4 and held["last_error"] == "answered 500"
    receiver.status = 204
    await receiver.wait_for("/flaky", 4)
    receiver.delay = 1.5  # longer than HUB_WEBHOOK_TIMEOUT
    await publish(hub, session_id, notes(2, start=3))
    await asyncio.sleep(1.2)
    receiver.delay = 0
    await receiver.stop()  # nothing listens: connection refused
    await publish(hub, session_id, notes(2, start=5))
    await asyncio.sleep(0.5)
    await receiver.start()
    await receiver.wait_for("/flaky", 8)
    seqs = receiver.seqs("/flaky")
    assert in_order_once_each(seqs) and sorted(set(seqs)) == list(range(1, 9))
    attempts = (await api(hub, "GET", f"/api/v2/webhooks/{hook['id']}/deliveries?limit=500")).json()
    retried = [a for a in attempts["deliveries"] if a["status"] == "retrying"]
    codes = {a["response_code"] for a in retried}
    assert 500 in codes and None in codes, "500s, timeouts and refused connections were all retried"
    assert all(a["next_retry_at"] and a["error"] for a in retried)
    assert any("no answer within" in a["error"] for a in retried)
    assert receiver.bad_signatures == 0


async def test_an_event_is_given_up_visibly_and_replay_delivers_it_again(hub_factory, receiver):
    hub = hub_factory(**FAST_RETRIES, HUB_WEBHOOK_MAX_ATTEMPTS="3")
    hook = await register(hub, receiver, "/strict")
    session_id = await create_session(hub)
    await receiver.wait_for("/strict", 1)
    receiver.status = 503
    [lost] = await publish(hub, session_id, notes(1))
    for _ in range(100):
        attempts = (await api(hub, "GET", f"/api/v2/webhooks/{hook['id']}/deliveries")).json()["deliveries"]
        if any(a["status"] == "failed" for a in attempts):
            break
        await asyncio.sleep(0.05)
    assert [a["attempt"] for a in attempts if a["event"]["seq"] == lost] == [3, 2, 1]
    assert (await api(hub, "GET", f"/api/v2/webhooks/{hook['id']}")).json()["state"] == "failing"
    receiver.status = 204
    [after] = await publish(hub, session_id, notes(1, start=1))
    await receiver.wait_for("/strict", 2)
    assert receiver.seqs("/strict") == [1, after], "the given-up event no longer holds the session back"
    replay = {"session_id": session_id, "since": 1}
    response = await api(hub, "POST", f"/api/v2/webhooks/{hook['id']}/replay", replay)
    assert response.status_code == 202 and response.json()["head_seq"] == after
    await receiver.wait_for("/strict", 3)
    await asyncio.sleep(0.3)
    assert receiver.seqs("/strict") == [1, after, lost, after]


async def test_a_session_failing_holds_back_only_itself(hub_factory, receiver):
    hub = hub_factory(**FAST_RETRIES)
    await register(hub, receiver, "/two")
    first, second = await create_session(hub), await create_session(hub)
    await receiver.wait_for("/two", 2)
    receiver.refuse = {first}
    await publish(hub, first, notes(2))
    await publish(hub, second, notes(3))
    await receiver.wait_for("/two", 4, session_id=second)
    assert receiver.seqs("/two", first) == [1]
    assert receiver.seqs("/two", second) == [1, 2, 3, 4]
    receiver.refuse = set()
    await receiver.wait_for("/two", 3, session_id=first)
    assert receiver.seqs("/two", first) == [1, 2, 3]


async def test_accounts_never_see_each_others_webhooks_or_events(hub_factory, receiver):
    hub = hub_factory(HUB_DEV="0", HUB_SECRET=SECRET, **FAST_RETRIES)
    hooks: dict[str, str] = {}
    for account in ("acme", "globex"):
        make_session(hub, account, "shared-id")  # the same session id in both accounts
        admin = auth(token(account=account, user=f"{account}-admin", role="admin"))
        created = await api(
            hub, "POST", "/api/v2/webhooks", {"url": receiver.url(f"/{account}")}, headers=admin
        )
        assert created.status_code == 201
        hooks[account] = created.json()["id"]
        receiver.secrets[f"/{account}"] = created.json()["secret"]
        service = auth(token(account=account, user="bot", role="service"))
        note = {"type": "note", "data": {"content": f"for {account}"}}
        assert (
            await api(hub, "POST", "/api/v2/session/shared-id/events", note, headers=service)
        ).status_code == 201
    await receiver.wait_for("/acme", 1)
    await receiver.wait_for("/globex", 1)
    await asyncio.sleep(0.3)
    for account in ("acme", "globex"):
        bodies = [r.body for r in receiver.received[f"/{account}"]]
        assert {b["account"] for b in bodies} == {account}
        assert [b["data"].get("content") for b in bodies if b["type"] == "note"] == [f"for {account}"]
    acme = auth(token(account="acme", user="acme-admin", role="admin"))
    theirs = hooks["globex"]
    assert [
        h["id"] for h in (await api(hub, "GET", "/api/v2/webhooks", headers=acme)).json()["webhooks"]
    ] == [hooks["acme"]]
    for method, path, body in (
        ("GET", f"/api/v2/webhooks/{theirs}", None),
        ("GET", f"/api/v2/webhooks/{theirs}/deliveries", None),
        ("POST", f"/api/v2/webhooks/{theirs}/replay", {"session_id": "shared-id", "since": 0}),
        ("DELETE", f"/api/v2/webhooks/{theirs}", None),
    ):
        assert (await api(hub, method, path, body, headers=acme)).status_code == 404, (method, path)
    instructor = auth(token(account="acme", role="instructor"))
    assert (await api(hub, "GET", "/api/v2/webhooks", headers=instructor)).status_code == 403
    assert (await api(hub, "GET", "/api/v2/webhooks")).status_code == 401
