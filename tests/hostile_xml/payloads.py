"""Hostile XML documents, and the traps that prove nothing was fetched (the checklist's closing XML paragraph).

Every payload is a function of the :class:`Traps` (so external references point at *our* listener and *our* file
trap) returning the body as an iterable of chunks: the big ones (a 50 MB text node) are generated on the fly and
never held whole in the test process.

The traps:

- :class:`NetworkTrap`: a TCP listener on 127.0.0.1 that records every connection (HTTP or not) and answers any
  HTTP request with a tiny DTD, so a parser that did fetch would also get something to expand. The tests assert it
  accepted **nothing**.
- :class:`FileTrap`: a named pipe (FIFO) used as the target of ``file:`` URLs. Opening a FIFO for reading is
  observable from the writing side: a poller thread keeps trying a non-blocking open for writing, which succeeds only
  while someone has it open for reading, records the event and closes at once (so a parser that opened it reads
  EOF and never hangs). The tests assert it was **never opened**.
"""

from __future__ import annotations

import errno
import os
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["PAYLOADS", "FileTrap", "HostilePayload", "NetworkTrap", "Traps"]

ATOM_OPEN: Final = b'<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">'
ATOM_CLOSE: Final = b"</feed>"
MB: Final = 1_000_000


class NetworkTrap:
    """A listener on 127.0.0.1 that must receive nothing."""

    def __init__(self) -> None:
        self.connections: list[bytes] = []
        trap = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(2)
                try:
                    head = self.request.recv(4096)
                except OSError:
                    head = b""
                trap.connections.append(head)
                dtd = b'<!ENTITY leak "fetched">'
                self.request.sendall(
                    b"HTTP/1.0 200 OK\r\nContent-Type: application/xml-dtd\r\nContent-Length: "
                    + str(len(dtd)).encode()
                    + b"\r\n\r\n"
                    + dtd
                )

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FileTrap:
    """A FIFO whose opening for reading is detected (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "canary.fifo"
        os.mkfifo(self.path)
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                descriptor = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                if error.errno != errno.ENXIO:  # ENXIO: no reader, the normal case
                    raise
                time.sleep(0.005)
                continue
            self.opened += 1
            os.close(descriptor)  # the reader sees EOF: it never blocks on our trap

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@dataclass
class Traps:
    network: NetworkTrap
    file: FileTrap

    def untouched(self) -> str | None:
        """None if neither trap was touched, else what happened (for the assertion message)."""
        touched = []
        if self.network.connections:
            touched.append(
                f"the listener got {len(self.network.connections)} connection(s): {self.network.connections!r}"
            )
        if self.file.opened:
            touched.append(f"the file trap {self.file.path} was opened {self.file.opened} time(s)")
        return "; ".join(touched) or None


@dataclass(frozen=True)
class HostilePayload:
    """One attack: its name, what it proves, and the body (chunks) it sends."""

    name: str
    threat: str
    body: Callable[[Traps], Iterable[bytes]]
    big: bool = False
    """Sized to the limits (tens of MB): the endpoints may answer 413 instead of parsing."""


def _doc(text: str) -> Callable[[Traps], Iterable[bytes]]:
    """A small document from a template with ``{http}`` (listener URL) and ``{file}`` (FIFO URL) holes."""
    return lambda traps: [text.format(http=traps.network.url("x"), file=traps.file.url).encode()]


_LAUGHS = "".join(
    f'<!ENTITY lol{n} "{"&lol" + str(n - 1) + ";" if n else "lol"}{("&lol" + str(n - 1) + ";") * 9 if n else ""}">'
    for n in range(10)
)


def _quadratic(traps: Traps) -> Iterable[bytes]:
    # One 50 kB entity referenced 20,000 times: 1 MB of input, 1 GB if expanded (no nesting for counters to see).
    yield b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY a "' + b"a" * 50_000 + b'">]>'
    yield ATOM_OPEN + b"<title>" + b"&a;" * 20_000 + b"</title>" + ATOM_CLOSE


def _deep(traps: Traps) -> Iterable[bytes]:
    yield ATOM_OPEN + b"<entry>" * 10_000 + b"</entry>" * 10_000 + ATOM_CLOSE


def _huge_text(traps: Traps) -> Iterator[bytes]:
    # 50 MB of text in one node, generated in 1 MB chunks: never held whole by the test.
    yield ATOM_OPEN + b"<title>"
    chunk = b"A" * MB
    for _ in range(50):
        yield chunk
    yield b"</title>" + ATOM_CLOSE


def _many_attributes(traps: Traps) -> Iterable[bytes]:
    attributes = b" ".join(b'a%d="x"' % n for n in range(100_000))
    yield ATOM_OPEN + b"<entry " + attributes + b"/>" + ATOM_CLOSE


def _huge_attribute(traps: Traps) -> Iterator[bytes]:
    yield ATOM_OPEN + b'<entry title="'
    chunk = b"B" * MB
    for _ in range(20):
        yield chunk
    yield b'"/>' + ATOM_CLOSE


def _truncated(traps: Traps) -> Iterable[bytes]:
    document = (Path(__file__).resolve().parents[2] / "sample_data" / "home_gas_hourly.xml").read_bytes()
    yield document[: len(document) // 2]


PAYLOADS: Final[tuple[HostilePayload, ...]] = (
    HostilePayload(
        "billion_laughs",
        "exponential entity expansion (10^9 'lol's from a 1 kB DTD)",
        _doc(
            '<?xml version="1.0"?><!DOCTYPE feed [' + _LAUGHS + ']><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>&lol9;</title></feed>"
        ),
    ),
    HostilePayload("quadratic_blowup", "quadratic entity expansion (one big entity, many references)", _quadratic),
    HostilePayload(
        "external_entity_file",
        "XXE: an external general entity reading a local file",
        _doc(
            '<!DOCTYPE feed [<!ENTITY x SYSTEM "{file}">]><feed xmlns="http://www.w3.org/2005/Atom"><title>&x;</title></feed>'
        ),
    ),
    HostilePayload(
        "external_entity_http",
        "XXE/SSRF: an external general entity over http",
        _doc(
            '<!DOCTYPE feed [<!ENTITY x SYSTEM "{http}">]><feed xmlns="http://www.w3.org/2005/Atom"><title>&x;</title></feed>'
        ),
    ),
    HostilePayload(
        "parameter_entity_http",
        "SSRF through an external parameter entity (fetched while the DTD is read)",
        _doc('<!DOCTYPE feed [<!ENTITY % p SYSTEM "{http}"> %p;]><feed xmlns="http://www.w3.org/2005/Atom"/>'),
    ),
    HostilePayload(
        "parameter_entity_file",
        "an external parameter entity reading a local file",
        _doc('<!DOCTYPE feed [<!ENTITY % p SYSTEM "{file}"> %p;]><feed xmlns="http://www.w3.org/2005/Atom"/>'),
    ),
    HostilePayload(
        "external_dtd_http",
        "an external DTD subset over http (SYSTEM identifier)",
        _doc('<?xml version="1.0"?><!DOCTYPE feed SYSTEM "{http}"><feed xmlns="http://www.w3.org/2005/Atom"/>'),
    ),
    HostilePayload(
        "external_dtd_public",
        "an external DTD subset with a PUBLIC identifier, after a comment in the prolog",
        _doc(
            '<!-- prolog --><!DOCTYPE feed PUBLIC "-//X//DTD X//EN" "{http}"><feed xmlns="http://www.w3.org/2005/Atom"/>'
        ),
    ),
    HostilePayload(
        "internal_dtd",
        "an internal DTD subset without entities (any DTD is refused)",
        _doc('<!DOCTYPE feed [<!ELEMENT feed ANY>]><feed xmlns="http://www.w3.org/2005/Atom"/>'),
    ),
    HostilePayload(
        "xinclude_file",
        "XInclude of a local file as text",
        _doc(
            '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:xi="http://www.w3.org/2001/XInclude">'
            '<xi:include href="{file}" parse="text"/></feed>'
        ),
    ),
    HostilePayload(
        "xinclude_http",
        "XInclude over http",
        _doc(
            '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:xi="http://www.w3.org/2001/XInclude">'
            '<xi:include href="{http}"/></feed>'
        ),
    ),
    HostilePayload(
        "schema_location_http",
        "xsi:schemaLocation pointing at our listener (a validator must never fetch schemas named by the document)",
        _doc(
            '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:schemaLocation="http://www.w3.org/2005/Atom {http}"><id>urn:uuid:1</id></feed>'
        ),
    ),
    HostilePayload("deep_nesting", "10,000-deep nesting (stack exhaustion, per-level work)", _deep),
    HostilePayload("huge_text", "a 50 MB text node", _huge_text, big=True),
    HostilePayload("many_attributes", "100,000 attributes on one element", _many_attributes),
    HostilePayload("huge_attribute", "a 20 MB attribute value", _huge_attribute, big=True),
    HostilePayload(
        "declared_latin1",
        "wrong encoding: declared ISO-8859-1 with Latin-1 bytes",
        lambda traps: [
            b'<?xml version="1.0" encoding="ISO-8859-1"?>'
            + ATOM_OPEN
            + "<title>Café</title>".encode("latin-1")
            + ATOM_CLOSE
        ],
    ),
    HostilePayload(
        "undeclared_latin1",
        "wrong encoding: Latin-1 bytes in a document that does not declare it (so UTF-8)",
        lambda traps: [ATOM_OPEN + "<title>Café</title>".encode("latin-1") + ATOM_CLOSE],
    ),
    HostilePayload(
        "utf16",
        "wrong encoding: UTF-16 with a byte order mark",
        lambda traps: [
            ('<?xml version="1.0" encoding="UTF-16"?>' + ATOM_OPEN.decode() + ATOM_CLOSE.decode()).encode("utf-16")
        ],
    ),
    HostilePayload("truncated", "a real feed cut in the middle", _truncated),
    HostilePayload("empty", "an empty body", lambda traps: [b""]),
    HostilePayload("not_xml", "binary noise", lambda traps: [bytes(range(256)) * 16]),
)
