"""The untrusted-XML gate and hardened parser (gateway.espi.safe_xml).

Hostile documents are refused fast, with bounded memory, a clear line-numbered message, and without touching
the network or the file system.
"""

from __future__ import annotations

import http.server
import io
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.errors import BadRequest, PayloadTooLarge
from gateway.espi.safe_xml import (
    MiB,
    XmlLimits,
    XmlRejected,
    XmlTooLarge,
    check_xml,
    open_xml,
    safe_iterparse,
    spool_stream,
)

ATOM = "http://www.w3.org/2005/Atom"
FEED_OPEN = f'<feed xmlns="{ATOM}">'.encode()
MEMORY_BOUND = 32 * MiB
"""Generous: every refusal below peaks at well under a megabyte of Python-tracked memory."""


class GeneratedStream(io.RawIOBase):
    """A read-only stream of ``head`` + ``size`` filler bytes + ``tail``, generated on the fly (nothing on
    disk)."""

    def __init__(self, head: bytes, size: int, tail: bytes = b"", filler: bytes = b"a") -> None:
        self.parts = [head]
        self.remaining = size
        self.tail = tail
        self.filler = filler
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        if self.parts:
            data = self.parts.pop()
        elif self.remaining > 0:
            # Whole fillers only, so a filler that is markup stays well-formed across reads.
            data = self.filler * max(1, min(len(buffer), self.remaining) // len(self.filler))
            self.remaining -= len(data)
        elif self.tail:
            data, self.tail = self.tail, b""
        else:
            return 0
        data = data[: len(buffer)]
        buffer[: len(data)] = data
        self.read_bytes += len(data)
        return len(data)


def billion_laughs() -> bytes:
    entities = '<!ENTITY lol0 "lol">' + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return f'<?xml version="1.0"?>\n<!DOCTYPE feed [{entities}]>\n<feed xmlns="{ATOM}">&lol9;</feed>'.encode()


def quadratic_blowup() -> bytes:
    big = "x" * 100_000
    return f'<!DOCTYPE feed [<!ENTITY a "{big}">]><feed xmlns="{ATOM}">{"&a;" * 10_000}</feed>'.encode()


def external_entity(url: str) -> bytes:
    doctype = f'<!DOCTYPE feed [<!ENTITY x SYSTEM "{url}">]>'
    return f'<?xml version="1.0"?>\n{doctype}\n<feed xmlns="{ATOM}">&x;</feed>'.encode()


def deep_nesting(depth: int = 10_000) -> bytes:
    return FEED_OPEN + b"<a>" * depth + b"</a>" * depth + b"</feed>"


# (id, document, reason, message fragment)
HOSTILE: list[tuple[str, bytes, str, str]] = [
    ("billion_laughs", billion_laughs(), "dtd", "DTDs are not allowed (line 2)"),
    ("quadratic_blowup", quadratic_blowup(), "dtd", "DTDs are not allowed (line 1)"),
    ("external_file", external_entity("file:///etc/passwd"), "dtd", "DTDs are not allowed (line 2)"),
    (
        "external_parameter_entity",
        b'<!DOCTYPE feed [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><feed xmlns="http://www.w3.org/2005/Atom"/>',
        "dtd",
        "DTDs are not allowed",
    ),
    (
        "doctype_only",
        b'<!DOCTYPE feed SYSTEM "feed.dtd"><feed xmlns="http://www.w3.org/2005/Atom"/>',
        "dtd",
        "DTDs",
    ),
    ("undeclared_entity", FEED_OPEN + b"&xxe;</feed>", "not_well_formed", "undefined entity at line 1"),
    ("deep_nesting", deep_nesting(), "too_deep", "document nested deeper than 64 levels at line 1"),
    (
        "wrong_root",
        b"<html><body/></html>",
        "wrong_root",
        "root element is html; expected an Atom feed or entry",
    ),
    (
        "wrong_namespace",
        b'<feed xmlns="http://www.w3.org/2005/Atom/"><entry/></feed>',
        "wrong_root",
        "root element is {http://www.w3.org/2005/Atom/}feed; expected an Atom feed or entry",
    ),
    ("no_namespace", b"<feed><entry/></feed>", "wrong_root", "root element is feed"),
    (
        "truncated",
        FEED_OPEN + b"\n<entry>\n<id>urn:uuid:0</id>\n<content>",
        "not_well_formed",
        "not well-formed: no element found (the file looks truncated) at line 4",
    ),
    (
        "mismatched_tag",
        FEED_OPEN + b"\n<entry></content></feed>",
        "not_well_formed",
        "mismatched tag at line 2, column 10",
    ),
    (
        "latin1_declared_utf8",
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + FEED_OPEN + b"\n<title>Caf\xe9</title></feed>",
        "not_utf8",
        "not UTF-8: byte 0xE9 at line 3, column 11",
    ),
    (
        "declared_latin1",
        b'<?xml version="1.0" encoding="ISO-8859-1"?>' + FEED_OPEN + b"</feed>",
        "not_utf8",
        "not UTF-8: the XML declaration says encoding 'ISO-8859-1'",
    ),
    ("utf16", "\ufeff<feed/>".encode("utf-16-le"), "not_utf8", "UTF-16 byte order mark"),
    (
        "too_many_attributes",
        f'<feed xmlns="{ATOM}" '.encode() + b" ".join(b'a%d="1"' % i for i in range(100)) + b"/>",
        "too_many_attributes",
        "has more than 32 attributes at line 1",
    ),
    ("empty", b"", "not_well_formed", "the document is empty"),
    ("not_xml", b"this is not XML", "not_well_formed", "syntax error at line 1, column 1"),
]


def measured(action: Callable[[], object]) -> tuple[BaseException | None, int]:
    """Run ``action``; return the exception it raised and the peak of Python-tracked memory (bytes)."""
    tracemalloc.start()
    try:
        action()
    except Exception as error:  # the refusal under test
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


@pytest.mark.parametrize(("document", "reason", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_stream_is_refused_with_a_clear_message(document: bytes, reason: str, message: str) -> None:
    error, peak = measured(lambda: spool_stream(io.BytesIO(document)))
    assert isinstance(error, XmlRejected)
    assert (error.reason, message in error.message, peak < MEMORY_BOUND) == (reason, True, True), error.message


@pytest.mark.parametrize(("document", "reason", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_file_is_refused_by_path(tmp_path: Path, document: bytes, reason: str, message: str) -> None:
    path = tmp_path / "hostile.xml"
    path.write_bytes(document)
    with pytest.raises(XmlRejected) as refused:
        check_xml(path)
    assert (refused.value.reason, message in refused.value.message) == (reason, True)


def test_a_200_mb_text_node_is_refused_after_reading_little_of_it() -> None:
    stream = GeneratedStream(FEED_OPEN + b"<title>", 200 * 1000 * 1000, b"</title></feed>")
    error, peak = measured(lambda: spool_stream(stream))
    assert isinstance(error, XmlRejected)
    assert (error.reason, stream.read_bytes < 4 * MiB, peak < MEMORY_BOUND) == ("text_too_long", True, True)


def test_a_huge_text_node_message_names_the_limit() -> None:
    with pytest.raises(XmlRejected, match=r"text node longer than 1048576 bytes at line 1"):
        spool_stream(GeneratedStream(FEED_OPEN + b"<title>", 3 * MiB, b"</title></feed>"))


def test_a_body_over_the_size_limit_is_refused_while_reading() -> None:
    limits = XmlLimits(max_bytes=1 * MiB)
    stream = GeneratedStream(FEED_OPEN, 50 * MiB, b"</feed>", filler=b"<title>x</title>\n")
    with pytest.raises(XmlTooLarge, match="file is larger than the 1 MiB limit"):
        spool_stream(stream, limits)
    assert stream.read_bytes <= limits.max_bytes + 1


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(FEED_OPEN + b"<title>x</title>" * 100 + b"</feed>")
    with pytest.raises(XmlTooLarge, match="larger than the 1000 bytes limit"):
        check_xml(path, XmlLimits(max_bytes=1000))


def test_too_large_maps_to_413_and_the_others_to_400() -> None:
    assert (issubclass(XmlTooLarge, PayloadTooLarge), issubclass(XmlRejected, BadRequest)) == (True, True)


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every request: an external entity must never reach it."""
    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<!ENTITY y 'fetched'>")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/evil.dtd", requests
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_external_entity_is_never_fetched(http_server: tuple[str, list[str]]) -> None:
    url, requests = http_server
    with pytest.raises(XmlRejected, match="DTDs are not allowed"):
        spool_stream(io.BytesIO(external_entity(url)))
    assert requests == []


def test_the_hardened_parser_neither_expands_nor_fetches_even_without_the_gate(
    tmp_path: Path, http_server: tuple[str, list[str]]
) -> None:
    url, requests = http_server
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    document = (
        f'<!DOCTYPE feed [<!ENTITY f SYSTEM "file://{secret}"><!ENTITY h SYSTEM "{url}">]>'
        f'<feed xmlns="{ATOM}"><title>&f;&h;</title></feed>'
    ).encode()
    texts = [element.text or "" for _, element in safe_iterparse(io.BytesIO(document))]
    assert ("TOP SECRET" in "".join(texts), requests) == (False, [])


def test_a_valid_feed_passes_and_reports_its_size() -> None:
    document = FEED_OPEN + b"<title>ok</title></feed>"
    assert check_xml(io.BytesIO(document)) == len(document)


def test_a_spooled_stream_can_be_read_again() -> None:
    document = b'<?xml version="1.0" encoding="utf-8"?>\n' + FEED_OPEN + "<title>Zoë</title></feed>".encode()
    with spool_stream(io.BytesIO(document)) as spooled:
        assert (spooled.open().read(), spooled.size) == (document, len(document))


def test_a_large_spooled_stream_goes_to_a_temporary_file() -> None:
    limits = XmlLimits(spool_in_memory=1024)
    document = FEED_OPEN + b"<title>x</title>\n" * 1000 + b"</feed>"
    with spool_stream(io.BytesIO(document), limits) as spooled:
        assert spooled.open().read() == document


def test_open_xml_yields_the_file_for_the_parse(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED_OPEN + b"<title>ok</title></feed>")
    with open_xml(path) as (file, size):
        tags = [element.tag for _, element in safe_iterparse(file)]
    assert (tags, size) == ([f"{{{ATOM}}}title", f"{{{ATOM}}}feed"], path.stat().st_size)


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    document = b"\xef\xbb\xbf" + FEED_OPEN + b"</feed>"
    assert check_xml(io.BytesIO(document)) == len(document)


def test_progress_reports_bytes_read() -> None:
    document = FEED_OPEN + b"<title>x</title>" * 10_000 + b"</feed>"
    seen: list[int] = []
    for _ in safe_iterparse(io.BytesIO(document), progress=seen.append):
        pass
    assert (seen[-1], seen == sorted(seen)) == (len(document), True)


def test_limits_are_configurable() -> None:
    limits = XmlLimits(max_depth=3)
    with pytest.raises(XmlRejected, match="nested deeper than 3 levels at line 1"):
        check_xml(io.BytesIO(FEED_OPEN + b"<a><b><c/></b></a></feed>"), limits)
