"""Reading an ESPI resource from a PUT body: size-capped, through the hardened parser (PITFALLS: lxml, falcon)."""

from __future__ import annotations

from typing import Any

import falcon

from gateway.errors import BadRequest, PayloadTooLarge
from gateway.espi.namespaces import ATOM, ESPI
from gateway.espi.safe_xml import XmlLimits, parse_document

__all__ = ["espi_resource_from_body", "texts"]


def espi_resource_from_body(req: falcon.Request, name: str, *, max_bytes: int) -> Any:
    """The ``espi:{name}`` element of the body: bare, or inside an Atom entry's ``content`` (ESPI-NOTES §7)."""
    if req.content_length is not None and req.content_length > max_bytes:
        raise PayloadTooLarge(f"the body exceeds {max_bytes} bytes")
    data = req.bounded_stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the body exceeds {max_bytes} bytes")
    if not data.strip():
        raise BadRequest(f"the body must be an ESPI {name} document")
    root = parse_document(data, XmlLimits(max_bytes=max_bytes, expected_roots=frozenset()))
    wanted = f"{{{ESPI}}}{name}"
    if root.tag == wanted:
        return root
    if root.tag == f"{{{ATOM}}}entry":
        found = root.find(f"{{{ATOM}}}content/{wanted}")
        if found is not None:
            return found
    raise BadRequest(f"the body must be an ESPI {name} (bare or in an Atom entry)")


def texts(element: Any, name: str) -> list[str]:
    """The stripped texts of every ``espi:{name}`` child of ``element``."""
    return [(child.text or "").strip() for child in element.findall(f"{{{ESPI}}}{name}")]
