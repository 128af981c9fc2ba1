"""Every link of a Download My Data export resolves (RFC 4287 §4.2.7.2; ESPI-NOTES §2, §9).

``Batch/RetailCustomer/{c}/UsagePoint`` writes its entries' ``self``, ``up`` and ``related`` links under
``RetailCustomer/{c}/UsagePoint/…``; those routes serve the export's tokens (custodian, upload) with the export's
grant: every usage point of customer ``{c}``, and 404 for anything of another customer.
"""

from __future__ import annotations

import datetime as dt
import gzip

import pytest
import webob
from lxml import etree

from gateway.storage.models import ClientRole
from tests.conftest import BASE_URL
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client
from tests.functional.resources.conftest import ATOM, BASE, DAY, bearer, entry_kinds, links, parse

FOLLOWED = ("self", "up", "related")

TREE_ROUTES = [
    "",
    "/{u}",
    "/{u}/MeterReading",
    "/{u}/MeterReading/{m}",
    "/{u}/MeterReading/{m}/IntervalBlock",
    "/{u}/MeterReading/{m}/IntervalBlock/{b}",
    "/{u}/UsageSummary",
    "/{u}/UsageSummary/{us}",
    "/{u}/ElectricPowerUsageSummary",
    "/{u}/ElectricPowerUsageSummary/{us}",
    "/{u}/ElectricPowerQualitySummary",
    "/{u}/ElectricPowerQualitySummary/{pq}",
]
"""Below ``RetailCustomer/{c}/UsagePoint``."""


@pytest.fixture
def upload_token(testapp, db, services) -> str:
    uploader = make_client(db, services.settings, services.digester, name="Uploader", roles=(ClientRole.UPLOAD,))
    return testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(uploader.client_id, uploader.client_secret)},
    ).json["access_token"]


def export(customer_id: int) -> str:
    return f"{BASE}/Batch/RetailCustomer/{customer_id}/UsagePoint"


def route(customer_id: int, template: str, tree) -> str:
    rest = template.format(
        u=tree.usage_points[0], m=tree.meter_reading, b=tree.blocks[0], us=tree.usage_summary, pq=tree.power_quality
    )
    return f"{BASE}/RetailCustomer/{customer_id}/UsagePoint{rest}"


def hrefs(root: etree._Element) -> list[str]:
    """The ``self``/``up``/``related`` links of a document (feed and entries), as paths."""
    found = [link.get("href") for link in root.iter(f"{ATOM}link") if link.get("rel") in FOLLOWED]
    assert all(href.startswith(BASE_URL) for href in found), found
    return [href.removeprefix(BASE_URL) for href in found]


def follow(testapp, valid, token: str, start: str) -> dict[str, etree._Element]:
    """``start`` and every link in it, then every link of those documents (one level): each must be 200 and valid."""
    documents: dict[str, etree._Element] = {}
    first = testapp.get(start, headers=bearer(token), status=200)
    level = hrefs(valid(first.body))
    for depth in range(2):
        following: list[str] = []
        for path in level:
            if path in documents or path == start:
                continue
            response = testapp.get(path, headers=bearer(token), expect_errors=True)
            assert response.status_int == 200, (path, response.status, response.text)
            assert response.content_type == "application/atom+xml", path
            documents[path] = valid(response.body)
            if depth == 0:
                following.extend(hrefs(documents[path]))
        level = following
    return documents


