"""Plain-language descriptions of an ESPI scope, for the consent screen, the dashboard and the mails.

A customer cannot be asked to consent to ``FB=1_3_4_5_13_14_39;IntervalDuration=900``. Each function block that
names *data* (NAESB REQ.21 ESPI function blocks, ESPI-NOTES §5) is translated into what it means for the customer
("15-minute electricity usage", "bills and costs", …); blocks that only name protocol features (OAuth, REST, query
parameters) are not data and are summarised as how the app reaches the data. The technical names from
:data:`gateway.oauth.scope.FUNCTION_BLOCK_NAMES` stay available for the curious.

The two scope rules that decide *which* data an app reads live here too, next to the words that describe them, so
what the customer is told and what :mod:`gateway.storage.queries` enforces cannot drift apart: ``HistoryLength``
(months when small, else seconds: :func:`history_start`) and the commodity blocks (FB 5, 10, 11:
:func:`shared_service_kinds`).
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
from collections.abc import Iterable

from gateway.oauth.scope import FUNCTION_BLOCK_NAMES, EspiScope

__all__ = [
    "COMMODITY_BLOCKS",
    "ScopeDescription",
    "commodity_name",
    "describe_interval",
    "describe_period",
    "describe_scope",
    "history_in_months",
    "history_start",
    "shared_service_kinds",
]

# HistoryLength is months in the reference implementation and seconds in the schema (ESPI-NOTES §5): a value this
# small can only be months (no app asks for under 17 minutes of history).
_MONTHS_THRESHOLD = 1000

_HOUR = 3600

COMMODITY_BLOCKS: dict[int, tuple[int, str]] = {5: (0, "electricity"), 10: (1, "gas"), 11: (2, "water")}
"""Commodity function blocks (ESPI-NOTES §5: FB 5 electricity, 10 gas, 11 water) → the ESPI ``ServiceCategory``
``kind`` of the usage points they cover, and its name for the customer."""

_COMMODITY_BLOCKS = {block: name for block, (_, name) in COMMODITY_BLOCKS.items()}


def history_in_months(history_length: int) -> bool:
    """True when an ESPI ``HistoryLength`` counts months (a small value), False when it counts seconds."""
    return history_length < _MONTHS_THRESHOLD


def history_start(history_length: int, now: dt.datetime) -> int:
    """The earliest instant (UTC epoch seconds) a scope's ``HistoryLength`` lets the app read, seen at ``now``.

    Months are calendar months (13 months before 31 March is 28 or 29 February of the year before); seconds are
    seconds. The result is rounded *up* to the hour: never a reading more than the scope allows, and the data window
    (hence every feed's ETag) stays the same for an hour instead of changing every second.
    """
    moment = now.astimezone(dt.UTC)
    if history_in_months(history_length):
        index = moment.year * 12 + moment.month - 1 - history_length
        year, month = index // 12, index % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        earliest = int(moment.replace(year=year, month=month, day=day).timestamp())
    else:
        earliest = int(moment.timestamp()) - history_length
    return -(-earliest // _HOUR) * _HOUR


def commodity_name(service_kind: int | None) -> str:
    """The customer's word for a ``ServiceCategory`` kind ("electricity", "gas", "water"; else "other")."""
    for kind, name in COMMODITY_BLOCKS.values():
        if kind == service_kind:
            return name
    return "other"


def shared_service_kinds(function_blocks: Iterable[int]) -> frozenset[int] | None:
    """The ``ServiceCategory`` kinds of the usage points a scope shares: those of its commodity blocks (FB 5, 10,
    11), or ``None`` (every commodity) when it names none of them."""
    blocks = frozenset(function_blocks)
    kinds = frozenset(kind for block, (kind, _) in COMMODITY_BLOCKS.items() if block in blocks)
    return kinds or None


_DATA_BLOCKS: dict[int, str] = {
    6: "Peak demand (the highest power you drew)",
    7: "Energy you sent back to the grid (net metering, e.g. solar)",
    8: "Energy flowing in both directions (forward and reverse)",
    9: "Meter register readings",
    12: "The cost of each reading",
    15: "Usage summaries per billing period",
    16: "Bills and costs (summaries with cost)",
    17: "Power quality (voltage, frequency, outages)",
    27: "Demand and previous-day summaries",
    28: "Bill-to-date costs for the current billing period",
    29: "Outdoor temperature at your meter",
}

_ACCESS_BLOCKS: dict[int, str] = {
    39: "The app is told when new data is available",
    40: "The app can fetch new data while you are away (offline access)",
    35: "The app may download your data in bulk",
}

_PII_DESCRIPTION = "Your name, address, account and contract details (personal information)"


def describe_interval(seconds: int) -> str:
    """``900`` → ``15-minute``, ``3600`` → ``hourly``, ``86400`` → ``daily``."""
    names = {
        60: "1-minute",
        300: "5-minute",
        900: "15-minute",
        1800: "30-minute",
        3600: "hourly",
        86400: "daily",
    }
    if seconds in names:
        return names[seconds]
    if seconds % 3600 == 0:
        return f"{seconds // 3600}-hour"
    if seconds % 60 == 0:
        return f"{seconds // 60}-minute"
    return f"{seconds}-second"


def describe_period(history_length: int | None) -> str | None:
    """How far back the app may read, in words (``HistoryLength``: months when small, else seconds)."""
    if history_length is None:
        return None
    if history_in_months(history_length):
        unit = "month" if history_length == 1 else "months"
        return f"up to {history_length} {unit} of past data"
    days = max(1, round(history_length / 86_400))
    return f"up to {days} days of past data"


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


@dataclasses.dataclass(frozen=True, slots=True)
class ScopeDescription:
    """What the customer reads: the data items, how the app gets them, how far back, and the technical terms."""

    data: tuple[str, ...]
    access: tuple[str, ...]
    history: str | None
    technical: tuple[str, ...]
    scope: str


def describe_scope(scope: EspiScope) -> ScopeDescription:
    """Translate ``scope`` into plain language, one line per kind of data (ESPI-NOTES §5)."""
    blocks = scope.function_blocks
    data: list[str] = []
    commodities = [name for block, name in sorted(_COMMODITY_BLOCKS.items()) if block in blocks]
    if not commodities and blocks & {1, 4}:
        commodities = ["energy"]
    intervals = [describe_interval(seconds) for seconds in scope.interval_durations]
    for commodity in commodities:
        if 4 in blocks and intervals:
            data.append(f"{_join(intervals).capitalize()} {commodity} usage")
        elif 4 in blocks:
            data.append(f"Interval {commodity} usage (meter readings over time)")
        else:
            data.append(f"{commodity.capitalize()} usage")
    if 1 in blocks or commodities:
        data.append("Your meters (usage points) and what they measure")
    others = [name for block, name in sorted(_COMMODITY_BLOCKS.items()) if block not in blocks]
    if others and len(others) < len(_COMMODITY_BLOCKS):
        # The scope names its commodities: meters of any other kind are not shared, even if the customer ticks them.
        data.append(f"Only your {_join(commodities)} meters: {_join(others)} meters stay private")
    data.extend(text for block, text in sorted(_DATA_BLOCKS.items()) if block in blocks)
    if any(block >= 51 for block in blocks):
        data.append(_PII_DESCRIPTION)
    access = [text for block, text in sorted(_ACCESS_BLOCKS.items()) if block in blocks]
    if scope.block_duration is not None:
        access.append(f"Data is grouped in {scope.block_duration} blocks")
    technical = tuple(
        f"{block}: {FUNCTION_BLOCK_NAMES.get(block, 'function block ' + str(block))}" for block in sorted(blocks)
    )
    return ScopeDescription(
        data=tuple(data),
        access=tuple(access),
        history=describe_period(scope.history_length),
        technical=technical,
        scope=str(scope),
    )


def describe_until(expires_at: dt.datetime | None) -> str:
    """How long a consent lasts, in words."""
    if expires_at is None:
        return "until you revoke it"
    return f"until {expires_at:%d %B %Y} (or until you revoke it)"
