"""The feed validator: one small document per finding code, reports, hostile input and the real samples."""

from __future__ import annotations

import calendar
from pathlib import Path

import pytest

from gateway.espi.schemas import load_schema, official_schemas_available
from gateway.espi.semantic_checks import FINDING_CODES, LocalTime, decode_dst_rule
from gateway.espi.validator import (
    INPUT_CODES,
    SCHEMA_CODES,
    SchemaProfile,
    ValidationReport,
    all_finding_codes,
    validate_bytes,
    validate_file,
)

CASES = Path(__file__).parent / "validator_cases"
CASE_FILES = sorted(CASES.glob("*.xml"))
VALID_FILES = sorted((CASES / "valid").glob("*.xml"))
MARKER = "<!--expect-->"


def _profile_for(code: str) -> SchemaProfile:
    # The 3.3 rule (a type on every link) is the only one the 4.0 profile does not apply.
    return SchemaProfile.ESPI_3_3 if code == "schema.link.type-missing" else SchemaProfile.ESPI_4_0


def _expected_line(path: Path) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(number for number, text in enumerate(lines, start=1) if MARKER in text)


def _codes(report: ValidationReport, code: str) -> set[str]:
    """Codes found, leaving out schema errors that merely accompany a semantic finding."""
    return {f.code for f in report.findings if f.code == code or not f.code.startswith("schema.")}


# --- one case per finding code ------------------------------------------------------------------------------


def test_every_code_has_a_case() -> None:
    untestable_as_files = {"xml.unreadable", "xml.too-large", "schema.unavailable"}
    assert {p.stem for p in CASE_FILES} == set(all_finding_codes()) - untestable_as_files


@pytest.mark.parametrize("case", CASE_FILES, ids=lambda p: p.stem)
def test_case_triggers_exactly_its_code(case: Path) -> None:
    report = validate_file(case, profile=_profile_for(case.stem))
    assert _codes(report, case.stem) == {case.stem}


@pytest.mark.parametrize("case", CASE_FILES, ids=lambda p: p.stem)
def test_case_reports_the_line_of_the_offending_element(case: Path) -> None:
    report = validate_file(case, profile=_profile_for(case.stem))
    first = next(f for f in report.findings if f.code == case.stem)
    assert first.line == _expected_line(case)


@pytest.mark.parametrize("case", CASE_FILES, ids=lambda p: p.stem)
def test_case_severity_matches_the_code_table(case: Path) -> None:
    report = validate_file(case, profile=_profile_for(case.stem))
    severity = all_finding_codes()[case.stem][0]
    assert {f.severity for f in report.findings if f.code == case.stem} == {severity}


@pytest.mark.parametrize("document", VALID_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("profile", list(SchemaProfile))
def test_valid_documents_have_no_findings(document: Path, profile: SchemaProfile) -> None:
    assert validate_file(document, profile=profile).findings == ()


def test_warnings_alone_leave_a_document_valid() -> None:
    report = validate_file(CASES / "interval.gap.xml")
    assert (report.valid, report.errors, report.warnings) == (True, 0, 1)


def test_errors_make_a_document_invalid() -> None:
    assert not validate_file(CASES / "interval.overlap.xml").valid


# --- input that cannot be checked ---------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE feed [
 <!ENTITY a "aaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&d;</title></feed>"""
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b'<feed xmlns="http://www.w3.org/2005/Atom"><title>&x;</title></feed>'
)
EXTERNAL_DTD = b'<!DOCTYPE feed SYSTEM "http://127.0.0.1:9/feed.dtd"><feed xmlns="http://www.w3.org/2005/Atom"/>'
UNDECLARED_ENTITY = b'<feed xmlns="http://www.w3.org/2005/Atom"><title>&x;</title></feed>'
DEEP = b"<a>" * 10_000 + b"</a>" * 10_000


@pytest.mark.parametrize("document", [BILLION_LAUGHS, XXE, EXTERNAL_DTD], ids=["billion-laughs", "xxe", "external-dtd"])
def test_dtds_are_refused(document: bytes) -> None:
    assert [f.code for f in validate_bytes(document).findings] == ["xml.dtd-forbidden"]


@pytest.mark.parametrize(
    "document",
    [b"", b"<feed", b"\x00\x01\x02", UNDECLARED_ENTITY, DEEP, b"<feed/><feed/>"],
    ids=["empty", "truncated", "binary", "undeclared-entity", "too-deep", "two-roots"],
)
def test_malformed_input_gives_one_error_finding(document: bytes) -> None:
    report = validate_bytes(document)
    assert [(f.severity, f.code) for f in report.findings] == [("error", "xml.not-well-formed")]


def test_too_large_input_is_refused_before_parsing() -> None:
    report = validate_bytes(b"<feed>" + b" " * 2000 + b"</feed>", max_bytes=1024)
    assert [f.code for f in report.findings] == ["xml.too-large"]


def test_a_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"<feed>" + b" " * 5000 + b"</feed>")
    assert [f.code for f in validate_file(path, max_bytes=1024).findings] == ["xml.too-large"]


