"""bridge.timestamps: 1.6 times → RFC 3339 UTC `Z`, unsynchronised clocks refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.outcome import Problem
from bridge.timestamps import (
    Normalized,
    TimestampPolicy,
    format_utc,
    normalize_timestamp,
    parse_timestamp,
    timestamp_or,
    utc_for_charger,
)

SCHEMAS = OfficialSchemas()
CET = TimestampPolicy(assumed_offset_minutes=60)
RECEIVED = "2026-03-01T12:00:00Z"


def assert_valid_201_time(value: str) -> None:
    """A 2.0.1 date-time the official schema accepts (a HeartbeatResponse carries one)."""
    payload = {"currentTime": value}
    check = SCHEMAS.check(OcppVersion.V201, "Heartbeat", PayloadKind.RESPONSE, payload)
    assert check is None, check


@pytest.mark.parametrize(
    ("text", "policy", "expected", "assumed"),
    [
        ("2026-03-01T10:15:30Z", TimestampPolicy(), "2026-03-01T10:15:30Z", False),
        ("2026-03-01T10:15:30z", TimestampPolicy(), "2026-03-01T10:15:30Z", False),
        ("2026-03-01T11:15:30+01:00", TimestampPolicy(), "2026-03-01T10:15:30Z", False),
        ("2026-03-01T11:15:30+0100", TimestampPolicy(), "2026-03-01T10:15:30Z", False),
        ("2026-03-01T05:15:30-05", TimestampPolicy(), "2026-03-01T10:15:30Z", False),
        ("2026-03-01T10:15:30.123456Z", TimestampPolicy(), "2026-03-01T10:15:30.123Z", False),
        ("2026-03-01T10:15:30.9999Z", TimestampPolicy(), "2026-03-01T10:15:30.999Z", False),
        ("2026-03-01T10:15:30.000Z", TimestampPolicy(), "2026-03-01T10:15:30Z", False),
        ("2026-03-01 10:15:30", TimestampPolicy(), "2026-03-01T10:15:30Z", True),
        # no offset: read in the station's assumed offset
        ("2026-03-01T11:15:30", CET, "2026-03-01T10:15:30Z", True),
        ("2026-01-01T00:30:00", CET, "2025-12-31T23:30:00Z", True),
        # an explicit offset wins over the assumed one
        ("2026-03-01T10:15:30Z", CET, "2026-03-01T10:15:30Z", False),
    ],
)
def test_normalizes_to_utc_z(
    text: str, policy: TimestampPolicy, expected: str, assumed: bool
) -> None:
    result = normalize_timestamp(text, policy)
    assert result == Normalized(expected, assumed)
    assert_valid_201_time(result.value)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("1970-01-01T00:00:05Z", "unsynchronised-clock"),
        ("2009-12-31T23:59:59Z", "unsynchronised-clock"),
        ("2000-01-01T00:00:00", "unsynchronised-clock"),
        ("yesterday", "invalid-timestamp"),
        ("2026-13-01T00:00:00Z", "invalid-timestamp"),
        ("2026-02-30T00:00:00Z", "invalid-timestamp"),
        ("2026-03-01T24:00:00Z", "invalid-timestamp"),
        ("2026-03-01T10:00:00+25:00", "invalid-timestamp"),
        ("2026-03-01", "invalid-timestamp"),
        ("", "invalid-timestamp"),
    ],
)
def test_refuses_what_cannot_be_forwarded(text: str, kind: str) -> None:
    result = normalize_timestamp(text, path="meterValue.0.timestamp")
    assert isinstance(result, Problem)
    assert result.kind == kind
    assert result.path == "meterValue.0.timestamp"


def test_earliest_year_is_configurable() -> None:
    assert isinstance(normalize_timestamp("2015-06-01T00:00:00Z"), Normalized)
    refused = normalize_timestamp("2015-06-01T00:00:00Z", TimestampPolicy(earliest_year=2020))
    assert isinstance(refused, Problem)


class TestTimestampOr:
    def test_usable_time_is_kept(self) -> None:
        outcome = timestamp_or("2026-03-01T10:00:00+02:00", RECEIVED)
        assert (outcome.value, outcome.problem) == ("2026-03-01T08:00:00Z", None)

    def test_1970_is_replaced_by_the_receive_time_and_reported(self) -> None:
        outcome = timestamp_or("1970-01-01T00:00:00Z", RECEIVED)
        assert outcome.value == RECEIVED
        assert outcome.problem is not None
        assert outcome.problem.kind == "unsynchronised-clock"

    def test_missing_time_is_the_receive_time_without_problem(self) -> None:
        outcome = timestamp_or(None, RECEIVED)
        assert (outcome.value, outcome.problem) == (RECEIVED, None)


def test_format_utc_of_naive_and_aware_datetimes() -> None:
    assert format_utc(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"
    aware = datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=timezone(timedelta(hours=-3)))
    assert format_utc(aware) == "2026-01-02T06:04:05.250Z"


def test_utc_for_charger_rewrites_offsets_and_keeps_the_unparseable() -> None:
    assert utc_for_charger("2026-05-01T02:00:00+02:00") == "2026-05-01T00:00:00Z"
    assert utc_for_charger("not a time") == "not a time"


@given(
    moment=st.datetimes(
        min_value=datetime(2010, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    offset_minutes=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
    digits=st.integers(min_value=0, max_value=9),
)
def test_any_offset_and_fraction_round_trips_to_the_same_instant(
    moment: datetime, offset_minutes: int, digits: int
) -> None:
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    fraction = f".{local.microsecond:06d}{'0' * 3}"[: digits + 1] if digits else ""
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + f"{sign}{hours:02d}:{minutes:02d}"
    result = normalize_timestamp(text)
    assert isinstance(result, Normalized)
    assert result.value.endswith("Z")
    assert_valid_201_time(result.value)
    back = parse_timestamp(result.value)
    assert back is not None
    # the sent fraction, truncated to milliseconds: never moved forward
    kept = 10 ** (6 - min(digits, 3))
    assert back == moment.replace(microsecond=moment.microsecond // kept * kept)


@given(st.text(max_size=40))
def test_any_text_gives_a_time_or_a_problem_never_an_exception(text: str) -> None:
    result = normalize_timestamp(text)
    assert isinstance(result, Normalized | Problem)
    if isinstance(result, Normalized):
        assert_valid_201_time(result.value)
