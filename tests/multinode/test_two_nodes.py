"""Two nodes, one PostgreSQL: what one node does, the other sees on its very next request.

Revocation, refresh-token rotation, failed-authentication throttling, the outbox and the business gauges all live in
the database; nothing is cached in a node. The per-client rate limits (shared token buckets leased in batches) have
their own two-node test: ``test_rate_limit_across_nodes.py``.
"""

from __future__ import annotations

import collections
import contextlib
import re
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from gateway.oauth.registration import register_client
from gateway.outbox.queue import enqueue_notification
from gateway.storage.engine import session_scope
from gateway.storage.outbox import OutboxMessage, OutboxState
from tests.multinode.conftest import Cluster, node_log
from tests.multinode.receiver import BatchListReceiver
from tests.support.live_gateway import CLIENT_SCOPE, LiveBrowser, LiveGateway

pytestmark = pytest.mark.postgres


def on(node: LiveGateway, url: str) -> str:
    """``url`` (built on the public base URL) sent to ``node`` instead, as a load balancer might."""
    parts = urlsplit(url)
    return f"{node.base_url}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def introspect(node: LiveGateway, token: str) -> bool:
    """RFC 7662 ``active`` for ``token``, asked of ``node``."""
    response = requests.post(
        f"{node.base_url}/oauth/introspect",
        data={"token": token},
        headers={"Authorization": node.basic()},
        timeout=10,
    )
    response.raise_for_status()
    return bool(response.json()["active"])


def test_a_consent_revoked_on_node_a_stops_its_tokens_on_node_b(two_nodes: Cluster) -> None:
    browser = LiveBrowser(two_nodes.a)
    tokens = browser.grant_and_redeem()
    feed = on(two_nodes.b, tokens["resourceURI"])
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    before = requests.get(feed, headers=bearer, timeout=30)
    assert introspect(two_nodes.b, tokens["access_token"])
    assert browser.revoke_latest().status_code == 303
    after = requests.get(feed, headers=bearer, timeout=30)
    assert not introspect(two_nodes.b, tokens["access_token"])
    assert not introspect(two_nodes.b, tokens["refresh_token"])
    # Introspection alone is not the point: the feed itself, on node B, must serve the token and then refuse it.
    assert (before.status_code, after.status_code) == (200, 401), (
        f"feed on node B before/after the revocation: {before.status_code}/{after.status_code}: {after.text[:500]}"
    )


def test_a_refresh_rotation_on_one_node_is_seen_by_the_other(two_nodes: Cluster) -> None:
    first = LiveBrowser(two_nodes.a).grant_and_redeem()
    rotated = two_nodes.a.token_request(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    again = two_nodes.b.token_request(grant_type="refresh_token", refresh_token=rotated.json()["refresh_token"])
    assert again.status_code == 200, again.text
    replay = two_nodes.b.token_request(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"
    # Reuse of a rotated-out token revokes the family (RFC 9700 §4.14.2): node A refuses the newest one too.
    assert not introspect(two_nodes.a, again.json()["access_token"])


def test_failed_client_authentications_are_counted_across_nodes(two_nodes: Cluster) -> None:
    services = two_nodes.services
    with session_scope(services.sessions) as session:
        victim = register_client(
            session,
            services.settings,
            services.digester,
            name="Throttled App",
            redirect_uris=["https://throttled.example.com/cb"],
            scopes=[CLIENT_SCOPE],
            grant_types=["authorization_code", "client_credentials"],
        )
    form = {"grant_type": "client_credentials", "scope": CLIENT_SCOPE}
    statuses = []
    for attempt in range(10):  # ThrottleRule("client-secret", limit=10): five wrong secrets on each node
        node = two_nodes.nodes[attempt % 2]
        statuses.append(
            requests.post(
                f"{node.base_url}/oauth/token", data=form, auth=(victim.client_id, "wrong-secret"), timeout=10
            ).status_code
        )
    blocked = requests.post(
        f"{two_nodes.a.base_url}/oauth/token", data=form, auth=(victim.client_id, victim.client_secret), timeout=10
    )
    assert set(statuses) <= {401, 429}
    assert blocked.status_code == 429, blocked.text
    assert int(blocked.headers["Retry-After"]) > 0


def outbox_worker(node: LiveGateway, timeout: float = 30.0) -> str:
    """``delivered_by`` of ``node``'s outbox worker: ``host:pid`` of the ``gateway worker`` that ``serve`` spawned."""
    master = node.process.process.pid  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while True:
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if (
                    entry.name.isdigit()
                    and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master
                    and (entry / "cmdline").read_bytes().endswith(b"-m\0gateway\0worker\0")
                ):
                    return f"{socket.gethostname()}:{entry.name}"
        assert time.monotonic() < deadline, f"no outbox worker under {master}:\n{node_log(node)[-2000:]}"
        time.sleep(0.1)


def test_each_notification_is_delivered_once_by_the_workers_of_both_nodes(two_nodes: Cluster) -> None:
    # Both workers run before anything is queued. The receiver holds the first delivery until a second one is in
    # flight at the same moment, which only another worker can send (each delivers one at a time): the first worker
    # sits on the 50 messages it claimed (its claim limit) while the other, at its next pass (5 s at most), claims
    # the next 50. So each node's worker delivers some, whichever wakes first; 20 ms per POST keeps both busy after.
    workers = {outbox_worker(node) for node in two_nodes.nodes}
    receiver = BatchListReceiver(delay=0.02, rendezvous=2).start()
    urls = [f"{two_nodes.services.settings.resource_base_url}/Authorization/{9_000_000 + n}" for n in range(150)]
    try:
        ids = []
        with session_scope(two_nodes.services.sessions) as session:
            for url in urls:
                message = enqueue_notification(session, notify_uri=receiver.uri, resources=[url])
                assert message is not None
                ids.append(message.id)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(receiver.count(url) > 0 for url in urls) < len(urls):
            time.sleep(0.2)
        # Each row is marked delivered (with its worker) right after its POST: wait for the last ones.
        statement = select(OutboxMessage.delivered_by).where(
            OutboxMessage.id.in_(ids), OutboxMessage.state == OutboxState.DELIVERED
        )
        delivered_by: list[str | None] = []
        while time.monotonic() < deadline:
            with two_nodes.services.sessions() as session:
                delivered_by = list(session.scalars(statement))
            if len(delivered_by) == len(ids):
                break
            time.sleep(0.2)
        time.sleep(1.0)  # a duplicate would arrive right after the last first delivery
        counts = [receiver.count(url) for url in urls]
    finally:
        receiver.stop()
    split = collections.Counter(delivered_by)
    print(f"150 notifications delivered by {dict(split)} (rendezvous met: {receiver.met})")
    assert counts == [1] * len(urls), counts
    assert set(split) == workers and len(delivered_by) == len(urls), (split, workers)


def _gauge(body: str, kind: str, state: str) -> float:
    match = re.search(rf'gateway_outbox_messages\{{kind="{kind}",state="{state}"\}} ([0-9.e+]+)', body)
    assert match, body
    return float(match.group(1))


def test_outbox_gauges_report_the_same_cluster_wide_truth_on_both_nodes(two_nodes: Cluster) -> None:
    with session_scope(two_nodes.services.sessions) as session:
        session.add(
            OutboxMessage(kind="probe", payload={}, state=OutboxState.FAILED, attempts=12, last_error="test: gone")
        )
    scraped = [requests.get(f"{node.base_url}/metrics", timeout=10).text for node in two_nodes.nodes]
    assert [_gauge(body, "probe", "failed") for body in scraped] == [1.0, 1.0]
