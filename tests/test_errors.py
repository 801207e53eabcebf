"""The one error vocabulary: the tables agree with each other and with docs/protocol.md, a
fault in the hub is a 500 / close 1011 with a logged traceback (never a retryable 503 or
3004), an unreachable dependency stays 503 / 3004, and the connection stays usable."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import uvicorn
import websockets
from starlette.requests import Request
from starlette.routing import Route

from handlers.app import create_app
from hub.close_codes import CloseCode
from hub.config import Settings
from hub.errors import CLOSE_CODE, HTTP_STATUS, MEANING, ErrorCode, HubError, NotFound, classify

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"


def _table(heading: str) -> list[list[str]]:
    """The rows of the first table under `heading` in docs/protocol.md."""
    text = PROTOCOL.read_text()
    section = text[text.index(heading) :]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows[1:]  # without the header


def test_every_code_has_its_meaning_status_and_close():
    assert set(MEANING) == set(ErrorCode)
    message_only = {ErrorCode.RESUME_UNAVAILABLE}  # an `error` message; the connection goes on
    assert set(HTTP_STATUS) == set(ErrorCode) - message_only
    assert set(CLOSE_CODE) == set(ErrorCode) - message_only
    assert HTTP_STATUS[ErrorCode.INTERNAL] == 500 and CLOSE_CODE[ErrorCode.INTERNAL] == 1011
    assert HTTP_STATUS[ErrorCode.UNAVAILABLE] == 503 and CLOSE_CODE[ErrorCode.UNAVAILABLE] == 3004


def test_docs_list_exactly_the_codes_and_close_codes():
    documented = {row[0]: row for row in _table("### Error codes")}
    assert set(documented) == {str(code) for code in ErrorCode}
    for code, status in HTTP_STATUS.items():
        assert documented[code][1] == str(status), code
    closes = {int(row[0]): row[1] for row in _table("## Close codes") if row[0].isdigit()}
    assert closes == {int(code): code.name.lower() for code in CloseCode}


def test_classify_keeps_refusals_and_tells_faults_from_outages():
    refusal = NotFound("no such thing")
    assert classify(refusal) is refusal
    assert classify(ConnectionRefusedError()).code == ErrorCode.UNAVAILABLE
    assert classify(asyncpg.CannotConnectNowError(), (asyncpg.CannotConnectNowError,)).code == "unavailable"
    assert classify(KeyError("bug")).code == ErrorCode.INTERNAL
    assert classify(asyncpg.NumericValueOutOfRangeError()).code == ErrorCode.INTERNAL


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _bug(request: Request) -> Any:
    raise KeyError("a bug in an endpoint")


async def _outage(request: Request) -> Any:
    raise asyncpg.CannotConnectNowError("the database system is starting up")


@pytest.fixture
async def served(database: str) -> AsyncIterator[tuple[Any, int]]:
    """The real app under uvicorn, with two endpoints that fail as a bug and an outage do."""
    app = create_app(Settings(dev_mode=True, database_url=database, db_pool_max=4))
    app.router.routes += [Route("/test/bug", _bug), Route("/test/outage", _outage)]
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ws="websockets-sansio", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield app, port
    server.should_exit = True
    await task


async def test_a_bug_is_a_500_with_a_traceback_and_the_connection_stays_usable(served, caplog):
    _, port = served
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        with caplog.at_level(logging.ERROR, logger="hub.http"):
            bug = await client.get("/test/bug")
        assert bug.status_code == 500, bug.text
        assert bug.json()["error"]["code"] == "internal"
        assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
        outage = await client.get("/test/outage")  # the same keep-alive connection
        assert outage.status_code == 503 and outage.json()["error"]["code"] == "unavailable"
        assert (await client.get("/healthz")).status_code == 200


async def test_a_bug_while_admitting_a_websocket_closes_1011_not_3004(served, caplog):
    app, port = served
    url = f"ws://127.0.0.1:{port}/ws/live-updates?session_id=s1&role=observer"

    def failing(error: Exception) -> Any:
        def from_request(*args: Any, **kwargs: Any) -> Any:
            raise error

        return from_request

    async def refusal() -> tuple[dict[str, Any], int | None]:
        async with websockets.connect(url) as ws:
            message = orjson.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return message, ws.close_code

    real = app.state.auth.from_request
    app.state.auth.from_request = failing(AttributeError("a bug in admission"))
    with caplog.at_level(logging.ERROR, logger="hub.ws"):
        message, close = await refusal()
    assert close == CloseCode.UNEXPECTED_CONDITION and message["data"]["code"] == "internal"
    assert any(r.exc_info and r.exc_info[0] is AttributeError for r in caplog.records)
    app.state.auth.from_request = failing(ConnectionRefusedError("presence down"))
    message, close = await refusal()
    assert close == CloseCode.INTERNAL_ERROR and message["data"]["code"] == "unavailable"
    app.state.auth.from_request = real
    message, close = await refusal()  # a refusal keeps its own do-not-reconnect code
    assert close == CloseCode.NOT_FOUND and message["data"]["code"] == "not_found"


def test_a_hub_error_carries_its_wire_forms():
    error = HubError("conflict", "the session is full")
    assert error.status == 409 and error.body() == {
        "code": "conflict",
        "message": "the session is full",
        "details": {},
    }
    assert re.fullmatch(r"[a-z_]+", str(error.code))
