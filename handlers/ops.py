"""Operations endpoints: /healthz (alive), /readyz (dependencies reachable), /metrics."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.node import Hub

from .api import operation
from .errors import json_response


class Alive(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, Any] = Field(
        description="database, broker: ok or why not; background_tasks: failures; accepting: draining"
    )


@operation("Liveness", Alive, public=True)
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@operation("Readiness: database and broker reachable", Readiness, public=True, other={503: Readiness})
async def readyz(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    checks: dict[str, object] = {}
    try:
        await asyncio.wait_for(hub.store.ping(), timeout=2.0)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}: {exc}"
    state = hub.readiness()
    checks["broker"] = "ok" if state["broker"] else f"unreachable: {state['broker_error']}"
    if state["background_failures"]:
        checks["background_tasks"] = state["background_failures"]
    if not hub.accepting:
        checks["accepting"] = "draining"
    ready = checks["database"] == "ok" and checks["broker"] == "ok" and hub.accepting
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )


@operation("Prometheus metrics", None, public=True, media_type="text/plain")
async def metrics(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    return Response(hub.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
