"""Validate untrusted documents in a child process with CPU-time and memory limits (for the public ``/validate``).

libxml2's schema validation costs more than quadratic time in the number of failing sibling elements and keeps
about 1.5 kB per error: 16,000 empty ``atom:entry`` elements (128 kB) take minutes, 100,000 failing attributes
(1 MB) take 160 MiB. Nothing in a size cap or a parser setting bounds that, and an unauthenticated endpoint must not
let a tiny request hold a web worker. So the validation runs in a child process with ``RLIMIT_CPU`` and
``RLIMIT_AS`` (POSIX ``setrlimit``) and a wall-clock timeout; a document that needs more is refused with a clear
message, and the web worker is never at risk.

The child is ``python -m gateway.espi.isolation PROFILE PER_CODE``: the document on stdin, the JSON report on stdout.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Any, Final

from gateway.errors import GatewayError

__all__ = ["ValidationTooCostly", "validate_isolated"]

DEFAULT_CPU_SECONDS: Final = 20
DEFAULT_MEMORY_BYTES: Final = 2 << 30


class ValidationTooCostly(GatewayError):
    """The document needs more CPU time or memory to validate than one request may use (HTTP 422)."""

    status = "422 Unprocessable Content"
    code = "too_costly"
    title = "Document too costly to validate"


def _limit(cpu_seconds: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def validate_isolated(
    data: bytes,
    *,
    profile: str,
    per_code: int,
    cpu_seconds: int = DEFAULT_CPU_SECONDS,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
) -> dict[str, Any]:
    """The validator's report (as ``ValidationReport.to_dict``) computed in a limited child process.

    Raises :class:`ValidationTooCostly` when the child runs out of CPU time, memory or wall-clock time.
    """
    try:
        completed = subprocess.run(  # noqa: S603 - our own module, with our own interpreter
            [sys.executable, "-m", "gateway.espi.isolation", profile, str(per_code)],
            input=data,
            capture_output=True,
            timeout=cpu_seconds * 2 + 5,
            preexec_fn=lambda: _limit(cpu_seconds, memory_bytes),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ValidationTooCostly(
            f"validating this document took longer than {cpu_seconds * 2 + 5} s; split it into smaller files"
        ) from None
    if completed.returncode != 0:
        raise ValidationTooCostly(
            f"validating this document needs more than {cpu_seconds} s of CPU time or {memory_bytes >> 20} MiB of "
            "memory (typically: thousands of elements that fail the schema); fix the first errors, or split the file"
        )
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def main(argv: list[str]) -> int:
    """Child entry point: read the document from stdin, write the JSON report to stdout."""
    from gateway.espi.validator import validate_bytes

    profile, per_code = argv[0], int(argv[1])
    data = sys.stdin.buffer.read()
    report = validate_bytes(data, file="request body", profile=profile, max_bytes=len(data) + 1)
    sys.stdout.write(json.dumps(report.to_dict(per_code=per_code)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
