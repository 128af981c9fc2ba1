"""The Green Button feed validator for integrators: schema errors and semantic findings in one report.

A document is read once through :func:`gateway.espi.safe_xml.parse_document` (size cap, no DTD, no entities,
no network), validated once against the gateway's own XSDs (which follow NAESB REQ.21 ESPI 4.0 and
RFC 4287), and then checked semantically over the same tree (:mod:`gateway.espi.semantic_checks`). Every
problem becomes a :class:`Finding` with a stable code; a :class:`ValidationReport` groups them by code, counts
them and shows the first few of each, so a file with 35,000 identical problems stays readable.

Profiles (``--schema``): ``4.0`` (default) is what our schemas express. ``3.3`` adds the one difference of the
ESPI 3.3 Green Button Atom schema that ours do not express: every ``atom:link`` must carry a ``type``.

Input that cannot be checked (unreadable, too big, not well-formed, a DTD or entity declarations, a root that
is neither Atom nor ESPI) gives a report with one error finding, never an exception.

This module is pure: no falcon; the CLI (``gateway validate``) and ``POST /validate`` are thin adapters.
"""

from __future__ import annotations

import enum
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any, Final

from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # no stubs unless lxml-stubs

from gateway.espi.namespaces import ATOM, ESPI
from gateway.espi.safe_xml import XmlLimits, XmlRejected, parse_document
from gateway.espi.schemas import SchemaUnavailableError, validation_errors
from gateway.espi.semantic_checks import FINDING_CODES, Finding, Severity, check_semantics

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_PER_CODE",
    "INPUT_CODES",
    "SCHEMA_CODES",
    "Finding",
    "SchemaProfile",
    "Severity",
    "ValidationReport",
    "all_finding_codes",
    "validate_bytes",
    "validate_file",
    "validate_stream",
    "validate_tree",
]

DEFAULT_MAX_BYTES: Final = 256 << 20
"""Size cap when the caller gives none (the same as ``Settings.max_upload_bytes``' default)."""

DEFAULT_PER_CODE: Final = 5
"""How many findings of one code a report shows before summarising the rest as a count."""


class SchemaProfile(enum.StrEnum):
    """Which ESPI release's rules a document is held to."""

    ESPI_4_0 = "4.0"
    """NAESB REQ.21 ESPI 4.0 with the GBA Atom schema: what ``espi_schemas/`` expresses."""
    ESPI_3_3 = "3.3"
    """ESPI 3.3: as 4.0, and every ``atom:link`` carries a ``type`` (the 3.3 GBA Atom schema requires it)."""


INPUT_CODES: Final[dict[str, str]] = {
    "xml.unreadable": "the file could not be read",
    "xml.too-large": "the document exceeds the size limit",
    "xml.dtd-forbidden": "the document has a DOCTYPE (DTDs and entities are refused for safety)",
    "xml.not-well-formed": "the document is not well-formed XML",
    "xml.wrong-root": "the root element is neither an Atom feed or entry nor an ESPI resource",
}
"""Findings about input that could not be checked at all (always errors)."""

SCHEMA_CODES: Final[dict[str, str]] = {
    "schema.invalid": "the document breaks the ESPI/Atom XML Schema",
    "schema.link.type-missing": "an atom:link has no type attribute (required by ESPI 3.3)",
    "schema.unavailable": "the schema could not be loaded (an installation problem)",
}
"""Schema-level findings (always errors)."""


