"""The Starlette application: wiring of store, broker, presence and the hub, plus routes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from hub.broker import Broker
from hub.broker_memory import MemoryBroker
from hub.channel_templates import ChannelRenderer
from hub.config import Settings
from hub.disconnect import Disconnector
from hub.end_summary import SummaryWriter
from hub.errors import HubError
from hub.node import Hub
from hub.presence import Presence
from hub.presence_memory import MemoryPresence
from hub.publishing import PublishLimiter
from hub.records.store import RecordsStore
from hub.retention import Archives, RetentionJob, RetentionPolicy, archive_root
from hub.webhooks.dispatcher import DeliveryConfig, Dispatcher
from hub.webhooks.sender import Sender
from storage.archive import DirectoryArchive
from storage.embedded import EmbeddedPostgres
from storage.end_summary import PgSummaryLog
from storage.invites import PgInviteStore
from storage.pg_store import UNREACHABLE, PgStore
from storage.records.store import PgRecordsStore
from storage.retention import PgRetentionStore
from storage.webhooks import PgWebhookStore

from . import announce, ops, publish, sessions, stream, webhooks, ws
from .asyncapi import asyncapi_route
from .auth import Authenticator
from .errors import ErrorBoundary, http_error, hub_error
from .http_limits import HttpLimits
from .openapi import openapi_route

log = logging.getLogger("hub")

# Driver errors that mean "a dependency is not there": 503 / close 3004, never a bug's 500.
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (*UNREACHABLE, RedisConnectionError, RedisTimeoutError)


async def build_backends(settings: Settings) -> tuple[Broker, Presence]:
    if settings.redis_url:
        from hub.broker_redis import RedisBroker
        from hub.broker_redis_cluster import RedisClusterBroker
        from hub.presence_redis import RedisPresence

        node_id = settings.node_id or None
        broker: Broker = (
            RedisClusterBroker(settings.redis_url, prefix=settings.redis_prefix, node_id=node_id)
            if settings.redis_cluster
            else RedisBroker(
                settings.redis_url,
                prefix=settings.redis_prefix,
                sharded=settings.redis_sharded,
                node_id=node_id,
            )
        )
        presence: Presence = RedisPresence(
            settings.redis_url,
            prefix=settings.redis_prefix,
            node_id=broker.node_id,
            ttl=settings.presence_ttl,
            cluster=settings.redis_cluster,
        )
        return broker, presence
    return MemoryBroker(node_id=settings.node_id or None), MemoryPresence()


def start_retention(settings: Settings, hub: Hub, store: PgStore) -> Archives:
    """Archive-then-trim of ended sessions' logs (hub/retention.py), supervised on every
    process; the lock lets one of them work each round. HUB_RETENTION_INTERVAL=0: off here."""
    retention_store = PgRetentionStore(store.pool)
    files = DirectoryArchive(archive_root(settings))
    if settings.retention_interval > 0:
        metrics = hub.metrics

        def archived(sessions: int, events: int) -> None:
            metrics.retention_sessions.inc(sessions)
            metrics.retention_events.inc(events)

        job = RetentionJob(retention_store, files, RetentionPolicy.from_settings(settings), archived)
        metrics.retention_last_run.set_function(lambda: job.last_run or 0.0)
        hub.supervisor.loop("retention", lambda: job.run_forever(settings.retention_interval))
    return Archives(retention_store, files)


def _extra_routes() -> list[Any]:
    """Routes of later features (pages, records); each module is optional while it is built."""
    found: list[Any] = []
    for module_name in (
        "handlers.pages",
        "handlers.records.routes",
        "handlers.audience",
        "handlers.invites",
        "handlers.whoami",
    ):
        try:
            module = __import__(module_name, fromlist=["routes"])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        found.extend(module.routes)
    return found


def build_dispatcher(settings: Settings, store: PgWebhookStore) -> Dispatcher:
    config = DeliveryConfig(
        retry_base=settings.webhook_retry_base,
        max_attempts=settings.webhook_max_attempts,
        timeout=settings.webhook_timeout,
        lease_ttl=settings.webhook_lease,
    )
    sender = Sender(settings.webhook_timeout, settings.webhook_allow_private)
    return Dispatcher(store, sender, config)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    settings.validate()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded: EmbeddedPostgres | None = None
        dsn = settings.database_url
        if not dsn:
            embedded = EmbeddedPostgres(settings.data_dir)
            dsn = embedded.start()
        store = await PgStore.connect(dsn, settings.db_pool_min, settings.db_pool_max)
        broker, presence = await build_backends(settings)
        hub = Hub(settings, store, broker, presence)
        records: RecordsStore = PgRecordsStore(store.pool)
        hub.attach_records(records)
        app.state.records = records
        app.state.invites = PgInviteStore(store.pool)
        hub.tokens.verifier = app.state.auth.verify_renewal
        await hub.start()
        disconnector = Disconnector(hub.broker, hub.rooms)
        await disconnector.start()
        webhook_store = PgWebhookStore(store.pool)
        dispatcher = build_dispatcher(settings, webhook_store)
        hub.commit_observers.append(lambda session_pk, _type: dispatcher.notify(session_pk))
        hub.supervisor.loop("webhook-dispatcher", dispatcher.run)
        summaries = PgSummaryLog(store.pool)
        renderer = ChannelRenderer(settings.templates_dir)
        writer = SummaryWriter(store, summaries, hub.append, renderer, settings.replay_page)
        hub.commit_observers.append(writer.observe)
        hub.supervisor.loop("session-summaries", writer.run)
        app.state.summaries = summaries
        app.state.channel_renderer = renderer
        app.state.archives = start_retention(settings, hub, store)
        app.state.hub = hub
        app.state.store = store
        app.state.disconnector = disconnector
        app.state.webhooks = webhook_store
        app.state.dispatcher = dispatcher
        if settings.dev_mode:
            log.warning(
                "DEV MODE: the hub is OPEN; anyone can connect and act as any role without a token. "
                "Never expose a dev-mode hub."
            )
        log.info(
            "hub ready",
            extra={
                "node_id": hub.node_id,
                "database": "embedded" if embedded else "DATABASE_URL",
                "broker": ("redis-cluster" if settings.redis_cluster else "redis")
                if settings.redis_url
                else "in-process",
            },
        )
        try:
            yield
        finally:
            await disconnector.stop()
            await hub.drain()
            await hub.stop()
            await dispatcher.sender.close()
            await store.close()
            if embedded is not None:
                embedded.stop()

    routes = [
        *ops.routes,
        *sessions.routes,
        *publish.routes,
        *webhooks.routes,
        *announce.routes,
        *ws.routes,
        *stream.routes,
        *_extra_routes(),
    ]
    app = Starlette(
        routes=[*routes, openapi_route, asyncapi_route],
        middleware=[Middleware(ErrorBoundary, unreachable=DEPENDENCY_ERRORS)],
        lifespan=lifespan,
        exception_handlers={HubError: hub_error, HTTPException: http_error},
    )
    app.state.unreachable = DEPENDENCY_ERRORS
    app.state.settings = settings
    app.state.http_limits = HttpLimits(settings)
    app.state.auth = Authenticator(settings)
    app.state.publish_limiter = PublishLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    return app
