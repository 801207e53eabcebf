"""Settings, read once from the environment.

Every limit the hub enforces lives here so that operators find them in one place, each
with the range it may take; `docs/operations.md` lists them with their defaults. A value
outside its range, or one that does not parse, stops the hub at start with one line
naming the variable (`ConfigError`), never later with a traceback.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_MIB = 1024 * 1024
_HOUR = 3600.0
_BIG = 10_000_000  # "practically unlimited" for counts and rates, still a number that fits


def _number(raw: str) -> float | None:
    try:
        return float(raw)
    except ValueError:
        return None


class ConfigError(Exception):
    """The environment does not describe a hub that may start."""


def _env(name: str, default: Any, **limits: Any) -> Any:
    """A field read from the environment variable `name` (the field's own name works
    for direct construction, as in tests)."""
    return Field(default, validation_alias=name, **limits)


Seconds = float
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,  # VAR= means the default, as it always has
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
    )

    dev_mode: bool = _env("HUB_DEV", False)
    secret_keys: dict[str, str] = Field(default_factory=dict)
    secret: str = Field(default="", validation_alias="HUB_SECRET", repr=False, exclude=True)
    # Rotation: HUB_SECRETS="kid1:secret1,kid2:secret2"
    secret_pairs: CommaList = Field(
        default_factory=list, validation_alias="HUB_SECRETS", repr=False, exclude=True
    )
    database_url: str | None = _env("DATABASE_URL", None)
    redis_url: str | None = _env("REDIS_URL", None)
    redis_prefix: str = _env("HUB_REDIS_PREFIX", "hub:", max_length=100)
    redis_sharded: bool = _env("HUB_REDIS_SHARDED", False)
    redis_cluster: bool = _env("HUB_REDIS_CLUSTER", False)  # implies sharded pub/sub
    data_dir: str = _env("HUB_DATA_DIR", ".hub-data", min_length=1)
    node_id: str = _env("HUB_NODE_ID", "", max_length=100)
    log_format: Literal["auto", "json", "text"] = _env("HUB_LOG_FORMAT", "auto")

    # connections
    idle_timeout: Seconds = _env("HUB_IDLE_TIMEOUT", 75.0, gt=0, le=_HOUR)
    heartbeat_interval: Seconds = _env("HUB_HEARTBEAT_INTERVAL", 30.0, gt=0, le=_HOUR)
    outbound_queue_size: int = _env("HUB_OUTBOUND_QUEUE", 2048, ge=1, le=1_000_000)
    max_frame_bytes: int = _env("HUB_MAX_FRAME_BYTES", 64 * 1024, ge=1024, le=16 * _MIB)
    max_errors_per_connection: int = _env("HUB_MAX_ERRORS", 50, ge=1, le=_BIG)
    rate_limit_per_second: float = _env("HUB_RATE_LIMIT", 100.0, gt=0, le=_BIG)
    rate_limit_burst: int = _env("HUB_RATE_BURST", 200, ge=1, le=_BIG)
    rate_limit_strikes: int = _env("HUB_RATE_STRIKES", 200, ge=1, le=_BIG)
    max_connections_per_user: int = _env("HUB_MAX_CONNECTIONS_PER_USER", 20, ge=1, le=1_000_000)
    max_connections_per_account: int = _env("HUB_MAX_CONNECTIONS_PER_ACCOUNT", 10_000, ge=1, le=_BIG)
    # Frames a second summed over a user's / an account's connections on one process
    # (hub/rate_limits.py); unset: 2 and 200 times the per-connection limit. An account's
    # default is a node's ingest (20,000 a second): a 1000-person class streaming HRV at
    # 4 Hz is one account's 4,000 frames a second and must not be refused by default.
    user_rate_limit: float | None = _env("HUB_USER_RATE_LIMIT", None, gt=0, le=_BIG)
    user_rate_burst: int | None = _env("HUB_USER_RATE_BURST", None, ge=1, le=_BIG)
    account_rate_limit: float | None = _env("HUB_ACCOUNT_RATE_LIMIT", None, gt=0, le=_BIG)
    account_rate_burst: int | None = _env("HUB_ACCOUNT_RATE_BURST", None, ge=1, le=_BIG)
    allowed_origins: CommaList = _env("HUB_ALLOWED_ORIGINS", [])
    presence_grace: Seconds = _env("HUB_PRESENCE_GRACE", 2.0, ge=0, le=_HOUR)
    # seconds before a connection's token expires that `token_expiring` is sent
    token_warning: Seconds = _env("HUB_TOKEN_WARNING", 60.0, ge=0, le=_HOUR)
    presence_ttl: Seconds = _env("HUB_PRESENCE_TTL", 15.0, ge=1, le=_HOUR)
    # seconds a starting hub waits for the members the log shows present to come back
    # before it writes their participant_left (hub/presence_recovery.py)
    restart_grace: Seconds = _env("HUB_RESTART_GRACE", 15.0, ge=0, le=_HOUR)
    room_linger: Seconds = _env("HUB_ROOM_LINGER", 5.0, ge=0, le=_HOUR)
    gap_repair_delay: Seconds = _env("HUB_GAP_REPAIR_DELAY", 0.02, ge=0, le=10)
    # seconds per group HRV interval (hub/hrv_summaries.py); 0 turns the summaries off
    hrv_summary_interval: Seconds = _env("HUB_HRV_SUMMARY_INTERVAL", 1.0, ge=0, le=_HOUR)

    # transport: sockets before and after the WebSocket handshake (handlers/uvicorn_*.py)
    max_connections: int = _env("HUB_MAX_CONNECTIONS", 4096, ge=16, le=1_000_000)
    # joins between admission and welcome (session reads, presence, replay) per process;
    # beyond it a join is refused at once with `unavailable` (hub/membership.py)
    max_joins_in_flight: int = _env("HUB_MAX_JOINS_IN_FLIGHT", 2048, ge=1, le=1_000_000)
    request_timeout: Seconds = _env("HUB_REQUEST_TIMEOUT", 10.0, gt=0, le=300)
    keepalive_timeout: Seconds = _env("HUB_KEEPALIVE_TIMEOUT", 5.0, gt=0, le=300)
    close_grace: Seconds = _env("HUB_CLOSE_GRACE", 2.0, gt=0, le=60)

    # storage
    commit_batch_max: int = _env("HUB_COMMIT_BATCH", 512, ge=1, le=100_000)
    # group-commit batches in flight at once, each on its own connection (a session's
    # events always share one): the hub works on while PostgreSQL writes
    commit_lanes: int = _env("HUB_COMMIT_LANES", 2, ge=1, le=32)
    commit_queue_max: int = _env("HUB_COMMIT_QUEUE", 10_000, ge=1, le=_BIG)
    db_pool_min: int = _env("HUB_DB_POOL_MIN", 2, ge=1, le=1000)
    db_pool_max: int = _env("HUB_DB_POOL_MAX", 10, ge=1, le=1000)
    replay_page: int = Field(default=1000, ge=1, le=100_000)

    # retention (hub/retention.py): logs of sessions ended this long ago are archived, then trimmed
    retention_days: float = _env("HUB_RETENTION_DAYS", 30.0, ge=0, le=36_500)
    # per account: "acme:7,lab:never" (never: that account's logs are kept whole)
    retention_account_days: Annotated[dict[str, float | None], NoDecode] = _env(
        "HUB_RETENTION_ACCOUNT_DAYS", {}
    )
    retention_interval: Seconds = _env("HUB_RETENTION_INTERVAL", _HOUR, ge=0, le=7 * 24 * _HOUR)
    archive_dir: str = _env("HUB_ARCHIVE_DIR", "")  # empty: <HUB_DATA_DIR>/archive

    # http
    max_body_bytes: int = _env("HUB_MAX_BODY_BYTES", _MIB, ge=1024, le=1024 * _MIB)
    default_max_participants: int = _env("HUB_DEFAULT_MAX_PARTICIPANTS", 100, ge=1, le=1000)
    drain_timeout: Seconds = _env("HUB_DRAIN_TIMEOUT", 10.0, ge=0, le=_HOUR)
    # lifetime of the tokens a join link hands out; the page renews them while it is open
    invite_token_ttl: Seconds = _env("HUB_INVITE_TOKEN_TTL", 900.0, ge=5, le=24 * _HOUR)
    # HTTP rate limits (handlers/http_limits.py): units a second per user and per account;
    # a write or an expensive read costs 1, reading the log a further
    # HUB_HTTP_EXPENSIVE_COST per 1,000 events.
    http_rate_limit: float = _env("HUB_HTTP_RATE_LIMIT", 100.0, gt=0, le=_BIG)
    http_rate_burst: int = _env("HUB_HTTP_RATE_BURST", 300, ge=1, le=_BIG)
    http_account_rate_limit: float = _env("HUB_HTTP_ACCOUNT_RATE_LIMIT", 1000.0, gt=0, le=_BIG)
    http_account_rate_burst: int = _env("HUB_HTTP_ACCOUNT_RATE_BURST", 3000, ge=1, le=_BIG)
    http_expensive_cost: float = _env("HUB_HTTP_EXPENSIVE_COST", 20.0, ge=0, le=_BIG)

    # webhooks (hub/webhooks/) and the post-session summary's templates (hub/channel_templates.py)
    webhook_retry_base: Seconds = _env("HUB_WEBHOOK_RETRY_BASE", 5.0, gt=0, le=_HOUR)
    webhook_max_attempts: int = _env("HUB_WEBHOOK_MAX_ATTEMPTS", 8, ge=1, le=100)
    webhook_timeout: Seconds = _env("HUB_WEBHOOK_TIMEOUT", 10.0, gt=0, le=300)
    webhook_lease: Seconds = _env("HUB_WEBHOOK_LEASE", 30.0, ge=3, le=_HOUR)
    webhook_allow_private: bool = _env("HUB_WEBHOOK_ALLOW_PRIVATE", False)
    templates_dir: str = _env("HUB_TEMPLATES_DIR", "")

    @field_validator("secret_pairs", "allowed_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("retention_account_days", mode="before")
    @classmethod
    def _account_days(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        days: dict[str, float | None] = {}
        for pair in filter(None, (item.strip() for item in value.split(","))):
            account, _, raw = pair.rpartition(":")
            number = _number(raw)
            if not account or (raw.strip() != "never" and not (number is not None and 0 <= number <= 36_500)):
                raise ValueError("every entry must be account:days (0 to 36500) or account:never")
            days[account] = number
        return days

    @field_validator("database_url", "redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return value or None

    @field_validator("database_url")
    @classmethod
    def _postgres_dsn(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL, or unset for the embedded PostgreSQL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL, or unset")
        return value

    @field_validator("node_id", "redis_prefix")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(c in value for c in "\r\n\x00"):
            raise ValueError("must not contain a newline or NUL")
        return value

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        if not self.secret_keys:
            keys: dict[str, str] = {"default": self.secret} if self.secret else {}
            for pair in self.secret_pairs:
                kid, _, value = pair.partition(":")
                if not kid or not value:
                    raise ValueError("HUB_SECRETS: every entry must be kid:secret")
                keys[kid] = value
            self.secret_keys = keys
        # The per-user and per-account frame limits follow the per-connection one unless set,
        # so raising HUB_RATE_LIMIT alone still lets one connection send that much.
        if self.user_rate_limit is None:
            self.user_rate_limit = 2 * self.rate_limit_per_second
        if self.user_rate_burst is None:
            self.user_rate_burst = 2 * self.rate_limit_burst
        if self.account_rate_limit is None:
            self.account_rate_limit = 200 * self.rate_limit_per_second
        if self.account_rate_burst is None:
            self.account_rate_burst = 200 * self.rate_limit_burst
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("HUB_DB_POOL_MIN must not exceed HUB_DB_POOL_MAX")
        # A join link's token warned of its expiry as soon as it is issued would be renewed
        # again and again.
        if self.invite_token_ttl <= self.token_warning:
            raise ValueError("HUB_INVITE_TOKEN_TTL must be longer than HUB_TOKEN_WARNING")
        if self.webhook_lease < self.webhook_timeout + 2:
            # An attempt must end before its lease can expire (hub/webhooks/dispatcher.py).
            raise ValueError("HUB_WEBHOOK_LEASE must exceed HUB_WEBHOOK_TIMEOUT by at least 2 seconds")
        return self

    @classmethod
    def from_env(cls) -> Settings:
        """The settings in the environment, or ConfigError with one line saying which
        variable is wrong and why."""
        try:
            settings = cls()
        except ValidationError as exc:
            raise ConfigError(_one_line(exc)) from None
        settings.validate()
        return settings

    def validate(self) -> None:  # type: ignore[override]  # pydantic's classmethod is deprecated
        if not self.dev_mode and not self.secret_keys:
            raise ConfigError(
                "HUB_SECRET is not set: the hub refuses to start without a signing secret "
                "outside dev mode (set HUB_SECRET, or HUB_DEV=1 for an open development hub)"
            )


_HIDDEN = {"HUB_SECRET", "HUB_SECRETS", "DATABASE_URL", "REDIS_URL"}  # may carry passwords


def _one_line(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        if not where:  # a rule across variables names them itself
            problems.append(message)
        elif where in _HIDDEN or not isinstance(error.get("input"), str | int | float):
            problems.append(f"{where}: {message}")
        else:
            problems.append(f"{where}={error['input']!r}: {message}")
    return "; ".join(problems)
