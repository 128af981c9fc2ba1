"""``GET /healthz``: liveness and database reachability, for load balancers and ``gateway demo``."""

from __future__ import annotations

import falcon
from sqlalchemy import text

from gateway.errors import ServiceUnavailable


class HealthResource:
    """Answer 200 ``{"status": "ok"}`` when the gateway can reach its database, 503 otherwise."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            req.context.db.execute(text("SELECT 1"))
        except Exception as error:  # any driver error means "not ready"
            raise ServiceUnavailable("the database is unreachable") from error
        resp.media = {"status": "ok", "database": "ok"}
