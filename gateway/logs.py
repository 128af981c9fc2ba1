"""Structured logging with a request id on every line (text for people, JSON for log pipelines).

The request id travels in a context variable set by :class:`gateway.web.middleware.RequestIdMiddleware`, so any
logger anywhere in a request's call stack tags its lines without being handed the request. Nothing here ever logs a
token, code, secret or password: callers log identifiers (client ids, token row ids), never bearer values.

In JSON mode every line on stderr must be JSON for a log pipeline: besides the gateway's loggers, warnings of other
libraries (through the root logger) and gunicorn's own error and access logs (:mod:`gateway.server`) use
:class:`JsonFormatter` too.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from typing import TextIO

__all__ = ["JsonFormatter", "RequestIdFilter", "configure_logging", "json_logging_enabled", "request_id_var"]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Tag each record with the current request's id (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line with time, level, logger, request id, message and any ``extra`` fields."""

    _standard = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"request_id", "message"}

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._standard and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class _RootJsonHandler(logging.StreamHandler[TextIO]):
    """What :func:`configure_logging` puts on the root logger in JSON mode (recognised, so it is replaced once)."""


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Route the gateway's logs to stderr in the chosen format; idempotent.

    In JSON mode, records of other libraries that reach the root logger (warnings and worse, the root logger's
    default level) are JSON as well, instead of the plain text of Python's last-resort handler.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    gateway = logging.getLogger("gateway")
    gateway.handlers[:] = [handler]
    gateway.setLevel(level)
    gateway.propagate = False
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _RootJsonHandler)]:
        root.removeHandler(previous)
    if log_format == "json":
        others = _RootJsonHandler(sys.stderr)
        others.addFilter(RequestIdFilter())
        others.setFormatter(JsonFormatter())
        root.addHandler(others)


def json_logging_enabled() -> bool:
    """Whether :func:`configure_logging` last chose JSON (gunicorn's logs then follow, :mod:`gateway.server`)."""
    return any(isinstance(handler.formatter, JsonFormatter) for handler in logging.getLogger("gateway").handlers)
