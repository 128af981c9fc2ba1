"""Coverage-guided fuzz target (atheris / libFuzzer) for the one module that reads untrusted XML.

Property: for any bytes, :func:`gateway.espi.safe_xml.check_xml` (the streaming gate) and
:func:`gateway.espi.safe_xml.parse_document` (the validator's fast gate) either accept or raise ``XmlRejected``
(with a non-empty message and a stable reason); nothing else ever escapes, and a document the gate accepts holds no
DOCTYPE. Run it for long (see docs/fuzzing.md)::

    python tests/fuzz/atheris_safe_xml.py -max_total_time=3600 -timeout=10 fuzz-corpus/safe_xml
"""

from __future__ import annotations

import contextlib
import io
import sys

try:
    import atheris
except ImportError:  # the hypothesis-driven fallback in test_fuzz_targets.py calls TestOneInput without it
    atheris = None

# Only our own modules: instrumenting lxml's and falcon's Python would cost start-up time and find nothing of ours.
with atheris.instrument_imports(include=["gateway"]) if atheris is not None else contextlib.nullcontext():
    from gateway.espi.safe_xml import XmlLimits, XmlRejected, check_xml, parse_document

# Small limits, so the fuzzer reaches every bound with small inputs.
LIMITS = XmlLimits(max_bytes=64 * 1024, max_depth=16, max_text_bytes=1024, max_attributes=8)
REASONS = frozenset(
    {"dtd", "entity", "external_reference", "too_deep", "text_too_long", "too_many_attributes", "too_large",
     "not_well_formed", "not_utf8", "wrong_root"}
)  # fmt: skip


def _refusal_is_clear(refused: XmlRejected) -> None:
    if refused.reason not in REASONS or not str(refused).strip():
        raise AssertionError(f"unclear refusal: {refused.reason!r} {refused!r}")


def TestOneInput(data: bytes) -> None:
    """One input through both gates."""
    try:
        check_xml(io.BytesIO(data), LIMITS)
        gated = True
    except XmlRejected as refused:
        _refusal_is_clear(refused)
        gated = False
    try:
        root = parse_document(data, LIMITS)
    except XmlRejected as refused:
        _refusal_is_clear(refused)
        return
    if gated and root.getroottree().docinfo.doctype:
        raise AssertionError("a document with a DOCTYPE passed both gates")


def main() -> None:
    if atheris is None:
        raise SystemExit("atheris is not installed: pip install atheris (see docs/fuzzing.md)")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
