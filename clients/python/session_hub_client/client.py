"""HubClient: one live session over the hub's WebSocket, that never loses its place.

- Every durable event reaches `events()` exactly once, in seq order: the client remembers
  the last seq it buffered and reconnects with `since=<that seq>`; the hub replays what
  was missed; repeats are dropped; a gap (an event whose `prev_seq`, the previous event
  of this member's view, is past the last one held) makes it reconnect at once.
- `send()` resolves with the event's seq once the hub has stored it. Until then the
  event is sent again, with the same id, after every reconnect: the hub stores an id once.
- Reconnects use exponential backoff with full jitter and stop on the do-not-reconnect
  close codes (close_codes.py). The token comes from `token_provider` before every
  connection and is renewed in-band when the hub warns that it is about to expire.

Wire protocol: docs/protocol.md of the hub.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from .background import Background
from .backoff import backoff_delay
from .buffer import EventBuffer
from .close_codes import CLIENT_RECONNECT, SESSION_ENDED, close_name, should_reconnect
from .errors import HubClosed, HubError
from .models import ClientStats, ConnectionState, Event, ResumeUnavailable, StateChange
from .ordering import verdict
from .outbox import Outbox, Pending
from .tokens import TokenProvider, TokenSource
from .urls import socket_url

log = logging.getLogger("session_hub_client")

__all__ = ["HubClient"]

_LASTED = 10.0  # seconds: a connection that lasted this long starts the backoff over
_RETRYABLE_HTTP = {408, 429, 500, 502, 503, 504}


class HubClient:
    """A connection to one session that survives drops; use it as `async with`.

    `url` is the hub's base URL (`http(s)://` or `ws(s)://host:port`), or several of them:
    each reconnect tries the next (another process of the same hub).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        session_id: str,
        role: str,
        name: str | None = None,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        since: int | None = None,
        user_id: str | None = None,
        on_state: Callable[[StateChange], Any] | None = None,
        on_error: Callable[[HubError], Any] | None = None,
        on_resume_unavailable: Callable[[ResumeUnavailable], Any] | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        heartbeat_interval: float | None = None,
        buffer_size: int = 1024,
        open_timeout: float = 10.0,
    ):
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("url: at least one hub URL is needed")
        self.session_id = session_id
        self.role = role
        self.name = name
        self.tokens = TokenSource(token, token_provider)
        self.user_id = user_id  # dev-mode hubs only: a stable user id across reconnects
        self.on_state = on_state
        self.on_error = on_error
        self.on_resume_unavailable = on_resume_unavailable
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.heartbeat_interval = heartbeat_interval
        self.open_timeout = open_timeout
        self.state: ConnectionState = "closed"
        self.welcome: dict[str, Any] | None = None
        self.stats = ClientStats()
        self._last_seq = since
        self._buffer = EventBuffer(buffer_size)
        self._outbox = Outbox()
        self._ws: ClientConnection | None = None
        self._welcomed = False
        self._replacing: str | None = None  # why this client is closing its own socket
        self._reading = False
        self._last_received = 0.0
        self._attempt = 0
        self._url_index = 0
        self._closing = False
        self._final: HubClosed | None = None
        self._last_error: HubError | None = None
        self._wake = asyncio.Event()
        self._ready: asyncio.Future[None] | None = None
        self._heartbeat_task: asyncio.Task[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._background = Background()

    # the app's side

    @property
    def last_seq(self) -> int | None:
        """The last seq handed to `events()` (the position a reconnect resumes from)."""
        return self._last_seq

    async def __aenter__(self) -> HubClient:
        await self.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection; returns after the first `welcome`. Transient failures are
        retried with backoff; a do-not-reconnect close raises HubClosed."""
        if self._task is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(), name=f"hub-client-{self.session_id}")
        assert self._ready is not None
        await asyncio.shield(self._ready)

    async def send(self, type: str, data: Mapping[str, Any] | None = None, id: str | None = None) -> int:
        """Send a durable event; returns its seq once the hub has stored it.

        Raises HubError when the hub refuses it (`invalid`, `forbidden`, `conflict`, ...)
        and HubClosed when the connection ends for good first. Cancelling the wait stops
        the resends (the event may still have been stored; send it again with the same id).
        """
        if self._final is not None:
            raise self._final
        client_id = id or uuid.uuid4().hex
        pending, new = self._outbox.add(client_id, type, dict(data or {}))
        if new and self._ws is not None and self._welcomed:
            await self._transmit(self._ws, pending)
        try:
            return await asyncio.shield(pending.future)
        except asyncio.CancelledError:
            self._outbox.forget(client_id)
            raise

    async def events(self) -> AsyncIterator[Event]:
        """Every durable event, exactly once, in seq order. Ends when the client is closed
        or the session ends; raises HubClosed when the hub refused the connection for good."""
        while True:
            event = await self._buffer.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        """Close for good; waiting sends raise HubClosed. `events()` yields what is
        already buffered, then ends."""
        self._closing = True
        self._wake.set()
        self._buffer.end()  # the reader may be waiting for room the app will never make
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(1000, "bye"), 5)
            except (TimeoutError, ConnectionClosed, OSError):
                ws.transport.abort()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=5)
            if not done:  # stuck in a handshake or a write to a dead peer
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        self._background.cancel_all()
        self._finish(1000, "closed_by_app", by_app=True)

    # the connection loop

    async def _run(self) -> None:
        try:
            while not self._closing:
                url = self.urls[self._url_index % len(self.urls)]
                code, reason, lasted = await self._connect_once(url)
                if self._closing:
                    return
                self.stats.close_codes.append(code)
                if not should_reconnect(code):
                    self._finish(code, reason)
                    return
                if lasted >= _LASTED:
                    self._attempt = 0
                delay = backoff_delay(self._attempt, self.backoff_base, self.backoff_cap)
                if reason == "gap":
                    delay = 0.0  # the connection is fine; only the replay is wanted
                self._attempt += 1
                self._url_index += 1
                self._set_state("reconnecting", reason=reason, code=code, delay=delay)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
        except Exception as exc:  # a bug here must end the client visibly, not hang it
            log.exception("hub client failed")
            self._finish(1011, f"client_error: {exc!r}")

    async def _connect_once(self, url: str) -> tuple[int, str, float]:
        """One connection, from handshake to close: (close code, reason, seconds it lasted)."""
        self._set_state("connecting" if self.stats.connects == 0 else "reconnecting", reason="connecting")
        self.stats.connects += 1
        try:
            token = await self.tokens.current()
        except Exception as exc:
            log.warning("token_provider failed; retrying", exc_info=exc)
            return 1006, "token_provider_failed", 0.0
        protocols = [Subprotocol(f"bearer.{token}")] if token else None
        try:
            ws = await connect(
                socket_url(url, self.session_id, self.role, self.name, self._dev_user(), self._last_seq),
                subprotocols=protocols,
                open_timeout=self.open_timeout,
                max_size=2**24,
                compression=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            return (1006 if status in _RETRYABLE_HTTP else 1008), f"http_{status}", 0.0
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            return 1006, f"connect_failed: {type(exc).__name__}", 0.0
        if self._closing:  # closed by the app during the handshake
            await ws.close(1000, "bye")
            return 1000, "closed_by_app", 0.0
        started = time.monotonic()
        self._ws, self._replacing, self._welcomed = ws, None, False
        try:
            await self._read(ws)
        finally:
            if self._heartbeat_task is not None:
                self._heartbeat_task.cancel()
                self._heartbeat_task = None
            self._ws, self._welcomed = None, False
        if self._replacing is not None:
            return CLIENT_RECONNECT, self._replacing, time.monotonic() - started
        code = ws.close_code if ws.close_code is not None else 1006
        return code, ws.close_reason or close_name(code), time.monotonic() - started

    async def _read(self, ws: ClientConnection) -> None:
        """Handle every frame until the socket closes (or a gap makes us replace it)."""
        self._last_received = time.monotonic()
        while True:
            self._reading = True
            try:
                raw = await ws.recv()
            except ConnectionClosed:
                return
            finally:
                self._reading = False
            self._last_received = time.monotonic()
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            kind = message.get("type")
            if kind == "welcome":
                interval = self._on_welcome(message)
                self._heartbeat_task = self._background.spawn(self._heartbeat(ws, interval))
                # Everything not yet acked goes out again with the same id; the hub dedupes.
                for pending in self._outbox.waiting():
                    await self._transmit(ws, pending)
            elif isinstance(message.get("seq"), int):
                if not await self._on_event(ws, message):
                    return
            elif kind == "ack":
                self._on_ack(message.get("data") or {})
            elif kind == "error":
                self._on_error(message.get("data") or {})
            elif kind == "token_expiring" and self.tokens.renewable:
                self._background.spawn(self._refresh(ws))
            elif kind == "refreshed":
                self.stats.refreshes += 1

    def _on_welcome(self, message: dict[str, Any]) -> float:
        """Take the welcome: where the stream continues; returns the heartbeat interval."""
        data = message.get("data") or {}
        self.welcome = data
        head = data.get("head_seq") if isinstance(data.get("head_seq"), int) else None
        resume = data.get("resume") or {}
        reason = "resumed" if resume.get("since") is not None else "welcome"
        if self._last_seq is None:
            self._last_seq = head  # a fresh start: live from the session's head on
        elif resume.get("recovered") is False and head is not None:
            # The hub cannot replay from our position; it goes on after its head.
            since, why, retained = resume.get("since"), resume.get("reason"), resume.get("retained_from")
            info = ResumeUnavailable(since, head, why, retained)
            self._last_seq = head
            reason = "resume_unavailable"
            self._background.call(self.on_resume_unavailable, info)
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        self._welcomed = True
        self._set_state("open", reason=reason)
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        announced = data.get("heartbeat_interval")
        interval = self.heartbeat_interval or (announced if isinstance(announced, int | float) else 30.0)
        return max(float(interval), 0.05)

    async def _on_event(self, ws: ClientConnection, message: dict[str, Any]) -> bool:
        """Hand a durable event to the app once; False when a gap makes us reconnect."""
        if self._closing:
            return True  # read on, unbuffered, so that the closing handshake gets through
        seq: int = message["seq"]
        decided = verdict(self._last_seq, message)
        if decided == "duplicate":
            self.stats.duplicates_dropped += 1
            return True
        if decided == "gap":
            # Something was skipped: reconnect with since=last; the hub replays it.
            self.stats.gaps += 1
            self._replacing = "gap"
            await ws.close(CLIENT_RECONNECT, "gap")
            return False
        if await self._buffer.put(Event.from_message(message)):
            self._last_seq = seq
        return True

    def _on_ack(self, data: dict[str, Any]) -> None:
        if isinstance(data.get("seq"), int):
            self._outbox.acked(str(data.get("id")), data["seq"])

    def _on_error(self, data: dict[str, Any]) -> None:
        code = str(data.get("code") or "error")
        if code == "resume_unavailable":
            return  # told through on_resume_unavailable, from the welcome
        client_id = data.get("id") if isinstance(data.get("id"), str) else None
        error = HubError(code, str(data.get("message") or ""), data.get("details"), client_id)
        pending = self._outbox.get(client_id)
        if pending is not None and code == "unavailable":
            # Not stored (the database is unreachable): the hub asks for it again; same id.
            pending.retries += 1
            self._background.spawn(self._resend_later(pending, min(5.0, 0.2 * 2**pending.retries)))
            return
        if pending is not None:
            self._outbox.refused(pending.id, error)
            return
        self._last_error = error
        self._background.call(self.on_error, error)

    async def _heartbeat(self, ws: ClientConnection, interval: float) -> None:
        """Keep the hub's idle timeout away, and notice a socket that died silently."""
        while True:
            await asyncio.sleep(interval)
            # Only while the client waits for data: a full buffer (slow app) is not silence.
            if self._reading and time.monotonic() - self._last_received > 2 * interval + 5:
                self._replacing = "heartbeat_timeout"
                ws.transport.abort()
                return
            try:
                await ws.send('{"type":"heartbeat"}')
            except ConnectionClosed:
                return

    async def _refresh(self, ws: ClientConnection) -> None:
        """Renew the token in-band (the hub sent `token_expiring`)."""
        try:
            token = await self.tokens.current()
        except Exception as exc:
            log.warning("token_provider failed; the connection closes at expiry and reconnects", exc_info=exc)
            return
        frame = {"type": "refresh", "id": uuid.uuid4().hex, "data": {"token": token}}
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            pass

    async def _resend_later(self, pending: Pending, delay: float) -> None:
        await asyncio.sleep(delay)
        ws = self._ws
        if ws is not None and self._welcomed and self._outbox.get(pending.id) is pending:
            await self._transmit(ws, pending)

    async def _transmit(self, ws: ClientConnection, pending: Pending) -> None:
        pending.sends += 1
        if pending.sends > 1:
            self.stats.resends += 1
        try:
            await ws.send(pending.frame())
        except ConnectionClosed:
            pass  # sent again after the reconnect

    # helpers

    def _dev_user(self) -> str | None:
        """The `user_id` parameter: dev-mode hubs only, where no token names the user."""
        return None if self.tokens.token or self.tokens.renewable else self.user_id

    def _finish(self, code: int, reason: str, by_app: bool = False) -> None:
        if self._final is not None:
            return
        if by_app:
            error = HubClosed("the client was closed", None, "closed_by_app")
        else:
            message = f"the hub closed the connection with {code} {close_name(code)}"
            if self._last_error is not None:
                message += f" ({self._last_error.code}: {self._last_error.message})"
            error = HubClosed(message, code, reason)
        self._final = error
        self._outbox.fail_all(error)
        # The app's loop ends quietly when it closed the client or the session ended.
        self._buffer.end(None if by_app or code == SESSION_ENDED else error)
        self._set_state("closed", reason=reason, code=None if by_app else code)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()  # retrieved: connect() re-raises it if it is waiting

    def _set_state(self, state: ConnectionState, **extra: Any) -> None:
        previous, self.state = self.state, state
        change = StateChange(state, previous, attempt=self._attempt, last_seq=self._last_seq, **extra)
        self._background.call(self.on_state, change)
