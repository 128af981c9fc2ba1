"""Every Atom document the gateway serves in the tests is schema-checked, whatever the test then does with it.

ESPI-NOTES §7 and the resource API issue: "every feed served in the tests validates against our schemas and the
official ones". The suite's WebTest app (``testapp`` in tests/conftest.py) is a :class:`ValidatingTestApp`, so a test
that only parses a feed, or only looks at its status, still fails on an invalid one.
"""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Sequence
from typing import Any

import webob
import webtest
from lxml import etree

from gateway.espi import schemas

__all__ = [
    "ATOM_MEDIA_TYPE",
    "ValidatingTestApp",
    "assert_valid_atom",
    "atom_problem",
    "atom_schema_versions",
    "parse",
]


def parse(body: bytes) -> etree._Element:
    return etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))


def atom_schema_versions() -> tuple[str, ...]:
    """The schema sets every served Atom document must satisfy: ours always, and the official ESPI 4.0 one when its
    files are present (``$GATEWAY_OFFICIAL_XSD_DIR`` or ``../shared/espi/xsd``: gateway/espi/schemas.py). Without them
    the official check is left out with a warning, not silently: the tests still run against ours."""
    try:
        schemas.load_schema("4.0")
    except schemas.SchemaUnavailableError as missing:
        warnings.warn(f"served Atom documents are checked against our schemas only: {missing}", stacklevel=1)
        return ("ours",)
    return ("ours", "4.0")


ATOM_MEDIA_TYPE = "application/atom+xml"


def atom_problem(content_type: str | None, body: bytes, versions: Sequence[str]) -> str | None:
    """Why ``body`` (served as ``content_type``) is not a valid Atom document, or ``None`` when it is one or is not
    Atom at all: for responses read with other clients than WebTest (``requests`` against a live server)."""
    if (content_type or "").split(";")[0].strip() != ATOM_MEDIA_TYPE:
        return None
    try:
        root = parse(body)
    except etree.XMLSyntaxError as error:
        return f"not well-formed XML: {error}"
    for version in versions:
        errors = schemas.validation_errors(root, version)
        if errors:
            return f"invalid against the {version!r} schemas: line {errors[0].line}: {errors[0].message}"
    return None


def assert_valid_atom(request: webob.Request, response: webob.Response, versions: Sequence[str]) -> None:
    """Assert that ``response``, when it is an Atom document (``application/atom+xml``), validates against each schema
    set of ``versions``.

    A 304 and the answer to a HEAD have no body. A gzip body (``Content-Encoding: gzip``) is checked as the client reads
    it, decompressed. The message names the request and the first schema error, so the failing test says which feed is
    invalid and why.
    """
    if response.content_type != ATOM_MEDIA_TYPE or response.status_int == 304 or request.method == "HEAD":
        return
    where = f"{request.method} {request.path_qs} ({response.status})"
    body = response.body
    if response.headers.get("Content-Encoding", "").strip().lower() == "gzip":
        body = gzip.decompress(body)
    try:
        root = parse(body)
    except etree.XMLSyntaxError as error:
        raise AssertionError(f"{where} served {ATOM_MEDIA_TYPE} that is not well-formed XML: {error}") from None
    for version in versions:
        errors = schemas.validation_errors(root, version)
        if errors:
            first = errors[0]
            raise AssertionError(
                f"{where} served an Atom document invalid against the {version!r} schemas: "
                f"line {first.line}: {first.message} ({len(errors)} error(s) in all)"
            )


class ValidatingTestApp(webtest.TestApp):  # type: ignore[misc]  # webtest has no type hints
    """A WebTest app that checks every Atom document the gateway serves (:func:`assert_valid_atom`), whatever the
    test then does with it: a test that only parses a feed, or only looks at its status, still fails on an invalid one.
    """

    def __init__(self, app: Any, *, schema_versions: Sequence[str], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.schema_versions = tuple(schema_versions)

    def do_request(self, req: webob.Request, status: Any = None, expect_errors: Any = None) -> webtest.TestResponse:
        # WebTest has already decoded a gzip body (and dropped Content-Encoding) when this returns.
        response = super().do_request(req, status, expect_errors)
        assert_valid_atom(req, response, self.schema_versions)
        return response
