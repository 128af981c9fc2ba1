"""Stable identifiers for ESPI resources.

ESPI REQ.21 and the Green Button Alliance's feed rules (ESPI-NOTES §7) want each entry's ``urn:uuid`` id to be
identical across downloads. We derive UUIDs version 5 (RFC 9562 §5.5) from a stable key: the resource kind and the
natural key of the resource, under one namespace owned by this gateway. Imported resources keep the ids of the file
they came from, which makes re-importing the same file idempotent.
"""

from __future__ import annotations

import uuid

__all__ = ["GATEWAY_NAMESPACE", "stable_uuid", "urn"]

# uuid5(NAMESPACE_URL, "https://greenbutton-gateway.org/espi"): fixed forever, never change it.
GATEWAY_NAMESPACE = uuid.UUID("29fe157d-5db3-5bd7-9300-545f66f99cb8")


def stable_uuid(kind: str, *key: object) -> uuid.UUID:
    """Return the UUID v5 of ``kind`` and its natural key parts, e.g. ``stable_uuid("UsagePoint", "alice", 1)``."""
    name = "/".join([kind, *(str(part) for part in key)])
    return uuid.uuid5(GATEWAY_NAMESPACE, name)


def urn(value: uuid.UUID) -> str:
    """The Atom id form of a UUID (RFC 4122 §3, RFC 4287 §4.2.6): ``urn:uuid:…`` in upper case as ESPI feeds use."""
    return f"urn:uuid:{str(value).upper()}"
