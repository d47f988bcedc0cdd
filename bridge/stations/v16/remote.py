"""CSMS → charger remote control: RequestStart/StopTransaction, Reset, ChangeAvailability,
UnlockConnector, TriggerMessage and DataTransfer, each with its response converted back.

Rules
- Each request function returns `Forward` (the 1.6 call), `Reply` (a truthful 2.0.1 answer when 1.6 cannot
  express the request) or `Emulate`; never raises on a schema-valid 2.0.1 request.
- An EVSE has one connector (1.6 connector N = EVSE N, connector 1): a request naming connectorId ≠ 1 is
  answered without asking the charger (UnknownConnectorId / UnknownConnector).
- RequestStartTransaction (F01): the core supplies the idTag (the token itself, or its alias; None →
  Rejected InvalidIdToken). A profile goes through `bridge.stations.v16.charging` (refused → Rejected with its
  reasonCode, F01.FR.26); groupIdToken has no slot. The response may carry the transactionId of a
  transaction that was already running but not authorized (F01.FR.13), which the core knows.
- RequestStopTransaction (F03): the 2.0.1 transactionId → the 1.6 integer through the injected lookup; an
  unknown one is Rejected (F03.FR.08), without asking the charger.
- Reset (B11/B12): Immediate → Hard, OnIdle → Soft. 1.6 Reset has no EVSE scope: Reset with evseId is
  Rejected (design choice). OnIdle semantics (wait for transactions to end) are the core's: it defers the
  Soft reset while a transaction runs and answers Scheduled.
- ChangeAvailability (G03/G04): no evse → connector 0 (the whole charger).
- UnlockConnector (F05): 1.6 would stop a running transaction and unlock; 2.0.1 refuses with
  OngoingAuthorizedTransaction, which the bridge answers itself when the core says one runs (design
  choice). 1.6 NotSupported → UnlockFailed with reasonCode UnsupportedRequest.
- TriggerMessage (F06): see `TRIGGER_MESSAGE_DOWN`. BootNotification after an accepted boot is Rejected
  (F06.FR.17). Heartbeat is emulated (the bridge sends its own). TransactionEvent is asked of the charger
  as MeterValues of that connector (the core sends the resulting transaction MeterValues as
  TransactionEvent(Trigger)). SignChargingStationCertificate goes as the security white paper's
  ExtendedTriggerMessage, as does any message the caller names in `extended_for` (e.g. LogStatusNotification
  after a security GetLog). SignV2GCertificate, SignCombinedCertificate and
  PublishFirmwareStatusNotification → NotImplemented.
- DataTransfer (P01, CSMS-initiated): 2.0.1 data of any JSON type → 1.6 string (compact JSON for
  non-strings); the answer's data stays a string.
"""

from __future__ import annotations

from collections.abc import Collection

from bridge.stations.v16.charging import ProfileRefusal, TransactionLookup, charging_profile_down
from bridge.stations.v16.enums import (
    AVAILABILITY_STATUS_UP,
    DATA_TRANSFER_STATUS,
    EXTENDED_TRIGGER_DOWN,
    OPERATIONAL_STATUS_DOWN,
    REMOTE_START_STOP_STATUS_UP,
    RESET_STATUS_UP,
    RESET_TYPE_DOWN,
    TRIGGER_EMULATED,
    TRIGGER_MESSAGE_DOWN,
    TRIGGER_STATUS_UP,
    UNLOCK_STATUS_UP,
)
from bridge.stations.v16.outcome import Emulate, Forward, Payload, Reply, refuse, status_info
from bridge.stations.v16.station import data_text

# --- transactions ---------------------------------------------------------------------------------


def request_start_transaction(
    request: Payload, *, id_tag: str | None, transaction_id_of: TransactionLookup | None = None
) -> Forward | Reply:
    """F01: RequestStartTransaction → RemoteStartTransaction."""
    if id_tag is None:
        return refuse("Rejected", "InvalidIdToken", "the idToken has no OCPP 1.6 idTag")
    payload: Payload = {"idTag": id_tag}
    if "evseId" in request:
        payload["connectorId"] = request["evseId"]
    if "chargingProfile" in request:
        profile = request["chargingProfile"]
        if profile.get("chargingProfilePurpose") != "TxProfile":
            return refuse(
                "Rejected", "InvalidProfile", "F01.FR.09: the profile must be a TxProfile"
            )
        conversion = charging_profile_down(profile, transaction_id_of)
        if isinstance(conversion, ProfileRefusal):
            return refuse("Rejected", conversion.reason_code, conversion.detail)
        payload["chargingProfile"] = conversion.profile
    return Forward("RemoteStartTransaction", payload)


def request_start_transaction_response(
    response: Payload, *, transaction_id: str | None = None
) -> Payload:
    result: Payload = {
        "status": REMOTE_START_STOP_STATUS_UP.get(response.get("status", ""), "Rejected")
    }
    if transaction_id is not None:
        result["transactionId"] = transaction_id
    return result


def request_stop_transaction(
    request: Payload, *, transaction_id_of: TransactionLookup
) -> Forward | Reply:
    """F03: RequestStopTransaction → RemoteStopTransaction with the charger's integer id."""
    number = transaction_id_of(request["transactionId"])
    if number is None:
        return refuse(
            "Rejected", "UnknownTxId", f"no transaction {request['transactionId']!r} is running"
        )
    return Forward("RemoteStopTransaction", {"transactionId": number})


