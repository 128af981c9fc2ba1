"""``gateway sample-data``: write the deterministic sample Green Button feeds (see
:mod:`gateway.sample_data`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.commands.output import EXIT_USAGE, CommandError, add_json_flag, emit
from gateway.sample_data import DEFAULT_SEED, DEFAULT_YEAR, generate


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sample-data",
        help="write the sample Green Button feeds",
        description=(
            "Write the sample Green Button Download My Data feeds (a home's 15-minute electricity and "
            "hourly gas, a small business with three usage points). The same year and seed always give "
            "byte-identical files. Needs no database."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("sample_data"),
        metavar="DIR",
        help="output directory (default: sample_data)",
    )
    parser.add_argument(
        "--year", type=int, default=DEFAULT_YEAR, metavar="YYYY", help=f"data year (default: {DEFAULT_YEAR})"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, metavar="N", help=f"random seed (default: {DEFAULT_SEED})"
    )
    add_json_flag(parser)
    parser.set_defaults(handler=sample_data_command)


def sample_data_command(args: argparse.Namespace) -> int:
    if not 1971 <= args.year <= 2100:
        raise CommandError(f"--year must be between 1971 and 2100, got {args.year}", EXIT_USAGE)
    try:
        paths = generate(args.out, year=args.year, seed=args.seed)
    except OSError as error:
        raise CommandError(f"cannot write to {args.out}: {error.strerror or error}") from error
    files = [{"path": str(path), "bytes": path.stat().st_size} for path in paths]
    human = "\n".join(f"{f['bytes']:>12,} bytes  {f['path']}" for f in files)
    emit(args, {"year": args.year, "seed": args.seed, "files": files}, human)
    return 0
