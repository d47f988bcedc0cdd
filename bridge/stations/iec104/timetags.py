"""IEC 60870-5-101/104 time tags: CP56Time2a and CP24Time2a as on the wire, and CP56 ↔ epoch.

Rules
- `Cp56` and `Cp24` hold the fields exactly as transmitted, each within its bit width (milliseconds
  0..65535, minute 0..63, hour 0..31, day 0..31, month 0..15, year 0..127, weekday 0..7): a tag the
  sender got wrong (month 13, hour 24) still decodes and re-encodes unchanged; only the conversion to
  an instant refuses it. `substituted` is the RES1/GEN bit (IEC 60870-5-101 ed. 2: the time tag was
  substituted, not genuine). The other reserved bits (RES2..RES4) are ignored on reading and sent as 0.
- A CP56 tag is local time of the sender, years 2000..2099. The caller passes the sender's time zone
  as a `datetime.tzinfo` (usually a `zoneinfo.ZoneInfo` built by the adapter); nothing here reads a
  clock or the system's zone database.
- `cp56_to_epoch` returns None for an invalid tag (IV set) and for fields that name no instant
  (month 13, day 0, hour 24, 31 February…). A local time the zone's clocks show twice (the autumn
  fold) or never (the spring gap) is resolved with the SU flag: the reading whose DST state matches SU.
- `cp56_from_epoch` rounds to the millisecond, sets the weekday and sets SU when the zone's `dst()` is
  non-zero at that instant; it raises ValueError for instants outside 2000..2099 or not finite.
"""

from __future__ import annotations

import datetime
from typing import NamedTuple


class Cp56(NamedTuple):
    """CP56Time2a (7 bytes) as on the wire: local time of the sender."""

    milliseconds: int  # seconds * 1000 + ms, 0..59999 when meaningful
    minute: int
    hour: int
    day: int
    month: int
    year: int  # 0..99 meaning 2000..2099
    weekday: int = 0  # 0 not used, 1..7 Monday..Sunday
    invalid: bool = False  # IV
    summer: bool = False  # SU
    substituted: bool = False  # RES1 / GEN


class Cp24(NamedTuple):
    """CP24Time2a (3 bytes): milliseconds and minute within the hour."""

    milliseconds: int
    minute: int
    invalid: bool = False  # IV
    substituted: bool = False  # RES1 / GEN


def cp56_to_epoch(tag: Cp56, zone: datetime.tzinfo) -> float | None:
    """The instant a CP56 tag names in `zone`, as seconds since the epoch; None when it names none."""
    if tag.invalid:
        return None
    ms = tag.milliseconds
    if not (
        0 <= ms <= 59999
        and 0 <= tag.minute <= 59
        and 0 <= tag.hour <= 23
        and 1 <= tag.month <= 12
        and 1 <= tag.day <= 31
        and 0 <= tag.year <= 99
    ):
        return None
    try:
        local = datetime.datetime(
            2000 + tag.year,
            tag.month,
            tag.day,
            tag.hour,
            tag.minute,
            ms // 1000,
            (ms % 1000) * 1000,
            tzinfo=zone,
        )
    except ValueError:  # 31 April, 29 February of a common year
        return None
    other = local.replace(fold=1)
    # Offsets differ only in a fold or a gap; there SU says which reading the sender meant.
    if local.utcoffset() != other.utcoffset() and bool(local.dst()) != tag.summer:
        local = other
    return local.timestamp()


def cp56_from_epoch(epoch: float, zone: datetime.tzinfo) -> Cp56:
    """The CP56 tag a sender in `zone` would send for an instant (seconds since the epoch)."""
    try:
        whole, ms = divmod(round(epoch * 1000), 1000)
    except (ValueError, OverflowError) as exc:  # NaN, infinities
        raise ValueError(f"no CP56 time tag for {epoch!r}") from exc
    try:
        local = datetime.datetime.fromtimestamp(whole, zone)
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"no CP56 time tag for {epoch!r}") from exc
    if not 2000 <= local.year <= 2099:
        raise ValueError(f"CP56 years are 2000..2099, not {local.year}")
    return Cp56(
        local.second * 1000 + ms,
        local.minute,
        local.hour,
        local.day,
        local.month,
        local.year - 2000,
        local.isoweekday(),
        False,
        bool(local.dst()),
    )
