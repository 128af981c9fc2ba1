"""Coverage-guided fuzz target (atheris / libFuzzer) for the feed validator (``gateway validate``, ``POST /validate``).

Property: :func:`gateway.espi.validator.validate_bytes` never raises, whatever the bytes (its contract: input that
cannot be checked gives a report with one error finding), and its report is consistent (``valid`` exactly when there
is no error finding; every finding has a code and a message). Run it for long (see docs/fuzzing.md)::

    python tests/fuzz/atheris_validator.py -max_total_time=3600 -timeout=10 fuzz-corpus/validator
"""

from __future__ import annotations

import contextlib
import sys

try:
    import atheris
except ImportError:  # the hypothesis-driven fallback in test_fuzz_targets.py calls TestOneInput without it
    atheris = None

# Only our own modules: instrumenting lxml's and falcon's Python would cost start-up time and find nothing of ours.
with atheris.instrument_imports(include=["gateway"]) if atheris is not None else contextlib.nullcontext():
    from gateway.espi.validator import validate_bytes


def TestOneInput(data: bytes) -> None:
    """One input through the validator."""
    report = validate_bytes(data, file="fuzz", max_bytes=256 * 1024)
    errors = [finding for finding in report.findings if finding.severity == "error"]
    if report.valid != (not errors):
        raise AssertionError(f"valid={report.valid} with {len(errors)} error finding(s)")
    for finding in report.findings:
        if not finding.code or not finding.message:
            raise AssertionError(f"a finding without code or message: {finding!r}")


def main() -> None:
    if atheris is None:
        raise SystemExit("atheris is not installed: pip install atheris (see docs/fuzzing.md)")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
