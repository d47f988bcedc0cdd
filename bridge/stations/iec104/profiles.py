"""Charging profiles evaluated by the bridge (OCPP 2.0.1 K01, K08): the limit in force now, and when it changes.

A 104 charger knows no charging profiles: it has setpoints (C_SE) that take a current or a power limit.
The station core keeps the profiles the CSMS installed, asks this module which limit is in force at a
moment, writes it to the setpoint, and wakes up again at the moment returned with it.

Rules
- Times are seconds since the epoch (UTC); `validFrom`, `validTo` and `startSchedule` are parsed from the
  profile's RFC 3339 text.
- A schedule's start: Absolute at `startSchedule` (else when the profile was installed); Relative at the
  start of the EVSE's transaction (else when it was installed); Recurring at the latest
  `startSchedule + k × (1 day | 1 week)` not after the moment. Only the first ChargingSchedule of a
  profile is used (the others exist for ISO 15118 negotiation).
- A profile gives a limit while it is valid (validFrom ≤ t < validTo), its schedule has started and
  not run past its `duration`: the limit of the last period whose startPeriod has passed.
- Which profile wins (`in_force`): TxProfile over TxDefaultProfile; within a purpose the highest
  stackLevel; at equal stack level a profile for the EVSE itself over one for EVSE 0 (all EVSEs). A
  profile that gives no limit at the moment passes to the next one, so a lower stack level shows
  through once a higher one has run out. A TxProfile applies only to its own transaction.
- The next change is the earliest boundary of any candidate (a period start, the end of a duration or a
  recurrence, validFrom, validTo): re-evaluating then is always enough, sometimes more than needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bridge.timestamps import parse_timestamp

RECURRENCE_SECONDS: Final = {"Daily": 86_400.0, "Weekly": 604_800.0}
TX_PURPOSES: Final = ("TxProfile", "TxDefaultProfile")
STATION_PURPOSES: Final = ("ChargingStationMaxProfile",)
_PURPOSE_RANK: Final = {"TxProfile": 0, "TxDefaultProfile": 1, "ChargingStationMaxProfile": 0}


@dataclass(frozen=True, slots=True)
class Installed:
    """A profile the CSMS set, on EVSE `evse_id` (0: the station), installed at `installed_at`."""

    evse_id: int
    profile: dict[str, Any]
    installed_at: float

    @property
    def profile_id(self) -> int:
        return int(self.profile["id"])

    @property
    def purpose(self) -> str:
        return str(self.profile["chargingProfilePurpose"])

    @property
    def stack_level(self) -> int:
        return int(self.profile["stackLevel"])

    def record(self) -> dict[str, Any]:
        return {"evse_id": self.evse_id, "profile": self.profile, "installed_at": self.installed_at}


@dataclass(frozen=True, slots=True)
class Limit:
    value: float
    unit: str  # "A" or "W", the schedule's chargingRateUnit
    profile_id: int


@dataclass(frozen=True, slots=True)
class TxContext:
    """The EVSE's running transaction, for TxProfiles and Relative schedules."""

    transaction_id: str
    started_at: float


def epoch(text: object) -> float | None:
    """An RFC 3339 date-time as seconds since the epoch, or None."""
    if not isinstance(text, str):
        return None
    moment: datetime | None = parse_timestamp(text)
    return None if moment is None else moment.timestamp()


def schedule_limit(
    installed: Installed, t: float, tx: TxContext | None
) -> tuple[Limit | None, float | None]:
    """The limit this profile sets at `t` (None: none), and the next moment that may change."""
    profile = installed.profile
    boundaries: list[float] = []
    valid_from = epoch(profile.get("validFrom"))
    valid_to = epoch(profile.get("validTo"))
    if valid_to is not None:
        if t >= valid_to:
            return None, None
        boundaries.append(valid_to)
    if valid_from is not None and t < valid_from:
        return None, _earliest([valid_from, *boundaries])
    schedule = profile["chargingSchedule"][0]
    kind = profile.get("chargingProfileKind")
    anchor = epoch(schedule.get("startSchedule"))
    if kind == "Relative":
        start = tx.started_at if tx is not None else installed.installed_at
    elif kind == "Recurring":
        base = anchor if anchor is not None else installed.installed_at
        cycle = RECURRENCE_SECONDS.get(
            str(profile.get("recurrencyKind")), RECURRENCE_SECONDS["Daily"]
        )
        start = base + math.floor((t - base) / cycle) * cycle if t >= base else base
        if t >= base:
            boundaries.append(start + cycle)
    else:
        start = anchor if anchor is not None else installed.installed_at
    elapsed = t - start
    if elapsed < 0:
        return None, _earliest([start, *boundaries])
    duration = schedule.get("duration")
    if isinstance(duration, int | float):
        if elapsed >= duration:
            return None, _earliest(boundaries)
        boundaries.append(start + duration)
    active: dict[str, Any] | None = None
    for period in sorted(schedule["chargingSchedulePeriod"], key=lambda p: p["startPeriod"]):
        if period["startPeriod"] <= elapsed:
            active = period
        else:
            boundaries.append(start + period["startPeriod"])
            break
    if active is None:
        return None, _earliest(boundaries)
    unit = str(schedule["chargingRateUnit"])
    return Limit(float(active["limit"]), unit, installed.profile_id), _earliest(boundaries)


def in_force(
    profiles: Iterable[Installed],
    *,
    evse_id: int,
    purposes: tuple[str, ...],
    t: float,
    tx: TxContext | None,
) -> tuple[Limit | None, float | None]:
    """The winning limit of `purposes` on `evse_id` at `t`, and the next moment to look again."""
    candidates = [
        p
        for p in profiles
        if p.purpose in purposes
        and (p.evse_id == evse_id or (evse_id != 0 and p.evse_id == 0))
        and _applies(p, tx)
    ]
    candidates.sort(key=lambda p: (_PURPOSE_RANK[p.purpose], -p.stack_level, p.evse_id == 0))
    found: Limit | None = None
    boundaries: list[float] = []
    for candidate in candidates:
        limit, boundary = schedule_limit(candidate, t, tx)
        if boundary is not None:
            boundaries.append(boundary)
        if found is None and limit is not None:
            found = limit
    return found, _earliest(boundaries)


def _applies(installed: Installed, tx: TxContext | None) -> bool:
    if installed.purpose != "TxProfile":
        return True
    if tx is None:
        return False
    wanted = installed.profile.get("transactionId")
    return wanted is None or wanted == tx.transaction_id


def _earliest(moments: list[float]) -> float | None:
    return min(moments) if moments else None
