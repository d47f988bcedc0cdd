"""Smart charging: 2.0.1 ChargingProfile → 1.6 csChargingProfiles, ClearChargingProfile,
GetCompositeSchedule (request down, response up), and GetChargingProfiles answered from the profiles the
bridge installed.

Rules
- Profile fields: `id` → `chargingProfileId`; purposes renamed (ChargingStationMaxProfile →
  ChargePointMaxProfile); ChargingStationExternalConstraints is refused (no 1.6 purpose, and K01.FR.22
  forbids a CSMS to set it); `transactionId` (2.0.1 string) → the 1.6 integer through the injected lookup,
  an unknown one refused with TxNotFound (K01.FR.33). stackLevel, kind, recurrencyKind, validFrom and
  validTo keep their values (times re-written as UTC `Z`).
- Schedules (design choice): 1.6 has one chargingSchedule, 2.0.1 up to three. Three schedules are the
  ISO 15118 alternatives an EV may choose from (K01.FR.34), so they are reduced to their pointwise minimum:
  at every instant the 1.6 limit is the lowest limit of the schedules active then, which respects
  whichever alternative the EV would have picked. That needs one rate unit, one startSchedule and, at every
  instant, one numberPhases (absent = 3) across the schedules; otherwise the profile is refused
  (InvalidSchedule). A schedule ends at its duration; the result lasts as long as the longest (or forever
  when one has no duration). minChargingRate is kept when all schedules agree, else dropped.
- What 1.6 cannot carry: `chargingSchedule.id` (the 15118 SAScheduleTupleID) and `salesTariff` (tariff
  information for the EV) do not change the limit: they are dropped and listed in the result's `notes`.
  `phaseToUse` does change which phase charges: it is refused (UnsupportedParam); the bridge never reports
  ACPhaseSwitchingSupported, so a compliant CSMS does not send it (K01.FR.20).
- 1.6 accepts limits with at most one decimal (1.6 §7.13): finer limits are rounded *down*, so the charger
  never exceeds what the CSMS allowed. A first period not starting at 0 is refused (K01.FR.31). The core
  keeps the profile as installed (`as_installed`: rounded), and GetChargingProfiles reports that.
- Responses: SetChargingProfile NotSupported → Rejected with reasonCode UnsupportedRequest.
  GetCompositeSchedule: 1.6 optional fields are filled from the request (evseId, duration) and the core's
  `now` (scheduleStart); an Accepted answer with no usable schedule is sent without one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Final

from bridge.stations.v16.enums import (
    CHARGING_PROFILE_PURPOSE_DOWN,
    CHARGING_PROFILE_STATUS_UP,
    CLEAR_CHARGING_PROFILE_STATUS_UP,
    COMPOSITE_SCHEDULE_STATUS_UP,
)
from bridge.stations.v16.outcome import Forward, Payload, Reply, refuse, status_info
from bridge.timestamps import parse_timestamp, utc_for_charger

#: An injected lookup: the 1.6 integer transaction id of a 2.0.1 transactionId the bridge issued.
TransactionLookup = Callable[[str], int | None]

DEFAULT_PHASES: Final = 3
_ONE_DECIMAL: Final = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class ProfileConversion:
    profile: Payload  # 1.6 ChargingProfile (csChargingProfiles)
    notes: tuple[str, ...]  # 2.0.1 content that had no 1.6 field and did not change the limits


@dataclass(frozen=True, slots=True)
class ProfileRefusal:
    reason_code: str  # 2.0.1 reason code for statusInfo
    detail: str


def charging_profile_down(
    profile: Payload, transaction_id_of: TransactionLookup | None = None
) -> ProfileConversion | ProfileRefusal:
    """A 2.0.1 ChargingProfileType as a 1.6 ChargingProfile."""
    purpose = CHARGING_PROFILE_PURPOSE_DOWN.get(profile.get("chargingProfilePurpose", ""))
    if purpose is None:
        return ProfileRefusal(
            "InvalidProfile",
            f"purpose {profile.get('chargingProfilePurpose')} has no OCPP 1.6 counterpart",
        )
    schedule = reduce_schedules(profile.get("chargingSchedule", []))
    if isinstance(schedule, ProfileRefusal):
        return schedule
    converted, notes = schedule
    result: Payload = {
        "chargingProfileId": profile["id"],
        "stackLevel": profile["stackLevel"],
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": profile["chargingProfileKind"],
        "chargingSchedule": converted,
    }
    if "transactionId" in profile:
        number = transaction_id_of(profile["transactionId"]) if transaction_id_of else None
        if number is None:
            return ProfileRefusal(
                "TxNotFound", f"transaction {profile['transactionId']!r} is not known"
            )
        result["transactionId"] = number
    if "recurrencyKind" in profile:
        result["recurrencyKind"] = profile["recurrencyKind"]
    for name in ("validFrom", "validTo"):
        if name in profile:
            result[name] = utc_for_charger(profile[name])
    return ProfileConversion(result, notes)


# --- schedule reduction ---------------------------------------------------------------------------


def reduce_schedules(
    schedules: Sequence[Payload],
) -> tuple[Payload, tuple[str, ...]] | ProfileRefusal:
    """One 1.6 ChargingSchedule for up to three 2.0.1 ones (see the module rules), with the notes."""
    if not schedules:
        return ProfileRefusal("InvalidSchedule", "no chargingSchedule")
    notes: list[str] = []
    for schedule in schedules:
        problem = _check_schedule(schedule)
        if problem is not None:
            return problem
        if "id" in schedule:
            notes.append(f"chargingSchedule.id {schedule['id']} has no OCPP 1.6 field: dropped")
        if "salesTariff" in schedule:
            notes.append("salesTariff has no OCPP 1.6 field: dropped")
    first = schedules[0]
    units = {s["chargingRateUnit"] for s in schedules}
    if len(units) > 1:
        return ProfileRefusal("InvalidSchedule", "the schedules use different rate units")
    starts = {_instant(s.get("startSchedule")) for s in schedules}
    if len(starts) > 1:
        return ProfileRefusal("InvalidSchedule", "the schedules have different startSchedule")
    periods = _minimum_periods(schedules)
    if isinstance(periods, ProfileRefusal):
        return periods
    if not periods:
        return ProfileRefusal("InvalidSchedule", "the schedules last no time (duration 0)")
    limited, rounded = _one_decimal_periods(periods)
    if rounded:
        notes.append("limits with more than one decimal rounded down for OCPP 1.6")
    result: Payload = {
        "chargingRateUnit": first["chargingRateUnit"],
        "chargingSchedulePeriod": limited,
    }
    durations = [s.get("duration") for s in schedules]
    if all(d is not None for d in durations):
        result["duration"] = max(d for d in durations if d is not None)
    if "startSchedule" in first:
        result["startSchedule"] = utc_for_charger(first["startSchedule"])
    rates = {s.get("minChargingRate") for s in schedules}
    if len(rates) == 1:
        rate = rates.pop()
        if rate is not None:
            result["minChargingRate"] = rate
    else:
        notes.append("the schedules disagree on minChargingRate: dropped")
    if len(schedules) > 1:
        notes.append(f"{len(schedules)} schedules reduced to their minimum")
    return result, tuple(notes)


def _check_schedule(schedule: Payload) -> ProfileRefusal | None:
    periods = schedule.get("chargingSchedulePeriod", [])
    if not periods:
        return ProfileRefusal("InvalidSchedule", "a schedule has no periods")
    if any("phaseToUse" in p for p in periods):
        return ProfileRefusal("UnsupportedParam", "phaseToUse cannot be expressed in OCPP 1.6")
    if min(p["startPeriod"] for p in periods) != 0:
        return ProfileRefusal("InvalidSchedule", "the first period does not start at 0")
    return None


def _instant(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    moment = parse_timestamp(text)
    return moment if moment is not None else text


def _period_at(periods: Sequence[Payload], moment: int) -> Payload:
    current = periods[0]
    for period in periods:
        if period["startPeriod"] <= moment:
            current = period
    return current


def _minimum_periods(schedules: Sequence[Payload]) -> list[Payload] | ProfileRefusal:
    ordered = [
        sorted(s["chargingSchedulePeriod"], key=lambda p: p["startPeriod"]) for s in schedules
    ]
    ends = [s.get("duration") for s in schedules]
    breakpoints = sorted(
        {p["startPeriod"] for periods in ordered for p in periods}
        | {end for end in ends if end is not None}
    )
    last_end = None if any(end is None for end in ends) else max(e for e in ends if e is not None)
    merged: list[Payload] = []
    for moment in breakpoints:
        if last_end is not None and moment >= last_end:
            break
        active = [
            _period_at(periods, moment)
            for periods, end in zip(ordered, ends, strict=True)
            if end is None or moment < end
        ]
        phases = {p.get("numberPhases", DEFAULT_PHASES) for p in active}
        if len(phases) > 1:
            return ProfileRefusal(
                "InvalidSchedule", f"the schedules use different numberPhases at {moment} s"
            )
        period: Payload = {"startPeriod": moment, "limit": min(p["limit"] for p in active)}
        if any("numberPhases" in p for p in active):
            period["numberPhases"] = phases.pop()
        if merged and _same_limit(merged[-1], period):
            continue
        merged.append(period)
    return merged


def _same_limit(a: Payload, b: Payload) -> bool:
    return bool(
        a["limit"] == b["limit"]
        and a.get("numberPhases", DEFAULT_PHASES) == b.get("numberPhases", DEFAULT_PHASES)
    )


def _one_decimal_periods(periods: list[Payload]) -> tuple[list[Payload], bool]:
    rounded = False
    result = []
    for period in periods:
        limit = _floor_one_decimal(period["limit"])
        rounded = rounded or limit != period["limit"]
        result.append({**period, "limit": limit})
    return result, rounded


def _floor_one_decimal(limit: int | float) -> int | float:
    try:
        value = Decimal(str(limit)).quantize(_ONE_DECIMAL, rounding=ROUND_FLOOR)
    except InvalidOperation:
        return limit
    return int(value) if value == value.to_integral_value() else float(value)


# --- SetChargingProfile ---------------------------------------------------------------------------


def set_charging_profile(
    request: Payload, transaction_id_of: TransactionLookup | None = None
) -> Forward | Reply:
    """K01: SetChargingProfile → SetChargingProfile (evseId → connectorId)."""
    conversion = charging_profile_down(request["chargingProfile"], transaction_id_of)
    if isinstance(conversion, ProfileRefusal):
        return refuse("Rejected", conversion.reason_code, conversion.detail)
    return Forward(
        "SetChargingProfile",
        {"connectorId": request["evseId"], "csChargingProfiles": conversion.profile},
    )


def set_charging_profile_response(response: Payload) -> Payload:
    status = response.get("status", "Rejected")
    result: Payload = {"status": CHARGING_PROFILE_STATUS_UP.get(status, "Rejected")}
    if status == "NotSupported":
        result["statusInfo"] = status_info(
            "UnsupportedRequest", "the charger does not support smart charging"
        )
    return result


# --- ClearChargingProfile ---------------------------------------------------------------------------


def clear_charging_profile(request: Payload) -> Forward | Reply:
    """K10: the criteria re-spelled; ExternalConstraints profiles cannot exist on a 1.6 charger."""
    payload: Payload = {}
    if "chargingProfileId" in request:
        payload["id"] = request["chargingProfileId"]
    criteria = request.get("chargingProfileCriteria", {})
    if "evseId" in criteria:
        payload["connectorId"] = criteria["evseId"]
    if "chargingProfilePurpose" in criteria:
        purpose = CHARGING_PROFILE_PURPOSE_DOWN.get(criteria["chargingProfilePurpose"])
        if purpose is None:
            return refuse(
                "Unknown",
                "NotFound",
                f"no {criteria['chargingProfilePurpose']} profile can exist on an OCPP 1.6 charger",
            )
        payload["chargingProfilePurpose"] = purpose
    if "stackLevel" in criteria:
        payload["stackLevel"] = criteria["stackLevel"]
    return Forward("ClearChargingProfile", payload)


def clear_charging_profile_response(response: Payload) -> Payload:
    return {"status": CLEAR_CHARGING_PROFILE_STATUS_UP.get(response.get("status", ""), "Unknown")}


# --- GetCompositeSchedule -------------------------------------------------------------------------------


def get_composite_schedule(request: Payload) -> Forward:
    """K08: evseId → connectorId; duration and chargingRateUnit as they are."""
    payload: Payload = {"connectorId": request["evseId"], "duration": request["duration"]}
    if "chargingRateUnit" in request:
        payload["chargingRateUnit"] = request["chargingRateUnit"]
    return Forward("GetCompositeSchedule", payload)


def get_composite_schedule_response(response: Payload, *, request: Payload, now: str) -> Payload:
    """The charger's composite schedule as 2.0.1 CompositeScheduleType (`now`: RFC 3339, the core's)."""
    status = COMPOSITE_SCHEDULE_STATUS_UP.get(response.get("status", ""), "Rejected")
    result: Payload = {"status": status}
    schedule = response.get("chargingSchedule")
    if status != "Accepted" or not isinstance(schedule, dict):
        return result
    periods = schedule.get("chargingSchedulePeriod") or []
    if not periods:
        return result
    start = response.get("scheduleStart") or schedule.get("startSchedule") or now
    result["schedule"] = {
        "evseId": response.get("connectorId", request["evseId"]),
        "duration": schedule.get("duration", request["duration"]),
        "scheduleStart": utc_for_charger(start),
        "chargingRateUnit": schedule["chargingRateUnit"],
        "chargingSchedulePeriod": [
            {k: p[k] for k in ("startPeriod", "limit", "numberPhases") if k in p} for p in periods
        ],
    }
    return result


# --- GetChargingProfiles, answered from what the bridge installed -----------------------------------


@dataclass(frozen=True, slots=True)
class InstalledProfile:
    """A 2.0.1 profile the charger accepted (SetChargingProfile Accepted), kept by the core."""

    evse_id: int
    profile: Payload


def as_installed(profile: Payload) -> Payload:
    """K09: the 2.0.1 profile as the charger got it (limits rounded down to one decimal), which is
    what GetChargingProfiles reports."""
    schedules = []
    for schedule in profile.get("chargingSchedule", []):
        periods, _ = _one_decimal_periods(schedule.get("chargingSchedulePeriod", []))
        schedules.append({**schedule, "chargingSchedulePeriod": periods})
    return {**profile, "chargingSchedule": schedules}


def get_charging_profiles(
    request: Payload, installed: Sequence[InstalledProfile], *, max_per_report: int = 10
) -> tuple[Payload, list[Payload]]:
    """K09 (emulated): the response and the ReportChargingProfiles requests, from the bridge's record.

    All these profiles came from the CSMS, so their chargingLimitSource is CSO.
    """
    criteria = request.get("chargingProfile", {})
    sources = criteria.get("chargingLimitSource")
    matches = [
        item
        for item in installed
        if ("evseId" not in request or item.evse_id == request["evseId"])
        and _matches(item.profile, criteria)
        and (sources is None or "CSO" in sources)
    ]
    if not matches:
        return {"status": "NoProfiles"}, []
    groups: dict[int, list[Payload]] = {}
    for item in matches:
        groups.setdefault(item.evse_id, []).append(item.profile)
    chunks = [
        (evse_id, profiles[i : i + max_per_report])
        for evse_id, profiles in sorted(groups.items())
        for i in range(0, len(profiles), max(1, max_per_report))
    ]
    reports = [
        {
            "requestId": request["requestId"],
            "chargingLimitSource": "CSO",
            "evseId": evse_id,
            "chargingProfile": chunk,
            "tbc": index < len(chunks) - 1,
        }
        for index, (evse_id, chunk) in enumerate(chunks)
    ]
    return {"status": "Accepted"}, reports


def _matches(profile: Payload, criteria: Payload) -> bool:
    if "chargingProfileId" in criteria and profile["id"] not in criteria["chargingProfileId"]:
        return False
    for name in ("chargingProfilePurpose", "stackLevel"):
        if name in criteria and profile.get(name) != criteria[name]:
            return False
    return True
