"""How the bridge treats every OCPP 2.0.1 action a CSMS can send to a 1.6J charger, and every 1.6J
action a charger sends: the table the station core dispatches on and docs/ocpp16-mapping.md states.

Rules
- `CSMS_ACTIONS` lists all 40 CSMS → station actions of 2.0.1, each with one `Treatment`:
  - TRANSLATED: converted to the 1.6 message(s) in `via` and the answer converted back;
  - EMULATED: the bridge answers from its own state or builds the result from 1.6 data (reports,
    GetTransactionStatus, GetChargingProfiles);
  - ANSWERED: no 1.6 counterpart; the bridge sends a truthful 2.0.1 response whose status says so
    (NotSupported, Unknown, NotFound, UnsupportedMonitorType, NoFirmware), built by `answer_unsupported`;
  - CALLERROR: no 1.6 counterpart and no response status that could say so: CALLERROR NotSupported
    ("recognized but not supported", 2.0.1 part 4 §4.3).
  Never silence: every action has an answer.
- The choice between ANSWERED and CALLERROR: if the response's status enumeration can state the truth
  (the feature is absent: NotSupported; nothing of the kind exists: Unknown/NotFound/NoFirmware), that
  answer is sent; otherwise (only Accepted/Rejected-like values, or no status at all) a Rejected would
  suggest a passing refusal, so CALLERROR NotSupported is sent.
- `CHARGER_ACTIONS` lists the 1.6J (+ security) actions a charger sends, with what the CSMS sees.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from bridge.ocppj.errors import BridgeMisuse
from bridge.stations.v16.outcome import Payload, status_info


class Treatment(enum.Enum):
    TRANSLATED = "translated"
    EMULATED = "emulated"
    ANSWERED = "answered NotSupported-style"
    CALLERROR = "CALLERROR NotSupported"


@dataclass(frozen=True, slots=True)
class ActionTreatment:
    action: str
    treatment: Treatment
    via: str  # the 1.6 message(s), or what the bridge does
    note: str = ""


_T = Treatment


def _table(*rows: ActionTreatment) -> Mapping[str, ActionTreatment]:
    return MappingProxyType({row.action: row for row in rows})


CSMS_ACTIONS: Final = _table(
    ActionTreatment("CancelReservation", _T.TRANSLATED, "CancelReservation"),
    ActionTreatment("CertificateSigned", _T.TRANSLATED, "CertificateSigned (security)",
                    "V2GCertificate: Rejected"),
    ActionTreatment("ChangeAvailability", _T.TRANSLATED, "ChangeAvailability",
                    "no evse → connector 0"),
    ActionTreatment("ClearCache", _T.TRANSLATED, "ClearCache"),
    ActionTreatment("ClearChargingProfile", _T.TRANSLATED, "ClearChargingProfile",
                    "ExternalConstraints: Unknown"),
    ActionTreatment("ClearDisplayMessage", _T.ANSWERED, "status Unknown",
                    "1.6 has no display messages, so none is known"),
    ActionTreatment("ClearVariableMonitoring", _T.ANSWERED, "NotFound for every id",
                    "1.6 has no monitors"),
    ActionTreatment("CostUpdated", _T.CALLERROR, "—", "1.6 cannot show a cost"),
    ActionTreatment("CustomerInformation", _T.CALLERROR, "—"),
    ActionTreatment("DataTransfer", _T.TRANSLATED, "DataTransfer", "non-string data as JSON text"),
    ActionTreatment("DeleteCertificate", _T.TRANSLATED, "DeleteCertificate (security)"),
    ActionTreatment("GetBaseReport", _T.EMULATED, "GetConfiguration → NotifyReport",
                    "through mappings/ocpp16-config.yaml"),
    ActionTreatment("GetChargingProfiles", _T.EMULATED, "ReportChargingProfiles",
                    "from the profiles the bridge installed"),
    ActionTreatment("GetCompositeSchedule", _T.TRANSLATED, "GetCompositeSchedule"),
    ActionTreatment("GetDisplayMessages", _T.ANSWERED, "status Unknown"),
    ActionTreatment("GetInstalledCertificateIds", _T.TRANSLATED,
                    "GetInstalledCertificateIds (security), one per type",
                    "V2G/MO types: NotFound"),
    ActionTreatment("GetLocalListVersion", _T.TRANSLATED, "GetLocalListVersion", "-1 → 0"),
    ActionTreatment("GetLog", _T.TRANSLATED, "GetDiagnostics / GetLog (security)",
                    "DiagnosticsLog → GetDiagnostics, SecurityLog → GetLog"),
    ActionTreatment("GetMonitoringReport", _T.ANSWERED, "status NotSupported"),
    ActionTreatment("GetReport", _T.EMULATED, "GetConfiguration → NotifyReport"),
    ActionTreatment("GetTransactionStatus", _T.EMULATED, "from bridge state"),
    ActionTreatment("GetVariables", _T.TRANSLATED, "GetConfiguration",
                    "through mappings/ocpp16-config.yaml"),
    ActionTreatment("InstallCertificate", _T.TRANSLATED, "InstallCertificate (security)",
                    "V2G/MO roots: Rejected"),
    ActionTreatment("PublishFirmware", _T.CALLERROR, "—", "local-controller feature"),
    ActionTreatment("RequestStartTransaction", _T.TRANSLATED, "RemoteStartTransaction",
                    "idToken > 20 characters through a durable alias"),
    ActionTreatment("RequestStopTransaction", _T.TRANSLATED, "RemoteStopTransaction",
                    "unknown transactionId: Rejected"),
    ActionTreatment("ReserveNow", _T.TRANSLATED, "ReserveNow",
                    "ReservationStatusUpdate synthesised by the bridge"),
    ActionTreatment("Reset", _T.TRANSLATED, "Reset",
                    "Immediate → Hard; OnIdle → Soft, deferred while a transaction runs "
                    "(Scheduled); evseId: Rejected"),
    ActionTreatment("SendLocalList", _T.TRANSLATED, "SendLocalList",
                    "idToken > 20 characters through a durable alias"),
    ActionTreatment("SetChargingProfile", _T.TRANSLATED, "SetChargingProfile",
                    "up to 3 schedules reduced to their minimum"),
    ActionTreatment("SetDisplayMessage", _T.CALLERROR, "—"),
    ActionTreatment("SetMonitoringBase", _T.ANSWERED, "status NotSupported"),
    ActionTreatment("SetMonitoringLevel", _T.CALLERROR, "—"),
    ActionTreatment("SetNetworkProfile", _T.CALLERROR, "—",
                    "the northbound connection is the bridge's configuration"),
    ActionTreatment("SetVariableMonitoring", _T.ANSWERED, "UnsupportedMonitorType for every item"),
    ActionTreatment("SetVariables", _T.TRANSLATED, "ChangeConfiguration, one per variable",
                    "through mappings/ocpp16-config.yaml"),
    ActionTreatment("TriggerMessage", _T.TRANSLATED, "TriggerMessage / ExtendedTriggerMessage",
                    "Heartbeat emulated; TransactionEvent via MeterValues; SignV2GCertificate, "
                    "SignCombinedCertificate, PublishFirmwareStatusNotification: NotImplemented"),
    ActionTreatment("UnlockConnector", _T.TRANSLATED, "UnlockConnector",
                    "OngoingAuthorizedTransaction answered by the bridge"),
    ActionTreatment("UnpublishFirmware", _T.ANSWERED, "status NoFirmware"),
    ActionTreatment("UpdateFirmware", _T.TRANSLATED, "UpdateFirmware / SignedUpdateFirmware (security)"),
)  # fmt: skip

#: 1.6J actions a charger sends, with what the CSMS sees.
CHARGER_ACTIONS: Final = _table(
    ActionTreatment("Authorize", _T.TRANSLATED, "Authorize"),
    ActionTreatment("BootNotification", _T.TRANSLATED, "BootNotification"),
    ActionTreatment("DataTransfer", _T.TRANSLATED, "DataTransfer"),
    ActionTreatment("DiagnosticsStatusNotification", _T.TRANSLATED, "LogStatusNotification",
                    "+ GetLog requestId"),
    ActionTreatment("FirmwareStatusNotification", _T.TRANSLATED, "FirmwareStatusNotification",
                    "+ UpdateFirmware requestId"),
    ActionTreatment("Heartbeat", _T.EMULATED, "answered by the bridge",
                    "the bridge keeps its own northbound heartbeat"),
    ActionTreatment("MeterValues", _T.TRANSLATED, "TransactionEvent(Updated) or MeterValues",
                    "Temperature/RPM → NotifyEvent"),
    ActionTreatment("StartTransaction", _T.TRANSLATED, "TransactionEvent(Started)"),
    ActionTreatment("StatusNotification", _T.TRANSLATED, "StatusNotification",
                    "+ TransactionEvent chargingState, + NotifyEvent for error codes; "
                    "connector 0 fanned out"),
    ActionTreatment("StopTransaction", _T.TRANSLATED, "TransactionEvent(Ended)"),
    ActionTreatment("LogStatusNotification", _T.TRANSLATED, "LogStatusNotification"),
    ActionTreatment("SecurityEventNotification", _T.TRANSLATED, "SecurityEventNotification"),
    ActionTreatment("SignCertificate", _T.TRANSLATED, "SignCertificate"),
    ActionTreatment("SignedFirmwareStatusNotification", _T.TRANSLATED,
                    "FirmwareStatusNotification"),
)  # fmt: skip


def answer_unsupported(action: str, request: Payload) -> Payload:
    """The truthful 2.0.1 response to an ANSWERED action (raises for any other action: a core bug)."""
    entry = CSMS_ACTIONS.get(action)
    if entry is None or entry.treatment is not Treatment.ANSWERED:
        raise BridgeMisuse(f"{action} is not answered NotSupported-style")
    why = status_info("UnsupportedRequest", f"an OCPP 1.6 charger has no {action}")
    if action in ("ClearDisplayMessage", "GetDisplayMessages"):
        return {"status": "Unknown", "statusInfo": why}
    if action in ("GetMonitoringReport", "SetMonitoringBase"):
        return {"status": "NotSupported", "statusInfo": why}
    if action == "UnpublishFirmware":
        return {"status": "NoFirmware"}
    if action == "ClearVariableMonitoring":
        return {
            "clearMonitoringResult": [
                {"status": "NotFound", "id": monitor_id, "statusInfo": why}
                for monitor_id in request["id"]
            ]
        }
    return {
        "setMonitoringResult": [
            {
                "status": "UnsupportedMonitorType",
                "type": item["type"],
                "severity": item["severity"],
                "component": item["component"],
                "variable": item["variable"],
                "statusInfo": why,
            }
            for item in request["setMonitoringData"]
        ]
    }


def transaction_status_response(*, ongoing: bool | None, messages_in_queue: bool) -> Payload:
    """E14 (emulated): `ongoing` is None when the request named no transaction (then omitted)."""
    response: Payload = {"messagesInQueue": messages_in_queue}
    if ongoing is not None:
        response["ongoingIndicator"] = ongoing
    return response