def test_every_link_of_the_export_and_of_what_it_links_to_resolves(testapp, tree, bob_tree, custodian_token, valid):
    c = tree.customer.id
    documents = follow(testapp, valid, custodian_token, export(c))
    u, m = tree.usage_points[0], tree.meter_reading
    point = f"{BASE}/RetailCustomer/{c}/UsagePoint"
    for expected in (
        point,
        f"{point}/{u}",
        f"{point}/{tree.usage_points[1]}",
        f"{point}/{u}/MeterReading",
        f"{point}/{u}/MeterReading/{m}",
        f"{point}/{u}/MeterReading/{m}/IntervalBlock",
        *(f"{point}/{u}/MeterReading/{m}/IntervalBlock/{b}" for b in tree.blocks),
        f"{point}/{u}/UsageSummary",
        f"{point}/{u}/UsageSummary/{tree.usage_summary}",
        f"{point}/{u}/ElectricPowerQualitySummary",
        f"{point}/{u}/ElectricPowerQualitySummary/{tree.power_quality}",
        f"{BASE}/ReadingType/{tree.reading_type}",
        f"{BASE}/LocalTimeParameters/{tree.local_time_parameters}",
    ):
        assert expected in documents, expected
    # Nothing of the other customer is linked, and every linked usage tree is the customer's own.
    assert not any(f"/UsagePoint/{bob}" in path for path in documents for bob in bob_tree.usage_points)
    shared = (f"{BASE}/ReadingType", f"{BASE}/LocalTimeParameters")  # reference data and its root collections
    assert all(path.startswith((point, *shared)) for path in documents), sorted(documents)


def test_the_customer_routes_hold_the_customers_usage_points_and_tree(testapp, tree, bob_tree, custodian_token, valid):
    c = tree.customer.id
    collection = valid(testapp.get(route(c, "", tree), headers=bearer(custodian_token)).body)
    assert entry_kinds(collection) == ["UsagePoint", "UsagePoint"]
    assert links(collection, "self") == [f"{BASE_URL}{BASE}/RetailCustomer/{c}/UsagePoint"]
    blocks = valid(
        testapp.get(route(c, "/{u}/MeterReading/{m}/IntervalBlock", tree), headers=bearer(custodian_token)).body
    )
    assert entry_kinds(blocks) == ["IntervalBlock"] * len(tree.blocks)
    entry = blocks.find(f"{ATOM}entry")
    own = {link.get("rel"): link.get("href") for link in entry.findall(f"{ATOM}link") if link.get("rel") != "related"}
    assert own["self"] == f"{BASE_URL}{route(c, '/{u}/MeterReading/{m}/IntervalBlock', tree)}/{tree.blocks[0]}"
    assert own["up"] == f"{BASE_URL}{route(c, '/{u}/MeterReading/{m}/IntervalBlock', tree)}"


def test_the_upload_token_follows_the_exports_usage_tree(testapp, tree, upload_token, valid):
    c = tree.customer.id
    for template in TREE_ROUTES:
        valid(testapp.get(route(c, template, tree), headers=bearer(upload_token), status=200).body)


def test_the_upload_token_follows_every_link_of_the_export_too(testapp, tree, upload_token, valid):
    """The export links to shared ReadingType and LocalTimeParameters entries: readable with the export's token.

    Their entries' ``up`` links lead to the root collections, which stay the custodian's (403 here, not followed).
    """
    c = tree.customer.id
    export_body = valid(testapp.get(export(c), headers=bearer(upload_token), status=200).body)
    roots = {f"{BASE}/ReadingType", f"{BASE}/LocalTimeParameters"}
    linked = set(hrefs(export_body)) - roots
    shared = {f"{BASE}/ReadingType/{tree.reading_type}", f"{BASE}/LocalTimeParameters/{tree.local_time_parameters}"}
    assert shared <= linked
    for path in sorted(linked):
        valid(testapp.get(path, headers=bearer(upload_token), status=200).body)
    response = testapp.get(f"{BASE}/ReadingType", headers=bearer(upload_token), status=403)
    assert "not available to an upload token" in response.text


def test_a_usage_point_not_of_the_customer_is_404_naming_the_customer(testapp, tree, bob_tree, custodian_token):
    c = tree.customer.id
    path = f"{BASE}/RetailCustomer/{c}/UsagePoint/{bob_tree.usage_points[0]}"
    response = testapp.get(path, headers=bearer(custodian_token), status=404)
    assert f"no UsagePoint {bob_tree.usage_points[0]} of RetailCustomer {c}" in response.text


@pytest.mark.parametrize("template", TREE_ROUTES[1:])
def test_another_customers_usage_tree_under_c_is_404(testapp, tree, bob_tree, custodian_token, template):
    response = testapp.get(route(tree.customer.id, template, bob_tree), headers=bearer(custodian_token), status=404)
    assert "UsagePoint" in response.text or "MeterReading" in response.text


