"""``GET …/resource/ReadServiceStatus`` (ESPI REQ.21 FB 48; ESPI-NOTES §2-3): is the custodian up?

Answers only client access tokens (client_credentials); registration and customer tokens get 403, none 401.
"""

from __future__ import annotations

import falcon

from gateway.web.auth import BearerAuth, bearer_required

__all__ = ["ReadServiceStatusResource"]

_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<ServiceStatus xmlns="http://naesb.org/espi"><currentStatus>1</currentStatus></ServiceStatus>\n'
)


class ReadServiceStatusResource:
    """The bare ESPI ``ServiceStatus`` document with ``currentStatus`` 1 (available)."""

    def __init__(self, bearer_auth: BearerAuth) -> None:
        self.bearer_auth = bearer_auth

    @falcon.before(bearer_required("client"))
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "application/atom+xml"
        resp.data = _BODY
