"""``ReadingType/{id}`` and ``LocalTimeParameters/{id}``: shared reference data (ESPI-NOTES §2, §7).

Shared between customers, yet still least privilege (SECURITY-CHECKLIST row 29): a customer token reads a ReadingType
only if one of its visible MeterReadings measures it, and a LocalTimeParameters only if one of its usage points
refers to it (404 otherwise); the custodian's and the upload token read any (a Download My Data export, which both
may fetch, links to them, and neither holds personal data). Other token kinds: 403.
"""

from __future__ import annotations

import falcon

from gateway.errors import NotFound
from gateway.espi.writer import local_time_parameters_entry, reading_type_entry
from gateway.resources.espi_base import EspiApi
from gateway.storage import queries
from gateway.storage.queries import Grant

__all__ = ["LocalTimeParametersResource", "ReadingTypeResource"]


def _grant_of(api: EspiApi, req: falcon.Request) -> Grant | None:
    """The customer's grant, or ``None`` for the custodian or upload token (who see all reference data)."""
    principal = api.authenticate(req, "customer", "custodian", "upload")
    if principal.kind != "customer":
        return None
    if principal.subscription_id is None or principal.customer_id is None:
        raise NotFound("not found")
    grant = queries.customer_grant(
        api.db(req), subscription_id=principal.subscription_id, customer_id=principal.customer_id
    )
    if grant is None:
        raise NotFound("not found")
    return grant


class ReadingTypeResource:
    """ESPI ``ReadingType`` entries."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, reading_type_id: int) -> None:
        grant = _grant_of(self.api, req)
        self.api.query(req)
        reading_type = queries.reading_type(self.api.db(req), grant, reading_type_id)
        if reading_type is None:
            raise NotFound(f"no ReadingType {reading_type_id} visible to this token")
        self.api.send_entry(req, resp, reading_type_entry(reading_type, self.api.links), validator_parts=())


class LocalTimeParametersResource:
    """ESPI ``LocalTimeParameters`` entries."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, local_time_parameters_id: int) -> None:
        grant = _grant_of(self.api, req)
        self.api.query(req)
        parameters = queries.local_time_parameters(self.api.db(req), grant, local_time_parameters_id)
        if parameters is None:
            raise NotFound(f"no LocalTimeParameters {local_time_parameters_id} visible to this token")
        self.api.send_entry(req, resp, local_time_parameters_entry(parameters, self.api.links), validator_parts=())
