"""The bulk settings (GATEWAY_BULK_ASYNC_READINGS, GATEWAY_BULK_RETENTION): defaults, parsing, clear errors."""

from __future__ import annotations

import pytest

from gateway.config import ConfigurationError, Settings


def test_defaults_are_documented_values(tmp_path):
    settings = Settings.from_env({"GATEWAY_VAR_DIR": str(tmp_path)})
    assert (settings.bulk_async_readings, settings.bulk_retention) == (100_000, 86_400)


def test_values_are_read(tmp_path):
    settings = Settings.from_env(
        {"GATEWAY_VAR_DIR": str(tmp_path), "GATEWAY_BULK_ASYNC_READINGS": "0", "GATEWAY_BULK_RETENTION": "3600"}
    )
    assert (settings.bulk_async_readings, settings.bulk_retention) == (0, 3600)


@pytest.mark.parametrize(
    ("name", "value"),
    [("GATEWAY_BULK_ASYNC_READINGS", "-1"), ("GATEWAY_BULK_ASYNC_READINGS", "many"), ("GATEWAY_BULK_RETENTION", "59")],
)
def test_bad_values_name_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({"GATEWAY_VAR_DIR": str(tmp_path), name: value})
