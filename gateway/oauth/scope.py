"""The ESPI scope grammar: one parser and one canonical printer for scope strings (ESPI-NOTES §5).

An ESPI scope is one OAuth scope token (RFC 6749 §3.3) made of ``key=value`` terms joined by ``;``, for example
``FB=1_3_4_5_13_14_39;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13``. We are lenient on input (known
keys in any order, case-insensitive keys and values, a trailing ``;``) and strict on meaning: unknown keys, repeated
keys and malformed values are errors (``invalid_scope``, RFC 6749 §5.2), and a request is granted only within what the
application registered.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

__all__ = [
    "FUNCTION_BLOCK_NAMES",
    "OFFLINE_ACCESS",
    "EspiScope",
    "RequestedScope",
    "ScopeError",
    "parse_scope",
    "parse_scope_parameter",
]

OFFLINE_ACCESS = "offline_access"
"""The one non-ESPI scope token we accept: ask for a long-lived refresh token (as in OpenID Connect Core §11)."""


class ScopeError(ValueError):
    """The scope string is malformed or asks for something not allowed; the message says which term."""


FUNCTION_BLOCK_NAMES: dict[int, str] = {
    1: "Common data (usage points, readings)",
    2: "Green Button download (Download My Data)",
    3: "Core Connect My Data",
    4: "Interval metering",
    5: "Interval electricity metering",
    6: "Demand electricity metering",
    7: "Net metering",
    8: "Forward and reverse metering",
    9: "Register values",
    10: "Gas",
    11: "Water",
    12: "Interval cost (costs of each reading)",
    13: "Security and privacy classes",
    14: "Authorization and authentication (OAuth, pre-negotiated scope)",
    15: "Usage summary",
    16: "Usage summary with cost",
    17: "Power quality summary",
    18: "Multiple usage points",
    19: "Partial update data",
    27: "Usage summary with demands and previous-day attributes",
    28: "Usage summary costs for current billing period",
    29: "Temperature",
    30: "Common user experience",
    31: "OAuth without pre-negotiated scope",
    32: "Resource-level REST",
    33: "Management REST interfaces",
    34: "Subscription REST interfaces",
    35: "REST bulk",
    36: "Third-party data access via REST",
    37: "Query parameters",
    38: "On-demand requests",
    39: "Push notifications",
    40: "Offline authorization",
    41: "Manage Authorization resource",
    44: "Manage ApplicationInformation resource",
    45: "Get ApplicationInformation resource",
    46: "Manage Authorization resource (third party)",
    47: "Data custodian initiated disclosure",
    48: "Service status",
    49: "Third-party registration",
    50: "Retail customer access",
    51: "Retail customer (PII) common",
    52: "Retail customer account",
    53: "Retail customer: customer account",
    54: "Retail customer: agreement",
    55: "Retail customer: service location",
    56: "Retail customer: service supplier",
    57: "Retail customer: meter",
    58: "Retail customer: end device",
    59: "Retail customer: program date mapping",
    60: "Retail customer: statements",
    61: "Retail customer: bills",
    62: "Retail customer: program enrollment",
    63: "Retail customer: program date events",
    64: "Retail customer: customer",
    65: "Retail customer: customer agreement",
    66: "Retail customer: account notifications",
    67: "Retail customer: demand response",
    68: "Retail customer: electric vehicle",
    69: "Retail customer: service location details",
}

_BLOCK_DURATIONS = ("daily", "weekly", "monthly", "billingperiod")
_DIGITS = re.compile(r"^[0-9]{1,10}$")
_BULK_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MAX_SCOPE_LENGTH = 256  # ESPI Authorization.scope is a String256


@dataclasses.dataclass(frozen=True, slots=True)
class EspiScope:
    """A parsed ESPI scope. ``str()`` gives its canonical form (keys in a fixed order, values normalised)."""

    function_blocks: frozenset[int]
    interval_durations: tuple[int, ...] = ()
    block_duration: str | None = None
    history_length: int | None = None
    subscription_frequency: int | None = None
    account_collection: int | None = None
    bulk_id: str | None = None

    def __str__(self) -> str:
        terms = ["FB=" + "_".join(str(block) for block in sorted(self.function_blocks))]
        if self.interval_durations:
            terms.append("IntervalDuration=" + "_".join(str(d) for d in self.interval_durations))
        if self.block_duration is not None:
            terms.append(f"BlockDuration={self.block_duration}")
        if self.history_length is not None:
            terms.append(f"HistoryLength={self.history_length}")
        if self.subscription_frequency is not None:
            terms.append(f"SubscriptionFrequency={self.subscription_frequency}")
        if self.account_collection is not None:
            terms.append(f"AccountCollection={self.account_collection}")
        if self.bulk_id is not None:
            terms.append(f"BR={self.bulk_id}")
        return ";".join(terms)

    def has(self, *blocks: int) -> bool:
        """True when every one of ``blocks`` is granted."""
        return all(block in self.function_blocks for block in blocks)

    def is_within(self, allowed: EspiScope) -> bool:
        """True when this scope asks for nothing beyond ``allowed`` (RFC 6749 §3.3; ESPI-NOTES §5).

        Function blocks must be a subset; interval durations a subset when ``allowed`` lists them; a history no
        longer than allowed; the same bulk id when ``allowed`` names one.
        """
        if not self.function_blocks <= allowed.function_blocks:
            return False
        if allowed.interval_durations and not set(self.interval_durations) <= set(allowed.interval_durations):
            return False
        if allowed.history_length is not None and (
            self.history_length is None or self.history_length > allowed.history_length
        ):
            return False
        if allowed.block_duration is not None and self.block_duration not in (None, allowed.block_duration):
            return False
        return not (allowed.bulk_id is not None and self.bulk_id not in (None, allowed.bulk_id))

    def within_any(self, allowed: Iterable[EspiScope]) -> bool:
        """True when some registered scope covers this one."""
        return any(self.is_within(candidate) for candidate in allowed)


def _int_value(key: str, value: str) -> int:
    if not _DIGITS.match(value):
        raise ScopeError(f"scope term {key} must be a whole number, got {value!r}")
    return int(value)


def parse_scope(text: str) -> EspiScope:
    """Parse an ESPI scope string; raise :class:`ScopeError` naming the bad term.

    ``FB`` is required and must list at least one function block.
    """
    if not text or not text.strip():
        raise ScopeError("the scope is empty")
    if len(text) > _MAX_SCOPE_LENGTH:
        raise ScopeError(f"the scope is longer than {_MAX_SCOPE_LENGTH} characters")
    if any(ch.isspace() for ch in text):
        raise ScopeError("an ESPI scope is one token: it must not contain spaces")
    seen: dict[str, str] = {}
    for raw_term in text.rstrip(";").split(";"):
        if not raw_term:
            raise ScopeError("the scope has an empty term (two ';' in a row)")
        key, sep, value = raw_term.partition("=")
        if not sep or not key or not value:
            raise ScopeError(f"scope term {raw_term!r} is not of the form key=value")
        canonical = _KEYS.get(key.lower())
        if canonical is None:
            raise ScopeError(f"unknown scope term {key!r}")
        if canonical in seen:
            raise ScopeError(f"scope term {canonical} appears twice")
        seen[canonical] = value
    if "FB" not in seen:
        raise ScopeError("the scope must name its function blocks (FB=…)")

    blocks: set[int] = set()
    for part in seen["FB"].split("_"):
        number = _int_value("FB", part)
        if not 1 <= number <= 99:
            raise ScopeError(f"function block {number} is out of range (1-99)")
        blocks.add(number)

    durations: tuple[int, ...] = ()
    if "IntervalDuration" in seen:
        values = [_int_value("IntervalDuration", part) for part in seen["IntervalDuration"].split("_")]
        if any(value <= 0 for value in values):
            raise ScopeError("IntervalDuration values must be positive numbers of seconds")
        durations = tuple(sorted(set(values)))

    block_duration = None
    if "BlockDuration" in seen:
        block_duration = seen["BlockDuration"].lower()
        if block_duration not in _BLOCK_DURATIONS:
            raise ScopeError(
                f"BlockDuration must be one of {', '.join(_BLOCK_DURATIONS)}, got {seen['BlockDuration']!r}"
            )

    bulk_id = seen.get("BR")
    if bulk_id is not None and not _BULK_ID.match(bulk_id):
        raise ScopeError(f"BR (bulk id) must be 1-64 letters, digits, '.', '_' or '-', got {bulk_id!r}")

    return EspiScope(
        function_blocks=frozenset(blocks),
        interval_durations=durations,
        block_duration=block_duration,
        history_length=_int_value("HistoryLength", seen["HistoryLength"]) if "HistoryLength" in seen else None,
        subscription_frequency=(
            _int_value("SubscriptionFrequency", seen["SubscriptionFrequency"])
            if "SubscriptionFrequency" in seen
            else None
        ),
        account_collection=(
            _int_value("AccountCollection", seen["AccountCollection"]) if "AccountCollection" in seen else None
        ),
        bulk_id=bulk_id,
    )


_KEYS = {
    key.lower(): key
    for key in (
        "FB",
        "IntervalDuration",
        "BlockDuration",
        "HistoryLength",
        "SubscriptionFrequency",
        "AccountCollection",
        "BR",
    )
}


@dataclasses.dataclass(frozen=True, slots=True)
class RequestedScope:
    """An OAuth ``scope`` parameter (RFC 6749 §3.3): at most one ESPI scope, plus ``offline_access`` or not."""

    espi: EspiScope | None
    offline_access: bool = False

    def tokens(self) -> list[str]:
        """The space-separated tokens of the canonical form (what a token response echoes)."""
        result = [] if self.espi is None else [str(self.espi)]
        if self.offline_access:
            result.append(OFFLINE_ACCESS)
        return result

    def __str__(self) -> str:
        return " ".join(self.tokens())


def parse_scope_parameter(value: str | Iterable[str] | None) -> RequestedScope:
    """Parse an OAuth scope parameter holding one ESPI scope and optionally ``offline_access``.

    ``value`` is the raw parameter or the list of its space-separated tokens (RFC 6749 §3.3, order does not
    matter). Raise :class:`ScopeError` for a second ESPI scope, a repeated token or any malformed ESPI term.
    """
    if value is None:
        return RequestedScope(espi=None)
    tokens = value.split() if isinstance(value, str) else [token for token in value if token]
    if len(tokens) > 8:
        raise ScopeError("too many scope tokens")
    espi: EspiScope | None = None
    offline = False
    for token in tokens:
        if token == OFFLINE_ACCESS:
            if offline:
                raise ScopeError("offline_access appears twice")
            offline = True
            continue
        if espi is not None:
            raise ScopeError("only one ESPI scope may be requested at a time")
        espi = parse_scope(token)
    return RequestedScope(espi=espi, offline_access=offline)
