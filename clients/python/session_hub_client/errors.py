"""What the client raises: a refused send, a connection ended for good, a refused request."""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """The hub refused something this client sent (an `error` message).

    `code` is one of the protocol's error codes (`invalid`, `forbidden`, `conflict`, ...;
    docs/protocol.md); `id` is the client id of the refused event.
    """

    def __init__(self, code: str, message: str, details: Any = None, id: str | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details
        self.id = id


class HubClosed(HubError):
    """The connection ended and will not be opened again: the app closed it, or the hub
    closed it with a do-not-reconnect code (`close_code`, e.g. 3501 unauthorized)."""

    def __init__(self, message: str, close_code: int | None = None, reason: str | None = None):
        super().__init__("closed", message)
        self.close_code = close_code
        self.reason = reason


class HubAPIError(Exception):
    """An HTTP request answered with an error: `status` and the hub's error envelope."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
