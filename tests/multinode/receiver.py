"""A third party's notify URI on 127.0.0.1 that records every ESPI ``BatchList`` it receives (ESPI-NOTES §9).

It can be stopped and started again on the same port (a receiver that is down, then back), and can answer slowly, so
deliveries from several workers overlap in time. With ``rendezvous=n`` it holds every POST until ``n`` are in flight at
once: a worker delivers one message at a time, so ``n`` POSTs at once come from ``n`` different workers, and holding
the first worker's delivery leaves the rest of the queue to the others.
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
    """Counts, per resource URL, how many BatchLists named it; ``delay`` seconds are spent on each POST.

    ``rendezvous``: the first POSTs wait (``rendezvous_timeout`` seconds at most, less than a delivery's 10 s deadline)
    until that many are in flight at once; then, or after the timeout, the receiver answers at once for good.
    ``met`` tells which of the two happened.
    """

    def __init__(
        self,
        *,
        delay: float = 0.0,
        port: int | None = None,
        rendezvous: int = 1,
        rendezvous_timeout: float = 8.0,
    ) -> None:
        self.port = port or free_port()
        self.delay = delay
        self.rendezvous = rendezvous
        self.rendezvous_timeout = rendezvous_timeout
        self.received: collections.Counter[str] = collections.Counter()
        self.posts = 0
        self.met = rendezvous <= 1
        self._gate_open = rendezvous <= 1
        self._in_flight = 0
        self._gate = threading.Condition()
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
                owner._meet()
                try:
                    if owner.delay:
                        time.sleep(owner.delay)
                    urls = [element.text or "" for element in etree.fromstring(body).iter(_RESOURCES)]
                    with owner._lock:
                        owner.posts += 1
                        owner.received.update(urls)
                finally:
                    # Before the answer: a worker's next POST must never overlap its previous one here.
                    with owner._gate:
                        owner._in_flight -= 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _meet(self) -> None:
        """Count this POST in flight; until the rendezvous (or its timeout), wait for the others."""
        with self._gate:
            self._in_flight += 1
            if self._in_flight >= self.rendezvous and not self._gate_open:
                self.met = self._gate_open = True
                self._gate.notify_all()
            if not self._gate.wait_for(lambda: self._gate_open, timeout=self.rendezvous_timeout):
                self._gate_open = True  # nobody came: stop holding deliveries (``met`` stays False)
                self._gate.notify_all()

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
