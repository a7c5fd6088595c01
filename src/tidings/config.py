"""Settings, read from ``TIDINGS_*`` environment variables (and nothing at import time)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.errors import ConfigurationError
from tidings.optouts.keywords import DEFAULT_OPTIN_KEYWORDS, DEFAULT_OPTOUT_KEYWORDS, KeywordSet


def normalize_database_url(url: str) -> str:
    """Accept the URLs operators type and turn them into the async drivers' forms."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for plain in ("postgresql:", "postgres:"):
        if url.startswith(plain):
            return "postgresql+asyncpg:" + url[len(plain) :]
    return url


def data_directory() -> Path:
    """Where the default SQLite database lives: one per user, the same from any folder, so
    `make run` and the `tidings` command find the same one (`$XDG_DATA_HOME/tidings`, else
    `~/.local/share/tidings`)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tidings"


def default_database_url() -> str:
    return f"sqlite+aiosqlite:///{data_directory() / 'tidings.db'}"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    from sqlalchemy.engine import make_url

    url = normalize_database_url(url)
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    # Read when Settings() is built (never at import time); TIDINGS_DATABASE_URL overrides.
    database_url: str = Field(default_factory=default_database_url)
    # A read replica of the same database (docs/scale-out.md): read-only queries that may be
    # a moment behind (DR queries, status reads, console pages, export builds) go there.
    database_replica_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Logs are JSON lines on stderr (docs/operations.md); INFO adds one per status change.
    log_level: str = "WARNING"
    # Prometheus metrics at /metrics (0: off, nothing recorded). `tidings worker` serves its
    # own on metrics_port when that is set.
    metrics: bool = True
    metrics_port: int | None = Field(None, ge=0, le=65535)
    currency: str = "EUR"

    # The SMPP server (docs/smpp-server.md): off while the port is unset.
    smpp_host: str = "127.0.0.1"
    smpp_port: int | None = Field(None, ge=0, le=65535)

    # Client API limits.
    max_batch_size: int = Field(10_000, ge=1)
    max_sms_parts: int = Field(10, ge=1, le=255)

    # Request limits (docs/api-hardening.md). Bodies over the size are refused before they are
    # read. Rates are requests per second per client (client API and DR API together) and per
    # supplier (/api/dlr), 0 for none; a bucket holds `rate_burst_seconds` of its rate. They
    # are counted in each process's memory, so N API processes admit up to N times the rate.
    max_request_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    rate_limit: float = Field(2000.0, ge=0)
    rate_burst_seconds: float = Field(2.0, gt=0)
    # Per-client overrides: TIDINGS_CLIENT_RATE_LIMITS='{"7": 50, "9": 0}' (0: no limit).
    client_rate_limits: dict[int, float] = Field(default_factory=dict)
    supplier_rate_limit: float = Field(0.0, ge=0)

    # How long API keys, prices and routes are served from memory (seconds; 0: never).
    cache_ttl: float = Field(2.0, ge=0)

    # `tidings serve`: processes sharing the HTTP port, each with its own event loop (the
    # loops spread over them, tidings/cli/processes.py); unset: one per core.
    processes: int | None = Field(None, ge=1)
    # `tidings worker`: processes, the loops spread over them (tidings/cli/worker.py);
    # unset: one per core, as `serve`.
    worker_processes: int | None = Field(None, ge=1)

    # Workers.
    # A waiting loop is woken by the commits that create its work (in any process: see
    # tidings/wakeups.py) and otherwise looks this often, for work that comes due by the
    # clock (retries, scheduled messages) and in case a wake-up was lost.
    idle_poll: float = Field(5.0, gt=0)
    dispatch_batch_size: int = Field(500, ge=1)
    poll_interval: float = Field(0.05, gt=0)
    lease_seconds: float = Field(60.0, gt=0)
    submit_timeout: float = Field(30.0, gt=0)
    sweep_interval: float = Field(5.0, gt=0)
    # A sent message without a final report is closed this long after its validity ends.
    report_grace_seconds: int = Field(3600, ge=0)
    # Message history (messages, their status history) is kept this many days, then pruned
    # by whole weeks (docs/architecture.md, "Partitions and retention"). Statistics exports
    # keep their own rule (docs/exports.md).
    retention_days: int = Field(90, ge=1)
    supplier_refresh_interval: float = Field(5.0, gt=0)

    # Delivery-report webhooks (docs/webhooks.md). The lease must be more than twice the
    # timeout: a request has to end well before another worker may take its delivery over.
    webhook_batch_size: int = Field(200, ge=1)
    webhook_poll_interval: float = Field(0.05, gt=0)
    webhook_lease_seconds: float = Field(60.0, gt=0)
    webhook_timeout: float = Field(10.0, gt=0)
    webhook_connect_timeout: float = Field(5.0, gt=0)
    webhook_concurrency: int = Field(200, ge=1)
    webhook_per_host: int = Field(64, ge=1)  # docs/webhooks.md, "Isolation"

    # Statistics exports (docs/exports.md). A directory (TIDINGS_EXPORT_STORAGE=directory)
    # defaults to `<db>-exports/` beside the SQLite file, or `./tidings-exports` for
    # PostgreSQL. A build holds a lease that it renews while it runs; a worker that dies
    # leaves it to run out, then another rebuilds.
    # Where the files live: `database` (every api process on every host serves them), or
    # `directory` (TIDINGS_EXPORT_DIR, which all hosts must share); unset: `directory` when
    # TIDINGS_EXPORT_DIR is set, else `database` (docs/scale-out.md).
    export_storage: Literal["database", "directory"] | None = None
    export_dir: str | None = None
    export_batch_size: int = Field(2000, ge=1)
    export_poll_interval: float = Field(1.0, gt=0)
    export_lease_seconds: float = Field(60.0, gt=0)
    export_max_attempts: int = Field(3, ge=1)
    export_purge_interval: float = Field(300.0, gt=0)
    # A finished export's callback carries its rows when the JSON file is at most this big.
    export_callback_inline_bytes: int = Field(262_144, ge=0)

    # Opt-outs (docs/optouts.md): an inbound text that is one of these words, comma-separated,
    # puts its sender on the client's opt-out list (optout) or takes it off (optin).
    optout_keywords: str = DEFAULT_OPTOUT_KEYWORDS
    optin_keywords: str = DEFAULT_OPTIN_KEYWORDS

    # The operator console (docs/console.md). Session cookies are signed with this secret;
    # unset, one is generated and kept in the database (shared by every API process).
    console_secret: str | None = Field(None, min_length=32)
    console_session_hours: float = Field(12.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("database_replica_url")
    @classmethod
    def _replica_driver(cls, value: str | None) -> str | None:
        return normalize_database_url(value) if value else None

    @property
    def export_storage_kind(self) -> str:
        if self.export_storage is not None:
            return self.export_storage
        return "directory" if self.export_dir else "database"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        from tidings.observability.logging import parse_level

        parse_level(value)  # a typo fails at start, not silently as the default
        return value.strip().upper()

    @model_validator(mode="after")
    def _usable_keywords(self) -> Settings:
        self.keywords()  # a word in both lists, or no opt-out word, fails at start
        return self

    def keywords(self) -> KeywordSet:
        """The STOP / START keywords (docs/optouts.md)."""
        try:
            return KeywordSet.parse(self.optout_keywords, self.optin_keywords)
        except ConfigurationError as error:
            raise ValueError(f"TIDINGS_OPTOUT_KEYWORDS / TIDINGS_OPTIN_KEYWORDS: {error}") from None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
