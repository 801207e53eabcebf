"""Settings, read once from the environment.

Every limit the hub enforces lives here so that operators find them in one place;
`docs/operations.md` lists them with their defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return default if raw in (None, "") else float(raw)


def _bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _list(name: str) -> list[str]:
    raw = os.environ.get(name, "")
    return [item.strip() for item in raw.split(",") if item.strip()]


class ConfigError(Exception):
    """The environment does not describe a hub that may start."""


@dataclass
class Settings:
    dev_mode: bool = False
    secret_keys: dict[str, str] = field(default_factory=dict)
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "hub:"
    redis_sharded: bool = False
    data_dir: str = ".hub-data"
    node_id: str = ""

    # connections
    idle_timeout: float = 75.0
    heartbeat_interval: float = 30.0
    outbound_queue_size: int = 2048
    max_frame_bytes: int = 64 * 1024
    max_errors_per_connection: int = 50
    rate_limit_per_second: float = 100.0
    rate_limit_burst: int = 200
    rate_limit_strikes: int = 200
    max_connections_per_user: int = 20
    allowed_origins: list[str] = field(default_factory=list)
    presence_grace: float = 2.0
    presence_ttl: float = 15.0
    room_linger: float = 5.0
    gap_repair_delay: float = 0.02

    # storage
    commit_batch_max: int = 512
    commit_queue_max: int = 10_000
    db_pool_min: int = 2
    db_pool_max: int = 10
    replay_page: int = 1000

    # http
    max_body_bytes: int = 1024 * 1024
    default_max_participants: int = 100
    drain_timeout: float = 10.0

    # webhooks (hub/webhooks/)
    webhook_retry_base: float = 5.0
    webhook_max_attempts: int = 8
    webhook_timeout: float = 10.0
    webhook_lease: float = 30.0
    webhook_allow_private: bool = False
    templates_dir: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        keys: dict[str, str] = {}
        secret = os.environ.get("HUB_SECRET", "")
        if secret:
            keys["default"] = secret
        # Rotation: HUB_SECRETS="kid1:secret1,kid2:secret2"
        for pair in _list("HUB_SECRETS"):
            kid, _, value = pair.partition(":")
            if kid and value:
                keys[kid] = value
        settings = cls(
            dev_mode=_bool("HUB_DEV"),
            secret_keys=keys,
            database_url=os.environ.get("DATABASE_URL") or None,
            redis_url=os.environ.get("REDIS_URL") or None,
            redis_prefix=os.environ.get("HUB_REDIS_PREFIX", "hub:"),
            redis_sharded=_bool("HUB_REDIS_SHARDED"),
            data_dir=os.environ.get("HUB_DATA_DIR", ".hub-data"),
            node_id=os.environ.get("HUB_NODE_ID", ""),
            idle_timeout=_float("HUB_IDLE_TIMEOUT", 75.0),
            heartbeat_interval=_float("HUB_HEARTBEAT_INTERVAL", 30.0),
            outbound_queue_size=_int("HUB_OUTBOUND_QUEUE", 2048),
            max_frame_bytes=_int("HUB_MAX_FRAME_BYTES", 64 * 1024),
            max_errors_per_connection=_int("HUB_MAX_ERRORS", 50),
            rate_limit_per_second=_float("HUB_RATE_LIMIT", 100.0),
            rate_limit_burst=_int("HUB_RATE_BURST", 200),
            rate_limit_strikes=_int("HUB_RATE_STRIKES", 200),
            max_connections_per_user=_int("HUB_MAX_CONNECTIONS_PER_USER", 20),
            allowed_origins=_list("HUB_ALLOWED_ORIGINS"),
            presence_grace=_float("HUB_PRESENCE_GRACE", 2.0),
            presence_ttl=_float("HUB_PRESENCE_TTL", 15.0),
            room_linger=_float("HUB_ROOM_LINGER", 5.0),
            gap_repair_delay=_float("HUB_GAP_REPAIR_DELAY", 0.02),
            commit_batch_max=_int("HUB_COMMIT_BATCH", 512),
            commit_queue_max=_int("HUB_COMMIT_QUEUE", 10_000),
            db_pool_min=_int("HUB_DB_POOL_MIN", 2),
            db_pool_max=_int("HUB_DB_POOL_MAX", 10),
            max_body_bytes=_int("HUB_MAX_BODY_BYTES", 1024 * 1024),
            default_max_participants=_int("HUB_DEFAULT_MAX_PARTICIPANTS", 100),
            drain_timeout=_float("HUB_DRAIN_TIMEOUT", 10.0),
            webhook_retry_base=_float("HUB_WEBHOOK_RETRY_BASE", 5.0),
            webhook_max_attempts=_int("HUB_WEBHOOK_MAX_ATTEMPTS", 8),
            webhook_timeout=_float("HUB_WEBHOOK_TIMEOUT", 10.0),
            webhook_lease=_float("HUB_WEBHOOK_LEASE", 30.0),
            webhook_allow_private=_bool("HUB_WEBHOOK_ALLOW_PRIVATE"),
            templates_dir=os.environ.get("HUB_TEMPLATES_DIR", ""),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.dev_mode and not self.secret_keys:
            raise ConfigError(
                "HUB_SECRET is not set: the hub refuses to start without a signing secret "
                "outside dev mode (set HUB_SECRET, or HUB_DEV=1 for an open development hub)"
            )
        if self.webhook_lease < self.webhook_timeout + 2:
            raise ConfigError(
                "HUB_WEBHOOK_LEASE must exceed HUB_WEBHOOK_TIMEOUT by at least 2 seconds "
                "(an attempt must end before its lease can expire)"
            )
        if self.webhook_max_attempts < 1 or self.webhook_retry_base <= 0 or self.webhook_timeout <= 0:
            raise ConfigError(
                "HUB_WEBHOOK_MAX_ATTEMPTS must be at least 1, HUB_WEBHOOK_RETRY_BASE and "
                "HUB_WEBHOOK_TIMEOUT above 0"
            )
