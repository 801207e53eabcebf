"""HubAPI: the hub's HTTP side (`/api/v2`), for backends and tools.

Every method returns the hub's JSON answer; an error answers HubAPIError with the status
and the hub's error envelope (`code`, `message`, `details`).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from .errors import HubAPIError
from .tokens import TokenProvider, TokenSource

JSON = dict[str, Any]


class HubAPI:
    """`async with HubAPI("http://127.0.0.1:8000", token=T) as api: await api.live_sessions()`"""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        token_provider: TokenProvider | None = None,
        timeout: float = 15.0,
        client: httpx.AsyncClient | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.tokens = TokenSource(token, token_provider)
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> HubAPI:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    # sessions

    async def create_session(
        self, title: str, instructor: str, session_id: str | None = None, **fields: Any
    ) -> JSON:
        """Schedule a session (seed 003's fields: `session_type`, `max_participants`, ...)."""
        body: JSON = {"title": title, "instructor": instructor, **fields}
        if session_id is not None:
            body["session_id"] = session_id
        return await self._request("POST", "/api/v2/sessions/create", json=body)

    async def get_session(self, session_id: str) -> JSON:
        return await self._request("GET", _session(session_id))

    async def list_sessions(self, status: str | None = None, limit: int | None = None) -> JSON:
        return await self._request("GET", "/api/v2/sessions", params=_params(status=status, limit=limit))

    async def live_sessions(self, include_metrics: bool = False) -> JSON:
        """`{count, sessions: [...]}`: the sessions in progress or paused."""
        params = _params(include_metrics=include_metrics)
        return await self._request("GET", "/api/v2/sessions/live", params=params)

    async def start_session(self, session_id: str, message: str | None = None) -> JSON:
        return await self._lifecycle(session_id, "start", message=message)

    async def pause_session(self, session_id: str, reason: str | None = None) -> JSON:
        return await self._lifecycle(session_id, "pause", reason=reason)

    async def resume_session(self, session_id: str, message: str | None = None) -> JSON:
        return await self._lifecycle(session_id, "resume", message=message)

    async def end_session(self, session_id: str, message: str | None = None) -> JSON:
        return await self._lifecycle(session_id, "end", message=message)

    async def cancel_session(self, session_id: str, reason: str | None = None) -> JSON:
        return await self._lifecycle(session_id, "cancel", reason=reason)

    # content and the log

    async def content(
        self, session_id: str, include_metrics: bool = False, include_replay: bool = False
    ) -> JSON:
        """`session_info`, and on request `metrics` and `replay` (`message_count`, `messages`):
        what to refetch after `resume_unavailable`."""
        params = _params(include_metrics=include_metrics, include_replay=include_replay)
        return await self._request("GET", _session(session_id) + "/content", params=params)

    async def events(self, session_id: str, since: int = 0, limit: int | None = None) -> JSON:
        """A page of the session's log after `since`: `{head_seq, retained_from, events}`."""
        params = _params(since=since, limit=limit)
        return await self._request("GET", _session(session_id) + "/events", params=params)

    async def announce(self, message: str, session_id: str | None = None, **fields: Any) -> JSON:
        """An announcement to one session, or (admins) to every live session of the account."""
        body: JSON = {"announcement": {"message": message, **fields}}
        if session_id is not None:
            body["session_id"] = session_id
        return await self._request("POST", "/api/v2/live-announce", json=body)

    async def publish(self, session_id: str, type: str, data: JSON, id: str | None = None) -> JSON:
        """Server-side publish: `{"seq", "duplicate"}` once the event is durable. The same
        `id` again answers the first seq with `duplicate: true` and stores nothing."""
        body: JSON = {"type": type, "data": data}
        if id is not None:
            body["id"] = id
        return await self._request("POST", f"{_session(session_id)}/events", json=body)

    async def publish_many(self, session_id: str, events: list[JSON]) -> Any:
        """A batch of `{"type", "data", "id"?}` events, stored in order: a list with one
        answer each (`{"seq", "duplicate"}`, or `{"seq": None, "error"}` for a refused one)."""
        answer = await self._request("POST", f"{_session(session_id)}/events", json={"events": events})
        return answer["body"]

    async def disconnect(self, session_id: str, user_id: str) -> JSON:
        """Close a user's connections to the session with a do-not-reconnect code."""
        return await self._request("POST", f"{_session(session_id)}/disconnect", json={"user_id": user_id})

    # plumbing

    async def _lifecycle(self, session_id: str, action: str, **text: str | None) -> JSON:
        body = {k: v for k, v in text.items() if v is not None}
        return await self._request("POST", f"{_session(session_id)}/{action}", json=body or None)

    async def _request(
        self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None
    ) -> JSON:
        headers = {}
        token = await self.tokens.current()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = await self._client.request(
            method, self.base_url + path, json=json, params=params, headers=headers
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if not isinstance(error, dict):
                raise HubAPIError(response.status_code, "error", response.text[:500])
            raise HubAPIError(
                response.status_code,
                str(error.get("code", "error")),
                str(error.get("message", "")),
                error.get("details"),
            )
        return body if isinstance(body, dict) else {"body": body}


def _session(session_id: str) -> str:
    return "/api/v2/session/" + quote(session_id, safe="")


def _params(**values: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None or value is False:
            continue
        out[key] = "true" if value is True else str(value)
    return out
