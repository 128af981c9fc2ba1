"""Every ESPI route against every wrong token: cross-tenant, token kinds swapped, revoked, expired, none (row 29, 30).

The routes are **enumerated at run time from the falcon router** of the app the server runs (built in-process on the
same settings), so a resource family added later is attacked without editing this file: a route whose template has
no rule in :data:`KIND_RULES` still gets the none/revoked/expired and cross-tenant checks, and is printed as lacking
a kind rule. ESPI-NOTES §3: 401 for a missing, bad, expired or revoked token; 403 for a valid token of the wrong kind
or for another subscription; 404 for ids outside what the token may see (no existence oracle).

Two customers, A and B, each with a full usage tree; every id placeholder of a route is filled with **B's** ids and
the route is called with **A's** token (id guessing); then every link of A's own feed is followed with B's token
(link following). A positive control (A's token on A's ids answers 200) keeps the matrix from passing vacuously.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import update

from gateway.app import create_app
from gateway.storage.models import ClientRole, OAuthToken, RetailCustomer
from tests.blackbox.conftest import LiveGateway
from tests.blackbox.test_checklist import client_token, get_code, redeem
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic
from tests.functional.resources.conftest import FULL_SCOPE, Tree, build_tree
from tests.support.atom import atom_problem, atom_schema_versions

RESOURCE_BASE = "/DataCustodian/espi/1_1/resource"
TIMEOUT = 10
KINDS = ("customer", "client", "registration", "custodian", "upload")

KIND_RULES: tuple[tuple[str, frozenset[str]], ...] = (
    (r"^/Batch/Subscription/", frozenset({"customer"})),
    (r"^/Subscription/", frozenset({"customer"})),
    # The items are linked from a Download My Data export, which the upload token may fetch too.
    (r"^/(ReadingType|LocalTimeParameters)/", frozenset({"customer", "custodian", "upload"})),
    # GET by the custodian reads every record (root collections); PUT/DELETE stay the owner's (403 for it).
    (r"^/Authorization", frozenset({"client", "custodian"})),
    (r"^/ApplicationInformation/", frozenset({"registration", "custodian"})),
    (r"^/(ReadingType|LocalTimeParameters|ApplicationInformation)$", frozenset({"custodian"})),
    (
        r"^/(UsagePoint|MeterReading|IntervalBlock|UsageSummary|ElectricPowerUsageSummary|ElectricPowerQualitySummary)"
        r"(/|$)",
        frozenset({"custodian"}),
    ),
    (r"^/ReadServiceStatus$", frozenset({"client"})),
    (r"^/Batch/RetailCustomer/", frozenset({"custodian", "upload"})),
    # Where a Download My Data export links to: the export's tokens.
    (r"^/RetailCustomer/", frozenset({"custodian", "upload"})),
    (r"^/Batch/Bulk/", frozenset({"client"})),
)
"""Which token kinds a route template (relative to the resource base) serves (ESPI-NOTES §3)."""

NO_DATA_IN_THE_WORLD = ("/Batch/Bulk/",)
"""Routes the positive control skips: the world has no bulk subscription (``BR=`` scope) to read."""


@dataclasses.dataclass(frozen=True)
class Route:
    template: str
    methods: tuple[str, ...]

    @property
    def relative(self) -> str:
        return self.template.removeprefix(RESOURCE_BASE)

    @property
    def kinds(self) -> frozenset[str] | None:
        for pattern, kinds in KIND_RULES:
            if re.search(pattern, self.relative):
                return kinds
        return None

    def fill(self, ids: dict[str, int]) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1).split(":")[0]
            if name == "summary_id":
                name = "power_quality" if "PowerQuality" in self.template else "usage_summary"
            return str(ids[name])

        return re.sub(r"\{([^}]+)\}", value, self.template)

    def __str__(self) -> str:
        return self.relative


def _walk(nodes: list[Any]) -> Iterator[Any]:
    for node in nodes:
        yield node
        yield from _walk(node.children)


def espi_routes(live: LiveGateway) -> list[Route]:
    """Every ESPI route the gateway mounts, from its falcon router (private attributes, stable across falcon 4.x)."""
    app = create_app(live.settings, services=live.services)
    routes = []
    for node in _walk(app._router._roots):
        if node.resource is None or not node.uri_template.startswith(RESOURCE_BASE):
            continue
        methods = tuple(
            sorted(
                method
                for method, responder in node.method_map.items()
                if method in ("GET", "POST", "PUT", "DELETE")
                and not getattr(responder, "__name__", "").startswith("method_not_allowed")
            )
        )
        routes.append(Route(node.uri_template, methods))
    return sorted(routes, key=lambda route: route.template)


@dataclasses.dataclass
class World:
    routes: list[Route]
    tokens: dict[str, str]
    """Kind -> a valid token of that kind (customer: customer A's)."""
    a_ids: dict[str, int]
    b_ids: dict[str, int]
    b_token: str
    b_markers: list[str]
    """Strings that only B's data contains (its usage point uuids, its Authorization's href): never shown to A."""


def _tree_ids(tree: Tree, subscription: int, authorization: int, application: int) -> dict[str, int]:
    return {
        "s": subscription,
        "u": tree.usage_points[0],
        "m": tree.meter_reading,
        "b": tree.blocks[0],
        "usage_summary": tree.usage_summary,
        "power_quality": tree.power_quality,
        "reading_type_id": tree.reading_type,
        "local_time_parameters_id": tree.local_time_parameters,
        "authorization_id": authorization,
        "application_id": application,
        "c": tree.customer.id,
        "bulk_id": 1,
        "bulkId": 1,
    }


def _customer_with_tree(live: LiveGateway) -> Tree:
    customer = live.customer(points=2)
    with live.services.sessions() as session:
        tree = build_tree(session, session.get(RetailCustomer, customer.id), days=1)
        session.commit()
        _ = list(tree.customer.usage_points)
        return tree


def _customer_token(live: LiveGateway, client: Any, tree: Tree) -> dict[str, Any]:
    code, verifier, _ = get_code(live, client, tree.customer, scope=FULL_SCOPE)
    response = redeem(live, client, code, verifier)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _kind_token(live: LiveGateway, role: str) -> tuple[str, str]:
    """A client_credentials token of a new client with ``role``, and that client's Basic credentials."""
    client = live.client(name=f"{role} client", roles=(role,), grant_types=("client_credentials",))
    credentials = basic(client.client_id, client.client_secret)
    response = requests.post(
        live.url("/oauth/token"),
        data={"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": credentials},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"]), credentials


@pytest.fixture(scope="module")
def world(live: LiveGateway) -> World:
    app_a = live.client(scopes=(FULL_SCOPE, CLIENT_SCOPE))
    app_b = live.client(scopes=(FULL_SCOPE, CLIENT_SCOPE))
    tree_a, tree_b = _customer_with_tree(live), _customer_with_tree(live)
    grant_a, grant_b = _customer_token(live, app_a, tree_a), _customer_token(live, app_b, tree_b)

    def number(uri: str) -> int:
        return int(uri.rstrip("/").rsplit("/", 1)[1])

    a_ids = _tree_ids(tree_a, number(grant_a["resourceURI"]), number(grant_a["authorizationURI"]), 0)
    b_ids = _tree_ids(tree_b, number(grant_b["resourceURI"]), number(grant_b["authorizationURI"]), 0)
    a_ids["application_id"] = _application_id(live, app_a.client_id)
    b_ids["application_id"] = _application_id(live, app_b.client_id)
    with live.services.sessions() as session:
        from gateway.storage.models import UsagePoint

        markers = [session.get(UsagePoint, point).uuid for point in tree_b.usage_points]
    return World(
        routes=espi_routes(live),
        tokens={
            "customer": grant_a["access_token"],
            "client": client_token(live, app_a),
            "registration": app_a.registration_access_token,
            "custodian": _kind_token(live, ClientRole.CUSTODIAN_ADMIN)[0],
            "upload": _kind_token(live, ClientRole.UPLOAD)[0],
        },
        a_ids=a_ids,
        b_ids=b_ids,
        b_token=grant_b["access_token"],
        b_markers=[str(marker) for marker in markers] + [f'/Authorization/{b_ids["authorization_id"]}"'],
    )


def _application_id(live: LiveGateway, client_id: str) -> int:
    from sqlalchemy import select

    from gateway.storage.models import ApplicationInformation

    with live.services.sessions() as session:
        return int(
            session.scalar(select(ApplicationInformation.id).where(ApplicationInformation.client_id == client_id))
        )


def call(live: LiveGateway, method: str, path: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method in ("POST", "PUT"):
        headers["Content-Type"] = "application/atom+xml"
    return requests.request(
        method, live.base_url + path, headers=headers, data=b"" if method in ("POST", "PUT") else None, timeout=TIMEOUT
    )


def _mounted(world: World) -> list[Route]:
    """The routes to attack. None found is a failure, never a skip: the ESPI resource API is mounted, so an empty
    list means the enumeration broke (it reads falcon's private router attributes) and every test would pass empty."""
    assert world.routes, (
        f"no route under {RESOURCE_BASE} found in the falcon router: the enumeration in espi_routes() is broken "
        "(falcon's private router attributes changed?) or the resource API is no longer mounted"
    )
    return world.routes


def test_route_matrix_enumerates_the_espi_routes(world: World) -> None:
    """The matrix found the routes it attacks, and says which have no kind rule (they get the generic checks)."""
    routes = _mounted(world)
    unruled = [str(route) for route in routes if route.kinds is None]
    print(f"{len(routes)} ESPI routes: " + ", ".join(f"{route} {'/'.join(route.methods)}" for route in routes))
    if unruled:
        print("no token-kind rule (kind swaps not checked): " + ", ".join(unruled))
    assert any(route.relative.startswith("/ReadServiceStatus") for route in routes)


def test_row_29_positive_control_each_kind_reads_its_own_routes(live: LiveGateway, world: World) -> None:
    """The right kind of token on its own ids answers 200 on every GET route (else the matrix proves nothing), and
    every Atom document the real server sends is valid against our schemas and the official ones."""
    failures = []
    versions = atom_schema_versions()
    for route in _mounted(world):
        if "GET" not in route.methods or route.kinds is None or route.relative.startswith(NO_DATA_IN_THE_WORLD):
            continue
        kind = sorted(route.kinds)[0]
        path = route.fill(world.a_ids)
        response = call(live, "GET", path, world.tokens[kind])
        if response.status_code != 200:
            failures.append(f"{route} with a {kind} token: {response.status_code}")
        elif problem := atom_problem(response.headers.get("Content-Type"), response.content, versions):
            failures.append(f"{route}: served Atom {problem}")
    assert not failures, "row 29 matrix positive control: " + "; ".join(failures)


def test_row_29_cross_tenant_by_id_guessing(live: LiveGateway, world: World) -> None:
    """A's tokens on every route filled with B's ids: 403/404, and nothing of B in the body.

    Customer A's token on every route; app A's client and registration tokens on the routes of their kind (app B's
    Authorization and ApplicationInformation ids). Custodian and upload tokens may see every customer by design.
    """
    failures = []
    for route in _mounted(world):
        kinds = {"customer"} | ((route.kinds or set()) & {"client", "registration"})
        for kind in sorted(kinds):
            for method in route.methods:
                response = call(live, method, route.fill(world.b_ids), world.tokens[kind])
                leaked = [marker for marker in world.b_markers if marker in response.text]
                own_collection = "{" not in route.template and kind in (route.kinds or set())
                refused = response.status_code in (401, 403, 404, 405) or (own_collection and response.ok)
                if not refused or leaked:
                    failures.append(
                        f"{method} {route} ({kind} token): {response.status_code}{' with B data' if leaked else ''}"
                    )
    assert not failures, "row 29 (least privilege) cross-tenant, A's token on B's ids: " + "; ".join(failures)


def test_row_29_cross_tenant_by_link_following(live: LiveGateway, world: World) -> None:
    """Every link in A's subscription feed, followed with B's token: never 200."""
    feed = call(live, "GET", f"{RESOURCE_BASE}/Batch/Subscription/{world.a_ids['s']}", world.tokens["customer"])
    # Any other answer (a 404 included) leaves no links to follow: the test fails rather than pass on nothing.
    assert feed.status_code == 200, f"A's own Batch/Subscription feed answered {feed.status_code}: {feed.text[:500]}"
    root = etree.fromstring(feed.content, etree.XMLParser(resolve_entities=False, no_network=True))
    hrefs = {link.get("href") for link in root.iter("{http://www.w3.org/2005/Atom}link")}
    hrefs = sorted(href for href in hrefs if href and href.startswith(live.base_url))
    assert hrefs, "A's feed has no links to follow"
    failures = []
    for href in hrefs:
        response = requests.get(href, headers={"Authorization": f"Bearer {world.b_token}"}, timeout=TIMEOUT)
        if response.status_code == 200 and "ReadingType" not in href and "LocalTimeParameters" not in href:
            failures.append(f"{href.removeprefix(live.base_url)}: 200")
    assert not failures, "row 29 (least privilege) cross-tenant, B's token following A's links: " + "; ".join(failures)


def test_row_29_client_token_against_every_customer_route(live: LiveGateway, world: World) -> None:
    """A client_credentials token never reads customer data: 403 on every customer route (ESPI-NOTES §3)."""
    failures = []
    for route in _mounted(world):
        if route.kinds is None or "customer" not in route.kinds or "client" in route.kinds:
            continue
        for method in route.methods:
            response = call(live, method, route.fill(world.a_ids), world.tokens["client"])
            if response.status_code != 403:
                failures.append(f"{method} {route}: {response.status_code}")
    assert not failures, "row 29 (client_credentials tokens never read customer data): " + "; ".join(failures)


def test_row_29_token_kinds_swapped_on_every_route(live: LiveGateway, world: World) -> None:
    """Every token kind a route does not serve gets 403 there (own ids, so only the kind is wrong)."""
    failures = []
    for route in _mounted(world):
        if route.kinds is None:
            continue
        for kind in sorted(set(KINDS) - route.kinds):
            for method in route.methods:
                response = call(live, method, route.fill(world.a_ids), world.tokens[kind])
                if response.status_code != 403:
                    failures.append(f"{method} {route} with a {kind} token: {response.status_code}")
    assert not failures, "row 29 (least privilege) token kind swapped: " + "; ".join(failures)


@pytest.fixture(scope="module")
def dead_tokens(live: LiveGateway, world: World) -> dict[str, dict[str, str]]:
    """For every kind, a revoked token and an expired one (fresh tokens, so the world's stay valid); and a customer
    access token superseded by a refresh (ESPI-NOTES §3, §4: the previous access token then answers 401)."""
    app = live.client(scopes=(FULL_SCOPE, CLIENT_SCOPE))
    app_basic = basic(app.client_id, app.client_secret)
    tree = _customer_with_tree(live)
    tokens: dict[str, dict[str, str]] = {"revoked": {}, "expired": {}}
    owners: dict[str, str] = {}
    for state, kinds in tokens.items():
        kinds["customer"] = _customer_token(live, app, tree)["access_token"]
        kinds["client"] = client_token(live, app)
        owners[kinds["customer"]] = owners[kinds["client"]] = app_basic
        for kind, role in (("custodian", ClientRole.CUSTODIAN_ADMIN), ("upload", ClientRole.UPLOAD)):
            kinds[kind], owners[kinds[kind]] = _kind_token(live, role)
    for value in tokens["revoked"].values():
        response = requests.post(
            live.url("/oauth/revoke"), data={"token": value}, headers={"Authorization": owners[value]}, timeout=TIMEOUT
        )
        assert response.status_code == 200
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    for value in tokens["expired"].values():
        live.execute(
            update(OAuthToken).where(OAuthToken.digest == live.services.digester.digest(value)).values(expires_at=past)
        )
    first = _customer_token(live, app, tree)
    rotated = requests.post(
        live.url("/oauth/token"),
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers={"Authorization": app_basic},
        timeout=TIMEOUT,
    )
    assert rotated.status_code == 200, rotated.text
    tokens["superseded"] = {"customer": first["access_token"]}
    return tokens


@pytest.mark.parametrize("state", ["revoked", "expired", "superseded", "none"])
def test_row_30_revoked_expired_and_missing_tokens_on_every_route(
    live: LiveGateway, world: World, dead_tokens, state
) -> None:
    """A revoked, expired, superseded or missing token gets 401 on every route and method (row 30)."""
    failures = []
    tokens = dead_tokens.get(state, {"none": ""})
    for route in _mounted(world):
        for kind, token in tokens.items():
            if route.kinds is not None and kind != "none" and kind not in route.kinds:
                continue  # a dead token of a kind the route does not serve: 401 or 403 both refuse
            for method in route.methods:
                response = call(live, method, route.fill(world.a_ids), token or None)
                if response.status_code != 401:
                    failures.append(f"{method} {route} ({state} {kind}): {response.status_code}")
    assert not failures, f"row 30 ({state} tokens must be refused with 401 everywhere): " + "; ".join(failures)
