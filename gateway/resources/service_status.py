"""``GET …/resource/ReadServiceStatus`` (ESPI REQ.21 FB 48; ESPI-NOTES §2-3): is the custodian up?

Answers only client access tokens (client_credentials); registration and customer tokens get 403, none 401. The
per-client rate limit applies as on every resource (429 with Retry-After).
"""

from __future__ import annotations

import falcon

from gateway.espi.writer import service_status_document
from gateway.resources.espi_base import EspiApi

__all__ = ["ReadServiceStatusResource"]

_BODY = service_status_document(1)


class ReadServiceStatusResource:
    """The bare ESPI ``ServiceStatus`` document with ``currentStatus`` 1 (available)."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.api.authenticate(req, "client")
        resp.content_type = "application/atom+xml"
        resp.data = _BODY
