"""Prometheus metrics, one registry per hub instance (tests run several in a process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class HubMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("hub_connections", "Open WebSocket connections", registry=r)
        self.rooms = Gauge("hub_rooms", "Rooms with members on this process", registry=r)
        self.events_in = Counter("hub_events_in_total", "Events accepted into the log", ["type"], registry=r)
        self._events_in_by_type: dict[str, Any] = {}  # labels() costs a lock and a tuple per call
        self.events_out = Counter("hub_events_out_total", "Event frames queued to members", registry=r)
        self._events_out_pending = 0  # added to `events_out` when rendered (the hot path)
        self.frames_refused = Counter(
            "hub_frames_refused_total", "Client frames answered with error", ["code"], registry=r
        )
        self.connections_refused = Counter(
            "hub_connections_refused_total",
            "WebSocket connections refused before their welcome, by error code",
            ["code"],
            registry=r,
        )
        self.rate_limited = Counter(
            "hub_rate_limited_total",
            "Frames and HTTP requests refused by a rate limit, by the limit that refused",
            ["limit"],
            registry=r,
        )
        self.persist_latency = Histogram(
            "hub_persist_seconds",
            "Time to write one event batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "hub_persist_batch_size",
            "Events per group commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )
        self.persist_failures = Counter(
            "hub_persist_failures_total", "Event batches that failed to store", registry=r
        )
        self.broker_latency = Histogram(
            "hub_broker_publish_seconds",
            "Time to publish one batch of events to the broker",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.broker_failures = Counter(
            "hub_broker_publish_failures_total", "Broker publishes that failed", registry=r
        )
        self.broker_reconnects = Counter(
            "hub_broker_reconnects_total", "Broker (Redis) reconnects", registry=r
        )
        self.broker_up = Gauge(
            "hub_broker_up", "1 while every broker subscription is in place (what /readyz checks)", registry=r
        )
        self.broker_resubscribes = Counter(
            "hub_broker_resubscribes_total",
            "Channels subscribed again after a reconnect, failover or slot move (each repaired from the log)",
            registry=r,
        )
        self.retention_sessions = Counter(
            "hub_retention_sessions_archived_total", "Session logs archived and trimmed", registry=r
        )
        self.retention_events = Counter(
            "hub_retention_events_trimmed_total", "Events deleted from the log after archiving", registry=r
        )
        self.retention_last_run = Gauge(
            "hub_retention_last_run_timestamp_seconds",
            "When this process last completed a retention run (0: never; one process runs each round)",
            registry=r,
        )
        self.gap_repairs = Counter(
            "hub_gap_repairs_total", "Events read from the log to fill a gap", registry=r
        )
        self.closes = Counter(
            "hub_connection_closes_total", "Connections closed by the hub", ["reason"], registry=r
        )
        self.slow_consumers = Counter(
            "hub_slow_consumer_closes_total", "Connections closed as slow consumers", registry=r
        )
        self.joins_abandoned = Counter(
            "hub_joins_abandoned_total", "Joins given up: the client left before its welcome", registry=r
        )
        self.background_failures = Counter(
            "hub_background_task_failures_total", "Background task crashes", ["task"], registry=r
        )

    def event_in(self, event_type: str, count: int = 1) -> None:
        """Count events accepted into the log (once per type and commit batch: the hot path)."""
        child = self._events_in_by_type.get(event_type)
        if child is None:
            child = self._events_in_by_type[event_type] = self.events_in.labels(event_type)
        child.inc(count)

    def events_delivered(self, count: int) -> None:
        """Count event frames queued to members: once per delivered event, so a plain
        addition here; the counter (a lock per call) catches up when the metrics are read."""
        self._events_out_pending += count

    def render(self) -> bytes:
        pending, self._events_out_pending = self._events_out_pending, 0
        self.events_out.inc(pending)
        return generate_latest(self.registry)
