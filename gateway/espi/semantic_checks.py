"""Semantic checks of Green Button feeds: what no XML Schema can express.

The checks follow the Green Button Alliance validator and go beyond it. Each produces :class:`Finding` objects
with a stable ``code`` (see :data:`FINDING_CODES`), a severity, the line of the offending element and a
plain-English message. The rules come from:

- RFC 4287 (Atom) §4.1.1 to §4.2 and the ESPI REQ.21 Atom binding: the required children of feeds and
  entries, ``urn:uuid`` ids, ``self``/``up``/``related`` links, ``YYYY-MM-DDThh:mm:ssZ`` dates;
- ESPI REQ.21 usage model: one ReadingType per MeterReading, IntervalBlock ``interval`` covering exactly its
  IntervalReadings, readings unique and ordered by ``timePeriod.start``, ``intervalLength``, ``uom`` and
  ``powerOfTenMultiplier``, ``cost`` in hundred-thousandths of the ReadingType's ``currency``, UsageSummary
  ``billingPeriod`` and ``statusTimeStamp``;
- ESPI REQ.21 ``LocalTimeParameters`` and its ``DstRuleType`` bit map, to tell local day lengths (92, 96
  or 100 quarter-hours).

The module is pure: it reads an lxml tree and knows nothing of files, HTTP or schemas. It is written for large
feeds (a meter-year at 15 minutes is 35,040 readings): readings are read per IntervalBlock with compiled XPath
expressions returning plain strings, and elements are looked up for their line numbers only when a finding
needs one.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import operator
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from lxml import etree  # type: ignore[import-untyped, unused-ignore]  # no stubs unless lxml-stubs

from gateway.espi.namespaces import ATOM, ESPI

__all__ = [
    "FINDING_CODES",
    "DstRule",
    "Finding",
    "LocalTime",
    "Severity",
    "check_semantics",
    "decode_dst_rule",
]

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in a document: what (``code``), how bad (``severity``), where and why."""

    severity: Severity
    code: str
    line: int | None
    message: str
    column: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of a finding: severity, code, line, column, message."""
        return {
            "severity": self.severity,
            "code": self.code,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


FINDING_CODES: Final[dict[str, tuple[Severity, str]]] = {
    # Atom envelope (RFC 4287, ESPI REQ.21 Atom binding)
    "atom.feed.missing-id": ("error", "a feed must have an atom:id (RFC 4287 §4.1.1)"),
    "atom.feed.missing-title": ("error", "a feed must have an atom:title (RFC 4287 §4.1.1)"),
    "atom.feed.missing-updated": ("error", "a feed must have an atom:updated (RFC 4287 §4.1.1)"),
    "atom.feed.missing-self-link": (
        "warning",
        "a feed should have a self link (RFC 4287 §4.1.1, ESPI REQ.21)",
    ),
    "atom.entry.missing-id": ("error", "an entry must have an atom:id (RFC 4287 §4.1.2)"),
    "atom.entry.missing-title": ("error", "an entry must have an atom:title (RFC 4287 §4.1.2)"),
    "atom.entry.missing-published": ("error", "an entry must have atom:published (ESPI REQ.21)"),
    "atom.entry.missing-updated": ("error", "an entry must have atom:updated (RFC 4287 §4.1.2)"),
    "atom.entry.missing-content": ("error", "an entry must carry its resource in atom:content (ESPI REQ.21)"),
    "atom.entry.missing-self-link": ("error", "an entry must have a self link (ESPI REQ.21)"),
    "atom.entry.missing-up-link": ("error", "an entry must have an up link to its collection (ESPI REQ.21)"),
    "atom.id.not-uuid": ("error", "ids are urn:uuid URNs (ESPI REQ.21)"),
    "atom.id.duplicate": ("error", "ids are unique within a document (RFC 4287 §4.2.6)"),
    "atom.link.self.duplicate": ("error", "self links are unique within a document"),
    "atom.link.unresolved": (
        "warning",
        "an up/related link names a resource of a kind present but not found",
    ),
    "atom.date.format": ("warning", "updated/published use YYYY-MM-DDThh:mm:ssZ (ESPI REQ.21)"),
    "time.implausible": ("warning", "a time before 1970 or after 2100"),
    # ESPI usage model
    "meterreading.readingtype.count": ("error", "a MeterReading relates to exactly one ReadingType"),
    "readingtype.uom-missing": ("error", "a ReadingType states its unit of measure (uom)"),
    "readingtype.multiplier-missing": ("warning", "a ReadingType states its powerOfTenMultiplier"),
    "intervalblock.start-mismatch": ("error", "interval.start equals the first reading's start"),
    "intervalblock.duration-mismatch": ("error", "interval.duration equals the span of the readings"),
    "intervalreading.duplicate": ("error", "readings of a block are unique by start"),
    "intervalreading.unordered": ("error", "readings of a block are in ascending start order"),
    "interval.gap": ("warning", "consecutive intervals of a MeterReading leave a gap"),
    "interval.overlap": ("error", "consecutive intervals of a MeterReading overlap"),
    "interval.duration-mismatch": ("warning", "a reading's duration differs from ReadingType.intervalLength"),
    "dst.day-length": ("error", "a daily block's length disagrees with the local day (LocalTimeParameters)"),
    "localtime.dst-rule.invalid": ("warning", "a DstRuleType value does not decode to a date rule"),
    "cost.without-currency": ("warning", "readings carry cost but the ReadingType has no currency"),
    "summary.period.invalid": ("error", "a UsageSummary billingPeriod has no positive duration"),
    "summary.status-timestamp.missing": ("error", "a UsageSummary has a statusTimeStamp"),
    "summary.period.overlap": ("warning", "billing periods of one usage point overlap"),
}
"""Every semantic finding code with its severity and a one-line description (for ``--help`` and docs)."""

# --- names -------------------------------------------------------------------------------------------------

_A: Final = f"{{{ATOM}}}"
_E: Final = f"{{{ESPI}}}"
_FEED, _ENTRY, _ID, _TITLE, _PUBLISHED, _UPDATED, _LINK, _CONTENT = (
    _A + n for n in ("feed", "entry", "id", "title", "published", "updated", "link", "content")
)
_INTERVAL_READING: Final = _E + "IntervalReading"
_NS: Final = {"e": ESPI}

_START: Final = _E + "start"
_DURATION: Final = _E + "duration"
_COST: Final = _E + "cost"
# Counting a block's readings in libxml2 is cheaper than listing them as Python proxies.
_XP_COUNT = etree.XPath("count(e:IntervalReading)", namespaces=_NS)

_RESOURCE_KINDS: Final = frozenset(
    {
        "UsagePoint",
        "MeterReading",
        "IntervalBlock",
        "ReadingType",
        "LocalTimeParameters",
        "UsageSummary",
        "ElectricPowerUsageSummary",
        "ElectricPowerQualitySummary",
    }
)
_SUMMARY_KINDS: Final = frozenset({"UsageSummary", "ElectricPowerUsageSummary"})

_UUID_URN = re.compile(r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_ESPI_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
_YEAR = re.compile(r"\s*(-?\d{4,})-")

_EPOCH_MIN: Final = 0
_EPOCH_MAX: Final = 4_102_444_800  # 2100-01-01T00:00:00Z: later is a unit or encoding bug, not a forecast
_YEAR_MIN, _YEAR_MAX = 1970, 2100
_DAY: Final = 86_400
# A block is "daily" when it lasts a day give or take a DST shift (one hour in practice, two at most).
_DAILY_MIN: Final = _DAY - 3 * 3600
_DAILY_MAX: Final = _DAY + 3 * 3600
_DST_DISABLED: Final = 0xFFFFFFFF


# --- DST rules (ESPI REQ.21 DstRuleType) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DstRule:
    """A decoded ESPI ``DstRuleType``: the local wall-clock moment of a DST change within a year."""

    month: int
    operator: int
    day_of_month: int
    day_of_week: int  # 1 = Monday … 7 = Sunday; 0 = not applicable
    seconds_of_day: int

    def local_instant(self, year: int) -> int | None:
        """The rule's moment in ``year`` as local wall-clock seconds since 1970 (``None`` if no such day)."""
        first_weekday, days_in_month = calendar.monthrange(year, self.month)  # Monday = 0
        if self.operator == 0:
            day = self.day_of_month
        else:
            wanted = self.day_of_week - 1
            if self.operator == 1:  # the weekday on or after day_of_month
                day = self.day_of_month + (wanted - dt.date(year, self.month, self.day_of_month).weekday()) % 7
            else:
                first = 1 + (wanted - first_weekday) % 7
                if self.operator == 7:  # the last such weekday
                    day = first + 7 * ((days_in_month - first) // 7)
                else:  # 2..6: the first..fifth such weekday
                    day = first + 7 * (self.operator - 2)
        if not 1 <= day <= days_in_month:
            return None
        return calendar.timegm((year, self.month, day, 0, 0, 0)) + self.seconds_of_day


def decode_dst_rule(value: int) -> DstRule | None:
    """Decode a ``DstRuleType`` (ESPI REQ.21): ``None`` when the value does not describe a valid rule.

    Bits 0-11 seconds (0-3599), 12-16 hours (0-23), 17-19 day of week (1 = Monday), 20-24 day of month,
    25-27 operator (0 day of month, 1 weekday on or after the day of month, 2-6 first to fifth weekday,
    7 last weekday), 28-31 month (1-12). ``0xFFFFFFFF`` (DST disabled) is handled by the caller.
    """
    seconds, hours = value & 0xFFF, (value >> 12) & 0x1F
    day_of_week, day_of_month = (value >> 17) & 0x7, (value >> 20) & 0x1F
    operator, month = (value >> 25) & 0x7, (value >> 28) & 0xF
    if not (1 <= month <= 12 and hours <= 23 and seconds <= 3599):
        return None
    if operator in (0, 1) and not 1 <= day_of_month <= 31:
        return None
    if operator >= 1 and not 1 <= day_of_week <= 7:
        return None
    if operator == 0 and day_of_month > calendar.monthrange(2000, month)[1]:  # 2000: Feb 29 exists
        return None
    return DstRule(month, operator, day_of_month, day_of_week, hours * 3600 + seconds)


@dataclass(slots=True)
class LocalTime:
    """Local time of a usage point per ``LocalTimeParameters``: a standard offset plus DST rules."""

    tz_offset: int
    dst_offset: int = 0
    dst_start: DstRule | None = None
    dst_end: DstRule | None = None
    _years: dict[int, tuple[int, int] | None] = field(default_factory=dict)

    def _dst_window(self, year: int) -> tuple[int, int] | None:
        """UTC start and end of DST in ``year``: the start rule is in standard time, the end rule in DST."""
        if year not in self._years:
            window = None
            if self.dst_offset and self.dst_start and self.dst_end:
                start = self.dst_start.local_instant(year)
                end = self.dst_end.local_instant(year)
                if start is not None and end is not None:
                    window = (start - self.tz_offset, end - self.tz_offset - self.dst_offset)
            self._years[year] = window
        return self._years[year]

    def is_dst(self, utc: int) -> bool:
        """Whether DST applies at the UTC instant ``utc`` (southern-hemisphere rules wrap the new year)."""
        year = dt.datetime.fromtimestamp(utc + self.tz_offset, dt.UTC).year
        window = self._dst_window(year)
        if window is None:
            return False
        start, end = window
        return start <= utc < end if start < end else (utc >= start or utc < end)

    def offset(self, utc: int) -> int:
        """The UTC offset in seconds at ``utc``."""
        return self.tz_offset + (self.dst_offset if self.is_dst(utc) else 0)

    def local_midnight_utc(self, local_day: int) -> int:
        """The UTC instant of 00:00 local time on ``local_day`` (days since 1970-01-01, local calendar)."""
        standard = local_day * _DAY - self.tz_offset
        daylight = standard - self.dst_offset
        return daylight if self.dst_offset and self.is_dst(daylight) else standard

    def day_containing(self, utc: int) -> tuple[int, int, int] | None:
        """For ``utc`` at local midnight: (local day number, day start UTC, day length s); else ``None``."""
        local = utc + self.offset(utc)
        if local % _DAY:
            return None
        day = local // _DAY
        return day, utc, self.local_midnight_utc(day + 1) - utc


# --- document model ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Link:
    rel: str
    href: str
    line: int | None


@dataclass(slots=True)
class _Entry:
    element: Any
    line: int | None
    self_href: str | None = None
    up_href: str | None = None
    links: list[_Link] = field(default_factory=list)
    resources: list[Any] = field(default_factory=list)

    @property
    def kind(self) -> str | None:
        if not self.resources:
            return None
        tag = self.resources[0].tag
        return tag[len(_E) :] if isinstance(tag, str) and tag.startswith(_E) else None

    def related(self) -> Iterable[_Link]:
        return (link for link in self.links if link.rel == "related")


def _normalise_href(href: str) -> str:
    # Producers differ on trailing slashes and surrounding blanks; neither changes which resource is meant.
    return href.strip().rstrip("/")


def _kind_of_href(href: str) -> str | None:
    """The ESPI resource kind an href names: its last path segment that is a resource name."""
    for segment in reversed(href.split("?", 1)[0].split("/")):
        if segment in _RESOURCE_KINDS:
            return segment
    return None


def _text(element: Any, tag: str) -> str | None:
    child = element.find(tag)
    if child is None or child.text is None:
        return None
    return str(child.text).strip()


def _int_child(element: Any, tag: str) -> int | None:
    value = _text(element, tag)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # the schema pass reports the malformed value


def _fmt_time(epoch: int) -> str:
    try:
        return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(epoch)


# --- the checker ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    """One IntervalBlock: its interval and its readings' starts and durations (in document order)."""

    element: Any
    line: int | None
    start: int | None
    duration: int | None
    interval_line: int | None
    starts: list[int]
    durations: list[int]
    positions: list[int] | None  # reading index of each kept start (None: all readings, in order)
    has_cost: bool
    _readings: list[Any] | None = None

    def reading_line(self, index: int) -> int | None:
        """Line of the ``index``-th kept reading (elements are listed only when a finding needs a line)."""
        if self._readings is None:
            self._readings = self.element.findall(_INTERVAL_READING)
        position = index if self.positions is None else self.positions[index]
        readings = self._readings
        return readings[position].sourceline if position < len(readings) else self.line

    @property
    def end(self) -> int | None:
        if self.start is not None and self.duration is not None:
            return self.start + self.duration
        if self.starts:
            return max(s + d for s, d in zip(self.starts, self.durations, strict=True))
        return None

    @property
    def first(self) -> int | None:
        if self.start is not None:
            return self.start
        return min(self.starts) if self.starts else None


class _Checker:
    """One semantic pass over one document; findings accumulate in ``findings``."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def add(self, code: str, line: int | None, message: str) -> None:
        self.findings.append(Finding(FINDING_CODES[code][0], code, line, message))

    # -- Atom envelope --

    def run(self, root: Any) -> list[Finding]:
        entries: list[_Entry] = []
        ids: dict[str, int | None] = {}
        selves: dict[str, int | None] = {}
        if root.tag == _FEED:
            self._envelope(root, "feed", ids, selves)
            entries = [self._envelope(child, "entry", ids, selves) for child in root.iterchildren(_ENTRY)]
        else:
            entries = [self._envelope(root, "entry", ids, selves)]
        self._links(entries)
        self._resources(entries)
        return self.findings

    def _envelope(
        self,
        element: Any,
        what: Literal["feed", "entry"],
        ids: dict[str, int | None],
        selves: dict[str, int | None],
    ) -> _Entry:
        """Check the Atom children of a feed or an entry (RFC 4287 §4.1.1, §4.1.2; ESPI REQ.21)."""
        entry = _Entry(element, element.sourceline)
        seen: set[str] = set()
        for child in element.iterchildren(tag=etree.Element):
            tag = child.tag
            if tag == _ID:
                seen.add("id")
                self._id(child, ids)
            elif tag == _LINK:
                rel = child.get("rel", "alternate")
                href = _normalise_href(child.get("href", ""))
                entry.links.append(_Link(rel, href, child.sourceline))
                if rel == "self":
                    seen.add("self-link")
                    entry.self_href = entry.self_href or href
                    if href in selves:
                        self.add(
                            "atom.link.self.duplicate",
                            child.sourceline,
                            f"self link {href!r} was already used on line {selves[href]}",
                        )
                    else:
                        selves[href] = child.sourceline
                elif rel == "up":
                    seen.add("up-link")
                    entry.up_href = entry.up_href or href
            elif tag in (_UPDATED, _PUBLISHED):
                seen.add(tag[len(_A) :])
                self._date(child)
            elif tag == _TITLE:
                seen.add("title")
            elif tag == _CONTENT:
                seen.add("content")
                entry.resources = [r for r in child.iterchildren(tag=etree.Element) if str(r.tag).startswith(_E)]
        required: tuple[str, ...] = ("id", "title", "updated", "self-link")
        if what == "entry":
            required = ("id", "title", "published", "updated", "content", "self-link", "up-link")
        for name in required:
            if name not in seen:
                label = name.replace("-link", " link") if name.endswith("-link") else f"atom:{name}"
                self.add(f"atom.{what}.missing-{name}", element.sourceline, f"this {what} has no {label}")
        return entry

    def _id(self, element: Any, ids: dict[str, int | None]) -> None:
        value = (element.text or "").strip()
        if not _UUID_URN.match(value):
            self.add(
                "atom.id.not-uuid",
                element.sourceline,
                f"id {value!r} is not a urn:uuid (ESPI REQ.21 wants urn:uuid: and 8-4-4-4-12 hex digits)",
            )
        key = value.lower()  # UUIDs compare case-insensitively (RFC 9562 §4)
        if key in ids:
            self.add("atom.id.duplicate", element.sourceline, f"id {value!r} was already used on line {ids[key]}")
        else:
            ids[key] = element.sourceline

    def _date(self, element: Any) -> None:
        value = (element.text or "").strip()
        name = element.tag[len(_A) :]
        if not _ESPI_DATE.match(value):
            self.add(
                "atom.date.format",
                element.sourceline,
                f"{name} {value!r} is not in the form YYYY-MM-DDThh:mm:ssZ (UTC, whole seconds)",
            )
        year = _YEAR.match(value)
        if year and not _YEAR_MIN <= int(year.group(1)) <= _YEAR_MAX:
            self.add("time.implausible", element.sourceline, f"{name} {value!r} is before 1970 or after 2100")

    def _links(self, entries: Sequence[_Entry]) -> None:
        """Up and related links must resolve when the document holds resources of the kind they name."""
        selves = {e.self_href for e in entries if e.self_href}
        collections = {e.up_href for e in entries if e.up_href}
        # Any path prefix of a self link is a collection (or parent) present in the document.
        for href in selves:
            position = href.find("/")
            while position != -1:
                collections.add(href[:position])
                position = href.find("/", position + 1)
        kinds = {e.kind for e in entries if e.kind}
        for entry in entries:
            for link in entry.links:
                if link.rel not in ("up", "related") or link.href in selves or link.href in collections:
                    continue
                kind = _kind_of_href(link.href)
                if kind is not None and kind in kinds:
                    self.add(
                        "atom.link.unresolved",
                        link.line,
                        f"{link.rel} link {link.href!r} names a {kind} but no entry in this document "
                        "has that self link or lies under it",
                    )

    # -- ESPI resources --

    def _resources(self, entries: Sequence[_Entry]) -> None:
        by_self = {e.self_href: e for e in entries if e.self_href}
        of_kind: dict[str, list[_Entry]] = defaultdict(list)
        for entry in entries:
            if entry.kind:
                of_kind[entry.kind].append(entry)

        reading_types = {id(e): self._reading_type(e.resources[0]) for e in of_kind["ReadingType"]}
        local_times = {id(e): self._local_time(e.resources[0]) for e in of_kind["LocalTimeParameters"]}

        # MeterReading -> ReadingType (exactly one), MeterReading -> UsagePoint -> LocalTimeParameters.
        usage_point_of = _Parents(of_kind["UsagePoint"], ("MeterReading", *_SUMMARY_KINDS))
        meter_of = _Parents(of_kind["MeterReading"], ("IntervalBlock",))
        type_of_meter: dict[int, _ReadingTypeInfo | None] = {}
        for meter in of_kind["MeterReading"]:
            targets = {
                link.href
                for link in meter.related()
                if (by_self.get(link.href) is not None and by_self[link.href].kind == "ReadingType")
                or (link.href not in by_self and _kind_of_href(link.href) == "ReadingType")
            }
            nested = [r for r in meter.resources[0].iterchildren(_E + "ReadingType")]
            count = len(targets) + len(nested)
            if count != 1:
                self.add(
                    "meterreading.readingtype.count",
                    meter.line,
                    f"this MeterReading relates to {count} ReadingTypes; it must relate to exactly one "
                    "(a related link to a ReadingType entry)",
                )
            resolved = [by_self[href] for href in sorted(targets) if href in by_self]
            type_of_meter[id(meter)] = reading_types.get(id(resolved[0])) if len(resolved) == 1 else None

        single_local_time = next(iter(local_times.values())) if len(local_times) == 1 else None

        def local_time_of(usage_point: _Entry | None) -> LocalTime | None:
            if usage_point is not None:
                for link in usage_point.related():
                    target = by_self.get(link.href)
                    if target is not None and id(target) in local_times:
                        return local_times[id(target)]
            return single_local_time

        # IntervalBlocks, grouped by MeterReading (or by their collection when the MeterReading is absent).
        groups: dict[object, list[_Block]] = defaultdict(list)
        group_context: dict[object, tuple[_ReadingTypeInfo | None, LocalTime | None]] = {}
        for entry in of_kind["IntervalBlock"]:
            parent = meter_of.find(entry)
            key: object = id(parent) if parent is not None else (entry.up_href or "")
            if key not in group_context:
                reading_type = type_of_meter.get(id(parent)) if parent is not None else None
                if parent is None and len(reading_types) == 1 and not of_kind["MeterReading"]:
                    reading_type = next(iter(reading_types.values()))
                usage_point = usage_point_of.find(parent)
                group_context[key] = (reading_type, local_time_of(usage_point))
            reading_type, local_time = group_context[key]
            for element in entry.resources:
                if element.tag == _E + "IntervalBlock":
                    block = self._block(element, reading_type, local_time)
                    groups[key].append(block)
        for blocks in groups.values():
            self._continuity(blocks)

        # Usage summaries, grouped by usage point for the overlap check.
        periods: dict[object, list[tuple[int, int, int | None]]] = defaultdict(list)
        for kind in _SUMMARY_KINDS:
            for entry in of_kind[kind]:
                usage_point = usage_point_of.find(entry)
                # Per kind too: a feed may carry the legacy ElectricPowerUsageSummary beside a UsageSummary.
                key = (kind, id(usage_point) if usage_point is not None else (entry.up_href or ""))
                for element in entry.resources:
                    period = self._summary(element)
                    if period is not None:
                        periods[key].append(period)
        for spans in periods.values():
            spans.sort()
            for (_, end, _), (next_start, next_end, line) in itertools.pairwise(spans):
                if next_start < end:
                    self.add(
                        "summary.period.overlap",
                        line,
                        f"billing period {_fmt_time(next_start)} to {_fmt_time(next_end)} overlaps the one "
                        "ending "
                        f"{_fmt_time(end)}",
                    )

    def _reading_type(self, element: Any) -> _ReadingTypeInfo:
        """ESPI REQ.21 ReadingType: ``uom`` and ``powerOfTenMultiplier`` give readings their meaning."""
        if element.find(_E + "uom") is None:
            self.add("readingtype.uom-missing", element.sourceline, "this ReadingType has no uom (unit of measure)")
        if element.find(_E + "powerOfTenMultiplier") is None:
            self.add(
                "readingtype.multiplier-missing",
                element.sourceline,
                "this ReadingType has no powerOfTenMultiplier; readers will assume 0 (a factor of 1)",
            )
        return _ReadingTypeInfo(
            interval_length=_int_child(element, _E + "intervalLength"),
            has_currency=element.find(_E + "currency") is not None,
        )

    def _local_time(self, element: Any) -> LocalTime | None:
        """ESPI REQ.21 LocalTimeParameters: ``tzOffset``, ``dstOffset`` and the two ``DstRuleType`` rules."""
        tz_offset = _int_child(element, _E + "tzOffset")
        if tz_offset is None:
            return None
        local_time = LocalTime(tz_offset, _int_child(element, _E + "dstOffset") or 0)
        if not local_time.dst_offset:
            return local_time
        rules: list[DstRule | None] = []
        for name in ("dstStartRule", "dstEndRule"):
            child = element.find(_E + name)
            raw = (child.text or "").strip() if child is not None else ""
            try:
                value = int(raw, 16)
            except ValueError:
                value = -1
            if value == _DST_DISABLED:
                return LocalTime(tz_offset)
            rule = decode_dst_rule(value) if 0 <= value <= 0xFFFFFFFF and len(raw) == 8 else None
            if rule is None:
                self.add(
                    "localtime.dst-rule.invalid",
                    child.sourceline if child is not None else element.sourceline,
                    f"{name} {raw!r} is not a valid DstRuleType (8 hex digits: month, operator, day, "
                    "weekday, hour, seconds); local days cannot be computed",
                )
                return None
            rules.append(rule)
        local_time.dst_start, local_time.dst_end = rules
        return local_time

    def _block(self, element: Any, reading_type: _ReadingTypeInfo | None, local_time: LocalTime | None) -> _Block:
        """Check one IntervalBlock against its readings (ESPI REQ.21 IntervalBlock, IntervalReading)."""
        interval = element.find(_E + "interval")
        start = duration = interval_line = None
        if interval is not None:
            start = _int_child(interval, _START)
            duration = _int_child(interval, _DURATION)
            interval_line = interval.sourceline
        # The fast path, for meter-years: every start and duration under the block in document order, which is
        # interval's pair first (the schema puts interval before the readings), then one pair per reading.
        # iter() by tag is several times cheaper than XPath text() here. When the counts do not line up (a
        # reading without timePeriod, a malformed value) the readings are read one by one instead.
        starts_text = [node.text for node in element.iter(_START)]
        durations_text = [node.text for node in element.iter(_DURATION)]
        offset = 1 if start is not None and duration is not None else 0
        count = int(_XP_COUNT(element))
        positions: list[int] | None = None
        try:
            if not len(starts_text) == len(durations_text) == count + offset:
                raise ValueError
            starts = list(map(int, starts_text[offset:]))
            durations = list(map(int, durations_text[offset:]))
        except (ValueError, TypeError):
            starts, durations, positions = self._readings_slowly(element)
        has_cost = (
            reading_type is not None
            and not reading_type.has_currency
            # iter() by tag scans in C; an ElementPath find("IntervalReading/cost") is ten times slower.
            and next(element.iter(_COST), None) is not None
        )
        block = _Block(
            element,
            element.sourceline,
            start,
            duration,
            interval_line,
            starts,
            durations,
            positions,
            has_cost,
        )
        line = interval_line or block.line
        if start is not None and not _EPOCH_MIN <= start <= _EPOCH_MAX:
            self.add(
                "time.implausible",
                line,
                f"interval.start {start} ({_fmt_time(start)}) is before 1970 or after 2100",
            )
        if starts:
            self._readings(block, reading_type)
        if has_cost:
            self.add(
                "cost.without-currency",
                block.line,
                "readings carry cost but their ReadingType has no currency: the amounts cannot be read",
            )
        if local_time is not None:
            self._day_length(block, local_time)
        return block

    def _readings_slowly(self, element: Any) -> tuple[list[int], list[int], list[int]]:
        """Readings one by one, keeping those with integer start and duration (the schema reports others)."""
        starts: list[int] = []
        durations: list[int] = []
        positions: list[int] = []
        for position, reading in enumerate(element.iterchildren(_INTERVAL_READING)):
            period = reading.find(_E + "timePeriod")
            if period is None:
                continue
            start, duration = _int_child(period, _E + "start"), _int_child(period, _E + "duration")
            if start is None or duration is None:
                continue
            starts.append(start)
            durations.append(duration)
            positions.append(position)
        return starts, durations, positions

    def _readings(self, block: _Block, reading_type: _ReadingTypeInfo | None) -> None:
        """The tight loop: order, uniqueness, gaps, overlaps and durations of one block's readings."""
        starts, durations = block.starts, block.durations
        add = self.add
        expected_length = reading_type.interval_length if reading_type is not None else None
        if expected_length and durations.count(expected_length) != len(durations):
            for index, duration in enumerate(durations):
                if duration != expected_length:
                    add(
                        "interval.duration-mismatch",
                        block.reading_line(index),
                        f"reading lasts {duration} s but its ReadingType's intervalLength is {expected_length} s",
                    )
        # Well-formed data is contiguous: each reading starts where the previous one ends. Checking that at C
        # speed first keeps the per-reading loop below for blocks that actually have a problem.
        contiguous = min(durations) > 0 and all(map(operator.eq, starts[1:], map(operator.add, starts, durations)))
        if not contiguous:
            self._reading_sequence(block)
        ordered = contiguous or all(map(operator.lt, starts, starts[1:]))
        first = starts[0] if contiguous else min(starts)
        last = starts[-1] if contiguous else max(starts)
        if first < _EPOCH_MIN or last > _EPOCH_MAX:
            add(
                "time.implausible",
                block.line,
                f"reading starts range from {first} to {last}: before 1970 or after 2100",
            )
        if block.start is not None and block.positions is None and starts[0] != block.start:
            add(
                "intervalblock.start-mismatch",
                block.interval_line,
                f"interval.start is {_fmt_time(block.start)} ({block.start}) but the first reading starts "
                f"{_fmt_time(starts[0])} ({starts[0]})",
            )
        if block.start is not None and block.duration is not None and ordered:
            span = (
                starts[-1] + durations[-1] - first if contiguous else max(map(operator.add, starts, durations)) - first
            )
            if first == block.start and span != block.duration:
                add(
                    "intervalblock.duration-mismatch",
                    block.interval_line,
                    f"interval.duration is {block.duration} s but the readings span {span} s",
                )

    def _reading_sequence(self, block: _Block) -> None:
        """Duplicates and disorder in document order, then gaps and overlaps in time order, one by one.

        Gaps and overlaps are judged on the readings sorted by start, so a block written backwards reports its
        disorder once per reading and no spurious gaps.
        """
        add = self.add
        starts, durations = block.starts, block.durations
        seen: set[int] = set()
        previous: int | None = None
        for index, start in enumerate(starts):
            if start in seen:
                add(
                    "intervalreading.duplicate",
                    block.reading_line(index),
                    f"a reading starting {_fmt_time(start)} ({start}) already exists in this block",
                )
                continue
            seen.add(start)
            if previous is not None and start < previous:
                add(
                    "intervalreading.unordered",
                    block.reading_line(index),
                    f"reading starting {_fmt_time(start)} comes after one starting {_fmt_time(previous)}",
                )
            previous = start
        previous_end: int | None = None
        previous_start: int | None = None
        for index in sorted(range(len(starts)), key=starts.__getitem__):
            start = starts[index]
            if start == previous_start:
                continue  # a duplicate, reported above
            if previous_end is not None:
                if start > previous_end:
                    add(
                        "interval.gap",
                        block.reading_line(index),
                        f"{start - previous_end} s without readings between {_fmt_time(previous_end)} and "
                        f"{_fmt_time(start)}",
                    )
                elif start < previous_end:
                    add(
                        "interval.overlap",
                        block.reading_line(index),
                        f"reading starting {_fmt_time(start)} overlaps the previous one, which ends "
                        f"{_fmt_time(previous_end)}",
                    )
            previous_start, previous_end = start, start + durations[index]

    def _day_length(self, block: _Block, local_time: LocalTime) -> None:
        """A block covering one local day lasts as long as that day: 23, 24 or 25 hours around DST changes."""
        start = block.first
        end = block.end
        if start is None or end is None or not _DAILY_MIN <= end - start <= _DAILY_MAX:
            return
        day = local_time.day_containing(start)
        if day is None:
            return  # not aligned on local midnight: the blocks are not local days
        number, _, length = day
        if end - start == length:
            return
        date = dt.date(1970, 1, 1) + dt.timedelta(days=number)
        unit = block.durations[0] if block.durations and len(set(block.durations)) == 1 else 0
        count = f" ({length // unit} intervals of {unit} s, not {(end - start) // unit})" if unit else ""
        self.add(
            "dst.day-length",
            block.interval_line or block.line,
            f"this block covers local day {date.isoformat()} in {end - start} s, but under its "
            f"LocalTimeParameters that day lasts {length} s{count}",
        )

    def _continuity(self, blocks: list[_Block]) -> None:
        """Consecutive blocks of a MeterReading neither overlap nor leave gaps (ESPI REQ.21 IntervalBlock)."""
        spans = sorted(
            ((b.first, b.end, b.interval_line or b.line) for b in blocks if b.first is not None and b.end is not None),
            key=lambda span: span[0],
        )
        for (_, end, _), (start, _, line) in itertools.pairwise(spans):
            assert start is not None and end is not None
            if start > end:
                self.add(
                    "interval.gap",
                    line,
                    f"{start - end} s without readings between this block ({_fmt_time(start)}) and the "
                    f"previous one (ending {_fmt_time(end)})",
                )
            elif start < end:
                self.add(
                    "interval.overlap",
                    line,
                    f"this block starts {_fmt_time(start)}, before the previous block of the same "
                    f"MeterReading ends ({_fmt_time(end)})",
                )

    def _summary(self, element: Any) -> tuple[int, int, int | None] | None:
        """ESPI REQ.21 UsageSummary: a billingPeriod of positive duration and a statusTimeStamp."""
        if element.find(_E + "statusTimeStamp") is None:
            self.add("summary.status-timestamp.missing", element.sourceline, "this summary has no statusTimeStamp")
        period = element.find(_E + "billingPeriod")
        if period is None:
            return None
        start, duration = _int_child(period, _E + "start"), _int_child(period, _E + "duration")
        if start is None or duration is None:
            return None
        if duration <= 0:
            self.add(
                "summary.period.invalid",
                period.sourceline,
                f"billingPeriod lasts {duration} s; it must be positive",
            )
            return None
        if not _EPOCH_MIN <= start <= _EPOCH_MAX:
            self.add(
                "time.implausible",
                period.sourceline,
                f"billingPeriod starts {start}: before 1970 or after 2100",
            )
        return start, start + duration, period.sourceline


@dataclass(frozen=True, slots=True)
class _ReadingTypeInfo:
    interval_length: int | None
    has_currency: bool


class _Parents:
    """Find the parent entry of a child entry through links: the parent's related link (or its self link plus
    ``/Kind``) names the collection the child's ``up`` link points to, or the child's self link lies under the
    parent's. With a single candidate parent in the document, that one is used."""

    def __init__(self, parents: Sequence[_Entry], child_kinds: Sequence[str]) -> None:
        self._parents = parents
        self._by_collection: dict[str, _Entry] = {}
        for parent in parents:
            for link in parent.related():
                if _kind_of_href(link.href) in child_kinds:
                    self._by_collection.setdefault(link.href, parent)
            if parent.self_href:
                for kind in child_kinds:
                    self._by_collection.setdefault(f"{parent.self_href}/{kind}", parent)

    def find(self, child: _Entry | None) -> _Entry | None:
        if child is None:
            return None
        if child.up_href and child.up_href in self._by_collection:
            return self._by_collection[child.up_href]
        if child.self_href:
            for parent in self._parents:
                if parent.self_href and child.self_href.startswith(parent.self_href + "/"):
                    return parent
        return self._parents[0] if len(self._parents) == 1 else None


def check_semantics(root: Any) -> list[Finding]:
    """Run every semantic check on a parsed Atom feed or entry (``root``: an lxml element).

    The checks assume nothing the schema guarantees: a malformed value is skipped here (the schema pass
    reports it), so any tree can be checked without crashing.
    """
    if root.tag not in (_FEED, _ENTRY):
        return []
    return _Checker().run(root)
