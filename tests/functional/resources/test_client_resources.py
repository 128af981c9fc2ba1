"""Authorization, ApplicationInformation and ReadServiceStatus: the §3 matrix and what each method does."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.storage.consent import Consent, ConsentEvent
from gateway.storage.models import ApplicationInformation
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client
from tests.functional.resources.conftest import ATOM, BASE, ESPI, bearer, entry_kinds, parse

ENTRY = '<?xml version="1.0"?><entry xmlns="http://www.w3.org/2005/Atom"><content>{}</content></entry>'


def app_info_body(**children: str | list[str]) -> str:
    parts = []
    for name, value in children.items():
        for item in value if isinstance(value, list) else [value]:
            parts.append(f"<{name}>{item}</{name}>")
    return ENTRY.format(
        f'<ApplicationInformation xmlns="http://naesb.org/espi">{"".join(parts)}</ApplicationInformation>'
    )


def authorization_body(status: int, scope: str | None = None) -> str:
    scope_xml = f"<scope>{scope}</scope>" if scope else ""
    return f'<Authorization xmlns="http://naesb.org/espi"><status>{status}</status>{scope_xml}</Authorization>'


@pytest.fixture
def tokens(testapp, tree, customer_token, client_token, app_client, custodian_token):
    customer = customer_token()
    return {
        "none": None,
        "customer": customer.token,
        "client": client_token,
        "registration": app_client.registration_access_token,
        "custodian": custodian_token,
        "_customer": customer,
    }


MATRIX = [
    # (path template, the kinds that read it: the custodian reads every record, see test_root_collections.py)
    ("/Authorization", {"client", "custodian"}),
    ("/Authorization/{a}", {"client", "custodian"}),
    ("/ApplicationInformation/{app}", {"registration", "custodian"}),
    ("/ReadServiceStatus", {"client"}),
]


@pytest.mark.parametrize(("template", "allowed"), MATRIX)
@pytest.mark.parametrize("kind", ["none", "customer", "client", "registration", "custodian"])
def test_matrix(testapp, tokens, app_client, valid, template, allowed, kind):
    path = BASE + template.format(a=tokens["_customer"].authorization_id, app=app_client.application.id)
    headers = bearer(tokens[kind]) if tokens[kind] else {}
    expected = 200 if kind in allowed else (401 if kind == "none" else 403)
    response = testapp.get(path, headers=headers, status=expected)
    if expected == 200:
        valid(response.body)


def test_authorization_feed_lists_own_only(testapp, db, services, tokens, valid):
    root = valid(testapp.get(f"{BASE}/Authorization", headers=bearer(tokens["client"])).body)
    ids = [
        int(link.get("href").rsplit("/", 1)[1])
        for link in root.iter(f"{ATOM}link")
        if link.get("rel") == "self" and "/Authorization/" in link.get("href")
    ]
    assert tokens["_customer"].authorization_id in ids
    other = make_client(db, services.settings, services.digester, name="Other")
    other_token = testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(other.client_id, other.client_secret)},
    ).json["access_token"]
    other_root = parse(testapp.get(f"{BASE}/Authorization", headers=bearer(other_token)).body)
    assert (
        f"/Authorization/{tokens['_customer'].authorization_id}"
        not in testapp.get(f"{BASE}/Authorization", headers=bearer(other_token)).text
    )
    assert entry_kinds(other_root) == ["Authorization"]  # its own client access only
    testapp.get(f"{BASE}/Authorization/{tokens['_customer'].authorization_id}", headers=bearer(other_token), status=404)


def test_authorization_feed_pages(testapp, tokens):
    root = parse(testapp.get(f"{BASE}/Authorization", {"max-results": "1"}, headers=bearer(tokens["client"])).body)
    assert len(entry_kinds(root)) == 1
    assert any(link.get("rel") == "next" for link in root.findall(f"{ATOM}link"))


def test_authorization_feed_bad_parameter_is_400(testapp, tokens):
    response = testapp.get(f"{BASE}/Authorization", {"start-index": "x"}, headers=bearer(tokens["client"]), status=400)
    assert "start-index" in response.json["description"]


def test_delete_authorization_revokes_the_consent(testapp, db, tokens):
    customer = tokens["_customer"]
    testapp.delete(f"{BASE}/Authorization/{customer.authorization_id}", headers=bearer(tokens["client"]), status=204)
    testapp.get(customer.batch(), headers=customer.headers, status=401)
    consent = db.scalar(select(Consent).where(Consent.authorization_id == customer.authorization_id))
    db.refresh(consent)
    assert consent.status == "revoked"
    kinds = [e.kind for e in db.scalars(select(ConsentEvent).where(ConsentEvent.consent_id == consent.id))]
    assert any("app" in kind for kind in kinds)
    # Idempotent (RFC 9110 §9.2.2).
    testapp.delete(f"{BASE}/Authorization/{customer.authorization_id}", headers=bearer(tokens["client"]), status=204)


def test_delete_with_customer_token_is_403(testapp, tokens):
    customer = tokens["_customer"]
    testapp.delete(f"{BASE}/Authorization/{customer.authorization_id}", headers=customer.headers, status=403)
    testapp.get(customer.batch(), headers=customer.headers, status=200)


def test_put_status_0_revokes(testapp, tokens, valid):
    customer = tokens["_customer"]
    response = testapp.put(
        f"{BASE}/Authorization/{customer.authorization_id}",
        authorization_body(0),
        headers={**bearer(tokens["client"]), "Content-Type": "application/atom+xml"},
    )
    root = valid(response.body)
    assert root.find(f"{ATOM}content/{ESPI}Authorization/{ESPI}status").text == "0"
    testapp.get(customer.batch(), headers=customer.headers, status=401)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (authorization_body(1, "FB=1_3_4_5_12_13_14_15_16_17_18"), 409),
        (authorization_body(2), 409),
        (authorization_body(7), 400),
        ("<notxml", 400),
        ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', 400),
        ("<Other xmlns='http://naesb.org/espi'/>", 400),
    ],
)
def test_put_other_changes_are_refused(testapp, tokens, body, status):
    customer = tokens["_customer"]
    testapp.put(
        f"{BASE}/Authorization/{customer.authorization_id}",
        body,
        headers={**bearer(tokens["client"]), "Content-Type": "application/atom+xml"},
        status=status,
    )
    testapp.get(customer.batch(), headers=customer.headers, status=200)


def test_registration_token_of_another_app_is_403(testapp, db, services, tokens, app_client):
    other = make_client(db, services.settings, services.digester, name="Other")
    testapp.get(
        f"{BASE}/ApplicationInformation/{app_client.application.id}",
        headers=bearer(other.registration_access_token),
        status=403,
    )
    testapp.get(f"{BASE}/ApplicationInformation/999999", headers=bearer(other.registration_access_token), status=403)


def put_app(testapp, app_client, body, status=200):
    return testapp.put(
        f"{BASE}/ApplicationInformation/{app_client.application.id}",
        body,
        headers={**bearer(app_client.registration_access_token), "Content-Type": "application/atom+xml"},
        status=status,
    )


def test_put_application_information_changes_notify_and_redirect(testapp, db, app_client, valid):
    body = app_info_body(
        thirdPartyNotifyUri="https://app.example.com/notify",
        redirect_uri=["https://app.example.com/cb2", "http://127.0.0.1:9999/cb"],
        client_name="Renamed",
    )
    root = valid(put_app(testapp, app_client, body).body)
    info = root.find(f"{ATOM}content/{ESPI}ApplicationInformation")
    assert info.find(f"{ESPI}thirdPartyNotifyUri").text == "https://app.example.com/notify"
    assert [e.text for e in info.findall(f"{ESPI}redirect_uri")] == [
        "https://app.example.com/cb2",
        "http://127.0.0.1:9999/cb",
    ]
    application = db.get(ApplicationInformation, app_client.application.id)
    db.refresh(application)
    assert application.client_name == "Renamed"


@pytest.mark.parametrize(
    "children",
    [
        {"redirect_uri": "http://app.example.com/cb"},
        {"redirect_uri": "https://app.example.com/cb#frag"},
        {"redirect_uri": "https://user:pw@app.example.com/cb"},
        {"redirect_uri": "https://*.example.com/cb"},
        {"thirdPartyNotifyUri": "http://evil.example.com/notify"},
        {"thirdPartyNotifyUri": "ftp://app.example.com/notify"},
        {"scope": "FB=1_3_4_5_12_13_14_15_16_17_18_99"},
        {"scope": "not a scope"},
        {"client_name": ""},
        {"client_name": "x" * 300},
    ],
)
def test_put_application_information_validates(testapp, db, app_client, children):
    response = put_app(testapp, app_client, app_info_body(**children), status=400)
    assert response.json["error"] == "bad_request"
    application = db.get(ApplicationInformation, app_client.application.id)
    db.refresh(application)
    assert application.notify_uri is None


def test_put_scope_may_narrow(testapp, db, app_client):
    put_app(
        testapp, app_client, app_info_body(scope="FB=1_3_4;IntervalDuration=900;BlockDuration=daily;HistoryLength=13")
    )
    application = db.get(ApplicationInformation, app_client.application.id)
    db.refresh(application)
    assert application.scopes == ["FB=1_3_4;IntervalDuration=900;BlockDuration=daily;HistoryLength=13"]


def test_delete_application_information_deregisters(testapp, tokens, app_client):
    testapp.delete(
        f"{BASE}/ApplicationInformation/{app_client.application.id}",
        headers=bearer(app_client.registration_access_token),
        status=204,
    )
    testapp.get(f"{BASE}/ReadServiceStatus", headers=bearer(tokens["client"]), status=401)
    customer = tokens["_customer"]
    testapp.get(customer.batch(), headers=customer.headers, status=401)