def all_finding_codes() -> dict[str, tuple[Severity, str]]:
    """Every finding code the validator can produce, with its severity and a one-line description."""
    codes: dict[str, tuple[Severity, str]] = {code: ("error", text) for code, text in INPUT_CODES.items()}
    codes.update({code: ("error", text) for code, text in SCHEMA_CODES.items()})
    codes.update(FINDING_CODES)
    return codes


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The findings on one document, with counts per code and per severity."""

    file: str
    schema: str
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    @property
    def valid(self) -> bool:
        """True when there is no error (warnings and infos do not make a document invalid)."""
        return not any(f.severity == "error" for f in self.findings)

    def summary(self) -> dict[str, int]:
        """Number of findings per code, most frequent first."""
        return dict(Counter(f.code for f in self.findings).most_common())

    def shown(self, per_code: int | None = DEFAULT_PER_CODE) -> tuple[list[Finding], int]:
        """The first ``per_code`` findings of each code in document order, and how many were left out."""
        if per_code is None:
            return list(self.findings), 0
        taken: Counter[str] = Counter()
        shown: list[Finding] = []
        for finding in self.findings:
            taken[finding.code] += 1
            if taken[finding.code] <= per_code:
                shown.append(finding)
        return shown, len(self.findings) - len(shown)

    def to_dict(self, per_code: int | None = DEFAULT_PER_CODE) -> dict[str, Any]:
        """The JSON report: file, valid, schema, counts, the first findings of each code, the summary."""
        shown, truncated = self.shown(per_code)
        return {
            "file": self.file,
            "valid": self.valid,
            "schema": self.schema,
            "errors": self.errors,
            "warnings": self.warnings,
            "findings": [f.as_dict() for f in shown],
            "truncated": truncated,
            "summary": self.summary(),
        }

    def to_text(self, per_code: int | None = DEFAULT_PER_CODE) -> str:
        """A report for people: a verdict line, then each code with its count and first occurrences."""
        verdict = "valid" if self.valid else "INVALID"
        lines = [f"{self.file}: {verdict} (ESPI {self.schema}): {self.errors} error(s), {self.warnings} warning(s)"]
        shown, _ = self.shown(per_code)
        by_code: dict[str, list[Finding]] = {}
        for finding in shown:
            by_code.setdefault(finding.code, []).append(finding)
        severity = {finding.code: finding.severity for finding in self.findings}
        for code, count in self.summary().items():
            first = by_code.get(code, [])
            lines.append(f"  {severity[code]} {code}: {count}")
            for finding in first:
                where = f"line {finding.line}" if finding.line is not None else "—"
                if finding.column:
                    where += f":{finding.column}"
                lines.append(f"    {where}: {finding.message}")
            if count > len(first):
                lines.append(f"    … and {count - len(first)} more")
        return "\n".join(lines)


# --- the passes ---------------------------------------------------------------------------------------------

_A: Final = f"{{{ATOM}}}"
_E: Final = f"{{{ESPI}}}"
_ROOTS: Final = (_A + "feed", _A + "entry")
# Namespace URIs in lxml's messages read better as the prefixes people write.
_CLARK = re.compile(rf"\{{({re.escape(ATOM)}|{re.escape(ESPI)})\}}")
_PREFIX: Final = {ATOM: "atom:", ESPI: "espi:"}


def _plain(message: str) -> str:
    return _CLARK.sub(lambda m: _PREFIX[m.group(1)], message).strip()


def _schema_findings(root: Any) -> list[Finding]:
    """Validate against our XSDs (ESPI 4.0 + RFC 4287) and turn libxml2's error log into findings."""
    try:
        errors = validation_errors(root, "ours")
    except (SchemaUnavailableError, etree.XMLSchemaParseError) as error:
        return [Finding("error", "schema.unavailable", None, f"the gateway's schemas could not be loaded: {error}")]
    # validation_errors, not the shared schema's error_log: the compiled schema is shared between threads.
    return [
        Finding("error", "schema.invalid", entry.line or None, _plain(entry.message), entry.column or None)
        for entry in errors
        # libxml2 follows a bad value with this internal note; it says nothing the first message did not.
        if "No precomputed value available" not in entry.message
    ]


def _profile_findings(root: Any, profile: SchemaProfile) -> list[Finding]:
    """Rules of the chosen ESPI release that our 4.0 schemas do not express."""
    if profile is not SchemaProfile.ESPI_3_3:
        return []
    return [
        Finding(
            "error",
            "schema.link.type-missing",
            link.sourceline,
            f"link rel={link.get('rel', 'alternate')!r} has no type attribute; ESPI 3.3 requires one "
            '(e.g. type="espi-entry/UsagePoint")',
        )
        for link in root.iter(_A + "link")
        if link.get("type") is None
    ]


