"""One attempt: POST the signed body, within the per-attempt timeout; 2xx is delivered.

Redirects are not followed (the endpoint's URL is the one that was checked), proxies
from the environment are not used, and the response body is read and dropped: only the
status counts. aiohttp rather than httpx: a tenth of the CPU per request, which is most
of the cost of a delivery (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from .targets import ResolvedCheck


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    response_code: int | None
    error: str | None
    duration_ms: int


class Sender:
    def __init__(self, timeout: float, allow_private: bool, max_connections: int = 256):
        self.timeout = timeout
        self.targets = ResolvedCheck(allow_private)
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,
                auto_decompress=False,
            )
        return self._session

    async def send(self, url: str, headers: dict[str, str], payload: bytes) -> Outcome:
        started = time.perf_counter()
        problem = await self.targets.problem(url)
        if problem is not None:
            return Outcome(False, None, problem, 0)
        try:
            post = self._client().post(url, data=payload, headers=headers, allow_redirects=False)
            async with post as response:
                code = response.status
                await response.read()
        except TimeoutError:
            return Outcome(False, None, f"no answer within {self.timeout:g} s", _ms(started))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500], _ms(started))
        error = None if 200 <= code < 300 else f"answered {code}"
        return Outcome(error is None, code, error, _ms(started))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await asyncio.sleep(0)  # let the connector close its sockets


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
