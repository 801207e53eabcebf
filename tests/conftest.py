"""Shared fixtures: real PostgreSQL and Redis, a fresh database and key prefix per test,
and real hub processes on free ports.

Services come from DATABASE_URL / REDIS_URL (defaults: the local ones). When one is
down the fixture tries to start it; under CI=true a missing service fails the run.
"""

from __future__ import annotations

import compileall
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis

from storage.migrate import apply_migrations
from tests.cluster_tools import SharedRedis
from tests.redis_cluster_tools import RedisClusterServers
from tests.support import ROOT, HubProcess, admin_dsn, admin_execute, database_dsn, start_hub

BASE_DSN = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Byte-compile the hub's packages once: the suite starts hundreds of hub processes,
    and under PYTHONDONTWRITEBYTECODE (set on some machines) each would otherwise compile
    every module from source again (~0.25 s of CPU per start)."""
    for package in ("hub", "handlers", "storage"):
        compileall.compile_dir(ROOT / package, quiet=1)


def _service_missing(what: str, error: Exception) -> None:
    message = f"{what} is not reachable ({error})"
    if IN_CI:
        pytest.fail(message + "; CI=true requires it", pytrace=False)
    pytest.skip(message)


def _try_start_postgres() -> None:
    subprocess.run(
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
        shell=True,
        capture_output=True,
        timeout=60,
    )


def _try_start_redis() -> None:
    subprocess.run(
        "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' --appendonly no"
        " --dir /var/lib/redis --logfile /var/log/redis/ci.log",
        shell=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture(scope="session")
def pg_base() -> str:
    import asyncio

    async def probe() -> None:
        conn = await asyncpg.connect(admin_dsn(BASE_DSN), timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception:
        _try_start_postgres()
        try:
            asyncio.run(probe())
        except Exception as exc:
            _service_missing("PostgreSQL", exc)
    return BASE_DSN


@pytest.fixture(scope="session")
def redis_base() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception:
        _try_start_redis()
        try:
            redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
        except Exception as exc:
            _service_missing("Redis", exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A real 3-master/3-replica Redis Cluster on free local ports, started once per run
    by the first test that asks for it. A test that kills a node restarts it."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        _service_missing("Redis Cluster", FileNotFoundError("redis-server/redis-cli not on PATH"))
    servers = RedisClusterServers()
    try:
        servers.start()
    except Exception as exc:
        servers.stop()
        _service_missing("Redis Cluster", exc)
    yield servers
    servers.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisClusterServers) -> str:
    """Any node of the cluster (the hub must find the others itself); healthy again if a
    previous test left a failover or a migration behind."""
    redis_cluster.wait_healthy()
    return redis_cluster.url(random.choice(sorted(redis_cluster.masters())))


@pytest.fixture(params=["redis", "redis-cluster"])
def shared_redis(request: pytest.FixtureRequest) -> SharedRedis:
    """For multi-process tests that must hold on a Redis Cluster as on one Redis."""
    if request.param == "redis":
        return SharedRedis(request.getfixturevalue("redis_base"))
    return SharedRedis(request.getfixturevalue("redis_cluster_url"), {"HUB_REDIS_CLUSTER": "1"})


@pytest.fixture(scope="session")
def migrated_template(pg_base: str) -> Iterator[str]:
    """A database with this checkout's migrations applied, built once per run (per xdist
    worker) and copied for each test: a copy costs less than migrating an empty database
    at every hub start. Nothing stays connected to it, as a template requires. Migrating
    an empty database is still covered: token_hub and tests/test_retention.py start on one.
    """
    import asyncio

    name = f"hubtest_tmpl_{uuid.uuid4().hex[:12]}"

    async def migrate() -> None:
        conn = await asyncpg.connect(database_dsn(pg_base, name))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()

    asyncio.run(admin_execute(pg_base, f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate())
        yield name
    finally:
        asyncio.run(admin_execute(pg_base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database(pg_base: str, migrated_template: str) -> AsyncIterator[str]:
    """A fresh database for this test, with the schema but no rows; dropped afterwards."""
    name = f"hubtest_{uuid.uuid4().hex[:12]}"
    await admin_execute(pg_base, f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    yield database_dsn(pg_base, name)
    await admin_execute(pg_base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_prefix(redis_base: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"hubtest:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_base)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def hub_factory(database: str) -> Iterator[object]:
    """Start real hub processes (`python -m hub serve`) on free ports; all are stopped after."""
    started: list[HubProcess] = []

    def factory(**env: str) -> HubProcess:
        merged = {"HUB_DEV": "1", "DATABASE_URL": database, **env}
        process = start_hub(merged)
        started.append(process)
        return process

    yield factory
    for process in started:  # all drain at once: a drain can wait seconds for its clients
        process.stop_soon()
    for process in started:
        process.stop()


@pytest.fixture
def hub(hub_factory: object) -> HubProcess:
    """One dev-mode hub process on its own database with the in-process broker."""
    return hub_factory()  # type: ignore[operator, no-any-return]
