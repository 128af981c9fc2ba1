"""``gateway import FILE... --customer USERNAME [--lenient] [--json]``.

One transaction per file, clear errors, exit statuses, idempotent re-runs, and the FB 39 push notifications a
committed file queues for the apps holding a consent on its usage points (as an upload does).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway import cli
from gateway.commands import importer
from gateway.commands.output import run_handler
from gateway.config import Settings
from gateway.customers import get_customer_by_username
from gateway.services import Services
from gateway.storage.engine import make_engine, session_scope
from gateway.storage.usage import interval_reading_table
from tests.conftest import BASE_URL
from tests.faults.feeds import write_feed
from tests.functional.push_fixtures import NOTIFY_URI, add_active_consent, batch_lists
from tests.unit.espi.test_ingest import FeedBuilder


def run(capsys: pytest.CaptureFixture[str], environ: dict[str, str], *argv: str) -> tuple[int, str, str]:
    """Run a ``gateway`` command in-process; ``import`` is registered here until cli.py lists it."""
    parser = cli.build_parser()
    if importer not in cli.COMMAND_MODULES:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        importer.register(subparsers)
    args = parser.parse_args(list(argv))
    args.environ = environ
    status = run_handler(args.handler, args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def environ(capsys: pytest.CaptureFixture[str], cli_environ: dict[str, str]) -> dict[str, str]:
    """A migrated database with one customer, alice."""
    assert run(capsys, cli_environ, "init", "--json")[0] == 0
    assert run(capsys, cli_environ, "customer", "add", "alice", "--email", "alice@example.org")[0] == 0
    return cli_environ


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.xml"
    path.write_bytes(FeedBuilder().standard(blocks=3))
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.xml"
    path.write_bytes(
        FeedBuilder().standard().replace(b"<espi:value>1001</espi:value>", b"<espi:value>many</espi:value>")
    )
    return path


def readings(environ: dict[str, str]) -> int:
    engine = make_engine(environ["GATEWAY_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(interval_reading_table)) or 0)
    finally:
        engine.dispose()


def import_json(
    capsys: pytest.CaptureFixture[str], environ: dict[str, str], files: Sequence[Path], *flags: str
) -> tuple[int, dict]:
    status, out, _ = run(capsys, environ, "import", "--customer", "alice", "--json", *flags, *map(str, files))
    return status, json.loads(out)


def test_json_summary_counts_per_file_and_in_total(capsys, environ, good) -> None:
    status, document = import_json(capsys, environ, [good])
    expected = {
        "usage_points": 1,
        "meter_readings": 1,
        "interval_blocks": 3,
        "interval_readings": 12,
        "warnings": 0,
    }
    assert (
        status,
        {k: document["files"][0][k] for k in expected},
        {k: document["total"][k] for k in expected},
    ) == (0, expected, expected)


def test_the_import_is_committed(capsys, environ, good) -> None:
    import_json(capsys, environ, [good])
    assert readings(environ) == 12


def test_importing_twice_is_idempotent(capsys, environ, good) -> None:
    import_json(capsys, environ, [good])
    status, document = import_json(capsys, environ, [good])
    assert (status, document["total"]["interval_readings"], readings(environ)) == (0, 12, 12)


def test_a_rejected_file_exits_1_with_line_numbered_errors(capsys, environ, bad) -> None:
    status, _, err = run(capsys, environ, "import", "--customer", "alice", str(bad))
    assert (status, f"error: {bad} rejected:" in err, "  line " in err) == (1, True, True)


def test_each_file_has_its_own_transaction(capsys, environ, good, bad) -> None:
    status, document = import_json(capsys, environ, [good, bad])
    assert (status, [f["status"] for f in document["files"]], readings(environ)) == (
        1,
        ["imported", "rejected"],
        12,
    )


def test_rejected_files_list_their_errors_in_json(capsys, environ, bad) -> None:
    _, document = import_json(capsys, environ, [bad])
    errors = document["files"][0]["errors"]
    assert (len(errors) > 0, all(isinstance(e["line"], int) for e in errors)) == (True, True)


def test_unsafe_xml_is_rejected_with_its_line(capsys, environ, tmp_path) -> None:
    path = tmp_path / "dtd.xml"
    path.write_bytes(
        b'<?xml version="1.0"?>\n<!DOCTYPE feed [<!ENTITY x "y">]><feed xmlns="http://www.w3.org/2005/Atom"/>'
    )
    status, _, err = run(capsys, environ, "import", "--customer", "alice", str(path))
    assert (status, "line 2: DTDs are not allowed (line 2)" in err) == (1, True)


def test_a_missing_file_is_rejected(capsys, environ, tmp_path) -> None:
    status, document = import_json(capsys, environ, [tmp_path / "missing.xml"])
    assert (status, document["files"][0]["errors"][0]["code"]) == (1, "unreadable")


def test_an_unknown_customer_is_a_clear_error(capsys, environ, good) -> None:
    status, _, err = run(capsys, environ, "import", "--customer", "mallory", str(good))
    assert (status, err.strip()) == (1, "error: no customer named 'mallory'")


def test_lenient_mode_imports_what_strict_mode_rejects(capsys, environ, tmp_path) -> None:
    path = tmp_path / "dates.xml"
    path.write_bytes(FeedBuilder().standard().replace(b"2025-01-02T00:00:00Z", b"2025-01-02"))
    strict_status, _ = import_json(capsys, environ, [path])
    lenient_status, document = import_json(capsys, environ, [path], "--lenient")
    assert (strict_status, lenient_status, document["total"]["warnings"] > 0) == (1, 0, True)


def test_human_output_gives_totals_in_base_units_and_currency(capsys, environ, good) -> None:
    status, out, _ = run(capsys, environ, "import", "--customer", "alice", str(good))
    assert (status, "12 reading(s)" in out, "Wh, cost 1.80 USD" in out) == (0, True, True)


def test_real_sample_imports(capsys, environ, shared_espi) -> None:
    status, document = import_json(capsys, environ, [shared_espi / "samples" / "02_gba_sdk_Gas.xml"])
    totals = document["files"][0]["meter_reading_totals"][0]
    assert (status, totals["unit"], totals["currency"], document["total"]["interval_readings"]) == (
        0,
        "therm",
        "USD",
        13,
    )


# FB 39: an operator's import tells the apps, as an upload does (gateway.notifications.import_and_notify).


@pytest.fixture
def subscription(capsys: pytest.CaptureFixture[str], environ: dict[str, str], tmp_path: Path) -> int:
    """alice's first day imported, then an app with a notify URI given an active consent on her usage point."""
    first = tmp_path / "first.xml"
    first.write_bytes(FeedBuilder().standard(blocks=1))
    assert import_json(capsys, environ, [first])[0] == 0
    services = Services.build(Settings.from_env(environ))
    try:
        with session_scope(services.sessions) as session:
            subscription_id = add_active_consent(session, services, get_customer_by_username(session, "alice"))
    finally:
        services.engine.dispose()
    return subscription_id


