"""Which URLs an endpoint may have: http(s) only, and never a private address.

A webhook makes the hub send requests where its owner says, so an endpoint must not
reach the hub's own network: loopback, private, link-local, shared and reserved
addresses are refused, both when the endpoint is registered (an address literal, or
`localhost`) and before every attempt (what the name resolves to then, so a name that
later points inside is caught). `HUB_WEBHOOK_ALLOW_PRIVATE=1` lifts the rule for
development and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from urllib.parse import urlsplit

MAX_URL = 2000
_RESOLVED_FOR = 30.0  # seconds a name's check is reused


class TargetRefused(Exception):
    """The URL may not be a webhook endpoint; the message says why."""


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, allow_private: bool) -> str:
    """The URL if it may be an endpoint, else TargetRefused."""
    if len(url) > MAX_URL:
        raise TargetRefused(f"must be at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("must be an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise TargetRefused("must name a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not carry credentials; the signature authenticates the hub")
    if port == 0:
        raise TargetRefused("must not use port 0")
    if allow_private:
        return url
    if host == "localhost" or host.endswith(".localhost"):
        raise TargetRefused("must not point at this machine (set HUB_WEBHOOK_ALLOW_PRIVATE=1 to allow)")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return url  # a name: checked when it is resolved, before each attempt
    if not public_address(str(literal)):
        raise TargetRefused(
            "must not be a private or loopback address (HUB_WEBHOOK_ALLOW_PRIVATE=1 allows it)"
        )
    return url


class ResolvedCheck:
    """Before an attempt: does the URL's host resolve to public addresses only?"""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private
        self._seen: dict[str, tuple[float, str | None]] = {}

    async def problem(self, url: str) -> str | None:
        if self.allow_private:
            return None
        host = urlsplit(url).hostname or ""
        cached = self._seen.get(host)
        if cached is not None and time.monotonic() - cached[0] < _RESOLVED_FOR:
            return cached[1]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
            bad = [info[4][0] for info in infos if not public_address(str(info[4][0]))]
            problem = f"{host} resolves to a private address ({bad[0]})" if bad else None
        except OSError as exc:
            problem = f"{host} cannot be resolved: {exc}"
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[host] = (time.monotonic(), problem)
        return problem
