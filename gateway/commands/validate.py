"""``gateway validate FILE...``: check Green Button feeds against the ESPI schemas and the semantic rules.

For integrators: no database and no settings are needed. Each file gets a report (schema errors with line and
column, semantic findings grouped by code with counts and the first occurrences); ``--json`` prints the
structured report (one object for one file, a list for several). The exit status is 0 when no file has an
error (warnings allowed), 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys

from gateway.commands.output import EXIT_FAILURE, EXIT_OK, add_json_flag
from gateway.espi.validator import (
    DEFAULT_MAX_BYTES,
    DEFAULT_PER_CODE,
    SchemaProfile,
    ValidationReport,
    all_finding_codes,
    validate_file,
    validate_stream,
)

__all__ = ["register", "validate_command"]


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {number}")
    return number


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``validate`` to the ``gateway`` command."""
    codes = all_finding_codes()
    parser = subparsers.add_parser(
        "validate",
        help="check Green Button XML files (schema and semantic rules)",
        description=(
            "Validate Green Button (NAESB REQ.21 ESPI) Atom feeds or entries: the XML Schema, then the "
            "rules no schema can express (Atom ids and links, one ReadingType per MeterReading, "
            "IntervalBlock and reading consistency, gaps and overlaps, DST day lengths, units, currency, "
            "billing periods). Exit status: 0 when no file has an error (warnings allowed), 1 otherwise."
        ),
        epilog="finding codes: " + ", ".join(f"{code} ({severity})" for code, (severity, _) in codes.items()),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="an XML file to validate; - reads standard input")
    parser.add_argument(
        "--schema",
        choices=[profile.value for profile in SchemaProfile],
        default=SchemaProfile.ESPI_4_0.value,
        help="ESPI release to hold the files to (default 4.0; 3.3 also requires a type on every atom:link)",
    )
    parser.add_argument(
        "--max-findings",
        type=_positive,
        default=DEFAULT_PER_CODE,
        metavar="N",
        help=f"findings shown per code (default {DEFAULT_PER_CODE}); the summary always counts them all",
    )
    parser.add_argument(
        "--max-bytes",
        type=_positive,
        default=DEFAULT_MAX_BYTES,
        metavar="N",
        help=f"refuse files larger than N bytes (default {DEFAULT_MAX_BYTES:,})",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=validate_command)


def _validate_one(name: str, args: argparse.Namespace) -> ValidationReport:
    if name == "-":
        return validate_stream(sys.stdin.buffer, file="<stdin>", profile=args.schema, max_bytes=args.max_bytes)
    return validate_file(name, profile=args.schema, max_bytes=args.max_bytes)


def validate_command(args: argparse.Namespace) -> int:
    """Validate each file and print its report; exit 0 only when no file has an error."""
    reports = [_validate_one(name, args) for name in args.files]
    if args.json:
        documents = [report.to_dict(per_code=args.max_findings) for report in reports]
        print(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    else:
        print("\n\n".join(report.to_text(per_code=args.max_findings) for report in reports))
    return EXIT_OK if all(report.valid for report in reports) else EXIT_FAILURE
