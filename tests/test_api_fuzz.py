"""Property-based fuzz of the whole HTTP API from its own OpenAPI document (schemathesis):
valid and invalid requests for every operation against a real hub process; none may
answer 5xx. The budget is bounded: a few examples per operation, well under a minute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.auth_support import auth, make_session, token, token_hub
from tests.support import HubProcess

EXAMPLES = 12  # per operation (both modes together): about 600 requests, ~30 s
SESSIONS = ("fuzz-live", "fuzz-scheduled")


@pytest.fixture(scope="module")
def target(pg_base: str) -> Iterator[HubProcess]:
    with token_hub(pg_base) as (hub, _):
        make_session(hub, "acme", SESSIONS[0])
        make_session(hub, "acme", SESSIONS[1], start=False)
        yield hub


def _streams(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(method, path) of the operations answering an event stream, which never ends by
    design (tests/test_sse.py covers them)."""
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if "text/event-stream" in op["responses"].get("200", {}).get("content", {})
    }


def _operations(hub: HubProcess) -> list[Any]:
    document = httpx.get(f"{hub.base_url}/openapi.json", timeout=15).json()
    schema = schemathesis.openapi.from_dict(document)
    streams = _streams(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if (op.method.upper(), op.path) not in streams]


def test_no_generated_request_answers_5xx(target: HubProcess):
    headers = auth(token(role="admin"))
    failures: list[str] = []
    answered: list[int] = []
    operations = _operations(target)
    assert len(operations) >= 45
    for operation in operations:
        # Valid requests on a real session reach the bodies; invalid ones anything at all.
        known = {"session_id": SESSIONS[0]} if "{session_id}" in operation.path else None
        strategies = [
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ]

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(strategies))
        def call(case: Any) -> None:
            response = case.call(base_url=target.base_url, headers=headers, timeout=15)
            answered.append(response.status_code)
            if response.status_code >= 500:
                answer = f"{response.status_code}: {response.text[:300]}"
                failures.append(f"{case.method} {case.formatted_path} {answer}")

        call()
    assert not failures, "\n".join(failures[:20])
    assert {200, 201, 404, 422} <= set(answered), "the fuzz reached the handlers and their refusals"
    assert httpx.get(f"{target.base_url}/readyz", timeout=15).status_code == 200
