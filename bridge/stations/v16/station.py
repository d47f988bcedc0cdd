"""Charger → CSMS: BootNotification, Heartbeat, StatusNotification (+ its error codes as NotifyEvent) and
DataTransfer, each with its response converted back.

Rules
- Numbering (2.3 of the reference): 1.6 connector N is 2.0.1 EVSE N with its single connector 1. 1.6
  connector 0 (the whole charger) has no 2.0.1 connector: its status is fanned out.
- BootNotification: the identity is carried over (model, vendorName, firmwareVersion, modem); serialNumber
  is chargePointSerialNumber, else the deprecated chargeBoxSerialNumber. 1.6 has no reason: the core
  passes it (PowerUp on a fresh connection, RemoteReset after a Reset it forwarded, ...). The fields with no
  2.0.1 slot (chargeBoxSerialNumber, meterType, meterSerialNumber) become device-model variables through
  `boot_identity_variables`, so a report still shows them. The response's interval may be overridden:
  the charger's heartbeat goes to the bridge, which keeps its own northbound heartbeat.
- StatusNotification: `CONNECTOR_STATUS_UP` gives the 2.0.1 status (and the chargingState the core sends
  in a TransactionEvent when a transaction is open). Connector 0 fan-out (design choice): the charger's own
  Unavailable or Faulted overrides each connector's status unless the connector's is worse (Faulted beats
  Unavailable); when connector 0 is Available every connector shows its own last status.
- Error codes (design choice): 2.0.1 StatusNotification has no error fields. Every errorCode other than
  NoError raises a NotifyEvent (trigger Delta, HardWiredNotification) on the standard component and
  variable of `ERROR_CODE_EVENT`, actualValue "true", techCode = the 1.6 errorCode, techInfo = info,
  vendorId and vendorErrorCode. NoError clears the previous error: the core passes that code with
  `cleared=True` (actualValue "false", cleared true). eventId is the caller's.
- DataTransfer: vendorId and messageId as they are; 1.6 data is a string and stays one. A 2.0.1 answer's
  non-string data (2.0.1 allows any JSON) is sent to the charger as compact JSON text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.ocppj.errors import BridgeMisuse
from bridge.stations.v16.enums import (
    CONNECTOR_STATUS_UP,
    DATA_TRANSFER_STATUS,
    ERROR_CODE_EVENT,
    NO_ERROR,
    REGISTRATION_STATUS_DOWN,
    STATUS_SEVERITY,
)
from bridge.stations.v16.outcome import Payload

LEGACY_COMPONENT = "OCPP16LegacyCtrlr"

# --- BootNotification ------------------------------------------------------------------------------


def boot_notification_request(request: Payload, *, reason: str) -> Payload:
    """B01: 1.6 BootNotification.req → 2.0.1 BootNotificationRequest."""
    station: Payload = {
        "model": request["chargePointModel"],
        "vendorName": request["chargePointVendor"],
    }
    serial = request.get("chargePointSerialNumber") or request.get("chargeBoxSerialNumber")
    if serial:
        station["serialNumber"] = serial
    if "firmwareVersion" in request:
        station["firmwareVersion"] = request["firmwareVersion"]
    modem = {name: request[name] for name in ("iccid", "imsi") if name in request}
    if modem:
        station["modem"] = modem
    return {"reason": reason, "chargingStation": station}


def boot_notification_response(response: Payload, *, interval: int | None = None) -> Payload:
    """B01: 2.0.1 BootNotificationResponse → 1.6 BootNotification.conf (statusInfo has no slot)."""
    return {
        "status": REGISTRATION_STATUS_DOWN.get(response["status"], "Rejected"),
        "currentTime": response["currentTime"],
        "interval": response["interval"] if interval is None else interval,
    }


@dataclass(frozen=True, slots=True)
class IdentityVariable:
    component: str
    variable: str
    value: str


def boot_identity_variables(request: Payload) -> list[IdentityVariable]:
    """The 1.6 boot identity as read-only device-model variables (bridge-owned, for reports)."""
    pairs = [
        ("ChargingStation", "Model", "chargePointModel"),
        ("ChargingStation", "VendorName", "chargePointVendor"),
        ("ChargingStation", "SerialNumber", "chargePointSerialNumber"),
        ("ChargingStation", "FirmwareVersion", "firmwareVersion"),
        ("DataLink", "ICCID", "iccid"),
        ("DataLink", "IMSI", "imsi"),
        ("FiscalMetering", "Model", "meterType"),
        ("FiscalMetering", "SerialNumber", "meterSerialNumber"),
        (LEGACY_COMPONENT, "ChargeBoxSerialNumber", "chargeBoxSerialNumber"),
    ]
    return [
        IdentityVariable(component, variable, str(request[field]))
        for component, variable, field in pairs
        if request.get(field) not in (None, "")
    ]


def heartbeat_response(now: str) -> Payload:
    """The bridge answers the charger's Heartbeat itself; `now` is the bridge's clock, RFC 3339."""
    return {"currentTime": now}


# --- StatusNotification ----------------------------------------------------------------------------


def status_notification_request(connector_id: int, status: str, timestamp: str) -> Payload:
    """G01: one 1.6 connector's status as a 2.0.1 StatusNotificationRequest (connector > 0)."""
    return {
        "timestamp": timestamp,
        "connectorStatus": CONNECTOR_STATUS_UP[status][0],
        "evseId": connector_id,
        "connectorId": 1,
    }


