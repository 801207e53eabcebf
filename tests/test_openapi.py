"""/openapi.json and /asyncapi.json are generated from the app and its models: the OpenAPI
document is valid, documents every route with typed bodies and every status, and what the
hub really answers conforms to it; the AsyncAPI document names every message type."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from handlers.app import create_app
from handlers.session_fields import SessionCreate
from hub.config import Settings
from hub.event_data import DATA_MODELS
from hub.events import DURABLE_TYPES, SENDABLE_BY_ROLE
from tests.records_support import Api, api_fixture  # noqa: F401  (the `api` fixture)

S = "/api/v2/session"


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(Settings(dev_mode=True))


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    from handlers.openapi import build_document

    return build_document(app.routes)


def test_the_document_is_valid_openapi(document):
    validate(document)
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_every_route_is_documented_with_typed_bodies(app, document):
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served == documented
    schemas = document["components"]["schemas"]
    for path, method in documented:
        op = document["paths"][path][method]
        for status, answer in op["responses"].items():
            for media, content in answer["content"].items():
                schema = content["schema"]
                if media == "application/json":
                    assert "$ref" in schema or "additionalProperties" in schema, (path, method, status)
                    if "$ref" in schema:
                        assert schemas[schema["$ref"].rsplit("/", 1)[-1]].get("properties"), (path, status)
        if "requestBody" in op:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert schemas[ref.rsplit("/", 1)[-1]]["properties"], (path, method)
        elif method in ("put", "patch"):
            raise AssertionError(f"{method} {path} documents no body")
        if path.startswith("/api/"):
            assert {"401", "403"} <= set(op["responses"]), (path, method)
            assert op.get("security") != [], (path, method)


def test_every_status_an_operation_answers_is_listed(document):
    paths = document["paths"]
    # list filters answer 422; lifecycle bodies 400, 413, 422; a session path 404
    for path, item in paths.items():
        for method, op in item.items():
            names = {p["name"] for p in op.get("parameters", [])}
            if names & {"limit", "status", "type", "include_metrics", "since"}:
                assert "422" in op["responses"], (method, path)
            if "{" in path and path.startswith("/api/"):
                assert "404" in op["responses"], (method, path)
    for action in ("start", "pause", "resume", "end", "cancel"):
        responses = paths[f"{S}/{{session_id}}/{action}"]["post"]["responses"]
        assert {"200", "400", "401", "403", "404", "409", "413", "422", "503"} <= set(responses), action
    create = paths["/api/v2/sessions/create"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = document["components"]["schemas"][body]["properties"]
    assert set(properties) == set(SessionCreate.model_fields) and len(properties) >= 36


def _operation(document: dict[str, Any], method: str, url: str) -> tuple[str, dict[str, Any]]:
    path = httpx.URL(url).path
    for template, item in document["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not documented")


class Checked:
    """Calls the in-process app and checks each answer against the document."""

    def __init__(self, api: Api, document: dict[str, Any]):
        self.api, self.document = api, document
        self.seen: set[tuple[str, str, int]] = set()

    async def __call__(self, method: str, path: str, json: Any = None, **kw: Any) -> Any:
        response = await self.api.call(method, path, json, **kw)
        template, op = _operation(self.document, method, path)
        status = str(response.status_code)
        assert status in op["responses"], (method, path, status, response.text)
        schema = op["responses"][str(response.status_code)]["content"]["application/json"]["schema"]
        root = {**self.document, **schema}
        jsonschema.Draft202012Validator(root).validate(response.json())
        self.seen.add((method, template, response.status_code))
        return response.json()


async def test_what_the_hub_answers_conforms_to_the_document(api: Api, document):
    call = Checked(api, document)
    await call("POST", "/api/v2/sessions/create", {"session_id": "s1", "title": "T", "instructor": "I"})
    await call("POST", "/api/v2/sessions/create", {"session_id": "s1", "title": "T", "instructor": "I"})
    await call("POST", "/api/v2/sessions/create", {"title": "", "colour": "red", "max_participants": 0})
    await call("POST", f"{S}/s1/start", {"message": "welcome"})
    await call("POST", f"{S}/s1/start")
    prompt = await api.event("s1", "prompt", {"text": "How are you?", "topic": "Mood"}, user="sarah")
    await api.event("s1", "response", {"text": "Fine", "prompt_seq": prompt})
    await api.event("s1", "hrv_update", {"hrv": 55, "improvement": 7})
    for path in (
        "/api/v2/sessions?status=in_progress,paused",
        "/api/v2/sessions/live?include_metrics=true",
        "/api/v2/sessions/live",
        f"{S}/s1",
        f"{S}/s1/content?include_metrics=true&include_replay=true",
        f"{S}/s1/events?since=1",
        f"{S}/s1/interactions",
        f"{S}/s1/summaries",
        f"{S}/s1/summary",
        f"{S}/s1/progress",
        f"{S}/s1/metrics",
        f"{S}/s1/follow-up",
        f"{S}/s1/state/transitions",
        f"{S}/s1/children",
        f"{S}/s1/ancestors",
        f"{S}/nope",
        f"{S}/s1/notes?type=rant",
    ):
        await call("GET", path)
    await call("PATCH", f"{S}/s1", {"tags": ["a"], "state": {"step": 1}, "success_rating": 4})
    await call("PATCH", f"{S}/s1", {"state_trigger": "not an object"})
    await call("POST", f"{S}/s1/notes", {"note_content": "steady", "is_important": True})
    await call("GET", f"{S}/s1/notes?status=important")
    await call("POST", f"{S}/s1/feedback", {"message_seq": prompt, "feedback_type": "like"})
    await call("GET", f"{S}/s1/feedback")
    artifact = await call("POST", f"{S}/s1/artifacts", {"artifact_type": "scene", "structured_data": [1]})
    await call("POST", f"{S}/s1/artifacts/{artifact['id']}/approve", {"included_in_synthesis": True})
    await call("GET", f"{S}/s1/artifacts")
    topic = await call("POST", f"{S}/s1/topics", {"name": "Mood", "coverage_level": "exploration"})
    await call("GET", f"{S}/s1/topics")
    await call("GET", "/api/v2/topics")
    await call("GET", f"/api/v2/topics/{topic['topic_id']}/sessions")
    await call("DELETE", f"{S}/s1/topics/{topic['topic_id']}")
    intro = {"template_name": "Intro", "defaults": {"tags": ["x"]}}
    template = await call("POST", "/api/v2/templates", intro)
    await call("GET", "/api/v2/templates")
    await call("GET", f"/api/v2/templates/{template['template_id']}")
    await call("POST", f"/api/v2/templates/{template['template_id']}/sessions", {"instructor": "I"})
    await call("PUT", f"{S}/s1/follow-up", {"follow_up_enabled": True, "follow_up_time": "00:00"})
    await call("POST", f"{S}/s1/follow-up/sent")
    await call("GET", "/api/v2/sessions/followups/due")
    await call("POST", "/api/v2/live-announce", {"announcement": {"message": "hi"}, "session_id": "s1"})
    await call("POST", f"{S}/s1/records/rebuild")
    when = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    summary = {
        "title": "T",
        "session_id": "s1",
        "session_duration": 600,
        "participant_count": 3,
        "breathing_techniques": ["Box"],
        "instructor_name": "I",
        "session_date": when,
    }
    await call("POST", "/api/v2/session-summary", summary)
    await call("POST", "/api/v2/session-summary", {"session_data": summary, "channels": ["web"]})
    await call("POST", f"{S}/s1/end")
    await call("GET", "/healthz")
    await call("GET", "/readyz")
    assert len({(m, t) for m, t, _ in call.seen}) >= 40
    assert {s for _, _, s in call.seen} >= {200, 201, 404, 409, 422}


async def test_the_asyncapi_document_names_every_message(api: Api):
    document = (await api.call("GET", "/asyncapi.json")).json()
    assert document["asyncapi"].startswith("3.")
    messages = document["components"]["messages"]
    assert {m.removeprefix("event_") for m in messages if m.startswith("event_")} == set(DURABLE_TYPES)
    sendable = set().union(*SENDABLE_BY_ROLE.values())
    frames = {m.removeprefix("frame_") for m in messages if m.startswith("frame_")}
    assert frames == sendable | {"heartbeat", "refresh"}
    controls = {"welcome", "ack", "error", "pong", "token_expiring", "refreshed"}
    assert {f"control_{c}" for c in controls} <= set(messages)
    assert set(DATA_MODELS) == set(DURABLE_TYPES)
    # What the hub accepts validates against the frame schemas, and what it refuses does not.
    root = {"components": document["components"]}
    good = {"type": "note", "id": "n1", "data": {"content": "x", "interaction_sequence": 2**62, "extra": 1}}
    jsonschema.Draft202012Validator({**root, **messages["frame_note"]["payload"]}).validate(good)
    bad = {"type": "note", "id": "n1", "data": {"content": "x", "interaction_sequence": 2**62 + 1}}
    assert not jsonschema.Draft202012Validator({**root, **messages["frame_note"]["payload"]}).is_valid(bad)
    assert document["x-close-code-of-error"]["internal"] == 1011
