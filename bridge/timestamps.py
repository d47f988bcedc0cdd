"""OCPP 1.6 timestamps → RFC 3339 UTC with `Z`, as OCPP 2.0.1 wants them.

Rules
- Accepted input: `YYYY-MM-DD`, `T` (or `t`, or one space), `hh:mm:ss`, an optional fraction of any
  length, and an optional offset (`Z`, `z`, `±hh:mm`, `±hhmm`, `±hh`). Many 1.6 chargers send no offset:
  such a time is read in the station's configured `assumed_offset_minutes` (default 0, UTC) and the result
  says so (`offset_assumed`).
- Output: `YYYY-MM-DDThh:mm:ssZ`, or with exactly three fraction digits when the input had a non-zero
  fraction (2.0.1 part 2 §2.1.3: at most three decimal places; extra digits are truncated, not rounded, so
  a time never moves forward past its second).
- A clock that never synchronised (a year before `earliest_year`, 2010 by default: 1970 after a power cut
  is the usual case) is refused with a `Problem`, as is text that is no date-time at all. The core then
  substitutes its own receive time (`timestamp_or`) and reports the problem; it never forwards 1970.
- No clock here: the receive time is an argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from bridge.stations.v16.outcome import Problem

DEFAULT_EARLIEST_YEAR: Final = 2010

_DATE_TIME = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?\s*$"
)


@dataclass(frozen=True, slots=True)
class TimestampPolicy:
    """How one station's clock is read (configurable per station)."""

    assumed_offset_minutes: int = 0  # offset of timestamps that carry none, e.g. 60 for CET
    earliest_year: int = DEFAULT_EARLIEST_YEAR  # anything earlier is an unsynchronised clock


UTC_POLICY: Final = TimestampPolicy()


@dataclass(frozen=True, slots=True)
class Normalized:
    value: str  # RFC 3339 UTC with Z
    offset_assumed: bool


def is_date_time_text(text: str) -> bool:
    """Whether `text` is a date-time this module can read (offset optional): the date-time format
    the bridge checks 1.6 payloads against, instead of RFC 3339's stricter one."""
    return _DATE_TIME.match(text) is not None


def format_utc(moment: datetime) -> str:
    """RFC 3339 UTC with `Z`; milliseconds only when there are any. Naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    millis = moment.microsecond // 1000
    # written out: strftime cost a tenth of a translated 1.6 message's CPU (callgrind)
    base = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    return f"{base}.{millis:03d}Z" if millis else f"{base}Z"


def parse_timestamp(text: str, policy: TimestampPolicy = UTC_POLICY) -> datetime | None:
    """The instant `text` names (aware, UTC), or None when it is no date-time."""
    match = _DATE_TIME.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or "")[:6].ljust(6, "0")
    zone: timezone | None
    if match.group(8):
        zone = UTC
    elif match.group(9):
        sign = 1 if match.group(9) == "+" else -1
        hours, minutes = int(match.group(10)), int(match.group(11) or 0)
        if hours > 23 or minutes > 59:
            return None
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    else:
        zone = _assumed_zone(policy)
    if zone is None:
        return None
    try:
        moment = datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=zone)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _assumed_zone(policy: TimestampPolicy) -> timezone | None:
    try:
        return timezone(timedelta(minutes=policy.assumed_offset_minutes))
    except ValueError:
        return None


def normalize_timestamp(
    text: str, policy: TimestampPolicy = UTC_POLICY, *, path: str = "timestamp"
) -> Normalized | Problem:
    """A 1.6 timestamp as 2.0.1 wants it, or the `Problem` that stops it from being forwarded."""
    moment = parse_timestamp(text, policy)
    if moment is None:
        return Problem("invalid-timestamp", path, f"not an RFC 3339 date-time: {str(text)[:40]!r}")
    if moment.year < policy.earliest_year:
        return Problem(
            "unsynchronised-clock",
            path,
            f"{text!r} is before {policy.earliest_year}: the charger's clock is not set",
        )
    match = _DATE_TIME.match(text)
    offset_assumed = match is not None and not (match.group(8) or match.group(9))
    return Normalized(format_utc(moment), offset_assumed)


@dataclass(frozen=True, slots=True)
class TimestampOutcome:
    value: str
    problem: Problem | None


def timestamp_or(
    text: str | None,
    received_at: str,
    policy: TimestampPolicy = UTC_POLICY,
    *,
    path: str = "timestamp",
) -> TimestampOutcome:
    """The charger's time when usable, else `received_at` (the bridge's clock) with the problem to report.

    A missing timestamp (optional in some 1.6 messages) is no problem: the receive time is the truth.
    """
    if text is None:
        return TimestampOutcome(received_at, None)
    result = normalize_timestamp(text, policy, path=path)
    if isinstance(result, Problem):
        return TimestampOutcome(received_at, result)
    return TimestampOutcome(result.value, None)


def utc_for_charger(text: str) -> str:
    """A 2.0.1 date-time re-written as UTC with `Z` for a 1.6 charger (many mishandle other offsets).

    The text was validated against the 2.0.1 schema already; should it still not parse, it goes unchanged.
    """
    moment = parse_timestamp(text)
    return format_utc(moment) if moment is not None else text
