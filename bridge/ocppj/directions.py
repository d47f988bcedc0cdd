"""Which party may send which CALL, per OCPP version.

Rules
- `CHARGER_SENDS[version]` are the actions a charging station sends to the CSMS, from the "Direction" of
  each message in the specifications (OCPP 1.6 §4 and the security white paper's messages; OCPP 2.0.1
  part 2 chapter 6: the messages "sent by the Charging Station"). DataTransfer goes both ways.
- The CSMS sends every other action of its version, and DataTransfer: `may_send` reads the set of a
  version's actions from the official schemas (`SchemaRegistry.knows`), so this module names only the
  smaller side. tests/core/test_directions.py checks both sides against the schemas' action lists.
- A CALL a peer may not send (a CSMS sending Heartbeat, a charger sending RequestStartTransaction) is
  answered NotSupported by `bridge.ocppj.rpc` (the action is known, not supported in that direction) and is
  never handed to the station, so it is not forwarded.
"""

from __future__ import annotations

import enum

from bridge.ocppj.errors import OcppVersion


class Sender(enum.Enum):
    CHARGER = "charging station"
    CSMS = "CSMS"

    __hash__ = object.__hash__


BOTH_WAYS = frozenset({"DataTransfer"})

CHARGER_SENDS: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: frozenset(
        {
            "Authorize",
            "BootNotification",
            "DataTransfer",
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
            "Heartbeat",
            "MeterValues",
            "StartTransaction",
            "StatusNotification",
            "StopTransaction",
            # the security white paper's
            "LogStatusNotification",
            "SecurityEventNotification",
            "SignCertificate",
            "SignedFirmwareStatusNotification",
        }
    ),
    OcppVersion.V201: frozenset(
        {
            "Authorize",
            "BootNotification",
            "ClearedChargingLimit",
            "DataTransfer",
            "FirmwareStatusNotification",
            "Get15118EVCertificate",
            "GetCertificateStatus",
            "Heartbeat",
            "LogStatusNotification",
            "MeterValues",
            "NotifyChargingLimit",
            "NotifyCustomerInformation",
            "NotifyDisplayMessages",
            "NotifyEVChargingNeeds",
            "NotifyEVChargingSchedule",
            "NotifyEvent",
            "NotifyMonitoringReport",
            "NotifyReport",
            "PublishFirmwareStatusNotification",
            "ReportChargingProfiles",
            "ReservationStatusUpdate",
            "SecurityEventNotification",
            "SignCertificate",
            "StatusNotification",
            "TransactionEvent",
        }
    ),
}


def may_send(version: OcppVersion, sender: Sender, action: str) -> bool:
    """Whether `sender` may send a CALL of `action`, a known action of `version`."""
    if action in BOTH_WAYS:
        return True
    from_charger = action in CHARGER_SENDS[version]
    return from_charger if sender is Sender.CHARGER else not from_charger
