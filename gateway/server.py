"""Run the gateway under gunicorn, configured from code (``gateway serve`` and ``gateway demo``).

The XML API is CPU-bound (feed writing, schema validation), so the default is synchronous worker processes, one per
core plus one, with the app preloaded in the master (faster forks, shared read-only memory) and each worker dropping
the master's pooled database connections after fork (PITFALLS: SQLAlchemy).

Reloads and deploys (docs/deploy.md has the runbook):

- ``kill -HUP <master>`` starts fresh workers, then stops the old ones gracefully: requests in flight finish (up to
  ``graceful_timeout``), none is dropped. Because the app is preloaded, HUP does **not** load new code: the new workers
  are forked from the master, which still holds the old modules. Use it to recycle workers (memory, pooled
  connections), not to deploy.
- New code: a rolling restart across nodes (take a node out of the load balancer, ``SIGTERM`` — gunicorn finishes what
  is in flight — start the new version, put it back), or on a single node a binary upgrade: ``kill -USR2 <master>``
  (a second master re-executes the command that started this one, so it migrates and loads the new code, and serves
  on the inherited socket beside the old master), then, once its workers answer, ``kill -TERM <old master>``: the old
  workers finish what is in flight and exit, and the new master takes over the pidfile
  (``tests/faults/test_usr2_upgrade.py``). gunicorn's ``WINCH`` does nothing to a master that is not daemonized (a
  terminal sends it on every resize), and ``QUIT`` stops the old workers at once, dropping requests in flight.

Forwarded headers: the app's :class:`~gateway.web.transport.TransportSecurityMiddleware` is the one place that decides
whether ``X-Forwarded-Proto``/``-For`` are believed (``GATEWAY_TRUSTED_PROXIES``). gunicorn applies its own rule to
the same headers (``forwarded_allow_ips``, by default the loopback addresses) when it sets ``wsgi.url_scheme``; left at
its default, any process on the host could claim https through gunicorn although the gateway trusts no proxy. So
gunicorn is given exactly the gateway's list, and nothing when the list is empty.

Logs: with ``GATEWAY_LOG_FORMAT=json`` gunicorn's own error log (boot, signals, worker timeouts) and access log (off
by default: the app writes its own, ``gateway.access``) are JSON lines like the gateway's (:class:`JsonGunicornLogger`),
so a log pipeline never meets a plain-text line.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import falcon
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger as GunicornLogger
from sqlalchemy import Engine

from gateway.config import LogFormat
from gateway.logs import JsonFormatter, RequestIdFilter, json_logging_enabled, request_id_var
from gateway.metrics import worker_exited

if TYPE_CHECKING:
    from gunicorn._types import _EnvironType, _WSGIAppType  # only in the types-gunicorn stubs
    from gunicorn.config import Config
    from gunicorn.http import Request
    from gunicorn.http.wsgi import Response

__all__ = [
    "DEFAULT_TIMEOUT",
    "GatewayServer",
    "JsonGunicornLogger",
    "default_workers",
    "forwarded_allow_ips",
    "reexec_command",
]

DEFAULT_TIMEOUT = 120
"""Seconds a sync worker may spend on one request before the master kills it: a full-year Batch/Subscription
streams for a few seconds at most; anything near this is stuck (the database's statement timeout fires first)."""

MAX_REQUESTS = 20_000
"""Recycle a worker after this many requests (plus jitter), bounding slow leaks; with preload a new fork is cheap."""


def default_workers() -> int:
    """Workers for a CPU-bound WSGI app: one per core, plus one to cover a worker blocked on I/O."""
    return (os.cpu_count() or 1) + 1


def forwarded_allow_ips(trusted_proxies: Sequence[str]) -> list[str]:
    """gunicorn's ``forwarded_allow_ips`` for the gateway's ``GATEWAY_TRUSTED_PROXIES`` (networks normalised).

    gunicorn refuses a network with host bits set (``10.0.0.1/8``) where the gateway's settings accept it, so each
    entry is rewritten to its network address. An empty list trusts no peer (gunicorn's default trusts loopback).
    """
    return [str(ipaddress.ip_network(entry, strict=False)) for entry in trusted_proxies]


def reexec_command() -> list[str]:
    """The command a ``USR2`` upgrade re-executes: exactly the one that started this process.

    gunicorn rebuilds it from ``sys.argv``, which turns ``python -m gateway serve`` into ``python …/gateway/__main__.py
    serve``: run as a script, with the package's own folder first on ``sys.path``, the new master fails to start
    (``importlib.resources`` no longer finds the package's files) and the upgrade silently does nothing.
    ``sys.orig_argv`` keeps ``-m gateway`` (and any interpreter option) as it was typed.
    """
    return [sys.executable, *sys.orig_argv[1:]]


def _worker_tmp_dir() -> str | None:
    # The heartbeat file is touched constantly; on a container's overlay disk that can block workers (gunicorn docs
    # "Blocking OS calls"): prefer the in-memory /dev/shm when there is one.
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None  # noqa: S108


class JsonGunicornLogger(GunicornLogger):
    """gunicorn's logger, writing its error and access logs as the gateway's JSON lines (:mod:`gateway.logs`)."""

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        # gunicorn (re)creates its handlers here, at start and on every HUP: give each the JSON format again.
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
                if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                    handler.addFilter(RequestIdFilter())

    def access(self, resp: Response, req: Request, environ: _EnvironType, request_time: dt.timedelta) -> None:
        # The access line is written after the app returned, outside the request's context: take its id from the
        # response header the app set (gateway.web.middleware.RequestIdMiddleware).
        request_id = next((value for name, value in resp.headers if name.lower() == "x-request-id"), "-")
        token = request_id_var.set(request_id)
        try:
            super().access(resp, req, environ, request_time)
        finally:
            request_id_var.reset(token)


class GatewayServer(BaseApplication):
    """A gunicorn application serving an already-built falcon app."""

    def __init__(
        self,
        app: falcon.App[falcon.Request, falcon.Response],
        engine: Engine,
        *,
        host: str,
        port: int,
        workers: int,
        trusted_proxies: Sequence[str] = (),
        timeout: int = DEFAULT_TIMEOUT,
        pidfile: Path | None = None,
        log_format: LogFormat | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """``log_format`` ``None`` follows what :func:`gateway.logs.configure_logging` chose for the gateway."""
        self.wsgi_app = app
        json_logs = json_logging_enabled() if log_format is None else log_format == "json"

        def post_fork(server: Any, worker: Any) -> None:
            # Connections opened in the master must not be shared by the forked workers.
            engine.dispose(close=False)

        self.options: dict[str, Any] = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "sync",
            "preload_app": True,
            "timeout": timeout,
            # SIGTERM/HUP: a worker gets this long to finish what is in flight before it is killed.
            "graceful_timeout": 30,
            "keepalive": 5,
            "max_requests": MAX_REQUESTS,
            "max_requests_jitter": MAX_REQUESTS // 10,
            # Request line and headers are bounded here, bodies by the app (GATEWAY_MAX_REQUEST_BYTES and friends).
            # 8190 is gunicorn's ceiling: OAuth authorize URLs with long scopes need more than the 4094 default.
            "limit_request_line": 8190,
            "limit_request_fields": 100,
            "limit_request_field_size": 8190,
            "forwarded_allow_ips": ",".join(forwarded_allow_ips(trusted_proxies)),
            "worker_tmp_dir": _worker_tmp_dir(),
            # gunicorn >= 25.1 opens a control socket at one fixed path per user ($HOME/.gunicorn/gunicorn.ctl):
            # several gateways on one host (two nodes, tests in parallel) would take it from each other, and it can
            # change the worker count at run time. Signals are the control interface here (docs/deploy.md).
            # Older gunicorns do not know the setting; load_config skips it.
            "control_socket_disable": True,
            "post_fork": post_fork,
            "child_exit": lambda server, worker: worker_exited(worker.pid),
            "accesslog": None,
            "errorlog": "-",
            "logger_class": JsonGunicornLogger if json_logs else None,
            "proc_name": "greenbutton-gateway",
            # The master's pid, for signals. During a USR2 upgrade the new master writes ``<pidfile>.2`` and renames it
            # to ``<pidfile>`` once the old master has exited.
            "pidfile": str(pidfile.absolute()) if pidfile is not None else None,
        }
        self.options.update(options or {})
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self) -> _WSGIAppType:
        # falcon.App is a WSGI callable (PEP 3333); its __call__ is typed more loosely than the stubs' alias.
        return cast("_WSGIAppType", self.wsgi_app)

    def run(self) -> None:
        """Run the gunicorn master until it is told to stop (``BaseApplication.run``, with :func:`reexec_command`)."""
        try:
            arbiter = Arbiter(self)
            arbiter.START_CTX["args"] = reexec_command()
            arbiter.run()
        except RuntimeError as error:  # gunicorn's start-up errors (address in use, a live pidfile): one line, exit 1
            print(f"\nError: {error}\n", file=sys.stderr, flush=True)
            sys.exit(1)
