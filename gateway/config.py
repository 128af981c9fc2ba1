"""Settings: one frozen, typed object read once from the environment.

Every knob of the gateway is an environment variable named ``GATEWAY_*``. The README lists them; this module is the
only place that reads them. Code receives a :class:`Settings` instance through its constructor and never looks at
``os.environ`` itself, so tests build settings explicitly and run in parallel without leaking state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["ConfigurationError", "Settings", "is_loopback_host"]

LogFormat = Literal["text", "json"]


class ConfigurationError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def is_loopback_host(host: str | None) -> bool:
    """Tell whether ``host`` names the loopback interface (RFC 8252 §7.3, RFC 6761 §6.3).

    ``localhost`` and any literal in 127.0.0.0/8 or ``::1`` count. Other names do not, because DNS could point them
    anywhere.
    """
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_base_url(value: str) -> str:
    """Validate the public base URL: https, or http on a loopback address for development."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"GATEWAY_BASE_URL must be an absolute http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ConfigurationError("GATEWAY_BASE_URL must not carry a query or a fragment")
    if parts.username or parts.password:
        raise ConfigurationError("GATEWAY_BASE_URL must not carry credentials")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError(
            "GATEWAY_BASE_URL must use https; plain http is allowed only on a loopback address "
            f"such as http://127.0.0.1:8000 (got {value!r})"
        )
    return value.rstrip("/")


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigurationError(f"{name} must be {bounds}, got {value}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or value != value or value == float("inf"):
        raise ConfigurationError(f"{name} must be a finite number >= 0, got {raw!r}")
    return value


def _networks(environ: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _secret_key(environ: Mapping[str, str], var_dir: Path) -> str:
    """Return the configured secret key, or one generated on first run and persisted under ``var_dir``.

    The key signs sessions and CSRF tokens and keys the digests of client secrets and tokens, so it must survive
    restarts: a generated key is written with mode 0600 and reused.
    """
    configured = environ.get("GATEWAY_SECRET_KEY")
    if configured:
        if len(configured) < 32:
            raise ConfigurationError("GATEWAY_SECRET_KEY must be at least 32 characters long")
        return configured
    key_file = var_dir / "secret_key"
    try:
        existing = key_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    var_dir.mkdir(parents=True, exist_ok=True)
    # Written whole to a private temporary file, then linked into place: link() fails if the key already exists,
    # so two processes starting at once agree on one key, and nobody ever reads a half-written file.
    fd, temporary = tempfile.mkstemp(dir=var_dir, prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):  # another process won the race: use its key
            os.link(temporary, key_file)
    finally:
        os.unlink(temporary)
    return key_file.read_text(encoding="ascii").strip()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the gateway can be configured with. Build with :meth:`from_env` or directly in tests."""

    base_url: str = "http://127.0.0.1:8000"
    """Public base URL: every link in feeds and the OAuth issuer (RFC 8414 §2) derive from it."""
    database_url: str = "sqlite:///var/gateway.sqlite3"
    secret_key: str = dataclasses.field(default="", repr=False)
    previous_secret_keys: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    """Keys that were current before a rotation: still accepted when looking up tokens and client secrets."""
    var_dir: Path = Path("var")
    data_custodian_id: str = "greenbutton-gateway"
    certification_url: str | None = None
    """Green Button Alliance certificate URL, written as the feeds' ``related`` link (ESPI-NOTES §7)."""

    log_format: LogFormat = "text"
    log_level: str = "INFO"

    access_token_ttl: int = 3600
    authorization_code_ttl: int = 60
    refresh_token_ttl: int = 86_400
    """Lifetime of a refresh token issued without ``offline_access``."""
    offline_refresh_token_ttl: int = 365 * 86_400
    refresh_token_idle_ttl: int = 90 * 86_400
    refresh_reuse_grace: int = 10
    token_retention: int = 7 * 86_400
    """Seconds a dead token row is kept after it expired (or, for access and registration tokens, was revoked)
    before the worker deletes it (:func:`gateway.storage.oauth.purge_dead_tokens`)."""

    password_time_cost: int = 3
    password_memory_cost_kib: int = 65_536

    max_request_bytes: int = 1 << 20
    max_upload_bytes: int = 256 << 20
    max_validate_bytes: int = 64 << 20
    """``POST /validate`` is public: a smaller body limit than authenticated uploads bounds its CPU cost."""
    validate_cpu_seconds: int = 20
    validate_memory_mib: int = 2048
    """CPU time and memory one ``POST /validate`` may use, in its own child process (:mod:`gateway.espi.isolation`)."""
    rate_limit_per_second: float = 10.0
    """Sustained requests per second per client on the ESPI resources (0 disables the limit)."""
    rate_limit_burst: int = 50
    """Requests a client may make at once before the sustained rate applies."""
    validate_rate_limit_per_minute: float = 30.0
    """Sustained ``POST /validate`` requests per minute per client address (0 disables the limit)."""
    validate_rate_limit_burst: int = 30
    """``POST /validate`` requests a client address may make at once before the sustained rate applies."""
    database_pool_size: int = 5
    statement_timeout_ms: int = 30_000
    bulk_async_readings: int = 100_000
    """A ``Batch/Bulk`` page estimated at more IntervalReadings than this is built in the background and answered
    202 Accepted (ESPI-NOTES §9); smaller ones stream at once. 0 sends every bulk with interval data there."""
    bulk_retention: int = 86_400
    """Seconds a built bulk is kept (its ``Expires``); the next request after that builds it again."""
    migration_lock_timeout: int = 300
    """Seconds ``gateway serve``/``init`` wait for another node's migration before failing (gateway.storage.migrate)."""

    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (CIDR) of the reverse proxies whose ``X-Forwarded-Proto``/``-For`` we believe."""

    metrics_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Networks allowed to scrape ``/metrics``."""

    smtp_url: str | None = None
    mail_from: str = "Green Button Gateway <no-reply@localhost>"

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _parse_base_url(self.base_url))
        if not self.secret_key:
            raise ConfigurationError("a secret key is required (GATEWAY_SECRET_KEY or a generated one)")
        for variable, networks in (
            ("GATEWAY_TRUSTED_PROXIES", self.trusted_proxies),
            ("GATEWAY_METRICS_NETWORKS", self.metrics_networks),
        ):
            for network in networks:
                try:
                    ipaddress.ip_network(network, strict=False)
                except ValueError:
                    raise ConfigurationError(
                        f"{variable} must list IP addresses or networks, got {network!r}"
                    ) from None
        if not 1 <= self.authorization_code_ttl <= 600:
            raise ConfigurationError("GATEWAY_CODE_TTL must be between 1 and 600 seconds (RFC 6749 §4.1.2)")

    @property
    def issuer(self) -> str:
        """The OAuth issuer identifier (RFC 8414 §2, RFC 9207): the base URL itself."""
        return self.base_url

    @property
    def resource_base_url(self) -> str:
        """Base of every ESPI resource URL (ESPI REQ.21 REST binding: ``/DataCustodian/espi/1_1/resource``)."""
        return f"{self.base_url}/DataCustodian/espi/1_1/resource"

    @property
    def requires_https(self) -> bool:
        """True when the public URL is https: then every request must have arrived over TLS (RFC 6749 §3.1, §10.9)."""
        return urlsplit(self.base_url).scheme == "https"

    @property
    def mail_outbox_dir(self) -> Path:
        """Where the embedded mailer writes ``.eml`` files when no SMTP server is configured."""
        return self.var_dir / "outbox"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``GATEWAY_*`` environment variables (defaults suit a local demo)."""
        env = os.environ if environ is None else environ
        var_dir = Path(env.get("GATEWAY_VAR_DIR") or "var").absolute()
        database_url = env.get("GATEWAY_DATABASE_URL") or f"sqlite:///{var_dir / 'gateway.sqlite3'}"
        log_format = env.get("GATEWAY_LOG_FORMAT", "text")
        if log_format not in ("text", "json"):
            raise ConfigurationError(f"GATEWAY_LOG_FORMAT must be 'text' or 'json', got {log_format!r}")
        return cls(
            base_url=env.get("GATEWAY_BASE_URL") or "http://127.0.0.1:8000",
            database_url=database_url,
            secret_key=_secret_key(env, var_dir),
            previous_secret_keys=tuple(
                key.strip() for key in (env.get("GATEWAY_PREVIOUS_SECRET_KEYS") or "").split(",") if key.strip()
            ),
            var_dir=var_dir,
            data_custodian_id=env.get("GATEWAY_DATA_CUSTODIAN_ID") or "greenbutton-gateway",
            certification_url=env.get("GATEWAY_CERTIFICATION_URL") or None,
            log_format=log_format,  # type: ignore[arg-type]
            log_level=(env.get("GATEWAY_LOG_LEVEL") or "INFO").upper(),
            access_token_ttl=_int(env, "GATEWAY_ACCESS_TOKEN_TTL", 3600, minimum=60),
            authorization_code_ttl=_int(env, "GATEWAY_CODE_TTL", 60, minimum=1, maximum=600),
            refresh_token_ttl=_int(env, "GATEWAY_REFRESH_TOKEN_TTL", 86_400, minimum=60),
            offline_refresh_token_ttl=_int(env, "GATEWAY_OFFLINE_REFRESH_TOKEN_TTL", 365 * 86_400, minimum=60),
            refresh_token_idle_ttl=_int(env, "GATEWAY_REFRESH_TOKEN_IDLE_TTL", 90 * 86_400, minimum=60),
            refresh_reuse_grace=_int(env, "GATEWAY_REFRESH_REUSE_GRACE", 10, minimum=0, maximum=300),
            token_retention=_int(env, "GATEWAY_TOKEN_RETENTION", 7 * 86_400, minimum=0),
            password_time_cost=_int(env, "GATEWAY_PASSWORD_TIME_COST", 3, minimum=1),
            password_memory_cost_kib=_int(env, "GATEWAY_PASSWORD_MEMORY_KIB", 65_536, minimum=8),
            max_request_bytes=_int(env, "GATEWAY_MAX_REQUEST_BYTES", 1 << 20, minimum=1024),
            max_upload_bytes=_int(env, "GATEWAY_MAX_UPLOAD_BYTES", 256 << 20, minimum=1024),
            max_validate_bytes=_int(env, "GATEWAY_MAX_VALIDATE_BYTES", 64 << 20, minimum=1024),
            validate_cpu_seconds=_int(env, "GATEWAY_VALIDATE_CPU_SECONDS", 20, minimum=1),
            validate_memory_mib=_int(env, "GATEWAY_VALIDATE_MEMORY_MIB", 2048, minimum=128),
            rate_limit_per_second=_float(env, "GATEWAY_RATE_LIMIT_PER_SECOND", 10.0),
            rate_limit_burst=_int(env, "GATEWAY_RATE_LIMIT_BURST", 50, minimum=1),
            validate_rate_limit_per_minute=_float(env, "GATEWAY_VALIDATE_RATE_LIMIT_PER_MINUTE", 30.0),
            validate_rate_limit_burst=_int(env, "GATEWAY_VALIDATE_RATE_LIMIT_BURST", 30, minimum=1),
            database_pool_size=_int(env, "GATEWAY_DATABASE_POOL_SIZE", 5, minimum=1),
            statement_timeout_ms=_int(env, "GATEWAY_STATEMENT_TIMEOUT_MS", 30_000, minimum=0),
            bulk_async_readings=_int(env, "GATEWAY_BULK_ASYNC_READINGS", 100_000, minimum=0),
            bulk_retention=_int(env, "GATEWAY_BULK_RETENTION", 86_400, minimum=60),
            migration_lock_timeout=_int(env, "GATEWAY_MIGRATION_LOCK_TIMEOUT", 300, minimum=1),
            trusted_proxies=_networks(env, "GATEWAY_TRUSTED_PROXIES", ()),
            metrics_networks=_networks(env, "GATEWAY_METRICS_NETWORKS", ("127.0.0.0/8", "::1/128")),
            smtp_url=env.get("GATEWAY_SMTP_URL") or None,
            mail_from=env.get("GATEWAY_MAIL_FROM") or "Green Button Gateway <no-reply@localhost>",
        )

    def replace(self, **changes: object) -> Settings:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
