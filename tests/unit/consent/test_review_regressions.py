"""Regressions for the security review on the consent side: mail headers, the worker's clean-up."""

from __future__ import annotations

import datetime as dt

from gateway.consent.mail import MailText
from gateway.outbox.mailer import build_message
from gateway.outbox.worker import run_once
from gateway.security.throttle import Throttle, ThrottleRule
from gateway.storage.base import utcnow
from gateway.storage.oauth import PendingAuthorizationRequest
from gateway.storage.throttle import ThrottleCounter
from tests.functional.oauth.helpers import REDIRECT, SCOPE, make_client


def test_a_subject_with_a_line_break_is_sent_on_one_line():
    message = build_message(
        sender="gateway@example.com", to=["x@example.com"], subject="Shared with Evil\r\nBcc: spy@evil", text="t"
    )
    assert (message["Subject"], message["Bcc"]) == ("Shared with Evil Bcc: spy@evil", None)


def test_mail_text_subjects_collapse_whitespace():
    assert MailText("New authorization for Evil\n\tApp", "body").subject == "New authorization for Evil App"


def test_the_worker_pass_purges_expired_requests_and_stale_throttle_counters(db, services):
    application = make_client(db, services.settings, services.digester).application
    long_ago = utcnow() - dt.timedelta(days=2)
    db.add(
        PendingAuthorizationRequest(
            id="expired-request",
            application_id=application.id,
            request_uri="https://gateway.example/oauth/authorize",
            redirect_uri=REDIRECT,
            scope=SCOPE,
            created_at=long_ago,
            expires_at=long_ago + dt.timedelta(minutes=10),
        )
    )
    Throttle(clock=lambda: long_ago).record_failure(db, ThrottleRule("stale", limit=10, window=60), "someone")
    db.commit()
    report = run_once(services, {})
    db.expire_all()
    assert (
        report.purged_requests,
        report.purged_throttle_counters,
        db.get(PendingAuthorizationRequest, "expired-request"),
        db.get(ThrottleCounter, "stale:someone"),
    ) == (1, 1, None, None)
