"""The compiled official schemas: every action of both versions, formats checked, faults classified."""

from __future__ import annotations

import pytest

from adapters.schemas import OfficialSchemas
from bridge.errors import Fault, OcppVersion
from bridge.schema import PayloadKind, Violation, fault_for

V16, V201 = OcppVersion.V16, OcppVersion.V201

CORE_16 = {
    "Authorize",
    "BootNotification",
    "CancelReservation",
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetDiagnostics",
    "GetLocalListVersion",
    "Heartbeat",
    "MeterValues",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
}
SECURITY_16 = {
    "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage", "GetInstalledCertificateIds",
    "GetLog", "InstallCertificate", "LogStatusNotification", "SecurityEventNotification",
    "SignCertificate", "SignedFirmwareStatusNotification", "SignedUpdateFirmware",
}  # fmt: skip


def test_every_16_core_and_security_action_is_known(schemas: OfficialSchemas) -> None:
    assert schemas.actions(V16) == CORE_16 | SECURITY_16


def test_every_201_action_is_known(schemas: OfficialSchemas) -> None:
    actions = schemas.actions(V201)
    assert len(actions) == 64
    assert {"TransactionEvent", "NotifyReport", "SetVariables", "Get15118EVCertificate"} <= actions
    assert "StartTransaction" not in actions


@pytest.mark.parametrize(
    "timestamp",
    ["2026-11-22T10:00:00Z", "2026-11-22T10:00:00.123+08:00", "2026-11-22T10:00:00.123456789Z"],
)
def test_valid_date_times_pass(schemas: OfficialSchemas, timestamp: str) -> None:
    payload = {
        "timestamp": timestamp,
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
    }
    assert schemas.check(V201, "StatusNotification", PayloadKind.REQUEST, payload) is None


@pytest.mark.parametrize(
    "timestamp",
    ["2026-11-22 10:00:00Z", "2026-11-22T10:00:00", "2026-13-01T00:00:00Z", "yesterday"],
)
def test_invalid_date_times_fail_as_type_violations(
    schemas: OfficialSchemas, timestamp: str
) -> None:
    payload = {
        "timestamp": timestamp,
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
    }
    violation = schemas.check(V201, "StatusNotification", PayloadKind.REQUEST, payload)
    assert violation == Violation("format", "timestamp", f'"{timestamp}" is not a "date-time"')
    assert fault_for(V201, violation) is Fault.TYPE


def test_violation_path_points_into_the_payload(schemas: OfficialSchemas) -> None:
    payload = {
        "eventType": "Updated",
        "timestamp": "2026-11-22T10:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 1,
        "transactionInfo": {"transactionId": "x" * 37},
    }
    violation = schemas.check(V201, "TransactionEvent", PayloadKind.REQUEST, payload)
    assert violation is not None
    assert (violation.keyword, violation.path) == ("maxLength", "transactionInfo.transactionId")


def test_unknown_action_is_a_violation_not_a_crash(schemas: OfficialSchemas) -> None:
    violation = schemas.check(V16, "TransactionEvent", PayloadKind.REQUEST, {})
    assert violation is not None and violation.keyword == "action"


def test_responses_are_checked_too(schemas: OfficialSchemas) -> None:
    assert (
        schemas.check(V16, "StartTransaction", PayloadKind.RESPONSE, {"transactionId": 1})
        is not None
    )
    ok = {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}
    assert schemas.check(V16, "StartTransaction", PayloadKind.RESPONSE, ok) is None
