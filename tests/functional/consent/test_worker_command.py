"""``gateway worker --once``: one pass over the outbox, printed as JSON."""

from __future__ import annotations

import argparse
import json

from gateway.commands import worker
from gateway.commands.output import run_handler
from gateway.config import Settings
from gateway.outbox.queue import enqueue_mail
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.engine import session_scope


def _run(argv: list[str], environ: dict[str, str]) -> int:
    parser = argparse.ArgumentParser(prog="gateway")
    worker.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.environ = environ
    return run_handler(args.handler, args)


def test_worker_once_delivers_queued_mail_to_the_outbox_folder(cli_environ, capsys):
    services = Services.build(Settings.from_env(cli_environ))
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        enqueue_mail(session, to=["alice@example.com"], subject="Hello", text="Hi")
    status = _run(["worker", "--once", "--json"], cli_environ)
    report = json.loads(capsys.readouterr().out)
    services.engine.dispose()
    assert (status, report["delivered"], len(list(services.settings.mail_outbox_dir.glob("*.eml")))) == (
        0,
        1,
        1,
    )
