"""Settings parsing: defaults, validation of each variable, the generated secret key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.config import ConfigurationError, Settings, is_loopback_host


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"GATEWAY_VAR_DIR": str(tmp_path), **values}


def test_defaults_suit_a_local_demo(tmp_path):
    settings = Settings.from_env(env(tmp_path))
    assert settings.base_url == "http://127.0.0.1:8000"
    assert settings.database_url == f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
    assert settings.access_token_ttl == 3600
    assert settings.authorization_code_ttl == 60
    assert settings.resource_base_url == "http://127.0.0.1:8000/DataCustodian/espi/1_1/resource"


def test_database_url_is_read(tmp_path):
    url = "postgresql+psycopg://u:p@db.internal/gateway"
    assert Settings.from_env(env(tmp_path, GATEWAY_DATABASE_URL=url)).database_url == url


@pytest.mark.parametrize(
    "base_url",
    [
        "https://gateway.example.com",
        "https://gateway.example.com/gb",
        "http://127.0.0.1:8000",
        "http://[::1]:9000",
        "http://localhost:8000",
        "http://127.5.5.5",
    ],
)
def test_accepted_base_urls(tmp_path, base_url):
    assert Settings.from_env(env(tmp_path, GATEWAY_BASE_URL=base_url)).base_url == base_url.rstrip("/")


def test_trailing_slash_of_base_url_is_dropped(tmp_path):
    settings = Settings.from_env(env(tmp_path, GATEWAY_BASE_URL="https://gw.example.com/"))
    assert settings.issuer == "https://gw.example.com"


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("http://gateway.example.com", "https"),
        ("http://10.0.0.5:8000", "https"),
        ("ftp://gateway.example.com", "absolute http"),
        ("gateway.example.com", "absolute http"),
        ("https://gw.example.com/?x=1", "query"),
        ("https://user:pw@gw.example.com", "credentials"),
    ],
)
def test_rejected_base_urls_name_the_variable(tmp_path, base_url, reason):
    with pytest.raises(ConfigurationError, match="GATEWAY_BASE_URL") as excinfo:
        Settings.from_env(env(tmp_path, GATEWAY_BASE_URL=base_url))
    assert reason in str(excinfo.value)


def test_secret_key_is_generated_once_and_persisted_privately(tmp_path):
    first = Settings.from_env(env(tmp_path))
    second = Settings.from_env(env(tmp_path))
    key_file = tmp_path / "secret_key"
    assert first.secret_key == second.secret_key
    assert len(first.secret_key) >= 48
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_configured_secret_key_wins_and_is_not_written(tmp_path):
    settings = Settings.from_env(env(tmp_path, GATEWAY_SECRET_KEY="k" * 40))
    assert settings.secret_key == "k" * 40
    assert not (tmp_path / "secret_key").exists()


def test_short_secret_key_is_refused(tmp_path):
    with pytest.raises(ConfigurationError, match="GATEWAY_SECRET_KEY"):
        Settings.from_env(env(tmp_path, GATEWAY_SECRET_KEY="short"))


def test_secret_key_is_hidden_from_repr(tmp_path):
    settings = Settings.from_env(env(tmp_path))
    assert settings.secret_key not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GATEWAY_ACCESS_TOKEN_TTL", "soon", "whole number"),
        ("GATEWAY_ACCESS_TOKEN_TTL", "5", ">= 60"),
        ("GATEWAY_CODE_TTL", "601", "between 1 and 600"),
        ("GATEWAY_CODE_TTL", "0", "between 1 and 600"),
        ("GATEWAY_LOG_FORMAT", "xml", "'text' or 'json'"),
    ],
)
def test_bad_values_are_reported_with_their_name(tmp_path, name, value, message):
    with pytest.raises(ConfigurationError, match=name) as excinfo:
        Settings.from_env(env(tmp_path, **{name: value}))
    assert message in str(excinfo.value)


def test_lifetimes_are_configurable(tmp_path):
    settings = Settings.from_env(env(tmp_path, GATEWAY_ACCESS_TOKEN_TTL="900", GATEWAY_CODE_TTL="30"))
    assert (settings.access_token_ttl, settings.authorization_code_ttl) == (900, 30)


def test_settings_are_frozen(tmp_path):
    settings = Settings.from_env(env(tmp_path))
    with pytest.raises(AttributeError):
        settings.base_url = "https://elsewhere.example.com"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_detection(host, expected):
    assert is_loopback_host(host) is expected


def _read_key(var_dir: str) -> str:
    return Settings.from_env({"GATEWAY_VAR_DIR": var_dir}).secret_key


def test_processes_starting_at_once_agree_on_one_generated_key(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(_read_key, [str(tmp_path)] * 32))
    assert len(keys) == 1
    assert keys == {(tmp_path / "secret_key").read_text().strip()}
    assert not list(tmp_path.glob(".secret_key.*"))  # no temporary file left behind
