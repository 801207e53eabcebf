"""The model layer: the documented limits are the models' limits, every malformed input is a
typed 4xx naming every broken rule, and unknown fields are refused the same way everywhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.routing import Route

from handlers.api import operation_of, query_names
from hub.event_data import DATA_MODELS
from hub.values import INT64_MAX, SEQ_MAX
from tests.records_support import Api, api_fixture  # noqa: F401  (the `api` fixture)

S = "/api/v2/session"
PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
_FIELD = re.compile(r"`(\w+)` \((str|int|number)([^)]*)\)")


def _number(text: str) -> float:
    text = text.replace("−", "-")
    if "^" in text:
        base, power = text.split("^")
        return int(base) ** int(power)
    return float(text)


def _property(schema: dict[str, Any], name: str) -> dict[str, Any]:
    prop: dict[str, Any] = schema["properties"][name]
    for branch in prop.get("anyOf", []):
        if branch.get("type") != "null":
            return {**prop, **branch}
    return prop


def test_the_documented_event_limits_are_the_models():
    text = PROTOCOL.read_text()
    table = text[text.index("| type | required | optional | status needed |") :].split("\n\n")[0]
    checked = 0
    for line in table.splitlines()[2:]:
        event_type, required, optional = (cell.strip() for cell in line.strip("|").split("|")[:3])
        model = DATA_MODELS[event_type.strip("`")]
        if not isinstance(model, type):
            continue
        schema = model.model_json_schema()
        for cell, is_required in ((required, True), (optional, False)):
            if cell.startswith("hub:"):
                continue
            for name, kind, rest in _FIELD.findall(cell):
                prop = _property(schema, name)
                numbers = [_number(n) for n in re.findall(r"−?\d+(?:\^\d+|\.\d+)?", rest)]
                where = f"{event_type}.{name}"
                if kind == "str":
                    low, high = (0, numbers[0]) if "≤" in rest else numbers
                    assert (prop.get("minLength", 0), prop["maxLength"]) == (low, high), where
                else:
                    assert (prop["minimum"], prop["maximum"]) == tuple(numbers), where
                assert (name in schema.get("required", [])) == is_required, where
                checked += 1
    assert checked >= 30


def test_every_seq_fits_a_bigint():
    assert SEQ_MAX < INT64_MAX
    for event_type, model in DATA_MODELS.items():
        if isinstance(model, type):
            for name, prop in model.model_json_schema()["properties"].items():
                maximum = _property(model.model_json_schema(), name).get("maximum")
                assert maximum is None or maximum <= SEQ_MAX, (event_type, name, prop)


async def test_a_nul_in_any_query_filter_is_a_typed_422(api: Api):
    await api.session("s1")
    filtered = []
    for route in api.app.routes:
        described = operation_of(getattr(route, "endpoint", None))
        query = described.query if isinstance(route, Route) and described else None
        if query is not None and "type" in query_names(query):
            filtered.append(route.path.replace("{session_id}", "s1").replace("{topic_id}", "1"))
    assert len(filtered) >= 10
    for path in filtered:
        response = await api.call("GET", path, type="a\x00b")
        assert response.status_code == 422, (path, response.text)
        assert response.json()["error"]["details"]["field"] == "type", path


async def test_odd_digits_and_huge_ids_are_not_found_not_503(api: Api):
    await api.session("s1", start=True)
    for raw in ("¹", "٣", "1¹", str(2**63), "9" * 30, "-1", "0x10"):
        for method, path in (
            ("GET", f"/api/v2/templates/{raw}"),
            ("POST", f"/api/v2/templates/{raw}/sessions"),
            ("POST", f"{S}/s1/artifacts/{raw}/approve"),
            ("DELETE", f"{S}/s1/topics/{raw}"),
            ("GET", f"/api/v2/topics/{raw}/sessions"),
        ):
            response = await api.call(method, path)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "not_found"
    for params in ({"limit": "¹"}, {"cursor": "٣"}, {"since": "²"}, {"cursor": str(2**63)}):
        response = await api.call("GET", f"{S}/s1/events", **params)
        assert response.status_code in (200, 422), (params, response.text)
        if "since" not in params:
            response = await api.call("GET", "/api/v2/sessions", **params)
        assert response.status_code == 422, (params, response.text)


async def test_malformed_record_fields_are_typed_422s(api: Api):
    await api.session("s1")
    for trigger in ("not an object", [], 5, {"trigger_type": 7}, {"trigger_id": "x" * 201}):
        response = await api.call("PATCH", f"{S}/s1", {"state": {"a": 1}, "state_trigger": trigger})
        assert response.status_code == 422, (trigger, response.text)
        assert response.json()["error"]["details"]["field"].startswith("state_trigger"), trigger
    for body, field in (
        ({"follow_up_time": "¹2:00"}, "follow_up_time"),
        ({"follow_up_time": "24:00"}, "follow_up_time"),
        ({"follow_up_timezone": "Mars/Olympus"}, "follow_up_timezone"),
    ):
        response = await api.call("PUT", f"{S}/s1/follow-up", body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["details"]["field"] == field
    assert (await api.ok("GET", f"{S}/s1"))["session_id"] == "s1"


async def test_every_broken_rule_is_listed_and_unknown_fields_are_refused_everywhere(api: Api):
    bad = {"title": "", "max_participants": 0, "scheduled_start": "soon", "colour": "red"}
    response = await api.call("POST", "/api/v2/sessions/create", bad)
    assert response.status_code == 422
    errors = response.json()["error"]["details"]["errors"]
    assert {(e["field"], e["rule"]) for e in errors} == {
        ("title", "min_length"),
        ("max_participants", "range"),
        ("scheduled_start", "type"),
        ("colour", "unknown_field"),
        ("instructor", "required_for_live"),
    }
    await api.session("s1")
    for method, path, body in (
        ("POST", "/api/v2/sessions/create", {"title": "t", "instructor": "i", "colour": "red"}),
        ("PATCH", f"{S}/s1", {"colour": "red"}),
        ("POST", f"{S}/s1/notes", {"note_content": "x", "colour": "red"}),
        ("POST", "/api/v2/templates", {"template_name": "t", "colour": "red"}),
        ("POST", f"{S}/s1/pause", {"reason": "tea", "colour": "red"}),
    ):
        response = await api.call(method, path, body)
        assert response.status_code == 422, (method, path, response.text)
        assert response.json()["error"]["details"]["errors"][-1] == {
            "field": "colour",
            "rule": "unknown_field",
            "message": "is not a field of this request",
        }
