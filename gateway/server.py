"""Run the gateway under gunicorn, configured from code (``gateway serve`` and ``gateway demo``).

The XML API is CPU-bound (feed writing, schema validation), so the default is synchronous worker processes, one per
core plus one, with the app preloaded in the master (faster forks, shared read-only memory) and each worker dropping
the master's pooled database connections after fork (PITFALLS: SQLAlchemy).
"""

from __future__ import annotations

import os
from typing import Any

import falcon
from gunicorn.app.base import BaseApplication
from sqlalchemy import Engine

from gateway.metrics import worker_exited

__all__ = ["GatewayServer", "default_workers"]


def default_workers() -> int:
    """Workers for a CPU-bound WSGI app: one per core, plus one to cover a worker blocked on I/O."""
    return (os.cpu_count() or 1) + 1


class GatewayServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    """A gunicorn application serving an already-built falcon app."""

    def __init__(
        self,
        app: falcon.App,
        engine: Engine,
        *,
        host: str,
        port: int,
        workers: int,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.wsgi_app = app

        def post_fork(server: Any, worker: Any) -> None:
            # Connections opened in the master must not be shared by the forked workers.
            engine.dispose(close=False)

        self.options: dict[str, Any] = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "sync",
            "preload_app": True,
            "timeout": 120,
            "graceful_timeout": 30,
            "keepalive": 5,
            "limit_request_line": 8190,
            "limit_request_fields": 100,
            "limit_request_field_size": 8190,
            "post_fork": post_fork,
            "child_exit": lambda server, worker: worker_exited(worker.pid),
            "accesslog": None,
            "errorlog": "-",
            "proc_name": "greenbutton-gateway",
        }
        self.options.update(options or {})
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self) -> falcon.App:
        return self.wsgi_app
