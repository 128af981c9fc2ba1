"""The e-mails a consent change sends: to the customer on every grant and revoke, and to the app's contacts.

Plain text (RFC 5322, UTF-8), no tracking, no remote images, nothing secret: the mail says what was shared with whom
and where to take it back. Queued in the outbox with the change itself (:mod:`gateway.outbox.queue`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.consent.describe import describe_scope, describe_until
from gateway.oauth.scope import ScopeError, parse_scope
from gateway.outbox.queue import enqueue_mail
from gateway.storage.consent import Consent, ConsentStatus

__all__ = ["MailText", "app_grant_mail", "app_revoke_mail", "grant_mail", "queue", "revoke_mail"]


@dataclasses.dataclass(frozen=True, slots=True)
class MailText:
    subject: str
    text: str

    def __post_init__(self) -> None:
        # A subject is one header line (RFC 5322 §2.2): app names come from registrations and must not break it.
        object.__setattr__(self, "subject", " ".join(self.subject.split()))


def _app(consent: Consent) -> str:
    """The application's name on one line (names registered before control characters were refused may have them)."""
    return " ".join(consent.application_name.split())


def _data_lines(consent: Consent) -> list[str]:
    try:
        description = describe_scope(parse_scope(consent.granted_scope or consent.requested_scope))
    except ScopeError:
        return [f"  - {consent.granted_scope or consent.requested_scope}"]
    lines = [f"  - {item}" for item in description.data]
    if description.history:
        lines.append(f"  - {description.history[0].upper()}{description.history[1:]}")
    return lines


def _points(consent: Consent) -> list[str]:
    return [f"  - {point['description']}" for point in consent.usage_points] or ["  - (none)"]


def _when(value: dt.datetime | None) -> str:
    return "-" if value is None else f"{value:%d %B %Y %H:%M} UTC"


def grant_mail(settings: Settings, consent: Consent) -> MailText:
    """The customer's receipt for a consent they gave."""
    lines = [
        "Hello,",
        "",
        f"On {_when(consent.decided_at)} you allowed {_app(consent)} to read your energy data.",
        "",
        "What you shared:",
        *_data_lines(consent),
        "",
        "From these meters:",
        *_points(consent),
        "",
        f"This consent lasts {describe_until(consent.expires_at)}.",
        "",
        f"You can see and revoke it at any time: {settings.base_url}/consents",
        "",
        f"Consent reference: {consent.public_id}",
        "If this was not you, revoke it now and change your password.",
    ]
    return MailText(f"You shared your energy data with {_app(consent)}", "\n".join(lines) + "\n")


def revoke_mail(settings: Settings, consent: Consent) -> MailText:
    """The customer's notice that a consent ended (revoked by them, the app or the operator, or expired)."""
    verb = "expired" if consent.status == ConsentStatus.EXPIRED else "was revoked"
    lines = [
        "Hello,",
        "",
        f"Your consent for {_app(consent)} {verb} on {_when(consent.ended_at)}.",
        f"{_app(consent)} can no longer read your energy data.",
        "",
        f"Your consents and their history: {settings.base_url}/consents/history",
        "",
        f"Consent reference: {consent.public_id}",
    ]
    return MailText(f"{_app(consent)} no longer has access to your energy data", "\n".join(lines) + "\n")


def app_grant_mail(settings: Settings, consent: Consent) -> MailText:
    """The app contact's notice of a new consent (no personal data beyond the reference)."""
    lines = [
        f"A customer authorized {_app(consent)} on {_when(consent.decided_at)}.",
        f"Authorization: {settings.resource_base_url}/Authorization/{consent.authorization_id}",
        f"Scope: {consent.granted_scope}",
        f"Consent reference: {consent.public_id}",
    ]
    return MailText(f"New authorization for {_app(consent)}", "\n".join(lines) + "\n")


def app_revoke_mail(settings: Settings, consent: Consent) -> MailText:
    """The app contact's notice that a consent ended: stop using its tokens."""
    lines = [
        f"An authorization of {_app(consent)} ended ({consent.status}) on {_when(consent.ended_at)}.",
        f"Authorization: {settings.resource_base_url}/Authorization/{consent.authorization_id}",
        "Its access and refresh tokens no longer work.",
        f"Consent reference: {consent.public_id}",
    ]
    return MailText(f"Authorization ended for {_app(consent)}", "\n".join(lines) + "\n")


def queue(session: Session, message: MailText, *, to: list[str], now: dt.datetime | None = None) -> None:
    """Queue ``message`` to ``to`` in the outbox (same transaction as the consent change)."""
    enqueue_mail(session, to=to, subject=message.subject, text=message.text, now=now)
