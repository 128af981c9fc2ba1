"""Batch/RetailCustomer upload and export, and FB 39 push notifications delivered to a real HTTP listener on
127.0.0.1, with retries when it is down and failures visible to the operator (ESPI-NOTES §9)."""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from lxml import etree
from sqlalchemy import delete

from gateway.commands import notifications as notifications_command
from gateway.commands.output import run_handler
from gateway.config import Settings
from gateway.notifications import BATCH_LIST
from gateway.outbox.delivery import default_deliverers, deliver_due
from gateway.outbox.queue import enqueue
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.engine import session_scope
from gateway.storage.models import ApplicationInformation, Authorization, ClientRole, IntervalBlock
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client
from tests.functional.resources.conftest import BASE, ESPI, bearer, entry_kinds


class Listener:
    """An app's notify endpoint: records BatchList POSTs, answers ``status``."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.status = 200
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if listener.status == 200:
                    listener.bodies.append(body)
                self.send_response(listener.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    try:
        yield running
    finally:
        running.close()


def operator_token(testapp, db, services, role: str) -> str:
    operator = make_client(db, services.settings, services.digester, name=f"Utility {role}", roles=(role,))
    return testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(operator.client_id, operator.client_secret)},
    ).json["access_token"]


@pytest.fixture
def upload_token(testapp, db, services) -> str:
    return operator_token(testapp, db, services, ClientRole.UPLOAD)


def export_path(customer_id: int) -> str:
    return f"{BASE}/Batch/RetailCustomer/{customer_id}/UsagePoint"


def test_export_is_the_customers_whole_tree(testapp, tree, custodian_token, valid):
    root = valid(testapp.get(export_path(tree.customer.id), headers=bearer(custodian_token)).body)
    kinds = entry_kinds(root)
    assert kinds.count("UsagePoint") == 2 and kinds.count("MeterReading") == 2 and kinds.count("IntervalBlock") == 4
    assert f"/RetailCustomer/{tree.customer.id}/UsagePoint/" in etree.tostring(root).decode()


@pytest.mark.parametrize("kind", ["none", "customer", "client", "registration"])
def test_export_and_upload_refuse_other_tokens(testapp, tree, customer_token, client_token, app_client, kind):
    token = {
        "none": None,
        "customer": customer_token().token,
        "client": client_token,
        "registration": app_client.registration_access_token,
    }[kind]
    headers = bearer(token) if token else {}
    status = 401 if token is None else 403
    testapp.get(export_path(tree.customer.id), headers=headers, status=status)
    testapp.post(
        export_path(tree.customer.id),
        b"<feed/>",
        headers={**headers, "Content-Type": "application/atom+xml"},
        status=status,
    )


def test_export_of_unknown_customer_is_404(testapp, custodian_token):
    testapp.get(export_path(999999), headers=bearer(custodian_token), status=404)


def test_upload_refuses_unsafe_xml(testapp, tree, upload_token):
    body = b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY x "y">]><feed xmlns="http://www.w3.org/2005/Atom">&x;</feed>'
    testapp.post(
        export_path(tree.customer.id),
        body,
        headers={**bearer(upload_token), "Content-Type": "application/atom+xml"},
        status=400,
    )


def test_upload_needs_xml(testapp, tree, upload_token):
    testapp.post(
        export_path(tree.customer.id),
        b"{}",
        headers={**bearer(upload_token), "Content-Type": "application/json"},
        status=415,
    )


def upload_missing_day(testapp, db, tree, custodian_token, upload_token) -> dict:
    """Export the customer's data, lose day 2 in the database, upload the export: day 2 is new data again."""
    exported = testapp.get(export_path(tree.customer.id), headers=bearer(custodian_token)).body
    db.execute(delete(IntervalBlock).where(IntervalBlock.id == tree.blocks[2]))
    db.flush()
    db.expire_all()
    return testapp.post(
        export_path(tree.customer.id),
        exported,
        headers={**bearer(upload_token), "Content-Type": "application/atom+xml"},
    ).json


def test_upload_imports_and_notifies_the_app_over_http(
    testapp, db, services, tree, customer_token, custodian_token, upload_token, app_client, listener, valid
):
    db.get(ApplicationInformation, app_client.application.id).notify_uri = listener.url
    db.flush()
    token = customer_token()
    report = upload_missing_day(testapp, db, tree, custodian_token, upload_token)
    assert report["notifications_queued"] == 1
    assert report["import"]["interval_blocks"]["created"] == 1
    result = deliver_due(services.sessions, default_deliverers(services.settings))
    assert result.delivered >= 1
    # The consent's own grant notification (an Authorization URL) went to the same listener.
    (body,) = [body for body in listener.bodies if b"Batch/Subscription" in body]
    batch_list = valid(body)
    (url,) = [r.text for r in batch_list.findall(f"{ESPI}resources")]
    assert url == (
        f"http://127.0.0.1:8000{token.batch()}?published-min=2024-01-03T00%3A00%3A00Z&published-max=2024-01-04T00%3A00%3A00Z"
    )
    # The app follows the link with its token and gets exactly the new day.
    root = valid(testapp.get(url.removeprefix("http://127.0.0.1:8000"), headers=token.headers).body)
    assert entry_kinds(root).count("IntervalBlock") == 1


