"""An in-process hub app on the test's database, called over ASGI with real tokens:
HTTP tests of the records without starting a process each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from handlers.app import create_app
from hub.config import Settings
from hub.store import SessionRecord

SECRET = "records-test-secret-0123456789abcdef"


class Api:
    def __init__(self, http: httpx.AsyncClient, app: Any):
        self.http = http
        self.app = app

    @property
    def hub(self) -> Any:
        return self.app.state.hub

    def token(self, user: str = "sarah", role: str = "instructor", account: str = "acme") -> dict[str, str]:
        return {"Authorization": "Bearer " + self.app.state.auth.issue(account, user, role)}

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        user: str = "sarah",
        role: str = "instructor",
        account: str = "acme",
        **params: Any,
    ) -> httpx.Response:
        return await self.http.request(
            method, path, json=json, headers=self.token(user, role, account), params=params or None
        )

    async def ok(self, method: str, path: str, json: Any = None, expect: int = 200, **kw: Any) -> Any:
        response = await self.call(method, path, json, **kw)
        assert response.status_code == expect, response.text
        return response.json()

    async def session(self, session_id: str, start: bool = False, **fields: Any) -> dict[str, Any]:
        body = {"session_id": session_id, "title": "Childhood", "instructor": "Sarah", **fields}
        created = await self.ok("POST", "/api/v2/sessions/create", body, 201)
        if start:
            await self.ok("POST", f"/api/v2/session/{session_id}/start")
        return created  # type: ignore[no-any-return]

    async def record(self, session_id: str, account: str = "acme") -> SessionRecord:
        record = await self.hub.store.get_session(account, session_id)
        assert record is not None
        return record  # type: ignore[no-any-return]

    async def event(self, session_id: str, event_type: str, data: dict[str, Any], user: str = "bob") -> int:
        """Append one durable event as the hub does for a client frame; its seq."""
        role = "participant" if event_type in ("response", "feedback", "hrv_update") else "instructor"
        actor = {"user_id": user, "name": user.title(), "role": role}
        result = await self.hub.append(await self.record(session_id), event_type, data, actor)
        assert result.error is None, result
        return int(result.seq)


@pytest.fixture(name="api")
async def api_fixture(database: str) -> AsyncIterator[Api]:
    settings = Settings(dev_mode=False, secret_keys={"k1": SECRET}, database_url=database, db_pool_max=4)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            yield Api(http, app)
