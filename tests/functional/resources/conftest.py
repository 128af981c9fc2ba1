"""Fixtures for the ESPI resource API: a customer with a small but complete usage tree, apps, and their tokens."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import webob
from lxml import etree
from sqlalchemy import insert
from sqlalchemy.orm import Session

from gateway.consent.describe import shared_service_kinds
from gateway.consent.lifecycle import TERMS_VERSION, DecisionContext, record_grant
from gateway.espi import schemas
from gateway.oauth.registration import RegisteredClient
from gateway.oauth.scope import parse_scope_parameter
from gateway.storage.ids import stable_uuid
from gateway.storage.models import (
    Authorization,
    ClientRole,
    ElectricPowerQualitySummary,
    IntervalBlock,
    LineItem,
    LocalTimeParameters,
    MeterReading,
    PendingAuthorizationRequest,
    ReadingType,
    RetailCustomer,
    UsageSummary,
    interval_reading_table,
)
from tests.functional.oauth import conftest as oauth_fixtures
from tests.functional.oauth.helpers import (
    CLIENT_SCOPE,
    REDIRECT,
    CodeGrant,
    basic,
    make_client,
    pkce_pair,
    query_of,
)
from tests.support.atom import assert_valid_atom, parse

# The OAuth fixtures this package builds on (customers, the authorize URL, the in-process consent, the token call).
alice = oauth_fixtures.alice
bob = oauth_fixtures.bob
authorize_url = oauth_fixtures.authorize_url
requests_service = oauth_fixtures.requests_service
redeem = oauth_fixtures.redeem

BASE = "/DataCustodian/espi/1_1/resource"
# No HistoryLength: it counts back from now, and the fixtures' data is of January 2024 (test_commodity_and_history.py
# covers HistoryLength with data of its own, made relative to now).
FULL_SCOPE = "FB=1_3_4_5_12_13_14_15_16_17_39;IntervalDuration=900;BlockDuration=daily"
BASIC_SCOPE = "FB=1_3_4_5_13_14_39;IntervalDuration=900;BlockDuration=daily"
DAY = 86_400
START = 1_704_067_200  # 2024-01-01T00:00:00Z
STAMP = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)


@dataclasses.dataclass
class Tree:
    """Ids of one customer's usage tree."""

    customer: RetailCustomer
    usage_points: list[int]
    meter_reading: int
    hourly_meter_reading: int
    reading_type: int
    hourly_reading_type: int
    local_time_parameters: int
    blocks: list[int]
    usage_summary: int
    power_quality: int


def build_tree(db: Session, customer: RetailCustomer, *, days: int = 3) -> Tree:
    """Two usage points; the first has a 15-minute MeterReading with ``days`` daily blocks (with costs), an hourly
    MeterReading with one block, a UsageSummary with costs and a line item, and an ElectricPowerQualitySummary."""
    name = customer.username

    def meta(kind: str, *key: object) -> dict[str, Any]:
        return {"uuid": stable_uuid(kind, name, *key), "published": STAMP, "updated": STAMP}

    ltp = LocalTimeParameters(
        **meta("LTP"), dst_start_rule="360E2000", dst_end_rule="B40E2000", dst_offset=3600, tz_offset=-18000
    )
    quarter = ReadingType(**meta("RT", 900), interval_length=900, uom=72, power_of_ten_multiplier=0, commodity=1)
    hourly = ReadingType(**meta("RT", 3600), interval_length=3600, uom=72, power_of_ten_multiplier=0, commodity=1)
    db.add_all([ltp, quarter, hourly])
    db.flush()
    points = list(customer.usage_points)
    for point in points:
        point.local_time_parameters_id = ltp.id
        point.published = point.updated = STAMP
    first = points[0]
    reading = MeterReading(**meta("MR", 1), usage_point_id=first.id, reading_type_id=quarter.id)
    hourly_reading = MeterReading(**meta("MR", 2), usage_point_id=first.id, reading_type_id=hourly.id)
    db.add_all([reading, hourly_reading])
    db.flush()
    blocks = []
    for day in range(days):
        block = IntervalBlock(**meta("IB", day), meter_reading_id=reading.id, start=START + day * DAY, duration=DAY)
        db.add(block)
        blocks.append(block)
    hourly_block = IntervalBlock(**meta("IB", "h"), meter_reading_id=hourly_reading.id, start=START, duration=DAY)
    db.add(hourly_block)
    db.flush()
    rows = [
        {
            "interval_block_id": block.id,
            "start": block.start + index * 900,
            "duration": 900,
            "value": 100 + index,
            "cost": 5000 + index,
        }
        for block in blocks
        for index in range(96)
    ]
    rows += [
        {"interval_block_id": hourly_block.id, "start": START + h * 3600, "duration": 3600, "value": h, "cost": None}
        for h in range(24)
    ]
    db.execute(insert(interval_reading_table), rows)
    summary = UsageSummary(
        **meta("US", 1),
        usage_point_id=first.id,
        billing_period_start=START,
        billing_period_duration=days * DAY,
        bill_last_period=1234500000,
        bill_to_date=99900000,
        currency=840,
        status_time_stamp=START + days * DAY,
    )
    db.add(summary)
    db.flush()
    db.add(LineItem(usage_summary_id=summary.id, position=0, amount=100000, note="delivery charge", item_kind=1))
    quality = ElectricPowerQualitySummary(
        **meta("PQ", 1), usage_point_id=first.id, summary_interval_start=START, summary_interval_duration=DAY
    )
    db.add(quality)
    db.flush()
    return Tree(
        customer=customer,
        usage_points=[p.id for p in points],
        meter_reading=reading.id,
        hourly_meter_reading=hourly_reading.id,
        reading_type=quarter.id,
        hourly_reading_type=hourly.id,
        local_time_parameters=ltp.id,
        blocks=[b.id for b in blocks],
        usage_summary=summary.id,
        power_quality=quality.id,
    )


