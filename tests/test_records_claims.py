"""A token's `sessions` claim is honoured by every listing and relation: a session the
token does not name is not there, whether reached by id, as a child, an ancestor, a
topic's session, a parent, or counted in a topic. Every GET route of the app is walked
(discovered from its routes, as tests/test_auth_matrix.py does), in-process."""

from __future__ import annotations

from typing import Any

from tests.records_support import Api, api_fixture  # noqa: F401  (the `api` fixture)

S = "/api/v2/session"
SEEN = ("mine", "kid-seen")
HIDDEN = {"hidden-root": "ROOT-MARKER", "hidden-sibling": "SIBLING-MARKER", "hidden-kid": "KID-MARKER"}


async def _family(api: Api) -> dict[str, Any]:
    """hidden-root > (mine > (kid-seen, hidden-kid), hidden-sibling), all on one topic."""
    await api.session("hidden-root", title=HIDDEN["hidden-root"])
    await api.session("mine", parent_session_id="hidden-root")
    await api.session("hidden-sibling", title=HIDDEN["hidden-sibling"], parent_session_id="hidden-root")
    await api.session("kid-seen", parent_session_id="mine")
    await api.session("hidden-kid", title=HIDDEN["hidden-kid"], parent_session_id="mine")
    topic = None
    for sid in ("hidden-root", "mine", "hidden-sibling", "kid-seen", "hidden-kid"):
        topic = await api.ok("POST", f"{S}/{sid}/topics", {"name": "Family"}, 201)
    template = await api.ok("POST", "/api/v2/templates", {"template_name": "T"}, 201)
    return {"session_id": "mine", "topic_id": topic["topic_id"], "template_id": template["template_id"]}


def _get_routes(api: Api) -> list[str]:
    # The event stream never ends by design (its claims are tested in tests/test_sse.py).
    return [
        r.path
        for r in api.app.routes
        if r.path.startswith("/api/")
        and "GET" in (getattr(r, "methods", None) or ())
        and not r.path.endswith("/stream")
    ]


async def test_every_listing_and_relation_honours_the_sessions_claim(api: Api):
    params = await _family(api)
    headers = {"Authorization": "Bearer " + api.app.state.auth.issue("acme", "ann", "admin", list(SEEN))}
    routes = _get_routes(api)
    assert len(routes) >= 20
    for path in routes:
        filled = path
        for name, value in params.items():
            filled = filled.replace("{" + name + "}", str(value))
        filled = filled.replace("{artifact_id}", "1")
        response = await api.http.get(filled, headers=headers)
        assert response.status_code < 500, (path, response.text)
        for sid, marker in HIDDEN.items():
            assert marker not in response.text, (path, sid, response.text)
            if sid != "hidden-root":  # mine's own record names its parent's id
                assert sid not in response.text, (path, sid, response.text)

    kids = await api.http.get(f"{S}/mine/children", headers=headers)
    assert [s["session_id"] for s in kids.json()["sessions"]] == ["kid-seen"]
    chain = (await api.http.get(f"{S}/kid-seen/ancestors", headers=headers)).json()
    assert [a["session_id"] for a in chain["ancestors"]] == ["mine"]
    assert chain["depth"] == 1 and chain["root_session_id"] == "mine"
    listed = await api.http.get(f"/api/v2/topics/{params['topic_id']}/sessions", headers=headers)
    assert sorted(s["session_id"] for s in listed.json()["sessions"]) == sorted(SEEN)
    (topic,) = (await api.http.get("/api/v2/topics", headers=headers)).json()["topics"]
    assert topic["session_count"] == len(SEEN)

    # A parent outside the claim is answered as one that does not exist.
    for parent in ("hidden-sibling", "never-created"):
        patch = await api.http.patch(f"{S}/kid-seen", json={"parent_session_id": parent}, headers=headers)
        assert patch.status_code == 422 and parent in patch.text, patch.text
    body = {"session_id": "kid-seen", "title": "t", "instructor": "i", "parent_session_id": "hidden-sibling"}
    created = await api.http.post("/api/v2/sessions/create", json=body, headers=headers)
    assert created.status_code == 422, created.text

    # Without the claim, the same admin sees the whole family.
    everything = await api.ok("GET", f"{S}/mine/children", role="admin")
    assert sorted(s["session_id"] for s in everything["sessions"]) == ["hidden-kid", "kid-seen"]
