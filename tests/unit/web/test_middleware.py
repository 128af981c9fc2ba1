"""The request's database session (made on first use, committed or rolled back, closed after a streamed body) and the
request metrics, on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import falcon
import falcon.testing
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import register_error_handling
from gateway.metrics import Metrics
from gateway.storage.engine import make_engine
from gateway.web.metrics import MetricsMiddleware
from gateway.web.middleware import DatabaseSessionMiddleware, GatewayRequest


class CountingSessions(sessionmaker[Session]):
    """A session factory that counts the sessions made."""

    made = 0

    def __call__(self, **local_kw: Any) -> Session:
        self.made += 1
        return super().__call__(**local_kw)


class Notes:
    """``GET`` reads nothing; ``POST`` writes a note (``?fail`` then raises); ``GET /stream`` reads while streaming."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.text = "nothing read"

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.db.execute(text("INSERT INTO note (body) VALUES ('kept?')"))
        if req.get_param_as_bool("fail"):
            raise RuntimeError("after the write")
        resp.status = falcon.HTTP_201

    def on_get_stream(self, req: falcon.Request, resp: falcon.Response) -> None:
        def body() -> Iterator[bytes]:
            # The session is made here, after the middleware's process_response has run.
            yield str(req.context.db.scalar(text("SELECT count(*) FROM note"))).encode()

        resp.stream = body()


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'notes.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)"))
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine) -> CountingSessions:
    return CountingSessions(bind=engine, expire_on_commit=False)


@pytest.fixture
def client(sessions) -> falcon.testing.TestClient:
    app: falcon.App[falcon.Request, falcon.Response] = falcon.App(
        request_type=GatewayRequest, middleware=[DatabaseSessionMiddleware(sessions)]
    )
    register_error_handling(app)
    notes = Notes()
    app.add_route("/notes", notes)
    app.add_route("/notes/stream", notes, suffix="stream")
    return falcon.testing.TestClient(app)


def notes(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT count(*) FROM note")) or 0)


def test_a_request_that_reads_nothing_makes_no_session(client, sessions):
    assert client.simulate_get("/notes").status_code == 200
    assert sessions.made == 0


def test_a_write_is_committed_when_the_responder_succeeds(client, sessions, engine):
    assert client.simulate_post("/notes").status_code == 201
    assert sessions.made == 1 and notes(engine) == 1


def test_a_write_is_rolled_back_when_the_responder_fails(client, engine):
    assert client.simulate_post("/notes", params={"fail": "true"}).status_code == 500
    assert notes(engine) == 0


def test_a_session_made_while_streaming_is_closed_with_the_body(client, sessions, engine):
    client.simulate_post("/notes")
    result = client.simulate_get("/notes/stream")
    assert result.text == "1"
    assert sessions.made == 2
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response, n: int) -> None:
        resp.text = f"hello {n}"


def test_metrics_count_each_route_method_and_status():
    metrics = Metrics()
    app = falcon.App(middleware=[MetricsMiddleware(metrics)])
    app.add_route("/hello/{n:int}", Hello())
    client = falcon.testing.TestClient(app)
    for number in range(3):
        client.simulate_get(f"/hello/{number}")
    client.simulate_post("/hello/1")
    counted = metrics.registry.get_sample_value
    assert counted("gateway_http_requests_total", {"method": "GET", "route": "/hello/{n:int}", "status": "200"}) == 3
    assert counted("gateway_http_requests_total", {"method": "POST", "route": "/hello/{n:int}", "status": "405"}) == 1
    assert counted("gateway_http_request_duration_seconds_count", {"method": "GET", "route": "/hello/{n:int}"}) == 3


def test_metrics_fold_unknown_methods_into_one_label():
    """Any token is a method to gunicorn: a client inventing methods must not grow the label space (or our memory)."""
    metrics = Metrics()
    middleware = MetricsMiddleware(metrics)
    app = falcon.App(middleware=[middleware])
    app.add_route("/hello/{n:int}", Hello())
    statuses = []
    for number in range(50):  # straight to the app: falcon's test client warns about such methods (wsgiref.validate)
        environ = falcon.testing.create_environ("/hello/1", method=f"INVENTED{number}")
        b"".join(app(environ, lambda status, headers, *_: statuses.append(status)))  # type: ignore[arg-type]
    (status,) = set(statuses)
    sample = {"method": "other", "route": "/hello/{n:int}", "status": status.split()[0]}
    assert metrics.registry.get_sample_value("gateway_http_requests_total", sample) == 50
    assert len(middleware._children) == 1
