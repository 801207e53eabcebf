"""What the WebSocket transport did (handlers/uvicorn_transport.py), as metrics: whether
the fast path is on, connections by transport, sockets aborted by reason, open sockets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class TransportStats(Collector):
    """What the transport did, exported with the hub's metrics once the server runs."""

    def __init__(self) -> None:
        self.fast_path_active = False
        self.transports: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.open_sockets: Callable[[], int] = lambda: 0

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def collect(self) -> Iterable[Any]:
        yield GaugeMetricFamily(
            "hub_fast_path_active",
            "1 when WebSocket frames are written straight onto uvicorn's socket",
            value=1 if self.fast_path_active else 0,
        )
        yield GaugeMetricFamily(
            "hub_open_sockets", "Open TCP connections, HTTP and WebSocket", value=self.open_sockets()
        )
        kinds = CounterMetricFamily(
            "hub_websocket_transports", "WebSocket connections by transport", labels=["kind"]
        )
        for kind in ("fast", "asgi"):
            kinds.add_metric([kind], self.transports[kind])
        yield kinds
        dropped = CounterMetricFamily(
            "hub_sockets_dropped", "Sockets the hub aborted, by reason", labels=["reason"]
        )
        for why, count in sorted(self.dropped.items()):
            dropped.add_metric([why], count)
        yield dropped

    def attach(self, registry: CollectorRegistry, open_sockets: Callable[[], int]) -> None:
        self.open_sockets = open_sockets
        registry.register(self)


stats = TransportStats()  # one server per process; the endpoint counts into it too