def test_idempotent_reupload_notifies_nobody(
    testapp, db, tree, customer_token, custodian_token, upload_token, app_client, listener
):
    db.get(ApplicationInformation, app_client.application.id).notify_uri = listener.url
    db.flush()
    customer_token()
    exported = testapp.get(export_path(tree.customer.id), headers=bearer(custodian_token)).body
    report = testapp.post(
        export_path(tree.customer.id),
        exported,
        headers={**bearer(upload_token), "Content-Type": "application/atom+xml"},
    ).json
    assert report["notifications_queued"] == 0


def test_revoked_consent_is_not_notified(
    testapp, db, tree, customer_token, client_token, custodian_token, upload_token, app_client, listener
):
    db.get(ApplicationInformation, app_client.application.id).notify_uri = listener.url
    db.flush()
    token = customer_token()
    testapp.delete(f"{BASE}/Authorization/{token.authorization_id}", headers=bearer(client_token), status=204)
    assert upload_missing_day(testapp, db, tree, custodian_token, upload_token)["notifications_queued"] == 0


def test_new_data_outside_the_consents_window_is_not_notified(
    testapp, db, tree, customer_token, custodian_token, upload_token, app_client, listener
):
    """The new day (2024-01-03) lies before the consent's publishedPeriod: its Batch would hold nothing for the app."""
    db.get(ApplicationInformation, app_client.application.id).notify_uri = listener.url
    db.flush()
    customer_token(window=(int(dt.datetime(2024, 1, 5, tzinfo=dt.UTC).timestamp()), None))
    assert upload_missing_day(testapp, db, tree, custodian_token, upload_token)["notifications_queued"] == 0


def test_new_data_of_a_commodity_the_consent_does_not_share_is_not_notified(
    testapp, db, tree, customer_token, custodian_token, upload_token, app_client, listener
):
    db.get(ApplicationInformation, app_client.application.id).notify_uri = listener.url
    db.flush()
    token = customer_token()
    # A consent for gas (FB 10) alone; the customer's meters are electricity (approve() would refuse them now).
    db.get(
        Authorization, token.authorization_id
    ).scope = "FB=1_3_4_10_13_14_39;IntervalDuration=900;BlockDuration=daily"
    db.flush()
    assert upload_missing_day(testapp, db, tree, custodian_token, upload_token)["notifications_queued"] == 0


def test_delivery_is_retried_with_backoff_until_the_app_answers(services, db, listener):
    message = enqueue(db, BATCH_LIST, {"uri": listener.url, "resources": ["https://x/1"], "application_id": None})
    db.flush()
    deliverers = default_deliverers(services.settings)
    listener.status = 503
    assert deliver_due(services.sessions, deliverers).retried == 1
    db.refresh(message)
    assert (message.state, message.attempts) == ("pending", 1) and "503" in message.last_error
    assert message.next_attempt_at > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)
    # Not due yet: nothing is attempted.
    assert deliver_due(services.sessions, deliverers).attempted == 0
    listener.status = 200
    later = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)  # noqa: E731
    assert deliver_due(services.sessions, deliverers, clock=later).delivered == 1
    db.refresh(message)
    assert message.state == "delivered" and len(listener.bodies) == 1


def test_delivery_to_a_dead_listener_fails_for_good_and_is_recorded(services, db):
    dead = Listener()
    url = dead.url
    dead.close()
    message = enqueue(db, BATCH_LIST, {"uri": url, "resources": ["https://x/1"], "application_id": None})
    db.flush()
    deliverers = default_deliverers(services.settings)
    for hour in range(3):
        deliver_due(
            services.sessions,
            deliverers,
            max_attempts=3,
            clock=lambda h=hour: dt.datetime.now(dt.UTC) + dt.timedelta(days=h),
        )
    db.refresh(message)
    assert message.state == "failed" and message.attempts == 3 and message.last_error


def _run(argv: list[str], environ: dict[str, str]) -> int:
    parser = argparse.ArgumentParser(prog="gateway")
    notifications_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.environ = environ
    return run_handler(args.handler, args)


def test_notifications_list_failed(cli_environ, capsys):
    services = Services.build(Settings.from_env(cli_environ))
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        ok = enqueue(session, BATCH_LIST, {"uri": "https://a/n", "resources": ["u1"], "application_id": 1})
        bad = enqueue(session, BATCH_LIST, {"uri": "https://b/n", "resources": ["u2"], "application_id": 2})
        bad.state, bad.attempts, bad.last_error = "failed", 12, "URLError: refused"
        ok_id = ok.id
    services.engine.dispose()
    assert _run(["notifications", "list", "--failed", "--json"], cli_environ) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(n["uri"], n["state"], n["last_error"]) for n in listed] == [("https://b/n", "failed", "URLError: refused")]
    assert _run(["notifications", "list"], cli_environ) == 0
    text = capsys.readouterr().out
    assert f"#{ok_id} pending" in text and "last error: URLError: refused" in text
