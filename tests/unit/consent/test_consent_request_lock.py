"""Two authorization requests naming one consent request cannot both authorise it (PostgreSQL row lock)."""

from __future__ import annotations

import threading

import pytest

from gateway.config import Settings
from gateway.consent.requests import create_consent_request, usable_for
from gateway.errors import Conflict
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.base import utcnow
from gateway.storage.consent import ConsentRequestStatus
from gateway.storage.engine import session_scope
from gateway.storage.oauth import PendingAuthorizationRequest
from tests.functional.oauth.helpers import CLIENT_SCOPE, make_client


@pytest.fixture
def committed(backend, cli_environ):
    """Services on a fresh database whose sessions really commit (two transactions must see each other)."""
    if backend != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter; SQLite serialises writers")
    services = Services.build(Settings.from_env(cli_environ))
    migrate.upgrade(services.engine)
    yield services
    services.engine.dispose()


def test_a_consent_request_is_authorised_once_under_concurrency(committed):
    with session_scope(committed.sessions) as session:
        application = make_client(session, committed.settings, committed.digester).application
        consent_request_id = create_consent_request(session, application, scope=CLIENT_SCOPE).id
        application_id = application.id
    # Neither decision has committed when both check the consent request.
    pending = PendingAuthorizationRequest(application_id=application_id, scope=CLIENT_SCOPE)
    first = committed.sessions()
    checked = usable_for(first, pending, consent_request_id, now=utcnow(), lock=True)
    outcome: list[object] = []

    def second_decision() -> None:
        with committed.sessions() as second:
            try:
                outcome.append(usable_for(second, pending, consent_request_id, now=utcnow(), lock=True))
            except Conflict as error:
                outcome.append(error)

    thread = threading.Thread(target=second_decision)
    thread.start()
    thread.join(1.0)
    blocked_while_first_decides = thread.is_alive()
    checked.status = ConsentRequestStatus.AUTHORISED
    first.commit()
    first.close()
    thread.join(10)
    assert (blocked_while_first_decides, [type(item) for item in outcome]) == (True, [Conflict])
