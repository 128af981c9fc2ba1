"""Delivering notifications to apps: a total deadline per POST and no calls to private addresses (SSRF)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from gateway.outbox.delivery import UnsafeNotifyTarget, post_notification


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that sends its answer one header line every 2 s (for 24 s in all)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            try:
                connection.sendall(b"HTTP/1.1 200 OK\r\n")
                for _ in range(12):
                    if stop.wait(2):
                        return
                    connection.sendall(b"X-Slow: yes\r\n")
                connection.sendall(b"Content-Length: 0\r\n\r\n")
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/notify"
    stop.set()
    listener.close()
    thread.join(5)


def test_a_trickling_endpoint_is_cut_off_at_the_total_deadline(trickling_server):
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        post_notification({"uri": trickling_server, "resources": ["x"]}, timeout=3.0, allow_loopback=True)
    assert time.monotonic() - started < 4.5


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:9/notify",  # loopback outside development
        "https://127.0.0.1:9/notify",
        "https://10.0.0.8/notify",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/notify",
        "https://[::ffff:192.168.1.1]/notify",
        "https://localhost:9/notify",
    ],
)
def test_private_and_loopback_targets_are_refused_outside_development(uri):
    with pytest.raises(UnsafeNotifyTarget):
        post_notification({"uri": uri, "resources": ["x"]}, timeout=2.0)


def test_private_targets_are_refused_even_in_development():
    with pytest.raises(UnsafeNotifyTarget):
        post_notification({"uri": "http://192.168.1.1/notify", "resources": ["x"]}, timeout=2.0, allow_loopback=True)
