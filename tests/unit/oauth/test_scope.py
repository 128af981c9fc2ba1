"""Property tests of the ESPI scope grammar (ESPI-NOTES §5): one parser, one canonical printer."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.oauth.scope import (
    OFFLINE_ACCESS,
    EspiScope,
    ScopeError,
    parse_scope,
    parse_scope_parameter,
)

blocks = st.frozensets(st.integers(min_value=1, max_value=99), min_size=1, max_size=12)
durations = st.lists(st.integers(min_value=1, max_value=86_400), max_size=3, unique=True).map(
    lambda v: tuple(sorted(v))
)
scopes = st.builds(
    EspiScope,
    function_blocks=blocks,
    interval_durations=durations,
    block_duration=st.none() | st.sampled_from(["daily", "weekly", "monthly", "billingperiod"]),
    history_length=st.none() | st.integers(min_value=0, max_value=10_000),
    subscription_frequency=st.none() | st.integers(min_value=0, max_value=10_000),
    account_collection=st.none() | st.integers(min_value=0, max_value=10_000),
    bulk_id=st.none() | st.from_regex(r"\A[A-Za-z0-9._-]{1,12}\Z"),
)


@given(scopes)
def test_canonical_form_round_trips(scope: EspiScope) -> None:
    assert parse_scope(str(scope)) == scope


@given(scopes)
def test_printing_is_idempotent(scope: EspiScope) -> None:
    assert str(parse_scope(str(parse_scope(str(scope))))) == str(scope)


@given(scopes, st.randoms())
def test_term_order_and_key_case_do_not_matter(scope: EspiScope, random) -> None:
    terms = str(scope).split(";")
    random.shuffle(terms)
    shuffled = ";".join(
        (key.upper() if random.random() < 0.5 else key.lower()) + "=" + value
        for key, _, value in (term.partition("=") for term in terms)
    )
    if "FB" not in {t.partition("=")[0].upper() for t in terms}:
        return
    assert parse_scope(shuffled + (";" if random.random() < 0.5 else "")) == scope


@given(scopes)
def test_a_scope_is_within_itself(scope: EspiScope) -> None:
    assert scope.is_within(scope)


@given(scopes, blocks)
def test_extra_function_blocks_are_never_within(scope: EspiScope, extra: frozenset[int]) -> None:
    wider = EspiScope(function_blocks=scope.function_blocks | extra)
    if not extra <= scope.function_blocks:
        assert not wider.is_within(scope)


@given(st.text(max_size=300))
def test_arbitrary_text_parses_or_raises_scope_error(text: str) -> None:
    with contextlib.suppress(ScopeError):
        parse_scope(text)


@given(scopes, st.from_regex(r"\A[A-Za-z]{1,12}\Z"))
def test_unknown_keys_are_refused(scope: EspiScope, key: str) -> None:
    if key.lower() in {
        "fb",
        "intervalduration",
        "blockduration",
        "historylength",
        "subscriptionfrequency",
        "accountcollection",
        "br",
    }:
        return
    with pytest.raises(ScopeError):
        parse_scope(f"{scope};{key}=1")


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "FB=",
        "FB=a",
        "FB=0",
        "FB=100",
        "FB=1;;IntervalDuration=900",
        "FB=1;FB=2",
        "FB=1 FB=2",
        "IntervalDuration=900",
        "FB=1;IntervalDuration=0",
        "FB=1;BlockDuration=yearly",
        "FB=1;BR=a b",
        "FB=1;HistoryLength=-1",
        "FB=1;x",
        "FB=" + "1_" * 200 + "1",
    ],
)
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(text)


@given(scopes, st.booleans(), st.booleans())
def test_scope_parameter_holds_one_espi_scope_and_maybe_offline_access(
    scope: EspiScope, offline: bool, offline_first: bool
) -> None:
    tokens = [str(scope)] + ([OFFLINE_ACCESS] if offline else [])
    if offline_first:
        tokens.reverse()
    parsed = parse_scope_parameter(" ".join(tokens))
    assert parsed.espi == scope
    assert parsed.offline_access is offline
    assert parse_scope_parameter(parsed.tokens()) == parsed


@given(scopes, scopes)
def test_two_espi_scopes_are_refused(first: EspiScope, second: EspiScope) -> None:
    with pytest.raises(ScopeError):
        parse_scope_parameter(f"{first} {second}")


def test_repeated_offline_access_is_refused() -> None:
    with pytest.raises(ScopeError):
        parse_scope_parameter("FB=1 offline_access offline_access")


def test_no_scope_parameter_means_no_scope() -> None:
    assert parse_scope_parameter(None).espi is None