@pytest.mark.parametrize("template", ["", "/{u}", "/{u}/MeterReading/{m}/IntervalBlock"])
def test_an_unknown_customer_is_404(testapp, tree, custodian_token, template):
    response = testapp.get(route(tree.customer.id + 1000, template, tree), headers=bearer(custodian_token), status=404)
    assert "RetailCustomer" in response.text


@pytest.mark.parametrize("template", ["", "/{u}", "/{u}/MeterReading/{m}/IntervalBlock/{b}", "/{u}/UsageSummary"])
@pytest.mark.parametrize("kind", ["customer", "client", "registration"])
def test_other_token_kinds_are_403(testapp, tree, customer_token, client_token, app_client, template, kind):
    tokens = {
        "customer": lambda: customer_token().token,
        "client": lambda: client_token,
        "registration": lambda: app_client.registration_access_token,
    }
    testapp.get(route(tree.customer.id, template, tree), headers=bearer(tokens[kind]()), status=403)


@pytest.mark.parametrize("template", ["", "/{u}", "/{u}/MeterReading/{m}"])
@pytest.mark.parametrize("credentials", [None, "not-a-token"])
def test_no_or_a_bad_token_is_401(testapp, tree, template, credentials):
    headers = {} if credentials is None else bearer(credentials)
    response = testapp.get(route(tree.customer.id, template, tree), headers=headers, status=401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_usage_points_are_paged_and_the_page_links_resolve(testapp, tree, custodian_token, valid):
    path = route(tree.customer.id, "", tree)
    first = valid(testapp.get(f"{path}?max-results=1", headers=bearer(custodian_token)).body)
    assert entry_kinds(first) == ["UsagePoint"]
    (following,) = links(first, "next")
    second = valid(testapp.get(following.removeprefix(BASE_URL), headers=bearer(custodian_token)).body)
    assert entry_kinds(second) == ["UsagePoint"]
    assert links(second, "next") == []
    assert links(second, "previous") and not links(first, "previous")


def test_bad_parameters_are_400(testapp, tree, custodian_token):
    testapp.get(f"{route(tree.customer.id, '', tree)}?max-results=ten", headers=bearer(custodian_token), status=400)
    path = route(tree.customer.id, "/{u}/MeterReading/{m}/IntervalBlock", tree)
    testapp.get(f"{path}?published-min=yesterday", headers=bearer(custodian_token), status=400)


def test_interval_blocks_honour_published_filters(testapp, tree, custodian_token):
    path = route(tree.customer.id, "/{u}/MeterReading/{m}/IntervalBlock", tree)
    every = parse(testapp.get(path, headers=bearer(custodian_token)).body)
    start = min(int(node.text) for node in every.iter("{http://naesb.org/espi}start"))
    moment = dt.datetime.fromtimestamp(start + DAY, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    narrowed = parse(testapp.get(f"{path}?published-max={moment}", headers=bearer(custodian_token)).body)
    assert 0 < len(entry_kinds(narrowed)) < len(entry_kinds(every))


def test_conditional_get_answers_304(testapp, tree, custodian_token):
    path = route(tree.customer.id, "/{u}/MeterReading/{m}/IntervalBlock", tree)
    first = testapp.get(path, headers=bearer(custodian_token))
    again = testapp.get(path, headers={**bearer(custodian_token), "If-None-Match": first.headers["ETag"]}, status=304)
    assert again.body == b""


def test_feeds_are_gzipped_when_asked(app, tree, custodian_token):
    request = webob.Request.blank(
        route(tree.customer.id, "/{u}/MeterReading/{m}/IntervalBlock", tree),
        headers={**bearer(custodian_token), "Accept-Encoding": "gzip"},
        environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000"},
    )
    response = request.get_response(app)
    assert response.status_int == 200 and response.headers["Content-Encoding"] == "gzip"
    assert entry_kinds(parse(gzip.decompress(response.body))) == ["IntervalBlock"] * len(tree.blocks)
