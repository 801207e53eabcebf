"""Helpers for tests that poke at Redis: find and kill a hub's subscriber connection,
and run a private redis-server that a test may stop and restart."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis

from tests.support import free_port


def kill_subscribers(redis_url: str, name_prefix: str) -> int:
    """CLIENT KILL the pub/sub connections whose name starts with `name_prefix`.

    Only ours: the machine's Redis is shared, so `CLIENT KILL TYPE pubsub` is off limits.
    """
    client = redis.Redis.from_url(redis_url)
    killed = 0
    try:
        for entry in client.client_list(_type="pubsub"):
            if entry.get("name", "").startswith(name_prefix):
                killed += int(client.execute_command("CLIENT", "KILL", "ID", entry["id"]))
    finally:
        client.close()
    return killed


class PrivateRedis:
    """A throwaway redis-server on a free port (no persistence) that a test may restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hub-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=0.5).ping()
                return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def private_redis_server() -> Iterator[PrivateRedis]:
    """Body of a `private_redis` fixture: a fixture's teardown also runs when the test is
    stopped by a timeout (a try/finally inside an async test does not), so no
    redis-server is left behind."""
    server = PrivateRedis().start()
    yield server
    server.cleanup()
