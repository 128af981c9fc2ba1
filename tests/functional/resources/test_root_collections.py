"""Root collections for the custodian (ESPI-NOTES §2): every resource, paged without counting, valid, never a secret.

The access matrix of these routes is in test_access_matrix.py; here is what the custodian reads. Every Atom document
these tests fetch is schema-checked by the ``testapp`` and ``raw_get`` fixtures (conftest.py), also where a test only
``parse()``s the body to look at its entries.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable

import pytest
from lxml import etree
from sqlalchemy import select

from gateway.espi import schemas
from gateway.storage.models import ApplicationInformation, Authorization, UsagePoint
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client
from tests.functional.resources.conftest import ATOM, BASE, DAY, ESPI, START, bearer, entry_kinds, links, parse

FEEDS = [
    "UsagePoint",
    "MeterReading",
    "IntervalBlock",
    "UsageSummary",
    "ElectricPowerUsageSummary",
    "ElectricPowerQualitySummary",
    "ReadingType",
    "LocalTimeParameters",
    "Authorization",
    "ApplicationInformation",
]


@pytest.fixture
def valid_everywhere(shared_espi) -> Callable[[bytes], etree._Element]:
    """Parse a served document; assert it validates against ours and the official ESPI 4.0 and 3.3 schemas."""

    def check(body: bytes) -> etree._Element:
        root = parse(body)
        for version in ("ours", "4.0", "3.3"):
            errors = [f"{e.line}: {e.message}" for e in schemas.validation_errors(root, version)]
            assert errors == [], (version, errors)
        return root

    return check


def get(testapp, path: str, token: str, status: int = 200, **headers: str):
    return testapp.get(f"{BASE}/{path}", headers={**bearer(token), **headers}, status=status)


def self_links(root: etree._Element) -> list[str]:
    return [
        link.get("href")
        for entry in root.findall(f"{ATOM}entry")
        for link in entry.findall(f"{ATOM}link")
        if link.get("rel") == "self"
    ]


@pytest.mark.parametrize("path", FEEDS)
def test_every_root_feed_is_valid_against_ours_and_the_official_schemas(
    testapp, tree, bob_tree, customer_token, custodian_token, valid_everywhere, path
):
    customer_token()
    root = valid_everywhere(get(testapp, path, custodian_token).body)
    assert entry_kinds(root), path


@pytest.mark.parametrize(
    ("path", "kind", "expected"),
    [
        ("UsagePoint", "UsagePoint", 3),
        ("MeterReading", "MeterReading", 4),
        ("IntervalBlock", "IntervalBlock", 6),
        ("UsageSummary", "UsageSummary", 2),
        ("ElectricPowerQualitySummary", "ElectricPowerQualitySummary", 2),
        ("ReadingType", "ReadingType", 4),
        ("LocalTimeParameters", "LocalTimeParameters", 2),
    ],
)
def test_root_feeds_hold_every_customers_rows(testapp, tree, bob_tree, custodian_token, path, kind, expected):
    root = parse(get(testapp, path, custodian_token).body)
    assert entry_kinds(root) == [kind] * expected


def test_flat_root_entries_are_linked_at_the_root(testapp, tree, custodian_token):
    root = parse(get(testapp, "MeterReading", custodian_token).body)
    entry = root.find(f"{ATOM}entry")
    hrefs = {link.get("rel"): link.get("href") for link in entry.findall(f"{ATOM}link") if link.get("rel") != "related"}
    assert hrefs["self"].endswith(f"{BASE}/MeterReading/{tree.meter_reading}")
    assert hrefs["up"].endswith(f"{BASE}/MeterReading")
    related = [link.get("href") for link in entry.findall(f"{ATOM}link") if link.get("rel") == "related"]
    assert any(
        href.endswith(f"/UsagePoint/{tree.usage_points[0]}/MeterReading/{tree.meter_reading}/IntervalBlock")
        for href in related
    )


def test_every_related_link_of_the_root_tree_resolves(testapp, tree, custodian_token, valid):
    """From the root UsagePoint down, each link a custodian follows answers 200 with a valid document."""
    seen: set[str] = set()
    pending = [f"{BASE}/UsagePoint/{tree.usage_points[0]}"]
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        root = valid(testapp.get(url, headers=bearer(custodian_token)).body)
        for link in root.iter(f"{ATOM}link"):
            if link.get("rel") in ("self", "up", "related"):
                pending.append(link.get("href").split("127.0.0.1:8000", 1)[1])
    assert f"{BASE}/UsagePoint/{tree.usage_points[0]}/MeterReading/{tree.meter_reading}/IntervalBlock" in seen
    assert f"{BASE}/ReadingType/{tree.reading_type}" in seen
    assert len(seen) > 10


def test_the_custodian_reads_costs_and_bills_whatever_a_consent_would_show(testapp, tree, custodian_token):
    u, m, b = tree.usage_points[0], tree.meter_reading, tree.blocks[0]
    block = parse(get(testapp, f"UsagePoint/{u}/MeterReading/{m}/IntervalBlock/{b}", custodian_token).body)
    assert len(list(block.iter(f"{ESPI}cost"))) == 96
    summary = parse(get(testapp, f"UsagePoint/{u}/UsageSummary/{tree.usage_summary}", custodian_token).body)
    assert summary.findtext(f".//{ESPI}billLastPeriod") == "1234500000"


@pytest.mark.parametrize(
    "path",
    [
        "UsagePoint/{u}",
        "MeterReading/{m}",
        "IntervalBlock/{b}",
        "UsageSummary/{us}",
        "ElectricPowerUsageSummary/{us}",
        "ElectricPowerQualitySummary/{pq}",
        "UsagePoint/{u}/MeterReading/{m}",
        "UsagePoint/{u}/MeterReading/{m}/IntervalBlock/{b}",
        "UsagePoint/{u}/ElectricPowerQualitySummary/{pq}",
    ],
)
def test_root_items_are_one_entry_linked_to_themselves(testapp, tree, custodian_token, valid, path):
    rest = path.format(
        u=tree.usage_points[0], m=tree.meter_reading, b=tree.blocks[0], us=tree.usage_summary, pq=tree.power_quality
    )
    root = valid(get(testapp, rest, custodian_token).body)
    assert etree.QName(root).localname == "entry"
    assert links(root, "self")[0].endswith(f"{BASE}/{rest}")


@pytest.mark.parametrize(
    "path",
    [
        "UsagePoint/999999",
        "MeterReading/999999",
        "IntervalBlock/999999",
        "UsageSummary/999999",
        "ElectricPowerQualitySummary/999999",
        "Authorization/999999",
        "ApplicationInformation/999999",
        "UsagePoint/999999/MeterReading",
        "UsagePoint/{other}/MeterReading/{m}",
        "UsagePoint/{u}/MeterReading/{m}/IntervalBlock/999999",
    ],
)
def test_unknown_ids_are_404(testapp, tree, bob_tree, custodian_token, path):
    rest = path.format(u=tree.usage_points[0], other=bob_tree.usage_points[0], m=tree.meter_reading)
    get(testapp, rest, custodian_token, status=404)


def test_paging_has_next_and_previous_without_a_count(testapp, tree, bob_tree, custodian_token):
    first = parse(get(testapp, "UsagePoint?max-results=2", custodian_token).body)
    assert len(self_links(first)) == 2
    assert [href.rsplit("?", 1)[1] for href in links(first, "next")] == ["max-results=2&start-index=3"]
    assert links(first, "previous") == []
    second = parse(get(testapp, "UsagePoint?max-results=2&start-index=3", custodian_token).body)
    assert len(self_links(second)) == 1
    assert links(second, "next") == []
    assert [href.rsplit("?", 1)[1] for href in links(second, "previous")] == ["max-results=2&start-index=1"]
    assert set(self_links(first)).isdisjoint(self_links(second))


def test_a_page_exactly_full_has_no_next_link(testapp, tree, bob_tree, custodian_token):
    root = parse(get(testapp, "UsagePoint?max-results=3", custodian_token).body)
    assert len(self_links(root)) == 3
    assert links(root, "next") == []


def test_updated_filters_select_by_the_atom_date(testapp, db, tree, bob_tree, custodian_token):
    point = db.get(UsagePoint, bob_tree.usage_points[0])
    point.updated = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    db.flush()
    root = parse(get(testapp, "UsagePoint?updated-min=2025-01-01T00:00:00Z", custodian_token).body)
    assert [href.rsplit("/", 1)[1] for href in self_links(root)] == [str(bob_tree.usage_points[0])]
    older = parse(get(testapp, "UsagePoint?updated-max=2025-01-01T00:00:00Z", custodian_token).body)
    assert len(self_links(older)) == 2


def test_published_filters_select_interval_blocks_by_interval(testapp, tree, bob_tree, custodian_token):
    root = parse(get(testapp, "IntervalBlock?published-min=2024-01-02T00:00:00Z", custodian_token).body)
    starts = sorted(
        int(text) for text in (e.findtext(f"{ESPI}interval/{ESPI}start") for e in root.iter(f"{ESPI}IntervalBlock"))
    )
    assert starts == [START + DAY, START + 2 * DAY]


def test_bad_parameters_are_400(testapp, tree, custodian_token):
    get(testapp, "UsagePoint?max-results=ten", custodian_token, status=400)
    get(testapp, f"UsagePoint/{tree.usage_points[0]}/MeterReading?start-index=-1", custodian_token, status=400)


def test_conditional_get_answers_304(testapp, tree, custodian_token):
    first = get(testapp, "IntervalBlock", custodian_token)
    again = get(testapp, "IntervalBlock", custodian_token, status=304, **{"If-None-Match": first.headers["ETag"]})
    assert again.body == b""


def test_root_feeds_are_gzipped_when_asked(raw_get, tree, custodian_token):
    response = raw_get(f"{BASE}/IntervalBlock", {**bearer(custodian_token), "Accept-Encoding": "gzip"})
    assert response.status_int == 200 and response.headers["Content-Encoding"] == "gzip"
    assert entry_kinds(parse(gzip.decompress(response.body))).count("IntervalBlock") == 4


def test_authorization_root_lists_every_application_and_never_a_token(
    testapp, db, tree, customer_token, client_token, custodian_token
):
    consent = customer_token()
    body = get(testapp, "Authorization", custodian_token).body
    listed = {int(href.rsplit("/", 1)[1]) for href in self_links(parse(body))}
    assert listed == set(db.scalars(select(Authorization.id)))
    for secret in (consent.token, consent.refresh_token, client_token, custodian_token):
        assert secret.encode() not in body


def test_a_client_token_still_lists_its_own_authorizations_only(
    testapp, db, tree, customer_token, client_token, custodian_token, app_client
):
    customer_token()
    root = parse(get(testapp, "Authorization", client_token).body)
    listed = {int(href.rsplit("/", 1)[1]) for href in self_links(root)}
    own = set(db.scalars(select(Authorization.id).where(Authorization.application_id == app_client.application.id)))
    custodians = set(db.scalars(select(Authorization.id).where(Authorization.kind == "custodian")))
    assert listed and listed <= own
    assert custodians and custodians.isdisjoint(listed)


def test_the_custodian_reads_any_authorization_but_cannot_change_it(testapp, tree, customer_token, custodian_token):
    consent = customer_token()
    root = parse(get(testapp, f"Authorization/{consent.authorization_id}", custodian_token).body)
    assert root.findtext(f".//{ESPI}status") == "1"
    testapp.delete(f"{BASE}/Authorization/{consent.authorization_id}", headers=bearer(custodian_token), status=403)
    testapp.get(consent.batch(), headers=consent.headers, status=200)


def test_application_information_root_never_shows_a_secret(testapp, db, app_client, custodian_token):
    body = get(testapp, "ApplicationInformation", custodian_token).body
    root = parse(body)
    ids = {int(href.rsplit("/", 1)[1]) for href in self_links(root)}
    assert app_client.application.id in ids
    for secret in (app_client.client_secret, app_client.registration_access_token):
        assert secret.encode() not in body
    for digest in db.scalars(select(ApplicationInformation.client_secret_digest)):
        assert digest is None or digest.encode() not in body
    assert {e.text for e in root.iter(f"{ESPI}client_secret")} == {None}
    assert {e.text for e in root.iter(f"{ESPI}registration_access_token")} == {None}


def test_the_custodian_reads_one_registration_the_registration_token_still_manages_its_own(
    testapp, app_client, custodian_token
):
    path = f"ApplicationInformation/{app_client.application.id}"
    by_custodian = parse(get(testapp, path, custodian_token).body)
    assert by_custodian.findtext(f".//{ESPI}client_id") == app_client.client_id
    get(testapp, path, app_client.registration_access_token)
    testapp.delete(f"{BASE}/{path}", headers=bearer(custodian_token), status=403)


def test_another_custodian_client_reads_the_same_roots(testapp, db, services, tree, custodian_token):
    from gateway.storage.models import ClientRole

    second = make_client(
        db, services.settings, services.digester, name="Utility 2", roles=(ClientRole.CUSTODIAN_ADMIN,)
    )
    token = testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(second.client_id, second.client_secret)},
    ).json["access_token"]
    assert self_links(parse(get(testapp, "UsagePoint", token).body)) == self_links(
        parse(get(testapp, "UsagePoint", custodian_token).body)
    )


def test_the_custodians_own_clients_are_no_application_information(testapp, db, services, app_client, custodian_token):
    """ESPI ApplicationInformation describes third parties; the operator, upload and self-access clients are managed
    with `gateway client` (and, with one ESPI grant type each, could not be written as valid ApplicationInformation)."""
    from gateway.storage.models import ClientRole

    uploader = make_client(
        db,
        services.settings,
        services.digester,
        name="Meter loader",
        roles=(ClientRole.UPLOAD,),
        grant_types=("client_credentials",),
    )
    ids = {
        int(href.rsplit("/", 1)[1])
        for href in self_links(parse(get(testapp, "ApplicationInformation", custodian_token).body))
    }
    assert app_client.application.id in ids and uploader.application.id not in ids
    path = f"{BASE}/ApplicationInformation/{uploader.application.id}"
    by_custodian = testapp.get(path, headers=bearer(custodian_token), status=404)
    assert f"no ApplicationInformation {uploader.application.id}" in by_custodian.text
    own = testapp.get(path, headers=bearer(uploader.registration_access_token), status=404)
    assert "one of the custodian's own clients" in own.text