def request_stop_transaction_response(response: Payload) -> Payload:
    return {"status": REMOTE_START_STOP_STATUS_UP.get(response.get("status", ""), "Rejected")}


# --- Reset, availability, unlock ----------------------------------------------------------------------


def reset(request: Payload) -> Forward | Reply:
    """B11/B12: Reset Immediate → Hard, OnIdle → Soft (deferral is the core's)."""
    if "evseId" in request:
        return refuse("Rejected", "UnsupportedParam", "OCPP 1.6 cannot reset a single EVSE")
    return Forward("Reset", {"type": RESET_TYPE_DOWN[request["type"]]})


def reset_response(response: Payload) -> Payload:
    return {"status": RESET_STATUS_UP.get(response.get("status", ""), "Rejected")}


def change_availability(request: Payload) -> Forward | Reply:
    """G03/G04: evse absent → connector 0."""
    evse = request.get("evse")
    connector_id = 0
    if isinstance(evse, dict):
        if evse.get("connectorId", 1) != 1:
            return refuse(
                "Rejected", "UnknownConnectorId", "each EVSE of an OCPP 1.6 charger has connector 1"
            )
        connector_id = evse["id"]
    return Forward(
        "ChangeAvailability",
        {
            "connectorId": connector_id,
            "type": OPERATIONAL_STATUS_DOWN[request["operationalStatus"]],
        },
    )


def change_availability_response(response: Payload) -> Payload:
    return {"status": AVAILABILITY_STATUS_UP.get(response.get("status", ""), "Rejected")}


def unlock_connector(
    request: Payload, *, ongoing_authorized_transaction: bool = False
) -> Forward | Reply:
    """F05: UnlockConnector; refused locally where 2.0.1 and 1.6 semantics differ."""
    if request["connectorId"] != 1:
        return Reply(
            {"status": "UnknownConnector"}, "each EVSE of an OCPP 1.6 charger has connector 1"
        )
    if ongoing_authorized_transaction:
        return Reply(
            {"status": "OngoingAuthorizedTransaction"},
            "F05.FR.02: an authorized transaction runs on this EVSE",
        )
    return Forward("UnlockConnector", {"connectorId": request["evseId"]})


def unlock_connector_response(response: Payload) -> Payload:
    status = response.get("status", "UnlockFailed")
    result: Payload = {"status": UNLOCK_STATUS_UP.get(status, "UnlockFailed")}
    if status == "NotSupported":
        result["statusInfo"] = status_info(
            "UnsupportedRequest", "the charger cannot unlock this connector remotely"
        )
    return result


# --- TriggerMessage -------------------------------------------------------------------------------------


def trigger_message(
    request: Payload, *, boot_accepted: bool = False, extended_for: Collection[str] = ()
) -> Forward | Reply | Emulate:
    """F06: TriggerMessage → TriggerMessage or ExtendedTriggerMessage, emulated, or NotImplemented."""
    requested = request["requestedMessage"]
    evse = request.get("evse")
    connector_id = evse["id"] if isinstance(evse, dict) else None
    if isinstance(evse, dict) and evse.get("connectorId", 1) != 1:
        return refuse(
            "Rejected", "UnknownConnectorId", "each EVSE of an OCPP 1.6 charger has connector 1"
        )
    if requested == "BootNotification" and boot_accepted:
        return refuse("Rejected", "InvalidMessageSeq", "F06.FR.17: the boot is already accepted")
    if requested in TRIGGER_EMULATED:
        return Emulate(requested, {"status": "Accepted"}, {"requestedMessage": requested})
    if requested in extended_for and requested in EXTENDED_TRIGGER_DOWN:
        action, message = "ExtendedTriggerMessage", EXTENDED_TRIGGER_DOWN[requested]
    elif requested in TRIGGER_MESSAGE_DOWN:
        action, message = TRIGGER_MESSAGE_DOWN[requested]
    else:
        return refuse(
            "NotImplemented", "UnsupportedRequest", f"{requested} has no OCPP 1.6 counterpart"
        )
    payload: Payload = {"requestedMessage": message}
    if connector_id is not None:
        payload["connectorId"] = connector_id
    return Forward(action, payload)


def trigger_message_response(response: Payload) -> Payload:
    return {"status": TRIGGER_STATUS_UP.get(response.get("status", ""), "Rejected")}


# --- DataTransfer -----------------------------------------------------------------------------------------


def data_transfer_down(request: Payload) -> Forward:
    """P01 (CSMS-initiated): 2.0.1 DataTransferRequest → 1.6 DataTransfer.req."""
    payload: Payload = {"vendorId": request["vendorId"]}
    if "messageId" in request:
        payload["messageId"] = request["messageId"]
    if "data" in request:
        payload["data"] = data_text(request["data"])
    return Forward("DataTransfer", payload)


def data_transfer_down_response(response: Payload) -> Payload:
    result: Payload = {"status": DATA_TRANSFER_STATUS.get(response.get("status", ""), "Rejected")}
    if "data" in response:
        result["data"] = response["data"]
    return result
