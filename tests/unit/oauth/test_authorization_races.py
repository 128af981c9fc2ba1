"""First-use Authorization records stay single when two token requests race (unique index plus savepoint retry)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.oauth.scope import RequestedScope, parse_scope
from gateway.oauth.validator import NEVER_EXPIRES, GatewayRequestValidator
from gateway.storage.models import Authorization, AuthorizationKind, AuthorizationStatus
from gateway.storage.oauth import SubjectKind
from tests.functional.oauth.helpers import CLIENT_SCOPE, make_client


def _client_authorization(application_id: int) -> Authorization:
    return Authorization(
        uuid=uuid.uuid4(),
        kind=AuthorizationKind.CLIENT,
        application_id=application_id,
        status=AuthorizationStatus.ACTIVE,
        expires_at=NEVER_EXPIRES,
        grant_type="client_credentials",
        scope=CLIENT_SCOPE,
    )


def test_a_second_active_client_authorization_is_refused_by_the_database(db, services):
    application = make_client(db, services.settings, services.digester).application
    db.add(_client_authorization(application.id))
    db.flush()
    with pytest.raises(IntegrityError), db.begin_nested():
        db.add(_client_authorization(application.id))
        db.flush()


def test_the_loser_of_a_first_use_race_reuses_the_winners_authorization(db, services):
    application = make_client(db, services.settings, services.digester).application
    validator = GatewayRequestValidator(db, services.settings, services.digester, services.passwords)
    record = validator._client(application.client_id)  # read before the concurrent request's insert
    assert record is not None and record.client_authorization_id is None
    winner = _client_authorization(application.id)
    db.add(winner)
    db.flush()
    scope = RequestedScope(espi=parse_scope(CLIENT_SCOPE), offline_access=False)
    reference = validator._client_authorization(record, SubjectKind.CLIENT, scope)
    active = db.scalar(
        select(func.count())
        .select_from(Authorization)
        .where(Authorization.application_id == application.id, Authorization.kind == AuthorizationKind.CLIENT)
    )
    assert (reference.id, active) == (winner.id, 1)
