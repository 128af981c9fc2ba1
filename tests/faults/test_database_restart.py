"""PostgreSQL restarted under load: requests fail cleanly (503 with ``Retry-After``), then the same gateway recovers.

The gateway is not restarted: its pooled connections die with the server, ``pool_pre_ping`` replaces them, and every
database error on the way is mapped to 503 with ``Retry-After`` (``gateway.errors``), never a 500 or a hang.

The load is the production mix, four client threads round and round: client tokens, ``ReadServiceStatus``, the health
check, a month of 15-minute data as a ``Batch/Subscription`` feed (streamed; and again with ``If-None-Match``: 304),
and consent revocations by the app (``DELETE Authorization/{id}``) each followed by a read with the revoked consent's
token, which must be refused. A feed whose stream the outage cuts must not pass for a whole one: either its body is
complete (well-formed XML holding every IntervalBlock), or the transfer is visibly broken (the chunked body never
terminated). Besides the load, one client starts a two-meter-year feed just before the outage and reads it only after:
bigger than the socket buffers, so the gateway is certainly mid-stream when the database goes away.

One run (``restart_under_load``, PostgreSQL down for 3 s) is shared by the tests that each check one of these.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from gateway.customers import add_customer
from gateway.espi.ingest import import_feed
from gateway.oauth.registration import RegisteredClient
from gateway.storage.engine import session_scope
from tests.faults.consents import Consent, client_token, grant_consent, register_app
from tests.faults.feeds import write_feed
from tests.faults.live import Served, serve
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

DOWN_SECONDS = 3.0
RECOVERY_SECONDS = 3.0
"""From this long after PostgreSQL is back, every answer must be a success again."""
THREADS = 4
VICTIMS = 10
"""Consents each thread revokes, one every :data:`REVOKE_INTERVAL` seconds, so that revocations happen before, during
and after the outage (when all are revoked it repeats the last DELETE: 204 again, RFC 9110 §9.2.2)."""
REVOKE_INTERVAL = 1.0
FEED_DAYS = 31
"""A month of 15-minute readings (2,976) in the load's ``Batch/Subscription`` feed: a real feed, streamed."""
CUT_FEED_METERS = 2
"""Meter-years in the feed that the outage cuts (70,080 readings, ~15 MB of XML: more than loopback's socket buffers
hold while the client does not read, so the gateway still has blocks to query when PostgreSQL stops)."""
RESOURCE = "/DataCustodian/espi/1_1/resource"
INTERVAL_BLOCK = "{http://naesb.org/espi}IntervalBlock"

ABORTED = "aborted"
"""A 200 whose body never completed (the connection closed before the chunked body's last chunk)."""
TRUNCATED = "truncated"
"""A 200 whose transfer completed but whose body is not well-formed XML or lacks IntervalBlocks: a silently
truncated feed (must never happen)."""
COMPLETE = "complete"


def read_feed(response: requests.Response, expected_blocks: int, head: bytes = b"") -> str:
    """Read a streamed 200 feed to the end of its transfer: COMPLETE, ABORTED or TRUNCATED."""
    try:
        body = head + b"".join(response.iter_content(64 * 1024))  # raises if the chunked body never terminated
    except requests.RequestException:
        return ABORTED
    finally:
        response.close()
    try:
        root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True))
    except etree.XMLSyntaxError:
        return TRUNCATED
    return COMPLETE if sum(1 for _ in root.iter(INTERVAL_BLOCK)) == expected_blocks else TRUNCATED


