"""XML namespaces of Green Button feeds and the one prefix map every writer uses (ESPI-NOTES §1).

Parse by namespace URI, never by prefix: real files use a default namespace, ``espi:``, ``ns0:``/``ns1:`` or
``ns3:``. Write with these stable prefixes only, so our output never shows ``ns0:``.
"""

from __future__ import annotations

__all__ = ["ATOM", "ATOM_MEDIA_TYPE", "CUSTOMER", "ESPI", "NSMAP", "XSI", "atom", "espi"]

ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"
CUSTOMER = "http://naesb.org/espi/customer"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

NSMAP: dict[str | None, str] = {None: ATOM, "espi": ESPI}
"""Atom is the default namespace of a feed; ESPI resources use the ``espi:`` prefix."""

ATOM_MEDIA_TYPE = "application/atom+xml"


def atom(local: str) -> str:
    """Clark notation for an Atom element, e.g. ``{http://www.w3.org/2005/Atom}entry``."""
    return f"{{{ATOM}}}{local}"


def espi(local: str) -> str:
    """Clark notation for an ESPI element, e.g. ``{http://naesb.org/espi}IntervalBlock``."""
    return f"{{{ESPI}}}{local}"