def queued(environ: dict[str, str]) -> list[dict]:
    engine = make_engine(environ["GATEWAY_DATABASE_URL"])
    try:
        return batch_lists(engine)
    finally:
        engine.dispose()


def test_an_import_queues_one_batch_list_for_the_new_window(capsys, environ, subscription, good) -> None:
    status, document = import_json(capsys, environ, [good])
    url = (
        f"{BASE_URL}/DataCustodian/espi/1_1/resource/Batch/Subscription/{subscription}"
        "?published-min=2025-01-02T00%3A00%3A00Z&published-max=2025-01-03T04%3A00%3A00Z"
    )
    assert (
        status,
        document["files"][0]["notifications_queued"],
        document["total"]["notifications_queued"],
        [(p["uri"], p["resources"], p["reason"]) for p in queued(environ)],
    ) == (0, 1, 1, [(NOTIFY_URI, [url], "data")])


def test_reimporting_the_same_file_queues_nothing(capsys, environ, subscription, good) -> None:
    import_json(capsys, environ, [good])
    status, document = import_json(capsys, environ, [good])
    assert (status, document["files"][0]["notifications_queued"], len(queued(environ))) == (0, 0, 1)


def test_a_rejected_file_queues_nothing_and_changes_nothing(capsys, environ, subscription, tmp_path) -> None:
    path = tmp_path / "bad-new-days.xml"
    path.write_bytes(
        FeedBuilder().standard(blocks=3).replace(b"<espi:value>1003</espi:value>", b"<espi:value>many</espi:value>")
    )
    status, document = import_json(capsys, environ, [path])
    assert (status, document["files"][0]["status"], readings(environ), queued(environ)) == (1, "rejected", 4, [])


def test_a_customer_without_consents_queues_nothing(capsys, environ, subscription, tmp_path) -> None:
    assert run(capsys, environ, "customer", "add", "bob", "--email", "bob@example.org")[0] == 0
    path = tmp_path / "bob.xml"
    write_feed(path, usage_points=1, days=2, seed=5)
    status, out, _ = run(capsys, environ, "import", "--customer", "bob", "--json", str(path))
    assert (status, json.loads(out)["total"]["notifications_queued"], queued(environ)) == (0, 0, [])


def test_human_output_says_how_many_notifications_were_queued(capsys, environ, subscription, good) -> None:
    status, out, _ = run(capsys, environ, "import", "--customer", "alice", str(good))
    assert (status, "1 notification(s) queued" in out) == (0, True)
