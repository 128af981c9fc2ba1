"""``gateway notifications list``: which worker (``host:pid``) delivered each notification, in JSON and for humans."""

from __future__ import annotations

import json

from gateway.cli import main
from gateway.config import Settings
from gateway.notifications import BATCH_LIST
from gateway.outbox.delivery import deliver_due
from gateway.outbox.queue import enqueue
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.engine import session_scope


def _one_delivered_one_pending(cli_environ: dict[str, str]) -> tuple[int, int]:
    services = Services.build(Settings.from_env(cli_environ))
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        sent = enqueue(session, BATCH_LIST, {"uri": "https://a/n", "resources": ["u1"], "application_id": 1})
        sent_id = sent.id
    deliver_due(services.sessions, {BATCH_LIST: lambda payload: None}, delivered_by="node-a:4242")
    with session_scope(services.sessions) as session:
        waiting_id = enqueue(session, BATCH_LIST, {"uri": "https://b/n", "resources": ["u2"], "application_id": 2}).id
    services.engine.dispose()
    return sent_id, waiting_id


def test_the_json_listing_names_the_worker_that_delivered(cli_environ, capsys):
    sent_id, waiting_id = _one_delivered_one_pending(cli_environ)
    assert main(["notifications", "list", "--json"], environ=cli_environ) == 0
    listed = {item["id"]: item for item in json.loads(capsys.readouterr().out)}
    assert (listed[sent_id]["state"], listed[sent_id]["delivered_by"], listed[waiting_id]["delivered_by"]) == (
        "delivered",
        "node-a:4242",
        None,
    )


def test_the_human_listing_names_the_worker_that_delivered(cli_environ, capsys):
    sent_id, waiting_id = _one_delivered_one_pending(cli_environ)
    assert main(["notifications", "list"], environ=cli_environ) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert ("delivered by node-a:4242" in lines[f"#{sent_id}"], "delivered by" in lines[f"#{waiting_id}"]) == (
        True,
        False,
    )
