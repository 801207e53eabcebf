"""Where the client's token comes from: a fixed one, or a provider asked for a fresh one
before every connection, every HTTP request and every in-band renewal."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

TokenProvider = Callable[[], "str | Awaitable[str]"]


class TokenSource:
    def __init__(self, token: str | None = None, provider: TokenProvider | None = None):
        self.token = token  # the last one used
        self.provider = provider

    @property
    def renewable(self) -> bool:
        return self.provider is not None

    async def current(self) -> str | None:
        """A fresh token from the provider if there is one, else the fixed token."""
        if self.provider is None:
            return self.token
        token = self.provider()
        if inspect.isawaitable(token):
            token = await token
        self.token = str(token)
        return self.token
