"""The consent lifecycle in the domain layer: who revoked, refreshes, idempotent revocation."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from gateway.consent.lifecycle import DecisionContext, RevokedBy, record_grant, record_refresh, revoke_consent
from gateway.oauth.authorize import AuthorizationRequests
from gateway.storage.consent import Consent, ConsentEvent
from gateway.storage.oauth import PendingAuthorizationRequest
from tests.functional.oauth.helpers import REDIRECT, SCOPE, make_client, make_customer, pkce_pair


@pytest.fixture
def consent(db, services) -> Consent:
    customer = make_customer(db, services.passwords, "carol")
    client = make_client(db, services.settings, services.digester)
    _, challenge = pkce_pair()
    requests = AuthorizationRequests.from_services(services)
    started = requests.start(
        db,
        f"{services.settings.issuer}/oauth/authorize?response_type=code&client_id={client.client_id}"
        f"&redirect_uri={REDIRECT}&scope={SCOPE}&state=s&code_challenge={challenge}&code_challenge_method=S256",
    )
    assert started.request_id is not None
    requests.approve(db, started.request_id, customer, [point.id for point in customer.usage_points])
    stored = db.get(PendingAuthorizationRequest, started.request_id)
    assert stored is not None
    return record_grant(
        db,
        services.settings,
        pending=stored,
        customer=customer,
        context=DecisionContext(),
        terms_version="t1",
    )


def _kinds(db, consent: Consent) -> list[str]:
    return list(
        db.scalars(select(ConsentEvent.kind).where(ConsentEvent.consent_id == consent.id).order_by(ConsentEvent.id))
    )


@pytest.mark.parametrize(
    ("by", "kind"),
    [
        (RevokedBy.CUSTOMER, "revoked_by_customer"),
        (RevokedBy.APP, "revoked_by_app"),
        (RevokedBy.OPERATOR, "revoked_by_operator"),
    ],
)
def test_the_revoker_is_recorded(db, services, consent, by, kind):
    revoke_consent(db, services.settings, consent, by=by)
    assert _kinds(db, consent)[-1] == kind


def test_a_second_revocation_changes_nothing(db, services, consent):
    first = revoke_consent(db, services.settings, consent, by=RevokedBy.CUSTOMER)
    second = revoke_consent(db, services.settings, consent, by=RevokedBy.APP)
    assert (
        first,
        second,
        _kinds(db, consent).count("revoked_by_customer"),
        "revoked_by_app" in _kinds(db, consent),
    ) == (
        True,
        False,
        1,
        False,
    )


def test_a_refresh_is_appended(db, services, consent):
    assert consent.authorization_id is not None
    record_refresh(db, consent.authorization_id, now=dt.datetime.now(dt.UTC))
    assert _kinds(db, consent) == ["requested", "granted", "refreshed"]
