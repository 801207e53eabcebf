"""The hub's WebSocket URL for a connection (the token never goes in it)."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit


def socket_url(
    base: str,
    session_id: str,
    role: str,
    name: str | None = None,
    user_id: str | None = None,
    since: int | None = None,
) -> str:
    """`base` is `http(s)://` or `ws(s)://host:port` (with or without the endpoint's path)."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/ws/live-updates"):
        path += "/ws/live-updates"
    query: dict[str, str] = {"session_id": session_id, "role": role}
    if name:
        query["name"] = name
    if user_id:
        query["user_id"] = user_id  # dev-mode hubs: a stable user across reconnects
    if since is not None:
        query["since"] = str(since)
    return urlunsplit((scheme, parts.netloc, path, urlencode(query), ""))