def test_an_unreadable_file_is_a_finding(tmp_path: Path) -> None:
    report = validate_file(tmp_path / "missing.xml")
    assert [f.code for f in report.findings] == ["xml.unreadable"]


def test_a_bare_espi_resource_gets_the_schema_pass() -> None:
    document = b'<ServiceStatus xmlns="http://naesb.org/espi"><currentStatus>1</currentStatus></ServiceStatus>'
    assert validate_bytes(document).findings == ()


def test_schema_messages_use_prefixes_not_namespace_uris() -> None:
    report = validate_file(CASES / "schema.invalid.xml")
    message = next(f.message for f in report.findings if f.code == "schema.invalid")
    assert "espi:serviceCategory" in message and "{http" not in message


def test_schema_findings_carry_a_line() -> None:
    # libxml2 gives lines for errors found on a tree; columns only for parse errors (see below).
    report = validate_file(CASES / "schema.invalid.xml")
    assert all(f.line is not None for f in report.findings if f.code == "schema.invalid")


def test_parse_errors_carry_line_and_column() -> None:
    finding = validate_bytes(b"<feed>\n  <title>x</titl>\n</feed>").findings[0]
    assert (finding.code, finding.line, finding.column) == ("xml.not-well-formed", 2, 18)


# --- the report ---------------------------------------------------------------------------------------------


def _feed_with_gaps(count: int) -> bytes:
    """A feed whose single block has ``count`` readings an hour apart but 15 minutes long: count-1 gaps."""
    readings = "".join(
        "<espi:IntervalReading><espi:timePeriod><espi:duration>900</espi:duration>"
        f"<espi:start>{1704067200 + i * 3600}</espi:start></espi:timePeriod>"
        "<espi:value>1</espi:value></espi:IntervalReading>"
        for i in range(count)
    )
    return (
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:espi="http://naesb.org/espi">'
        "<id>urn:uuid:00000000-0000-5000-8000-000000000000</id><title>t</title><updated>2024-01-01T00:00:00Z</updated>"
        '<link rel="self" href="https://x.example/feed"/><link rel="related" href="https://x.example/cert"/>'
        "<entry><id>urn:uuid:00000000-0000-5000-8000-000000000001</id>"
        '<link rel="self" href="https://x.example/MeterReading/1/IntervalBlock/1"/>'
        '<link rel="up" href="https://x.example/MeterReading/1/IntervalBlock"/>'
        "<title>b</title><published>2024-01-01T00:00:00Z</published><updated>2024-01-01T00:00:00Z</updated>"
        f"<content><espi:IntervalBlock><espi:interval><espi:duration>{count * 3600 - 2700}</espi:duration>"
        f"<espi:start>1704067200</espi:start></espi:interval>{readings}</espi:IntervalBlock></content></entry></feed>"
    ).encode()


def test_summary_counts_every_finding() -> None:
    report = validate_bytes(_feed_with_gaps(100))
    assert report.summary() == {"interval.gap": 99}


def test_json_report_caps_findings_per_code_and_says_how_many_were_left_out() -> None:
    document = validate_bytes(_feed_with_gaps(100)).to_dict(per_code=5)
    assert (len(document["findings"]), document["truncated"], document["summary"]) == (
        5,
        94,
        {"interval.gap": 99},
    )


def test_json_report_shape() -> None:
    document = validate_bytes(_feed_with_gaps(3), file="x.xml").to_dict()
    assert set(document) == {
        "file",
        "valid",
        "schema",
        "errors",
        "warnings",
        "findings",
        "truncated",
        "summary",
    }
    assert set(document["findings"][0]) == {"severity", "code", "line", "column", "message"}
    assert (document["file"], document["schema"], document["valid"]) == ("x.xml", "4.0", True)


def test_uncapped_json_report_lists_everything() -> None:
    document = validate_bytes(_feed_with_gaps(20)).to_dict(per_code=None)
    assert (len(document["findings"]), document["truncated"]) == (19, 0)


def test_text_report_groups_by_code_and_shows_the_first_occurrences() -> None:
    text = validate_bytes(_feed_with_gaps(100), file="x.xml").to_text(per_code=3)
    lines = text.splitlines()
    assert lines[1] == "  warning interval.gap: 99"
    assert lines[5] == "    … and 96 more"


def test_findings_are_in_document_order() -> None:
    report = validate_file(CASES / "interval.duration-mismatch.xml")
    lines = [f.line or 0 for f in report.findings]
    assert lines == sorted(lines)


def test_code_tables_do_not_overlap() -> None:
    assert not (set(INPUT_CODES) & set(SCHEMA_CODES)) and not (set(SCHEMA_CODES) & set(FINDING_CODES))


# --- DST rules (ESPI REQ.21 DstRuleType) --------------------------------------------------------------------


def _utc(year: int, month: int, day: int, hour: int = 0) -> int:
    return calendar.timegm((year, month, day, hour, 0, 0))


