"""Operational self-checks behind ``gateway doctor``: configuration, database, migrations, mail, clock.

Each check returns a :class:`Check` with a status (``ok``, ``warn``, ``fail``) and one sentence an operator can act
on. Nothing here changes state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import smtplib
import stat
import time
from typing import Literal
from urllib.parse import unquote, urlsplit

from sqlalchemy import text

from gateway.config import Settings
from gateway.services import Services
from gateway.storage import migrate

__all__ = ["Check", "run_checks"]

Status = Literal["ok", "warn", "fail"]
CLOCK_SKEW_WARN_SECONDS = 5


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str


def check_configuration(settings: Settings, environ: dict[str, str] | os._Environ[str]) -> list[Check]:
    checks = [Check("base URL", "ok", f"{settings.base_url} (issuer and every link)")]
    if not settings.requires_https:
        checks[0] = Check("base URL", "warn", f"{settings.base_url} is plain http: fine for development only")
    elif not settings.trusted_proxies:
        checks.append(
            Check("trusted proxies", "warn", "none configured: behind a TLS-terminating proxy every request is refused")
        )
    if environ.get("GATEWAY_SECRET_KEY"):
        checks.append(Check("secret key", "ok", "from GATEWAY_SECRET_KEY"))
    elif settings.database_url.startswith("postgresql"):
        checks.append(
            Check(
                "secret key",
                "fail",
                "generated per node: nodes sharing a PostgreSQL database must share one "
                "GATEWAY_SECRET_KEY, or tokens issued on one node are unknown to the others",
            )
        )
    else:
        key_file = settings.var_dir / "secret_key"
        mode = stat.S_IMODE(key_file.stat().st_mode) if key_file.exists() else None
        if mode is not None and mode & 0o077:
            checks.append(Check("secret key", "fail", f"{key_file} is readable by others (mode {mode:o}); chmod 600"))
        else:
            checks.append(
                Check(
                    "secret key",
                    "warn" if settings.requires_https else "ok",
                    f"generated, in {key_file}; in production set GATEWAY_SECRET_KEY from your secret store",
                )
            )
    existing = settings.var_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        checks.append(Check("var dir", "fail", f"{settings.var_dir} is not writable (GATEWAY_VAR_DIR)"))
    elif existing != settings.var_dir:
        checks.append(Check("var dir", "ok", f"{settings.var_dir} will be created on first use"))
    else:
        checks.append(Check("var dir", "ok", f"{settings.var_dir} is writable"))
    return checks


def check_database(services: Services) -> tuple[list[Check], dt.datetime | None]:
    url = services.engine.url.render_as_string(hide_password=True)
    started = time.perf_counter()
    try:
        with services.engine.connect() as connection:
            if services.engine.dialect.name == "postgresql":
                server_now = connection.execute(text("SELECT now()")).scalar_one()
            else:
                connection.execute(text("SELECT 1"))
                server_now = None
    except Exception as error:  # any driver error means unreachable
        return [
            Check("database", "fail", f"{url} is unreachable: {type(error).__name__}: {error}".splitlines()[0])
        ], None
    latency_ms = (time.perf_counter() - started) * 1000
    checks = [Check("database", "ok", f"{url} answered in {latency_ms:.0f} ms")]
    state = migrate.migration_state(services.engine)  # empty, behind, at head, or ahead of this code
    checks.append(Check("migrations", "ok" if state.status == "at head" else "fail", state.describe()))
    return checks, server_now


def check_mail(settings: Settings) -> Check:
    if not settings.smtp_url:
        outbox = settings.mail_outbox_dir
        return Check("mail", "ok", f"no SMTP server configured: mails are written to {outbox}")
    parts = urlsplit(settings.smtp_url)
    if parts.scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
        return Check("mail", "fail", "GATEWAY_SMTP_URL must look like smtp://user:password@host:port")
    try:
        client_class = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        with client_class(parts.hostname, parts.port or (465 if parts.scheme == "smtps" else 25), timeout=5) as client:
            client.ehlo()
            if parts.scheme == "smtp+starttls":
                client.starttls()
                client.ehlo()
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
    except (OSError, smtplib.SMTPException) as error:
        return Check("mail", "fail", f"SMTP server {parts.hostname}:{parts.port} failed: {error}")
    return Check("mail", "ok", f"SMTP server {parts.hostname}:{parts.port} accepted our greeting")


def check_clock(server_now: dt.datetime | None) -> Check:
    local_now = dt.datetime.now(dt.UTC)
    if local_now.year < 2024:
        return Check("clock", "fail", f"the system clock says {local_now:%Y-%m-%d}: tokens and feeds would be wrong")
    if server_now is None:
        return Check("clock", "ok", f"{local_now:%Y-%m-%dT%H:%M:%SZ} (no database server clock to compare with)")
    skew = abs((server_now - local_now).total_seconds())
    if skew > CLOCK_SKEW_WARN_SECONDS:
        return Check("clock", "warn", f"differs from the database server's by {skew:.1f} s: run NTP on both")
    return Check("clock", "ok", f"within {skew:.1f} s of the database server's")


def run_checks(services: Services, environ: dict[str, str] | os._Environ[str]) -> list[Check]:
    """Every check, in the order an operator would fix them."""
    checks = check_configuration(services.settings, environ)
    database_checks, server_now = check_database(services)
    checks += database_checks
    checks.append(check_mail(services.settings))
    checks.append(check_clock(server_now))
    return checks
