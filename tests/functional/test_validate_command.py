"""``gateway validate FILE...``: reports, ``--json``, ``--schema`` and exit statuses."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from gateway.commands import validate
from gateway.commands.output import run_handler

CASES = Path(__file__).resolve().parents[1] / "unit" / "espi" / "validator_cases"
VALID = str(CASES / "valid" / "subscription_feed.xml")
WARNINGS_ONLY = str(CASES / "interval.gap.xml")
INVALID = str(CASES / "interval.overlap.xml")


def run(argv: Sequence[str]) -> int:
    """Run ``gateway validate`` in-process through the same plumbing as ``gateway.cli.main``."""
    parser = argparse.ArgumentParser(prog="gateway")
    validate.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["validate", *argv])
    return run_handler(args.handler, args)


def test_a_valid_file_exits_0() -> None:
    assert run([VALID]) == 0


def test_warnings_alone_exit_0() -> None:
    assert run([WARNINGS_ONLY]) == 0


def test_an_error_exits_1() -> None:
    assert run([INVALID]) == 1


def test_one_bad_file_among_good_ones_exits_1() -> None:
    assert run([VALID, INVALID, WARNINGS_ONLY]) == 1


def test_an_unreadable_file_exits_1_with_a_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["--json", str(tmp_path / "missing.xml")])
    assert (code, json.loads(capsys.readouterr().out)["summary"]) == (1, {"xml.unreadable": 1})


def test_text_report_names_the_file_and_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    run([INVALID])
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith(f"{INVALID}: INVALID (ESPI 4.0): 1 error(s)")


def test_json_for_one_file_is_one_report(capsys: pytest.CaptureFixture[str]) -> None:
    run(["--json", INVALID])
    report = json.loads(capsys.readouterr().out)
    assert (report["file"], report["valid"], report["schema"], report["summary"]) == (
        INVALID,
        False,
        "4.0",
        {"interval.overlap": 1},
    )


def test_json_for_several_files_is_a_list(capsys: pytest.CaptureFixture[str]) -> None:
    run(["--json", VALID, INVALID])
    assert [r["valid"] for r in json.loads(capsys.readouterr().out)] == [True, False]


def test_schema_33_requires_link_types() -> None:
    assert (
        run([str(CASES / "schema.link.type-missing.xml")]),
        run(["--schema", "3.3", str(CASES / "schema.link.type-missing.xml")]),
    ) == (0, 1)


def test_an_unknown_schema_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["--schema", "2.0", VALID])
    assert exit_info.value.code == 2


def test_max_findings_caps_the_list_per_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["--json", "--max-findings", "1", str(CASES / "interval.duration-mismatch.xml")])
    report = json.loads(capsys.readouterr().out)
    assert (len(report["findings"]), report["truncated"], report["summary"]) == (
        1,
        7,
        {"interval.duration-mismatch": 8},
    )


def test_max_bytes_refuses_large_files(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["--json", "--max-bytes", "100", VALID])
    assert (code, json.loads(capsys.readouterr().out)["summary"]) == (1, {"xml.too-large": 1})


def test_wired_into_the_gateway_command() -> None:
    from gateway import cli

    if validate not in cli.COMMAND_MODULES:
        pytest.skip("gateway.commands.validate is not in cli.COMMAND_MODULES yet")
    assert cli.main(["validate", VALID]) == 0