def test_us_start_rule_decodes_to_second_sunday_of_march_at_2() -> None:
    rule = decode_dst_rule(0x360E2000)
    assert rule is not None and rule.local_instant(2024) == _utc(2024, 3, 10, 2)


def test_us_end_rule_decodes_to_first_sunday_of_november_at_2() -> None:
    rule = decode_dst_rule(0xB40E2000)
    assert rule is not None and rule.local_instant(2024) == _utc(2024, 11, 3, 2)


def test_last_weekday_operator() -> None:
    # EU: last Sunday of March at 01:00 (operator 7, weekday 7, month 3).
    rule = decode_dst_rule((3 << 28) | (7 << 25) | (7 << 17) | (1 << 12))
    assert rule is not None and rule.local_instant(2024) == _utc(2024, 3, 31, 1)


def test_weekday_on_or_after_operator() -> None:
    # The Sunday on or after 8 March (operator 1): 10 March 2024.
    rule = decode_dst_rule((3 << 28) | (1 << 25) | (8 << 20) | (7 << 17) | (2 << 12))
    assert rule is not None and rule.local_instant(2024) == _utc(2024, 3, 10, 2)


@pytest.mark.parametrize(
    "value",
    [
        0x00000000,
        0xD40E2000,
        0x360E2FFF,
        (3 << 28) | (3 << 25) | (7 << 17) | (24 << 12),
        (3 << 28) | (3 << 25),
    ],
    ids=["zero", "month-13", "seconds-4095", "hour-24", "no-weekday"],
)
def test_invalid_rules_do_not_decode(value: int) -> None:
    assert decode_dst_rule(value) is None


@pytest.mark.parametrize(
    ("day", "length"),
    [((2024, 3, 10), 82_800), ((2024, 11, 3), 90_000), ((2024, 7, 1), 86_400), ((2024, 1, 15), 86_400)],
)
def test_us_eastern_local_day_lengths(day: tuple[int, int, int], length: int) -> None:
    eastern = LocalTime(-18_000, 3600, decode_dst_rule(0x360E2000), decode_dst_rule(0xB40E2000))
    number = _utc(*day) // 86_400
    start = eastern.local_midnight_utc(number)
    assert eastern.day_containing(start) == (number, start, length)


def test_southern_hemisphere_dst_wraps_the_new_year() -> None:
    # Sydney: DST from the first Sunday of October 02:00 to the first Sunday of April 03:00 (daylight time).
    sydney = LocalTime(
        36_000,
        3600,
        decode_dst_rule((10 << 28) | (2 << 25) | (7 << 17) | (2 << 12)),
        decode_dst_rule((4 << 28) | (2 << 25) | (7 << 17) | (3 << 12)),
    )
    assert (sydney.is_dst(_utc(2024, 1, 15)), sydney.is_dst(_utc(2024, 7, 15))) == (True, False)


# --- the real samples (../shared/espi) ----------------------------------------------------------------------

OFFICIALLY_VALID = {"01", "02", "03", "04", "05", "06", "08"}
OFFICIALLY_INVALID = {"07", "09", "11", "12"}


def _samples(shared_espi: Path) -> list[Path]:
    samples = sorted((shared_espi / "samples").glob("*.xml"))
    if not samples:
        pytest.skip("no sample files in ../shared/espi/samples")
    return samples


def test_samples_accepted_by_the_official_schema_have_no_schema_errors(shared_espi: Path) -> None:
    reports = {p.name[:2]: validate_file(p) for p in _samples(shared_espi) if p.name[:2] in OFFICIALLY_VALID}
    with_schema_errors = {k for k, r in reports.items() if any(f.code.startswith("schema.") for f in r.findings)}
    assert with_schema_errors == set()


def test_samples_rejected_by_the_official_schema_have_schema_errors(shared_espi: Path) -> None:
    reports = {p.name[:2]: validate_file(p) for p in _samples(shared_espi) if p.name[:2] in OFFICIALLY_INVALID}
    assert {k for k, r in reports.items() if "schema.invalid" in r.summary()} == OFFICIALLY_INVALID


def test_our_schema_verdict_matches_the_official_one(shared_espi: Path) -> None:
    if not official_schemas_available():
        pytest.skip("official ESPI schemas not found")
    from lxml import etree

    official = load_schema("4.0")
    for path in _samples(shared_espi):
        ours = validate_file(path)
        officially_valid = official.validate(etree.parse(str(path)))
        assert officially_valid == ("schema.invalid" not in ours.summary()), path.name


@pytest.mark.parametrize("profile", list(SchemaProfile))
def test_no_sample_crashes_the_validator(shared_espi: Path, profile: SchemaProfile) -> None:
    for path in _samples(shared_espi):
        report = validate_file(path, profile=profile)
        assert report.file == str(path) and report.schema == profile.value


def test_samples_without_link_types_fail_the_33_profile(shared_espi: Path) -> None:
    sample = next((p for p in _samples(shared_espi) if p.name.startswith("01_")), None)
    if sample is None:
        pytest.skip("sample 01 absent")
    assert "schema.link.type-missing" in validate_file(sample, profile="3.3").summary()
