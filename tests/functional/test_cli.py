"""The operator CLI: every command, its JSON output and its errors (run in-process against a fresh database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from gateway.cli import build_parser, main
from gateway.security.digests import SecretDigester
from gateway.storage import migrate
from gateway.storage.engine import make_engine, make_session_factory
from gateway.storage.models import ApplicationInformation, OAuthToken, RetailCustomer
from tests.conftest import TEST_SECRET_KEY


def run(capsys, cli_environ, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv), environ=cli_environ)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_json(capsys, cli_environ, *argv: str) -> dict:
    status, out, err = run(capsys, cli_environ, *argv)
    assert status == 0, err
    return json.loads(out)


def every_command() -> list[list[str]]:
    parser = build_parser()
    commands: list[list[str]] = []
    for action in parser._subparsers._group_actions:  # the top-level sub-commands
        for name, sub in action.choices.items():
            commands.append([name])
            for sub_action in sub._actions:
                if hasattr(sub_action, "choices") and isinstance(sub_action.choices, dict):
                    commands.extend([name, child] for child in sub_action.choices)
    return commands


@pytest.mark.parametrize("command", every_command(), ids=" ".join)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main([*command, "--help"])
    assert excinfo.value.code == 0
    assert "usage: gateway" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main([])
    assert excinfo.value.code == 2


class TestInit:
    def test_creates_the_schema_at_head(self, capsys, cli_environ):
        document = run_json(capsys, cli_environ, "init", "--json")
        engine = make_engine(cli_environ["GATEWAY_DATABASE_URL"])
        assert document["previous_revision"] is None
        assert document["revision"] == migrate.head_revision(engine) == migrate.current_revision(engine)

    def test_is_idempotent(self, capsys, cli_environ):
        run_json(capsys, cli_environ, "init", "--json")
        document = run_json(capsys, cli_environ, "init", "--json")
        assert document["previous_revision"] == document["revision"]

    def test_hides_the_database_password(self, capsys, cli_environ):
        status, out, _ = run(capsys, cli_environ, "init")
        assert status == 0
        assert "gateway-test-password" not in out

    def test_bad_configuration_exits_2_with_the_variable_named(self, capsys, cli_environ):
        status, _, err = run(capsys, {**cli_environ, "GATEWAY_BASE_URL": "http://gateway.example.com"}, "init")
        assert status == 2
        assert "GATEWAY_BASE_URL" in err


@pytest.fixture
def initialised(capsys, cli_environ) -> dict[str, str]:
    run_json(capsys, cli_environ, "init", "--json")
    return cli_environ


def count(environ: dict[str, str], model) -> int:
    engine = make_engine(environ["GATEWAY_DATABASE_URL"])
    with make_session_factory(engine)() as session:
        return session.scalar(select(func.count()).select_from(model))


class TestCustomerAdd:
    def test_prints_id_and_username_as_json(self, capsys, initialised):
        document = run_json(capsys, initialised, "customer", "add", "alice", "--email", "alice@example.com")
        assert set(document) == {"id", "username"}
        assert document["username"] == "alice"

    def test_username_is_case_insensitive(self, capsys, initialised):
        run_json(capsys, initialised, "customer", "add", "Alice", "--email", "alice@example.com")
        status, _, err = run(capsys, initialised, "customer", "add", "ALICE", "--email", "a2@example.com")
        assert status == 1
        assert "already exists" in err

    def test_duplicate_username_fails_and_changes_nothing(self, capsys, initialised):
        run_json(capsys, initialised, "customer", "add", "bob", "--email", "bob@example.com")
        status, out, err = run(capsys, initialised, "customer", "add", "bob", "--email", "other@example.com")
        assert (status, out) == (1, "")
        assert "a customer named 'bob' already exists" in err
        assert count(initialised, RetailCustomer) == 1

    @pytest.mark.parametrize("email", ["not-an-email", "two@@example.com", "a b@example.com", "x@localhost"])
    def test_bad_email_is_refused(self, capsys, initialised, email):
        status, _, err = run(capsys, initialised, "customer", "add", "carol", "--email", email)
        assert status == 1
        assert "e-mail address" in err

    @pytest.mark.parametrize("username", ["", ".dot", "has space", "x" * 65, "semi;colon"])
    def test_bad_username_is_refused(self, capsys, initialised, username):
        status, _, err = run(capsys, initialised, "customer", "add", username, "--email", "a@example.com")
        assert status == 1
        assert "username" in err

    def test_json_errors_are_machine_readable(self, capsys, initialised):
        run_json(capsys, initialised, "customer", "add", "dave", "--email", "dave@example.com")
        status, _, err = run(capsys, initialised, "customer", "add", "dave", "--email", "dave@example.com", "--json")
        assert status == 1
        assert json.loads(err) == {"error": "conflict", "message": "a customer named 'dave' already exists"}

    def test_list_shows_customers(self, capsys, initialised):
        run_json(capsys, initialised, "customer", "add", "erin", "--email", "erin@example.com")
        rows = run_json(capsys, initialised, "customer", "list", "--json")
        assert [row["username"] for row in rows] == ["erin"]


def run_subprocess(environ: dict[str, str], *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **environ},
        timeout=60,
    )


class TestPasswordStdin:
    def test_password_is_read_from_stdin_and_hashed(self, initialised):
        result = run_subprocess(
            initialised,
            "customer",
            "add",
            "frank",
            "--email",
            "f@example.com",
            "--password-stdin",
            stdin="correct horse battery staple\n",
        )
        assert result.returncode == 0, result.stderr
        engine = make_engine(initialised["GATEWAY_DATABASE_URL"])
        with make_session_factory(engine)() as session:
            stored = session.scalar(select(RetailCustomer.password_hash).where(RetailCustomer.username == "frank"))
        assert stored.startswith("$argon2id$")
        assert "correct horse" not in stored

    def test_short_password_is_refused(self, initialised):
        result = run_subprocess(
            initialised, "customer", "add", "gina", "--email", "g@example.com", "--password-stdin", stdin="short\n"
        )
        assert result.returncode == 1
        assert "at least 10 characters" in result.stderr

    def test_empty_stdin_is_an_error(self, initialised):
        result = run_subprocess(
            initialised, "customer", "add", "hank", "--email", "h@example.com", "--password-stdin", stdin=""
        )
        assert result.returncode == 1
        assert "no password on standard input" in result.stderr


class TestClientAdd:
    def test_confidential_client_gets_secret_and_registration_token(self, capsys, initialised):
        document = run_json(
            capsys,
            initialised,
            "client",
            "add",
            "--name",
            "Energy Insights",
            "--redirect-uri",
            "https://app.example.com/callback",
            "--notify-uri",
            "https://app.example.com/notify",
        )
        assert document["client_id"].startswith("gbc_")
        assert len(document["client_secret"]) >= 43  # 256 bits, base64url
        assert len(document["registration_access_token"]) >= 43
        assert document["registration_client_uri"] == (
            f"http://127.0.0.1:8000/DataCustodian/espi/1_1/resource/ApplicationInformation/{document['id']}"
        )
        assert document["grant_types"] == ["authorization_code", "client_credentials", "refresh_token"]

    def test_only_digests_are_stored(self, capsys, initialised):
        document = run_json(
            capsys, initialised, "client", "add", "--name", "A", "--redirect-uri", "https://a.example.com/cb"
        )
        engine = make_engine(initialised["GATEWAY_DATABASE_URL"])
        digester = SecretDigester(TEST_SECRET_KEY)
        with make_session_factory(engine)() as session:
            app = session.scalar(select(ApplicationInformation))
            token = session.scalar(select(OAuthToken))
        assert app.client_secret_digest == digester.digest(document["client_secret"])
        assert token.digest == digester.digest(document["registration_access_token"])
        assert document["client_secret"] not in (app.client_secret_digest, token.digest)

    def test_public_client_has_no_secret(self, capsys, initialised):
        document = run_json(
            capsys,
            initialised,
            "client",
            "add",
            "--name",
            "Mobile",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:7777/cb",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
        )
        assert "client_secret" not in document
        assert document["token_endpoint_auth_method"] == "none"

    def test_public_client_cannot_use_client_credentials(self, capsys, initialised):
        status, _, err = run(
            capsys,
            initialised,
            "client",
            "add",
            "--name",
            "Mobile",
            "--public",
            "--redirect-uri",
            "https://m.example.com/cb",
            "--grant-type",
            "client_credentials",
        )
        assert status == 1
        assert "public client cannot use client_credentials" in err

    def test_scopes_are_stored_in_canonical_form(self, capsys, initialised):
        document = run_json(
            capsys,
            initialised,
            "client",
            "add",
            "--name",
            "S",
            "--redirect-uri",
            "https://s.example.com/cb",
            "--scope",
            "fb=4_1_3;intervalduration=900;blockduration=Daily;",
        )
        assert document["scope"] == ["FB=1_3_4;IntervalDuration=900;BlockDuration=daily"]

    @pytest.mark.parametrize(
        ("uri", "message"),
        [
            ("http://app.example.com/cb", "must use https"),
            ("https://app.example.com/cb#frag", "fragment"),
            ("https://user@app.example.com/cb", "credentials"),
            ("https://*.example.com/cb", "wildcards"),
            ("/relative/cb", "absolute"),
            ("myapp://cb", "absolute https"),
            ("http://localhost:8080/cb", "127.0.0.1"),
        ],
    )
    def test_bad_redirect_uri_is_refused(self, capsys, initialised, uri, message):
        status, _, err = run(capsys, initialised, "client", "add", "--name", "Bad", "--redirect-uri", uri)
        assert status == 1
        assert message in err
        assert count(initialised, ApplicationInformation) == 0

    @pytest.mark.parametrize(
        ("scope", "message"),
        [
            ("FB=1_3;Color=blue", "unknown scope term 'Color'"),
            ("IntervalDuration=900", "FB="),
            ("FB=1_x", "whole number"),
            ("FB=1;FB=3", "appears twice"),
            ("FB=1_3;BlockDuration=hourly", "BlockDuration"),
            ("FB=1;;HistoryLength=13", "empty term"),
            ("FB=1 3", "spaces"),
        ],
    )
    def test_bad_scope_string_is_refused(self, capsys, initialised, scope, message):
        status, _, err = run(
            capsys,
            initialised,
            "client",
            "add",
            "--name",
            "Bad",
            "--redirect-uri",
            "https://b.example.com/cb",
            "--scope",
            scope,
        )
        assert status == 1
        assert message in err
        assert count(initialised, ApplicationInformation) == 0

    def test_unknown_grant_type_is_a_usage_error(self, capsys, initialised):
        with pytest.raises(SystemExit) as excinfo:
            main(
                [
                    "client",
                    "add",
                    "--name",
                    "X",
                    "--redirect-uri",
                    "https://x.example.com/cb",
                    "--grant-type",
                    "implicit",
                ],
                environ=initialised,
            )
        assert excinfo.value.code == 2

    def test_self_access_client_for_unknown_customer_is_refused(self, capsys, initialised):
        status, _, err = run(
            capsys,
            initialised,
            "client",
            "add",
            "--name",
            "Self",
            "--redirect-uri",
            "https://s.example.com/cb",
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--owner",
            "nobody",
        )
        assert status == 1
        assert "no customer named 'nobody'" in err

    def test_self_access_client_is_bound_to_its_owner(self, capsys, initialised):
        customer = run_json(capsys, initialised, "customer", "add", "ivy", "--email", "ivy@example.com")
        document = run_json(
            capsys,
            initialised,
            "client",
            "add",
            "--name",
            "Ivy's meter puller",
            "--redirect-uri",
            "https://ivy.example.com/cb",
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--owner",
            "ivy",
        )
        assert document["roles"] == ["self_access"]
        engine = make_engine(initialised["GATEWAY_DATABASE_URL"])
        with make_session_factory(engine)() as session:
            app = session.scalar(select(ApplicationInformation))
        assert app.owner_customer_id == customer["id"]

    def test_list_shows_clients(self, capsys, initialised):
        run_json(capsys, initialised, "client", "add", "--name", "Listed", "--redirect-uri", "https://l.example.com/cb")
        rows = run_json(capsys, initialised, "client", "list", "--json")
        assert [row["client_name"] for row in rows] == ["Listed"]


def test_python_dash_m_gateway_works(initialised):
    result = run_subprocess(initialised, "--help")
    assert result.returncode == 0
    assert "Green Button" in result.stdout


class TestDoctor:
    def test_fails_before_init_and_says_how_to_fix(self, capsys, cli_environ):
        status, out, _ = run(capsys, cli_environ, "doctor", "--json")
        document = json.loads(out)
        assert status == 1
        migrations = next(check for check in document["checks"] if check["name"] == "migrations")
        assert migrations["status"] == "fail"
        assert "gateway init" in migrations["detail"]

    def test_fails_on_a_database_ahead_of_the_code_and_says_why(self, capsys, initialised):
        engine = make_engine(initialised["GATEWAY_DATABASE_URL"])
        with engine.begin() as connection:  # a newer release migrated it; this code was rolled back
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        engine.dispose()
        status, out, _ = run(capsys, initialised, "doctor", "--json")
        migrations = next(check for check in json.loads(out)["checks"] if check["name"] == "migrations")
        assert (status, migrations["status"]) == (1, "fail")
        assert "at 9999, which this version of the gateway does not know" in migrations["detail"]

    def test_passes_on_an_initialised_database(self, capsys, initialised):
        status, out, _ = run(capsys, initialised, "doctor", "--json")
        document = json.loads(out)
        assert status == 0, out
        assert {check["name"] for check in document["checks"]} >= {"database", "migrations", "mail", "clock"}

    def test_unreachable_smtp_server_fails(self, capsys, initialised):
        import socket

        with socket.socket() as sock:  # a port with nobody listening
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        status, out, _ = run(
            capsys, {**initialised, "GATEWAY_SMTP_URL": f"smtp://127.0.0.1:{port}"}, "doctor", "--json"
        )
        mail = next(check for check in json.loads(out)["checks"] if check["name"] == "mail")
        assert status == 1
        assert mail["status"] == "fail"

    def test_unreachable_database_fails_clearly(self, capsys, initialised, tmp_path):
        broken = {**initialised, "GATEWAY_DATABASE_URL": "postgresql+psycopg://nobody:x@127.0.0.1:1/none"}
        status, out, _ = run(capsys, broken, "doctor", "--json")
        database = next(check for check in json.loads(out)["checks"] if check["name"] == "database")
        assert status == 1
        assert "unreachable" in database["detail"]
        assert ":x@" not in database["detail"]
