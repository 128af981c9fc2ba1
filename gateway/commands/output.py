"""Shared CLI plumbing: ``--json`` output, services from the environment, clear errors with non-zero exits."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from gateway.config import ConfigurationError, Settings
from gateway.errors import GatewayError
from gateway.services import Services

__all__ = ["CommandError", "add_json_flag", "emit", "load_services", "run_handler"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A command cannot proceed; the message is printed as ``error: …`` and the exit status is ``status``."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Every command takes ``--json`` for machine-readable output."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def emit(args: argparse.Namespace, document: Any, human: str | None = None) -> None:
    """Print ``document`` as JSON when ``--json`` was given (or no human form exists), else the human text."""
    if getattr(args, "json", False) or human is None:
        print(json.dumps(document, indent=2, default=str))
    else:
        print(human)


def load_services(args: argparse.Namespace) -> Services:
    """Read settings from the environment (``args.environ`` when a caller passed one) and build the collaborators."""
    return Services.build(Settings.from_env(getattr(args, "environ", None)))


def run_handler(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command handler, turning expected failures into one ``error:`` line and a non-zero exit."""
    try:
        return handler(args)
    except ConfigurationError as error:
        _fail(args, f"configuration: {error}")
        return EXIT_USAGE
    except GatewayError as error:
        _fail(args, error.message, code=error.code)
        return EXIT_FAILURE
    except CommandError as error:
        _fail(args, str(error))
        return error.status


def _fail(args: argparse.Namespace, message: str, *, code: str = "error") -> None:
    if getattr(args, "json", False):
        print(json.dumps({"error": code, "message": message}), file=sys.stderr)
    else:
        print(f"error: {message}", file=sys.stderr)
