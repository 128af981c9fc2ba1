"""A third party's notify URI on 127.0.0.1 that records every ESPI ``BatchList`` it receives (ESPI-NOTES §9).

It can be stopped and started again on the same port (a receiver that is down, then back), and can answer slowly, so
deliveries from several workers overlap in time.
"""

from __future__ import annotations

import collections
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lxml import etree

from tests.support.server import free_port

__all__ = ["BatchListReceiver"]

_RESOURCES = "{http://naesb.org/espi}resources"


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class BatchListReceiver:
    """Counts, per resource URL, how many BatchLists named it; ``delay`` seconds are spent on each POST."""

    def __init__(self, *, delay: float = 0.0, port: int | None = None) -> None:
        self.port = port or free_port()
        self.delay = delay
        self.received: collections.Counter[str] = collections.Counter()
        self.posts = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    def start(self) -> BatchListReceiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if owner.delay:
                    time.sleep(owner.delay)
                urls = [element.text or "" for element in etree.fromstring(body).iter(_RESOURCES)]
                with owner._lock:
                    owner.posts += 1
                    owner.received.update(urls)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: the port then refuses connections (a receiver that is down)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def count(self, url: str) -> int:
        with self._lock:
            return self.received[url]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.received)
