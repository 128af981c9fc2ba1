"""The autocommit hot path on a real SQLite file: lock-free reads that still see every committed revocation."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import threading

import pytest
from sqlalchemy import Connection, literal_column, select, text, update
from sqlalchemy.exc import DBAPIError
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


@pytest.fixture
def file_services(tmp_path):
    settings: Settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'hot.sqlite3'}")
    services = Services.build(settings)
    migrate.upgrade(services.engine)
    try:
        yield services
    finally:
        HotPath.for_engine(services.engine).dispose()
        services.engine.dispose()


def _held(hot: HotPath, source: object) -> Connection:
    with hot.single_statement(source) as connection:  # type: ignore[arg-type]
        assert connection is not None
        assert connection.execute(select(literal_column("1"))).scalar_one() == 1
        return connection


def test_a_thread_keeps_one_read_connection_and_threads_do_not_share_it(file_services):
    hot = HotPath.for_engine(file_services.engine)
    first = _held(hot, file_services.sessions)
    assert _held(hot, file_services.sessions) is first
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        other = pool.submit(_held, hot, file_services.sessions).result()
    assert other is not first


def test_held_connections_never_take_the_pool(file_services):
    """However many threads hold one, the pooled connections of connection() stay available."""
    hot = HotPath.for_engine(file_services.engine)
    all_in = threading.Barrier(12)

    def hold(_: int) -> Connection:
        connection = _held(hot, file_services.sessions)
        all_in.wait(timeout=30)  # twelve threads at once: no thread takes two tasks
        return connection

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        held = list(pool.map(hold, range(12)))
    assert len({id(connection) for connection in held}) == 12
    with file_services.sessions() as session, hot.connection(session) as pooled:
        assert pooled.execute(select(literal_column("2"))).scalar_one() == 2


def test_a_database_error_discards_the_held_connection_but_a_refusal_does_not(file_services):
    hot = HotPath.for_engine(file_services.engine)
    first = _held(hot, file_services.sessions)
    with pytest.raises(Unauthorized), hot.single_statement(file_services.sessions):
        raise Unauthorized("an answer of ours, not a database failure")
    assert _held(hot, file_services.sessions) is first
    with pytest.raises(DBAPIError), hot.single_statement(file_services.sessions) as connection:
        connection.execute(text("SELECT * FROM no_such_table"))
    assert first.invalidated
    assert _held(hot, file_services.sessions) is not first


def test_a_forked_process_opens_its_own(file_services):
    hot = HotPath.for_engine(file_services.engine)
    inherited = _held(hot, file_services.sessions)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's verdict is its exit status
        try:
            os._exit(0 if _held(hot, file_services.sessions) is not inherited else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _held(hot, file_services.sessions) is inherited


def test_nothing_is_held_where_the_hot_path_does_not_apply(file_services):
    hot = HotPath.for_engine(file_services.engine)
    with file_services.engine.connect() as outer, hot.single_statement(sessionmaker(bind=outer)) as connection:
        assert connection is None
