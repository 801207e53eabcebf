"""A real Redis Cluster for tests (and the cluster benchmark): 3 masters, 3 replicas.

Six `redis-server --cluster-enabled yes` processes on free local ports, joined by
`redis-cli --cluster create --cluster-replicas 1`. A short node timeout makes a killed
master's replica take over within a few seconds. Tests that kill a node bring it back
(`restart`), and it rejoins as a replica of whoever took over its slots.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

NODE_TIMEOUT_MS = 1000
SLOTS = 16384


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int) -> list[int]:
    """Ports whose cluster bus port (+10000) is free as well."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20000, 29000)
        if port not in ports and _port_free(port) and _port_free(port + 10000):
            ports.append(port)
    return ports


class RedisClusterServers:
    def __init__(self, masters: int = 3, replicas: int = 1):
        self.ports = free_cluster_ports(masters * (1 + replicas))
        self.replicas = replicas
        self.dir = Path(tempfile.mkdtemp(prefix="hub-redis-cluster-"))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def url(self, port: int | None = None) -> str:
        return f"redis://127.0.0.1:{port or self.ports[0]}/0"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)

    # life cycle

    def start(self) -> RedisClusterServers:
        for port in self.ports:
            self._spawn(port)
        for port in self.ports:
            self._wait_ping(port)
        subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_healthy()
        return self

    def _spawn(self, port: int) -> None:
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        log = open(node_dir / "redis.log", "ab")  # the server writes to it until it stops
        self.procs[port] = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                # A replica takes over however long its master has been gone (the default
                # refuses after 10 node timeouts without contact: a stuck test cluster).
                "--cluster-replica-validity-factor",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(node_dir),
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _wait_ping(self, port: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client(port).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {port} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self, port: int) -> None:
        """kill -9 one node: no goodbye to clients or to the other nodes."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(10)

    def restart(self, port: int) -> None:
        """Bring a killed node back: it rejoins (as a replica if it lost its slots)."""
        self._spawn(port)
        self._wait_ping(port)

    # the cluster's view

    def info(self, port: int) -> dict[str, str]:
        raw = self.client(port).execute_command("CLUSTER", "INFO")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def alive(self) -> list[int]:
        return [port for port, proc in self.procs.items() if proc.poll() is None]

    def masters(self) -> dict[int, list[tuple[int, int]]]:
        """Live master port -> its slot ranges, as a live node sees the cluster."""
        rows = self.client(self.alive()[0]).execute_command("CLUSTER", "SLOTS")
        owners: dict[int, list[tuple[int, int]]] = {}
        for row in rows:
            owners.setdefault(int(row[2][1]), []).append((int(row[0]), int(row[1])))
        return owners

    def owner_of(self, slot: int) -> int:
        for port, ranges in self.masters().items():
            if any(low <= slot <= high for low, high in ranges):
                return port
        raise LookupError(f"slot {slot} is not served")

    def node_id(self, port: int) -> str:
        raw = self.client(port).execute_command("CLUSTER", "MYID")
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every live node says `cluster_state:ok`, every slot is served by a live master,
        and every live node agrees on who serves it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._healthy():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster did not become healthy")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        alive = self.alive()
        views = []
        for port in alive:
            if self.info(port).get("cluster_state") != "ok":
                return False
            views.append(sorted(map(tuple, self._slot_rows(port))))
        if any(view != views[0] for view in views):
            return False
        for port in alive:  # every replica in sync, so that it can take over
            replication = self.client(port).info("replication")
            if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                return False
        served = sum(high - low + 1 for low, high, owner in views[0] if owner in alive)
        return served == SLOTS

    def _slot_rows(self, port: int) -> list[tuple[int, int, int]]:
        rows = self.client(port).execute_command("CLUSTER", "SLOTS")
        return [(int(r[0]), int(r[1]), int(r[2][1])) for r in rows]

    def migrate_slot(self, slot: int, to_port: int) -> None:
        """Move one slot to another master, as `redis-cli --cluster reshard` does for each
        slot: IMPORTING/MIGRATING, move the keys, then assign it everywhere."""
        from_port = self.owner_of(slot)
        if from_port == to_port:
            return
        source, target = self.client(from_port), self.client(to_port)
        source_id, target_id = self.node_id(from_port), self.node_id(to_port)
        target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while True:
            keys = source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            source.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *keys)
        # The target first, then the source, then everyone else (the order Redis documents).
        for port in [to_port, from_port, *(p for p in self.masters() if p not in (to_port, from_port))]:
            self.client(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.wait_healthy()


def key_slot(name: str) -> int:
    from redis.crc import key_slot as crc_slot

    return int(crc_slot(name.encode()))
