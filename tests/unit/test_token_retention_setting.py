"""GATEWAY_TOKEN_RETENTION: how long dead token rows are kept before the worker deletes them."""

from __future__ import annotations

import pytest

from gateway.config import ConfigurationError, Settings


def test_the_default_is_seven_days(tmp_path):
    assert Settings.from_env({"GATEWAY_VAR_DIR": str(tmp_path)}).token_retention == 7 * 86_400


def test_the_value_is_read(tmp_path):
    settings = Settings.from_env({"GATEWAY_VAR_DIR": str(tmp_path), "GATEWAY_TOKEN_RETENTION": "3600"})
    assert settings.token_retention == 3600


@pytest.mark.parametrize("value", ["-1", "a week"])
def test_a_bad_value_names_the_variable(tmp_path, value):
    with pytest.raises(ConfigurationError, match="GATEWAY_TOKEN_RETENTION"):
        Settings.from_env({"GATEWAY_VAR_DIR": str(tmp_path), "GATEWAY_TOKEN_RETENTION": value})
