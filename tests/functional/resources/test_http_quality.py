"""HTTP quality of the feeds: gzip (RFC 9110 §8.4), validators and 304 (RFC 9110 §13), caching (RFC 9111),
correlation ids, error bodies, per-client rate limits with Retry-After (RFC 6585 §4)."""

from __future__ import annotations

import dataclasses
import gzip

import pytest
import webob

from gateway.app import create_app
from tests.functional.resources.conftest import BASE, CLIENT_ENVIRON, entry_kinds
from tests.support.atom import ValidatingTestApp, assert_valid_atom, parse

# An Atom feed that is well-formed but invalid: an entry needs an id, a title and an updated date (RFC 4287 §4.1.2).
INVALID_FEED = b'<feed xmlns="http://www.w3.org/2005/Atom"><entry/></feed>'


def serve(body: bytes, **headers: str):
    """A WSGI app answering every request with ``body`` as application/atom+xml."""

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/atom+xml"), *headers.items()])
        return [body]

    return app


def test_the_testapp_refuses_an_invalid_atom_document_naming_the_request(atom_schema_versions):
    testapp = ValidatingTestApp(serve(INVALID_FEED), schema_versions=atom_schema_versions)
    with pytest.raises(
        AssertionError, match=r"GET /Subscription/1\?depth=1 .*invalid against the 'ours' schemas: line 1"
    ):
        testapp.get("/Subscription/1?depth=1")


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_atom_bodies_are_checked_as_the_client_reads_them(atom_schema_versions, encoding):
    body = gzip.compress(INVALID_FEED) if encoding == "gzip" else INVALID_FEED
    request = webob.Request.blank("/feed")
    response = request.get_response(serve(body, **{"Content-Encoding": encoding}))
    with pytest.raises(AssertionError, match="invalid against the 'ours' schemas"):
        assert_valid_atom(request, response, atom_schema_versions)


def test_gzip_when_asked(raw_get, testapp, tree, customer_token):
    token = customer_token()
    plain = testapp.get(token.batch(), headers=token.headers).body
    response = raw_get(token.batch(), {**token.headers, "Accept-Encoding": "br;q=1, gzip;q=0.8"})
    assert response.status_int == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert gzip.decompress(response.body) == plain  # and raw_get has schema-checked the decompressed feed


@pytest.mark.parametrize("header", [None, "identity", "gzip;q=0", "br"])
def test_no_gzip_otherwise(raw_get, tree, customer_token, header):
    token = customer_token()
    headers = dict(token.headers)
    if header is not None:
        headers["Accept-Encoding"] = header
    response = raw_get(token.batch(), headers)
    assert "Content-Encoding" not in response.headers


def test_cache_control_is_private(testapp, tree, customer_token):
    token = customer_token()
    response = testapp.get(token.batch(), headers=token.headers)
    assert "private" in response.headers["Cache-Control"] and "no-store" not in response.headers["Cache-Control"]
    assert "Authorization" in response.headers["Vary"]


@pytest.mark.parametrize("rest", ["", "/UsagePoint", "/UsagePoint/{u}"])
def test_etag_then_304(testapp, tree, customer_token, rest):
    token = customer_token()
    path = (token.path if rest else token.batch)(rest.format(u=tree.usage_points[0]))
    first = testapp.get(path, headers=token.headers)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    second = testapp.get(path, headers={**token.headers, "If-None-Match": etag}, status=304)
    assert second.body == b"" and second.headers["ETag"] == etag


def test_etag_strong_form_and_lists_match_weakly(testapp, tree, customer_token):
    token = customer_token()
    etag = testapp.get(token.batch(), headers=token.headers).headers["ETag"]
    testapp.get(
        token.batch(), headers={**token.headers, "If-None-Match": f'"x", {etag.removeprefix("W/")}'}, status=304
    )


def test_etag_differs_with_query_and_data(testapp, db, tree, customer_token):
    token = customer_token()
    etag = testapp.get(token.batch(), headers=token.headers).headers["ETag"]
    assert testapp.get(token.batch(), {"depth": "1"}, headers=token.headers).headers["ETag"] != etag
    import datetime as dt

    from gateway.storage.models import IntervalBlock

    db.get(IntervalBlock, tree.blocks[0]).updated = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    db.flush()
    testapp.get(token.batch(), headers={**token.headers, "If-None-Match": etag}, status=200)