def charging_state(status: str) -> str | None:
    """The 2.0.1 chargingState a 1.6 status implies (None: says nothing about energy flow)."""
    return CONNECTOR_STATUS_UP[status][1]


def effective_status(station_status: str | None, connector_status: str) -> str:
    """A connector's 1.6 status combined with the charger's own (connector 0) status."""
    if station_status is None:
        return connector_status
    if STATUS_SEVERITY.get(station_status, 0) > STATUS_SEVERITY.get(connector_status, 0):
        return station_status
    return connector_status


def station_status_requests(
    station_status: str, connector_statuses: Mapping[int, str], timestamp: str
) -> list[Payload]:
    """G01 fan-out: connector 0's status applied to every connector (`connector_statuses`: each
    connector's last own 1.6 status; connectors never heard of should be given as Available)."""
    return [
        status_notification_request(
            connector_id, effective_status(station_status, status), timestamp
        )
        for connector_id, status in sorted(connector_statuses.items())
        if connector_id > 0
    ]


# --- error codes → NotifyEvent -----------------------------------------------------------------------


def is_error(error_code: str) -> bool:
    return error_code != NO_ERROR and error_code in ERROR_CODE_EVENT


def error_event_data(
    request: Payload,
    *,
    event_id: int,
    timestamp: str,
    error_code: str | None = None,
    cleared: bool = False,
) -> Payload:
    """N07-style event data for a 1.6 StatusNotification's error.

    `error_code` defaults to the request's; to clear, pass the code being cleared and `cleared=True`.
    """
    code = error_code or request["errorCode"]
    if code not in ERROR_CODE_EVENT:
        raise BridgeMisuse(f"{code} raises no event; to clear, pass the code being cleared")
    component_name, variable_name, on_connector = ERROR_CODE_EVENT[code]
    connector_id = request.get("connectorId", 0)
    component: Payload = {"name": component_name}
    if connector_id > 0:
        component["evse"] = (
            {"id": connector_id, "connectorId": 1} if on_connector else {"id": connector_id}
        )
    data: Payload = {
        "eventId": event_id,
        "timestamp": timestamp,
        "trigger": "Delta",
        "actualValue": "false" if cleared else "true",
        "techCode": code,
        "eventNotificationType": "HardWiredNotification",
        "component": component,
        "variable": {"name": variable_name},
    }
    if cleared:
        data["cleared"] = True
    tech_info = "; ".join(
        f"{name}={request[name]}"
        for name in ("info", "vendorId", "vendorErrorCode")
        if request.get(name) and not cleared
    )
    if tech_info:
        data["techInfo"] = tech_info[:500]
    return data


def notify_event_request(
    event_data: Sequence[Payload], *, generated_at: str, seq_no: int = 0, tbc: bool = False
) -> Payload:
    """A NotifyEventRequest around event data (from this module or `meter.reading_event_data`)."""
    request: Payload = {"generatedAt": generated_at, "seqNo": seq_no, "eventData": list(event_data)}
    if tbc:
        request["tbc"] = True
    return request


# --- DataTransfer ---------------------------------------------------------------------------------------


def data_text(data: Any) -> str:
    """2.0.1 data (any JSON) as 1.6 data (a string): strings as they are, the rest as compact JSON."""
    return data if isinstance(data, str) else orjson.dumps(data).decode()


def data_transfer_up(request: Payload) -> Payload:
    """P01 (charger-initiated): 1.6 DataTransfer.req → 2.0.1 DataTransferRequest, unchanged."""
    return {name: request[name] for name in ("vendorId", "messageId", "data") if name in request}


def data_transfer_up_response(response: Payload) -> Payload:
    """2.0.1 DataTransferResponse → 1.6 DataTransfer.conf (statusInfo has no slot)."""
    result: Payload = {"status": DATA_TRANSFER_STATUS.get(response["status"], "Rejected")}
    if "data" in response:
        result["data"] = data_text(response["data"])
    return result
