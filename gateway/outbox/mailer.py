"""Sending mail: real SMTP when ``GATEWAY_SMTP_URL`` is set, else ``.eml`` files in the outbox folder.

URL forms (credentials percent-encoded): ``smtp://host:25`` (plain, for a local relay), ``smtp+starttls://user:pass@
host:587`` (STARTTLS, RFC 3207), ``smtps://user:pass@host:465`` (implicit TLS, RFC 8314). The embedded default writes
RFC 5322 files so the demo works with no mail server, and an operator can open them in any mail client.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from gateway.config import ConfigurationError

__all__ = ["FileMailer", "Mailer", "SmtpMailer", "SmtpUrl", "build_message", "mailer_for", "parse_smtp_url"]

_TIMEOUT = 30


class Mailer(Protocol):
    """Something that sends one message (or raises)."""

    def send(self, message: EmailMessage) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class SmtpUrl:
    security: str  # "plain", "starttls" or "tls"
    host: str
    port: int
    username: str | None
    password: str | None = dataclasses.field(repr=False)


def parse_smtp_url(url: str) -> SmtpUrl:
    """Parse ``GATEWAY_SMTP_URL``; raise :class:`ConfigurationError` naming what is wrong (never the password)."""
    parts = urlsplit(url)
    schemes = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigurationError("GATEWAY_SMTP_URL must look like smtp://, smtp+starttls:// or smtps://host[:port]")
    security, default_port = schemes[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ConfigurationError("GATEWAY_SMTP_URL has an invalid port") from None
    return SmtpUrl(
        security=security,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class SmtpMailer:
    """Deliver through an SMTP server (smtplib); a refused or failed send raises, and the outbox retries."""

    def __init__(self, url: str) -> None:
        self._url = parse_smtp_url(url)

    def send(self, message: EmailMessage) -> None:
        target = self._url
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if target.security == "tls":
            client = smtplib.SMTP_SSL(target.host, target.port, timeout=_TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(target.host, target.port, timeout=_TIMEOUT)
        with client:
            client.ehlo()
            if target.security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if target.username:
                client.login(target.username, target.password or "")
            client.send_message(message)


class FileMailer:
    """Write each message as ``<time>-<id>.eml`` into a folder (the embedded default)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def send(self, message: EmailMessage) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        token = os.urandom(4).hex()
        final = self._directory / f"{stamp}-{token}.eml"
        partial = self._directory / f".{stamp}-{token}.eml.part"
        # Write then rename: a reader never sees half a message.
        partial.write_bytes(bytes(message))
        partial.replace(final)


def mailer_for(smtp_url: str | None, outbox_dir: Path) -> Mailer:
    """SMTP when configured, else the file outbox."""
    return SmtpMailer(smtp_url) if smtp_url else FileMailer(outbox_dir)


def build_message(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    text: str,
    reply_to: str | None = None,
    msgid_domain: str | None = None,
) -> EmailMessage:
    """An RFC 5322 plain-text message with Date and Message-ID.

    The subject's whitespace is collapsed: it is built from application data, and a line break in it would make
    the message unbuildable (or, with a lax library, inject headers).
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = " ".join(subject.split())
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain=msgid_domain or "greenbutton-gateway.invalid")
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: tell auto-responders not to answer
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(text)
    return message