def test_if_modified_since(testapp, tree, customer_token):
    token = customer_token()
    last_modified = testapp.get(token.batch(), headers=token.headers).headers["Last-Modified"]
    assert last_modified == "Thu, 01 Feb 2024 00:00:00 GMT"
    testapp.get(token.batch(), headers={**token.headers, "If-Modified-Since": last_modified}, status=304)
    earlier = "Wed, 31 Jan 2024 00:00:00 GMT"
    testapp.get(token.batch(), headers={**token.headers, "If-Modified-Since": earlier}, status=200)


def test_if_none_match_wins_over_if_modified_since(testapp, tree, customer_token):
    token = customer_token()
    last_modified = testapp.get(token.batch(), headers=token.headers).headers["Last-Modified"]
    headers = {**token.headers, "If-Modified-Since": last_modified, "If-None-Match": '"other"'}
    testapp.get(token.batch(), headers=headers, status=200)


def test_revoked_token_gets_401_not_304(testapp, db, tree, customer_token):
    from gateway.storage.models import Authorization

    token = customer_token()
    etag = testapp.get(token.batch(), headers=token.headers).headers["ETag"]
    db.get(Authorization, token.authorization_id).status = 0
    db.flush()
    testapp.get(token.batch(), headers={**token.headers, "If-None-Match": etag}, status=401)


def test_request_id_is_echoed_or_generated(testapp, tree, customer_token):
    token = customer_token()
    echoed = testapp.get(token.batch(), headers={**token.headers, "X-Request-Id": "abc-123"})
    assert echoed.headers["X-Request-Id"] == "abc-123"
    assert len(testapp.get(token.batch(), headers=token.headers).headers["X-Request-Id"]) >= 16


def test_error_body_json_by_default_and_xml_on_request(testapp, tree, customer_token):
    token = customer_token()
    body = testapp.get(token.batch(), {"depth": "x"}, headers={**token.headers, "X-Request-Id": "r1"}, status=400).json
    assert body["error"] == "bad_request" and "depth" in body["description"] and body["request_id"] == "r1"
    xml = testapp.get(
        token.batch(), {"depth": "x"}, headers={**token.headers, "Accept": "application/atom+xml"}, status=400
    )
    assert xml.content_type == "application/xml" and b"<code>bad_request</code>" in xml.body


@pytest.fixture
def limited_app(services, settings, atom_schema_versions):
    limited = settings.replace(rate_limit_per_second=0.001, rate_limit_burst=2)
    limited_services = dataclasses.replace(services, settings=limited)
    return ValidatingTestApp(
        create_app(limited, services=limited_services),
        schema_versions=atom_schema_versions,
        extra_environ=dict(CLIENT_ENVIRON),
    )


def test_rate_limit_is_429_with_retry_after(limited_app, tree, customer_token):
    token = customer_token()
    limited_app.get(token.batch(), headers=token.headers, status=200)
    limited_app.get(token.batch(), headers=token.headers, status=200)
    response = limited_app.get(token.batch(), headers=token.headers, status=429)
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json["error"] == "too_many_requests"


def test_rate_limit_is_per_client(limited_app, db, services, tree, customer_token):
    from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client

    token = customer_token()
    for _ in range(2):
        limited_app.get(token.batch(), headers=token.headers)
    limited_app.get(token.batch(), headers=token.headers, status=429)
    other = make_client(db, services.settings, services.digester, name="Other")
    other_token = limited_app.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(other.client_id, other.client_secret)},
    ).json["access_token"]
    limited_app.get(f"{BASE}/ReadServiceStatus", headers={"Authorization": f"Bearer {other_token}"}, status=200)


def test_streamed_feed_is_whole(testapp, db, alice, customer_token):
    """A year of 15-minute data, daily blocks: every reading arrives (the session outlives the stream)."""
    from tests.functional.resources.conftest import build_tree

    tree = build_tree(db, alice, days=40)
    token = customer_token()
    root = parse(testapp.get(token.batch(), headers=token.headers).body)
    assert entry_kinds(root).count("IntervalBlock") == 40
    assert len(list(root.iter("{http://naesb.org/espi}IntervalReading"))) == 40 * 96
    assert tree.blocks