def feed_request(base_url: str, consent: Consent) -> requests.Response:
    """The consent's ``Batch/Subscription``, streamed, without gzip (the XML and its framing are what is checked)."""
    return requests.get(
        f"{base_url}{RESOURCE}/Batch/Subscription/{consent.subscription_id}",
        headers={
            "Authorization": f"Bearer {consent.access_token}",
            "Accept-Encoding": "identity",
            "Connection": "close",
        },
        stream=True,
        timeout=60,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    at: float
    kind: str
    status: int  # 0: no HTTP answer at all (connection refused or reset before a status line)
    retry_after: str | None
    body: str | None = None  # feeds: COMPLETE, ABORTED or TRUNCATED
    revoked: bool = False  # a read with the token of a consent whose revocation was answered 204


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    outcomes: list[Outcome]
    down_at: float
    up_at: float
    gateway_survived: bool
    cut_feed: Outcome
    """The feed started before the outage and read after it."""
    revocations: int
    """Consents revoked (first DELETE answered 204), over all threads."""
    log: str

    def during(self) -> list[Outcome]:
        return [o for o in self.outcomes if self.down_at <= o.at <= self.up_at]

    def after_recovery(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.at >= self.up_at + RECOVERY_SECONDS]

    def summary(self) -> dict[str, object]:
        def by_kind(outcomes: list[Outcome]) -> dict[str, dict[object, int]]:
            counted: dict[str, collections.Counter[object]] = collections.defaultdict(collections.Counter)
            for o in outcomes:
                counted[o.kind][o.status if o.body in (None, COMPLETE) else f"{o.status} {o.body}"] += 1
            return {kind: dict(counts) for kind, counts in sorted(counted.items())}

        return {
            "requests": len(self.outcomes),
            "consents_revoked": self.revocations,
            "cut_feed": f"{self.cut_feed.status} {self.cut_feed.body}",
            "during_outage": by_kind(self.during()),
            "after_recovery": by_kind(self.after_recovery()),
            "all": by_kind(self.outcomes),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Seeded:
    app: RegisteredClient
    customer_id: int
    month_point: int
    """The usage point with a month of data (the load's feeds and consents)."""
    year_points: list[int]
    """The usage points with a year of data each (the feed the outage cuts)."""


def _seed(served: Served, tmp: Path) -> Seeded:
    """A customer with a month of data on one usage point and a year on others, and a third party that may ask."""
    month, year = tmp / "month.xml", tmp / "year.xml"
    write_feed(month, usage_points=1, days=FEED_DAYS, seed=7)
    write_feed(year, usage_points=CUT_FEED_METERS, days=365, seed=8)
    services = served.services
    with session_scope(services.sessions) as session:
        customer = add_customer(
            session, services.passwords, username="alice", email="alice@example.com", password="x" * 16
        )
        import_feed(session, month, customer=customer)
        (month_point,) = (point.id for point in customer.usage_points)
        import_feed(session, year, customer=customer)
        session.refresh(customer)
        year_points = sorted(point.id for point in customer.usage_points if point.id != month_point)
        customer_id = customer.id
    return Seeded(register_app(services, name="Feed App"), customer_id, month_point, year_points)


def _grant(served: Served, seeded: Seeded, usage_point_ids: list[int]) -> Consent:
    return grant_consent(served.base_url, served.services, seeded.app, seeded.customer_id, usage_point_ids)


class LoadClient(threading.Thread):
    """One client thread: the mixed load, round and round, each answer recorded as an :class:`Outcome`."""

    def __init__(
        self,
        served: Served,
        app_token: str,
        reader: Consent,
        victims: list[Consent],
        stop: threading.Event,
        record: Callable[[Outcome], None],
    ) -> None:
        super().__init__(name="load-client")
        self.served = served
        self.app_token = app_token
        self.reader = reader
        self.victims = victims
        self.stop = stop
        self.record = record
        self.etag: str | None = None
        self.revoked = 0  # victims whose DELETE was answered 204
        self.last_revoke = 0.0

    def _get(self, path: str, token: str, **headers: str) -> requests.Response:
        return requests.get(
            f"{self.served.base_url}{RESOURCE}{path}",
            headers={"Authorization": f"Bearer {token}", "Connection": "close", **headers},
            timeout=30,
        )

    def _answer(self, kind: str, call: Callable[[], requests.Response], *, revoked: bool = False) -> int:
        try:
            response = call()
        except requests.RequestException:
            self.record(Outcome(time.monotonic(), kind, 0, None, revoked=revoked))
            return 0
        self.record(
            Outcome(time.monotonic(), kind, response.status_code, response.headers.get("Retry-After"), None, revoked)
        )
        return response.status_code

    def feed(self) -> None:
        """The month's Batch/Subscription, read to the end of its transfer."""
        try:
            response = feed_request(self.served.base_url, self.reader)
        except requests.RequestException:
            self.record(Outcome(time.monotonic(), "feed", 0, None))
            return
        body = read_feed(response, FEED_DAYS) if response.status_code == 200 else None
        if body == COMPLETE:
            self.etag = response.headers.get("ETag") or self.etag
        response.close()
        self.record(Outcome(time.monotonic(), "feed", response.status_code, response.headers.get("Retry-After"), body))

    def feed_revalidated(self) -> None:
        headers = {"If-None-Match": self.etag} if self.etag else {}
        self._answer(
            "feed 304",
            lambda: self._get(
                f"/Batch/Subscription/{self.reader.subscription_id}", self.reader.access_token, **headers
            ),
        )

    def revoke(self) -> None:
        """The app ends the next consent; the very next read with its token must be refused (401)."""
        if time.monotonic() - self.last_revoke < REVOKE_INTERVAL:
            return
        self.last_revoke = time.monotonic()
        victim = self.victims[min(self.revoked, len(self.victims) - 1)]
        status = self._answer(
            "revoke",
            lambda: requests.delete(
                f"{self.served.base_url}{RESOURCE}/Authorization/{victim.authorization_id}",
                headers={"Authorization": f"Bearer {self.app_token}", "Connection": "close"},
                timeout=30,
            ),
        )
        if status == 204:
            self.revoked = min(self.revoked + 1, len(self.victims))
        self._answer(
            "revoked read",
            lambda: self._get(f"/Subscription/{victim.subscription_id}/UsagePoint", victim.access_token),
            revoked=status == 204,
        )

    def run(self) -> None:
        served = self.served
        operations: list[Callable[[], object]] = [
            lambda: self._answer("token", served.client_token),
            self.feed,
            lambda: self._answer("ReadServiceStatus", lambda: self._get("/ReadServiceStatus", self.app_token)),
            self.feed_revalidated,
            self.revoke,
            lambda: self._answer(
                "healthz",
                lambda: requests.get(f"{served.base_url}/healthz", headers={"Connection": "close"}, timeout=15),
            ),
        ]
        n = 0
        while not self.stop.is_set():
            operations[n % len(operations)]()
            n += 1
            time.sleep(0.01)


@pytest.fixture(scope="module")
def restart_under_load(own_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Run the mixed load, stop PostgreSQL for :data:`DOWN_SECONDS` mid-way, start it again, keep the load going."""
    tmp = tmp_path_factory.mktemp("restart_mid_load")
    database_url = own_cluster.create_database("restart_mid_load")
    # The per-client rate limit of the ESPI API would answer 429 to threads sharing one app: not what is tested here.
    with serve(tmp, database_url, GATEWAY_RATE_LIMIT_PER_SECOND="0") as served:
        gateway_pid = served.process.process.pid  # type: ignore[union-attr]
        seeded = _seed(served, tmp)
        app_token = client_token(served.base_url, seeded.app)
        stop = threading.Event()
        outcomes: list[Outcome] = []
        lock = threading.Lock()

        def record(outcome: Outcome) -> None:
            with lock:
                outcomes.append(outcome)

        clients = [
            LoadClient(
                served,
                app_token,
                _grant(served, seeded, [seeded.month_point]),
                [_grant(served, seeded, [seeded.month_point]) for _ in range(VICTIMS)],
                stop,
                record,
            )
            for _ in range(THREADS)
        ]
        cut_consent = _grant(served, seeded, seeded.year_points)
        for client in clients:
            client.start()
        try:
            time.sleep(2.0)
            # The big feed begins (its status and first bytes arrive), then the client stops reading until after
            # the outage: the gateway fills the socket buffers and waits there, blocks still to be queried.
            cut = feed_request(served.base_url, cut_consent)
            chunks = cut.iter_content(64 * 1024)
            head = next(chunks, b"") if cut.status_code == 200 else b""
            down_at = time.monotonic()
            own_cluster.stop("fast")
            time.sleep(DOWN_SECONDS)
            own_cluster._pg_ctl_start()
            up_at = time.monotonic()
            cut_body = read_feed(cut, 365 * CUT_FEED_METERS, head) if cut.status_code == 200 else None
            cut_feed = Outcome(up_at, "cut feed", cut.status_code, cut.headers.get("Retry-After"), cut_body)
            time.sleep(RECOVERY_SECONDS + 4.0)
        finally:
            stop.set()
            for client in clients:
                client.join(60)
        process = served.process.process
        assert process is not None
        survived = process.poll() is None and process.pid == gateway_pid
        revocations = sum(client.revoked for client in clients)
        run = Run(list(outcomes), down_at, up_at, survived, cut_feed, revocations, served.process.output())
    print(f"database restart under mixed load: {run.summary()}")
    yield run


def test_no_answer_is_a_500_or_anything_but_success_401_or_503(restart_under_load: Run) -> None:
    """200/204/304, 401 only for a revoked consent's token, 503 while the database is away; never 500, never none."""
    allowed = {
        "token": {200, 503},
        "feed": {200, 503},
        "feed 304": {200, 304, 503},
        "ReadServiceStatus": {200, 503},
        "revoke": {204, 503},
        "healthz": {200, 503},
    }

    def expected(o: Outcome) -> bool:
        if o.kind == "revoked read":
            # Revoked (204): refused at once. A revocation that answered 503 may or may not have committed.
            return o.status in ({401, 503} if o.revoked else {200, 401, 503})
        return o.status in allowed[o.kind]

    unexpected = [o for o in restart_under_load.outcomes if not expected(o)]
    assert not unexpected, (unexpected[:5], restart_under_load.summary(), restart_under_load.log[-3000:])


def test_every_503_carries_retry_after(restart_under_load: Run) -> None:
    without = [o for o in restart_under_load.outcomes if o.status == 503 and not o.retry_after]
    assert not without, without[:5]


def test_the_outage_is_answered_with_503(restart_under_load: Run) -> None:
    assert any(o.status == 503 for o in restart_under_load.during()), restart_under_load.summary()


def test_no_feed_is_a_complete_looking_200_that_was_cut_short(restart_under_load: Run) -> None:
    """Every 200 feed either is a whole XML document with every IntervalBlock, or its transfer visibly broke off."""
    feeds = [o for o in restart_under_load.outcomes if o.kind == "feed" and o.status == 200]
    feeds.append(restart_under_load.cut_feed)
    assert all(o.body in (COMPLETE, ABORTED) for o in feeds), collections.Counter(o.body for o in feeds)


def test_a_feed_streaming_when_the_database_goes_away_is_aborted(restart_under_load: Run) -> None:
    """The big feed was mid-stream when PostgreSQL stopped: its chunked body ends without its last chunk (the client
    sees an incomplete transfer), not with a well-formed but short document."""
    cut = restart_under_load.cut_feed
    assert (cut.status, cut.body) == (200, ABORTED), restart_under_load.summary()


def test_the_mix_reached_feeds_and_revocations(restart_under_load: Run) -> None:
    """The load is the one asked for: whole feeds served, consents revoked, revoked tokens refused, 304s answered."""
    seen = {(o.kind, o.status) for o in restart_under_load.outcomes if o.body in (None, COMPLETE)}
    wanted = {("feed", 200), ("feed 304", 304), ("revoke", 204), ("revoked read", 401)}
    assert wanted <= seen, restart_under_load.summary()


def test_after_recovery_everything_succeeds_without_restarting_the_gateway(restart_under_load: Run) -> None:
    after = restart_under_load.after_recovery()
    success = {200, 204, 304}
    failed = [o for o in after if not (o.status in success or (o.status == 401 and o.kind == "revoked read"))]
    assert restart_under_load.gateway_survived and after and not failed, (failed[:5], restart_under_load.summary())


def test_after_an_idle_restart_the_next_requests_succeed(own_cluster: PostgresCluster, tmp_path: Path) -> None:
    database_url = own_cluster.create_database("restart_idle")
    with serve(tmp_path, database_url) as served:
        warm = [served.client_token().status_code for _ in range(6)]  # both workers hold pooled connections now
        own_cluster.restart()
        statuses = [served.client_token().status_code for _ in range(6)]
    assert (warm, statuses) == ([200] * 6, [200] * 6)
