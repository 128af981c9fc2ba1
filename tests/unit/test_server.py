"""gunicorn's own logs in the gateway's JSON format (GATEWAY_LOG_FORMAT=json), with gunicorn's real objects."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import falcon
import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader
from sqlalchemy import create_engine

from gateway.logs import configure_logging
from gateway.server import GatewayServer, JsonGunicornLogger


@pytest.fixture
def log_files(tmp_path: Path) -> Iterator[tuple[JsonGunicornLogger, Path, Path]]:
    cfg = Config()
    cfg.set("errorlog", str(tmp_path / "error.log"))
    cfg.set("accesslog", str(tmp_path / "access.log"))
    logger = JsonGunicornLogger(cfg)
    yield logger, tmp_path / "error.log", tmp_path / "access.log"
    for log in (logger.error_log, logger.access_log):
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()


def test_the_error_log_is_json(log_files):
    logger, error_log, _ = log_files
    logger.error("Worker (pid:%s) was sent SIGKILL! Perhaps out of memory?", 1234)
    line = json.loads(error_log.read_text())
    assert (line["level"], line["logger"], line["message"]) == (
        "ERROR",
        "gunicorn.error",
        "Worker (pid:1234) was sent SIGKILL! Perhaps out of memory?",
    )


def test_the_access_log_is_json_with_the_responses_request_id(log_files):
    logger, _, access_log = log_files
    request = Request(logger.cfg, IterUnreader([b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"]), ("127.0.0.1", 5555), 1)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        response, environ = wsgi.create(request, ours, ("127.0.0.1", 5555), ("127.0.0.1", 8000), logger.cfg)
        response.start_response("200 OK", [("X-Request-Id", "req-42"), ("Content-Length", "0")])
        logger.access(response, request, environ, dt.timedelta(milliseconds=3))
    line = json.loads(access_log.read_text())
    assert (line["logger"], line["request_id"], '"GET /healthz HTTP/1.1" 200' in line["message"]) == (
        "gunicorn.access",
        "req-42",
        True,
    )


@pytest.mark.parametrize(("log_format", "logger_class"), [("json", JsonGunicornLogger), ("text", None)])
def test_gunicorn_follows_the_configured_log_format(log_format, logger_class):
    configure_logging("INFO", log_format)
    try:
        server = GatewayServer(falcon.App(), create_engine("sqlite://"), host="127.0.0.1", port=0, workers=1)
    finally:
        configure_logging("INFO", "text")
    assert server.options["logger_class"] is logger_class