def _sort(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    # Document order; findings without a line (whole-document problems) first.
    return tuple(sorted(findings, key=lambda f: (f.line or 0, f.column or 0)))


def validate_tree(
    root: Any, *, file: str = "<document>", profile: SchemaProfile | str = SchemaProfile.ESPI_4_0
) -> ValidationReport:
    """Validate an already parsed document (an lxml element); the caller is responsible for safe parsing.

    ``root`` is an Atom feed or entry (RFC 4287 §4.1.1, §4.1.2: schema and semantic passes) or a bare ESPI
    resource (schema pass only); any other root gives one ``xml.wrong-root`` error.
    """
    profile = SchemaProfile(profile)
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag not in _ROOTS and not tag.startswith(_E):
        finding = Finding(
            "error",
            "xml.wrong-root",
            root.sourceline,
            f"the root element is {_plain(tag) or 'not an element'}; a Green Button document is an "
            "atom:feed or atom:entry (or a bare ESPI resource such as espi:ServiceStatus)",
        )
        return ValidationReport(file, profile.value, (finding,))
    findings = _schema_findings(root)
    findings += _profile_findings(root, profile)
    # Bare ESPI documents (ServiceStatus, BatchList, ApplicationInformation, ...) get the schema pass only:
    # the semantic checks are about feeds and entries and the relations between their resources.
    findings += check_semantics(root)
    return ValidationReport(file, profile.value, _sort(findings))


def validate_bytes(
    data: bytes,
    *,
    file: str = "<input>",
    profile: SchemaProfile | str = SchemaProfile.ESPI_4_0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ValidationReport:
    """Validate a document given as bytes (ESPI REQ.21 feed or entry, RFC 4287); never raises on bad input."""
    profile = SchemaProfile(profile)
    try:
        root = parse_document(data, XmlLimits(max_bytes=max_bytes))
    except XmlRejected as refused:
        code = _REFUSAL_CODES.get(refused.reason, "xml.not-well-formed")
        finding = Finding("error", code, refused.line, refused.message, refused.column)
        return ValidationReport(file, profile.value, (finding,))
    return validate_tree(root, file=file, profile=profile)


# safe_xml's stable reasons, as the validator's finding codes.
_REFUSAL_CODES: Final = {
    "too_large": "xml.too-large",
    "dtd": "xml.dtd-forbidden",
    "entity": "xml.dtd-forbidden",
    "external_reference": "xml.dtd-forbidden",
    "not_well_formed": "xml.not-well-formed",
    "not_utf8": "xml.not-well-formed",
}


def validate_stream(
    stream: IO[bytes],
    *,
    file: str = "<stream>",
    profile: SchemaProfile | str = SchemaProfile.ESPI_4_0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ValidationReport:
    """Validate what ``stream`` holds, reading at most ``max_bytes + 1`` bytes of it."""
    try:
        data = _read_capped(stream, max_bytes)
    except OSError as error:
        finding = Finding("error", "xml.unreadable", None, f"could not read {file}: {error.strerror or error}")
        return ValidationReport(file, SchemaProfile(profile).value, (finding,))
    return validate_bytes(data, file=file, profile=profile, max_bytes=max_bytes)


def validate_file(
    path: str | os.PathLike[str],
    *,
    profile: SchemaProfile | str = SchemaProfile.ESPI_4_0,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ValidationReport:
    """Validate the file at ``path``; an unreadable file gives a report with an ``xml.unreadable`` error."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            return validate_stream(handle, file=name, profile=profile, max_bytes=max_bytes)
    except OSError as error:
        finding = Finding("error", "xml.unreadable", None, f"could not read {name}: {error.strerror or error}")
        return ValidationReport(name, SchemaProfile(profile).value, (finding,))


def _read_capped(stream: IO[bytes], max_bytes: int) -> bytes:
    """Read up to ``max_bytes + 1`` bytes: one byte over is enough to tell the input is too large."""
    chunks: list[bytes] = []
    remaining = max_bytes + 1
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
