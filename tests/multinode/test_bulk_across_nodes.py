"""A very large bulk (FB 35; ESPI-NOTES §9) across two nodes: asked on either, one job, built once by whichever
node's worker claims it, announced once, and served by both from the shared database."""

from __future__ import annotations

import dataclasses
import time

import pytest
import requests
from sqlalchemy import func, select

from gateway.oauth.registration import register_client
from gateway.storage.bulk import BulkRequest
from gateway.storage.engine import session_scope
from tests.multinode.conftest import Cluster
from tests.multinode.receiver import BatchListReceiver
from tests.multinode.test_two_nodes import on
from tests.support.live_gateway import CLIENT_SCOPE, SCOPE, LiveBrowser

pytestmark = pytest.mark.postgres

BULK_SCOPE = f"{SCOPE};BR=multi-1"
RESOURCE = "/DataCustodian/espi/1_1/resource"


def test_a_bulk_asked_on_both_nodes_is_one_job_built_once_and_served_by_either(two_nodes: Cluster) -> None:
    services = two_nodes.services
    receiver = BatchListReceiver().start()
    try:
        with session_scope(services.sessions) as session:
            client = register_client(
                session,
                services.settings,
                services.digester,
                name="Bulk App",
                redirect_uris=[two_nodes.fake_app.redirect_uri],
                notify_uri=receiver.uri,
                scopes=[BULK_SCOPE, CLIENT_SCOPE],
                grant_types=["authorization_code", "refresh_token", "client_credentials"],
            )
        node_a = dataclasses.replace(two_nodes.a, client=client)
        LiveBrowser(node_a).grant_and_redeem(scope=BULK_SCOPE)
        headers = {"Authorization": f"Bearer {node_a.client_token()}"}
        # Alice's meters hold no readings here: the app asks for the asynchronous answer (RFC 7240).
        asked = [
            requests.get(
                f"{node.base_url}{RESOURCE}/Batch/Bulk/multi-1",
                headers={**headers, "Prefer": "respond-async"},
                timeout=30,
            )
            for node in two_nodes.nodes
        ]
        assert [response.status_code for response in asked] == [202, 202], asked[1].text
        location = asked[0].headers["Location"]
        assert asked[1].headers["Location"] == location
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and receiver.count(location) == 0:
            time.sleep(0.2)
        time.sleep(1.0)  # a second announcement would come right after the first
        served = [requests.get(on(node, location), headers=headers, timeout=30) for node in two_nodes.nodes]
        with services.sessions() as session:
            jobs = session.scalar(select(func.count()).select_from(BulkRequest).where(BulkRequest.bulk_id == "multi-1"))
        announced = receiver.count(location)
    finally:
        receiver.stop()
    assert (jobs, announced) == (1, 1)
    assert [response.status_code for response in served] == [200, 200], served[0].text
    assert served[0].content == served[1].content and b"<feed" in served[0].content
    assert served[0].headers["Expires"] == served[1].headers["Expires"]
