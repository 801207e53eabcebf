"""GET /api/v2/whoami: who the caller is, as the hub sees it.

The pages ask before they act: the console needs an instructor or admin and says so
when the token is another role; in open dev mode it asks the person to choose the
instructor role explicitly rather than taking it silently (docs/browser.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.routing import Route

from hub.connection import Principal
from hub.events import iso

from .api import operation
from .auth import bearer_token


class Caller(BaseModel):
    account_id: str
    user_id: str
    role: str
    name: str
    sessions: list[str] | None = Field(description="the only sessions the token opens; null: any")
    expires_at: str | None = Field(description="when the token expires; null without a token")
    dev_mode: bool = Field(description="the hub runs in open dev mode (HUB_DEV=1)")
    token: bool = Field(description="false: no token was given (dev mode lets that in as admin)")


@operation("Who the caller is (the pages ask which role they act in)", Caller, touches_store=False)
async def whoami(request: Request, principal: Principal) -> dict[str, Any]:
    expires = principal.expires_at
    return {
        "account_id": principal.account_id,
        "user_id": principal.user_id,
        "role": principal.role,
        "name": principal.name,
        "sessions": principal.sessions,
        "expires_at": iso(datetime.fromtimestamp(expires, UTC)) if expires else None,
        "dev_mode": request.app.state.settings.dev_mode,
        "token": bearer_token(request) is not None,
    }


routes = [Route("/api/v2/whoami", whoami, methods=["GET"])]
