"""TransactionEvent and meter values of a 104 station: the payloads, built from decoded point values.

Rules
- A connector's meter sample holds every point of that connector that maps to a measurand and has a
  known value: measurements in their table unit, counters in Wh when their unit is an energy unit
  (Wh, kWh), otherwise in their own unit. Values are rounded to 3 decimals.
- The transaction register (`rules.transaction.meter`) goes into Started with context Transaction.Begin
  and into Ended with context Transaction.End, in Wh, as Energy.Active.Import.Register unless the point
  names another measurand.
- Trigger reasons: a start is RemoteStart when it consumed an accepted RequestStartTransaction,
  ChargingStateChanged when the connector is charging, CablePluggedIn otherwise. An end takes its
  trigger from its stop reason (`END_TRIGGERS`); a remote stop (the charger confirmed
  RequestStopTransaction and then stopped) is stoppedReason Remote, trigger RemoteStop.
- A `Pending` event may wait for a fresh register (`waiting_until`): the core asked for a counter
  interrogation at the start or end and sends the event when the register arrives or the wait is over.
  An Ended may also wait for the charger's settlement record (`awaiting_settlement`, vendor tables):
  then only the record or the end of the wait releases it.
- A card's idToken (vendor tables) goes into Started (trigger Authorized) and Ended (the stop card,
  trigger StopAuthorized); a settlement record's fields go into the Ended's customData.
  Events of one connector leave in order: nothing overtakes a waiting event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bridge.stations.iec104.rules import CounterRule, MeasurementRule
from bridge.stations.iec104.vocabulary import WH_PER_UNIT

REGISTER: Final = "Energy.Active.Import.Register"
END_TRIGGERS: Final[dict[str, str]] = {
    "EVDisconnected": "EVCommunicationLost",
    "Remote": "RemoteStop",
    "Local": "ChargingStateChanged",
    "StoppedByEV": "ChargingStateChanged",
    "SOCLimitReached": "ChargingStateChanged",
    "EnergyLimitReached": "EnergyLimitReached",
    "TimeLimitReached": "TimeLimitReached",
    "DeAuthorized": "Deauthorized",
    "ImmediateReset": "ResetCommand",
    "Reboot": "ResetCommand",
    "Timeout": "EVConnectTimeout",
}
DEFAULT_END_TRIGGER: Final = "AbnormalCondition"  # EmergencyStop, faults, Other, PowerLoss …

MeterRule = MeasurementRule | CounterRule


@dataclass(slots=True, eq=False)
class Pending:
    """A TransactionEvent decided but not yet sent (it may wait for the register)."""

    event_type: str  # Started, Updated, Ended
    trigger: str
    timestamp: str
    charging_state: str | None = None
    stopped_reason: str | None = None
    remote: dict[str, Any] | None = None  # remoteStartId and idToken of a remote start
    meter_values: list[dict[str, Any]] = field(default_factory=list)
    register_context: str | None = None  # Transaction.Begin / Transaction.End
    waiting_until: float | None = None
    register_wh: float | None = None
    id_token: dict[str, Any] | None = (
        None  # a card's (Started: the start card; Ended: the stop card)
    )
    custom_data: dict[str, Any] | None = None  # a settlement record's fields (Ended)
    awaiting_settlement: bool = False  # an Ended that waits for the charger's settlement record
    settlement: Any = None  # the record (bridge.stations.iec104.vendor.Record) this Ended carries


def number(value: float) -> float | int:
    rounded = round(float(value), 3)
    return int(rounded) if rounded.is_integer() and abs(rounded) < 2**53 else rounded


def sampled_value(rule: MeterRule, value: float, context: str) -> dict[str, Any] | None:
    """One SampledValue for a decoded point value (counters: value in the counter's unit)."""
    if rule.measurand is None:
        return None
    unit = rule.unit
    if isinstance(rule, CounterRule) and unit in WH_PER_UNIT:
        value = value * WH_PER_UNIT[unit]
        unit = "Wh"
    sampled: dict[str, Any] = {
        "value": number(value),
        "context": context,
        "measurand": rule.measurand,
    }
    if isinstance(rule, MeasurementRule):
        if rule.phase is not None:
            sampled["phase"] = rule.phase
        if rule.location is not None:
            sampled["location"] = rule.location
    if unit:
        sampled["unitOfMeasure"] = {"unit": unit}
    return sampled


def meter_value(
    rules: list[MeterRule], values: Mapping[int, bool | int | float], context: str, timestamp: str
) -> dict[str, Any] | None:
    """A MeterValue with every known measurand of `rules`, or None when none is known."""
    sampled = []
    for rule in rules:
        value = values.get(rule.ioa)
        if value is None or isinstance(value, bool):
            continue
        item = sampled_value(rule, float(value), context)
        if item is not None:
            sampled.append(item)
    if not sampled:
        return None
    return {"timestamp": timestamp, "sampledValue": sampled}


def register_value(
    rule: CounterRule | MeasurementRule | None, wh: float, context: str, timestamp: str
) -> dict[str, Any]:
    measurand = rule.measurand if rule is not None and rule.measurand is not None else REGISTER
    return {
        "timestamp": timestamp,
        "sampledValue": [
            {
                "value": number(wh),
                "context": context,
                "measurand": measurand,
                "unitOfMeasure": {"unit": "Wh"},
            }
        ],
    }


def to_wh(rule: CounterRule | MeasurementRule, value: float) -> float | None:
    """A decoded energy value (in the rule's unit) in Wh, or None for a non-energy unit."""
    factor = WH_PER_UNIT.get(rule.unit or "")
    return None if factor is None else value * factor


def transaction_event(
    event: Pending, *, transaction_id: str, seq_no: int, evse_id: int
) -> dict[str, Any]:
    info: dict[str, Any] = {"transactionId": transaction_id}
    if event.charging_state is not None:
        info["chargingState"] = event.charging_state
    if event.stopped_reason is not None:
        info["stoppedReason"] = event.stopped_reason
    payload: dict[str, Any] = {
        "eventType": event.event_type,
        "timestamp": event.timestamp,
        "triggerReason": event.trigger,
        "seqNo": seq_no,
        "transactionInfo": info,
        "evse": {"id": evse_id, "connectorId": 1},
    }
    if event.remote is not None:
        info["remoteStartId"] = event.remote["remoteStartId"]
        payload["idToken"] = event.remote["idToken"]
    elif event.id_token is not None:
        payload["idToken"] = event.id_token
    if event.custom_data is not None:
        payload["customData"] = event.custom_data
    meter = list(event.meter_values)
    if meter:
        payload["meterValue"] = meter
    return payload


def start_trigger(remote: bool, charging_state: str | None) -> str:
    if remote:
        return "RemoteStart"
    return "ChargingStateChanged" if charging_state == "Charging" else "CablePluggedIn"


def end_trigger(reason: str) -> str:
    return END_TRIGGERS.get(reason, DEFAULT_END_TRIGGER)
