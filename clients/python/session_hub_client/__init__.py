"""Python client for Session Hub: live sessions over WebSocket, and the HTTP API.

async with HubClient("http://127.0.0.1:8000", session_id="morning-001", role="participant",
                     name="Ana", token_provider=get_token) as client:
    seq = await client.send("hrv_update", {"hrv": 52})
    async for event in client.events():
        ...
"""

from .api import HubAPI
from .backoff import backoff_delay
from .client import HubClient
from .close_codes import CLOSE_NAMES, close_name, should_reconnect
from .errors import HubAPIError, HubClosed, HubError
from .models import Actor, ClientStats, ConnectionState, Event, ResumeUnavailable, StateChange
from .tokens import TokenProvider

__all__ = [
    "CLOSE_NAMES",
    "Actor",
    "ClientStats",
    "ConnectionState",
    "Event",
    "HubAPI",
    "HubAPIError",
    "HubClient",
    "HubClosed",
    "HubError",
    "ResumeUnavailable",
    "StateChange",
    "TokenProvider",
    "backoff_delay",
    "close_name",
    "should_reconnect",
]