@pytest.fixture
def tree(db, alice) -> Tree:
    return build_tree(db, alice)


@pytest.fixture
def bob_tree(db, bob) -> Tree:
    return build_tree(db, bob, days=1)


@pytest.fixture
def app_client(db, services) -> RegisteredClient:
    """A third party registered for every function block the tests grant."""
    return make_client(db, services.settings, services.digester, scopes=(FULL_SCOPE, CLIENT_SCOPE))


@dataclasses.dataclass
class CustomerToken:
    token: str
    subscription_id: int
    authorization_id: int
    refresh_token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def path(self, rest: str = "") -> str:
        return f"{BASE}/Subscription/{self.subscription_id}{rest}"

    def batch(self, rest: str = "") -> str:
        return f"{BASE}/Batch/Subscription/{self.subscription_id}{rest}"


@pytest.fixture
def customer_token(
    testapp, authorize_url, requests_service, redeem, app_client, db, services, alice
) -> Callable[..., CustomerToken]:
    """Obtain a customer token through the real authorization_code flow with a recorded consent (as the consent
    screen does: approve, then record_grant); optionally narrow the data window."""

    def obtain(
        *,
        customer: RetailCustomer | None = None,
        scope: str = FULL_SCOPE,
        window: tuple[int, int | None] | None = None,
        client: RegisteredClient | None = None,
    ) -> CustomerToken:
        customer = customer or alice
        client = client or app_client
        verifier, challenge = pkce_pair()
        response = testapp.get(
            authorize_url(client.client_id, scope=scope, code_challenge=challenge, code_challenge_method="S256"),
            status=303,
        )
        request_id = query_of(response.headers["Location"])["request"]
        # Every meter the consent screen offers: those of the scope's commodities (FB 5/10/11; all if it names none).
        espi = parse_scope_parameter(scope).espi
        kinds = None if espi is None else shared_service_kinds(espi.function_blocks)
        points = [p.id for p in customer.usage_points if kinds is None or p.service_kind in kinds]
        location = requests_service.approve(db, request_id, customer, points, None)
        record_grant(
            db,
            services.settings,
            pending=db.get(PendingAuthorizationRequest, request_id),
            customer=customer,
            context=DecisionContext(client_ip="127.0.0.1", user_agent="tests"),
            terms_version=TERMS_VERSION,
        )
        db.flush()
        grant = CodeGrant(query_of(location)["code"], verifier, REDIRECT, "xyz-state", location)
        body = redeem(client, grant).json
        subscription_id = int(body["resourceURI"].rsplit("/", 1)[1])
        authorization_id = int(body["authorizationURI"].rsplit("/", 1)[1])
        if window is not None:
            authorization = db.get(Authorization, authorization_id)
            authorization.published_period_start = window[0]
            authorization.published_period_duration = window[1]
            db.flush()
        return CustomerToken(body["access_token"], subscription_id, authorization_id, body.get("refresh_token"))

    return obtain


@pytest.fixture
def client_token(testapp, app_client) -> str:
    return testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(app_client.client_id, app_client.client_secret)},
    ).json["access_token"]


@pytest.fixture
def custodian_token(testapp, db, services) -> str:
    operator = make_client(
        db, services.settings, services.digester, name="Utility", roles=(ClientRole.CUSTODIAN_ADMIN,)
    )
    return testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(operator.client_id, operator.client_secret)},
    ).json["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


CLIENT_ENVIRON = {"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000"}


@pytest.fixture
def raw_get(app, atom_schema_versions) -> Callable[[str, dict[str, str]], webob.Response]:
    """GET without WebTest, which decodes gzip bodies: the response as sent. Its Atom body is schema-checked too."""

    def get(path: str, headers: dict[str, str]) -> webob.Response:
        request = webob.Request.blank(path, headers=headers, environ=dict(CLIENT_ENVIRON))
        response = request.get_response(app)
        assert_valid_atom(request, response, atom_schema_versions)
        return response

    return get


@pytest.fixture
def valid(shared_espi) -> Callable[[bytes], etree._Element]:
    """Parse a served document and assert it validates against our schemas and the official ESPI 4.0 ones."""

    def check(body: bytes) -> etree._Element:
        root = parse(body)
        ours = [f"{e.line}: {e.message}" for e in schemas.validation_errors(root, "ours")]
        assert ours == [], ours
        official = [f"{e.line}: {e.message}" for e in schemas.validation_errors(root, "4.0")]
        assert official == [], official
        return root

    return check


ATOM = "{http://www.w3.org/2005/Atom}"
ESPI = "{http://naesb.org/espi}"


def entry_kinds(root: etree._Element) -> list[str]:
    """The ESPI resource name in each entry, in order."""
    return [etree.QName(content[0]).localname for content in root.iter(f"{ATOM}content")]


def links(root: etree._Element, rel: str) -> list[str]:
    return [link.get("href") for link in root.findall(f"{ATOM}link") if link.get("rel") == rel]
