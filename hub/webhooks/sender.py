"""One attempt: POST the signed body, within the per-attempt timeout; 2xx is delivered.

Redirects are not followed (the endpoint's URL is the one that was checked), and the
response body is not read beyond what HTTP needs: only the status counts.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from .targets import ResolvedCheck


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    response_code: int | None
    error: str | None
    duration_ms: int


class Sender:
    def __init__(self, timeout: float, allow_private: bool, max_connections: int = 200):
        self.timeout = timeout
        self.targets = ResolvedCheck(allow_private)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            trust_env=False,  # an operator's HTTP(S)_PROXY must not reroute signed events
        )

    async def send(self, url: str, headers: dict[str, str], payload: bytes) -> Outcome:
        started = time.perf_counter()
        problem = await self.targets.problem(url)
        if problem is not None:
            return Outcome(False, None, problem, 0)
        try:
            async with asyncio.timeout(self.timeout):  # the whole attempt, not each read
                response = await self._client.post(url, content=payload, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(False, None, f"no answer within {self.timeout:g} s", _ms(started))
        except httpx.HTTPError as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
        code = response.status_code
        error = None if 200 <= code < 300 else f"answered {code}"
        return Outcome(error is None, code, error, _ms(started))

    async def close(self) -> None:
        await self._client.aclose()


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
