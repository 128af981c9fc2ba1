"""The autocommit hot path on a real SQLite file: lock-free reads that still see every committed revocation."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from gateway.config import Settings
from gateway.errors import Unauthorized
from gateway.oauth.bearer import BearerTokenChecker
from gateway.oauth.hotpath import HotPath
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.models import OAuthToken
from tests.conftest import make_settings
from tests.functional.oauth.helpers import make_client


def test_bearer_reads_bypass_the_write_lock_and_see_revocations(tmp_path):
    settings: Settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'hot.sqlite3'}")
    services = Services.build(settings)
    migrate.upgrade(services.engine)
    try:
        with services.sessions() as session:
            registered = make_client(session, settings, services.digester)
            session.commit()
        hot = HotPath.for_engine(services.engine)
        assert HotPath.for_engine(services.engine) is hot
        checker = BearerTokenChecker(services.digester, reads=hot)
        header = f"Bearer {registered.registration_access_token}"
        with services.sessions() as request_session:
            assert checker.principal(request_session, header).kind == "registration"
            # The lookup did not open a transaction (and so took no lock) on the request's session.
            assert not request_session.in_transaction()
        with services.sessions() as writer:
            writer.execute(update(OAuthToken).values(revoked_at=dt.datetime.now(dt.UTC)))
            writer.commit()
        with services.sessions() as request_session, pytest.raises(Unauthorized):
            checker.principal(request_session, header)
    finally:
        HotPath.for_engine(services.engine).dispose()
        services.engine.dispose()


def test_a_session_factory_is_asked_without_making_a_session(tmp_path):
    settings: Settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'hot.sqlite3'}")
    services = Services.build(settings)
    hot = HotPath.for_engine(services.engine)
    try:
        connection = hot.connection_for(services.sessions)
        assert connection is not None
        connection.close()
        with services.engine.connect() as outer:
            # The test suite's isolation: sessions bound to one connection must keep using it.
            assert hot.connection_for(sessionmaker(bind=outer)) is None
    finally:
        hot.dispose()
        services.engine.dispose()
