"""Log formats: in JSON mode every line on stderr is JSON, the gateway's and other libraries' alike."""

from __future__ import annotations

import json
import logging

from gateway.logs import JsonFormatter, configure_logging, json_logging_enabled


def test_json_mode_makes_other_libraries_warnings_json(capsys):
    configure_logging("INFO", "json")
    try:
        logging.getLogger("some.library").warning("disk %s is full", "/var")
    finally:
        configure_logging("INFO", "text")
    line = json.loads(capsys.readouterr().err)
    assert (line["logger"], line["message"]) == ("some.library", "disk /var is full")


def test_text_mode_leaves_the_root_logger_alone():
    configure_logging("INFO", "json")
    configure_logging("INFO", "text")
    assert [
        type(handler).__name__ for handler in logging.getLogger().handlers if "Json" in type(handler).__name__
    ] == []


def test_json_logging_enabled_reports_the_configured_format():
    configure_logging("INFO", "json")
    try:
        enabled = json_logging_enabled()
    finally:
        configure_logging("INFO", "text")
    assert (enabled, json_logging_enabled()) == (True, False)


def test_the_json_formatter_keeps_extra_fields():
    record = logging.LogRecord("gateway.access", logging.INFO, __file__, 1, "GET %s", ("/healthz",), None)
    record.status = 200
    assert json.loads(JsonFormatter().format(record))["status"] == 200
