"""The compiled official schemas: every action of both versions, formats checked, faults classified."""

from __future__ import annotations

import unicodedata
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.schemas import INT32_MAX, INT32_MIN, OfficialSchemas, tightened
from bridge.ocppj.errors import Fault, OcppVersion
from bridge.ocppj.schema import PayloadKind, Violation, fault_for

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


# --- values keep their meaning (issue 17) ----------------------------------------------------------


def reset_201(evse_id: str) -> dict[str, Any]:
    """A Reset request whose evseId is the JSON text `evse_id`, parsed as the bridge parses frames."""
    payload: dict[str, Any] = orjson.loads('{"type": "Immediate", "evseId": ' + evse_id + "}")
    return payload


@given(st.integers())
def test_an_integer_field_holds_exactly_the_32_bit_integers(
    schemas: OfficialSchemas, n: int
) -> None:
    for version, action, payload in (
        (V201, "Reset", reset_201(str(n))),
        (V16, "UnlockConnector", orjson.loads('{"connectorId": ' + str(n) + "}")),
        # a draft-06 file of the 1.6 security extension
        (V16, "GetLog", orjson.loads(
            '{"logType": "SecurityLog", "requestId": ' + str(n) + ', "log": {"remoteLocation": "u"}}'
        )),
    ):  # fmt: skip
        violation = schemas.check(version, action, PayloadKind.REQUEST, payload)
        if INT32_MIN <= n <= INT32_MAX:
            assert violation is None
        else:
            assert violation is not None
            assert (violation.keyword, fault_for(version, violation)) == ("type", Fault.TYPE)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_number_with_a_fraction_or_exponent_is_no_integer(
    schemas: OfficialSchemas, value: float
) -> None:
    violation = schemas.check(
        V201, "Reset", PayloadKind.REQUEST, reset_201(orjson.dumps(value).decode())
    )
    assert violation is not None
    assert (violation.keyword, violation.path) == ("type", "evseId")


@pytest.mark.parametrize(
    "text", ["1.0", "-0.0", "1e308", "1E2", "18446744073709551617", "-9223372036854775809"]
)
def test_the_issues_values_are_refused_as_type_violations(
    schemas: OfficialSchemas, text: str
) -> None:
    violation = schemas.check(V201, "Reset", PayloadKind.REQUEST, reset_201(text))
    assert violation is not None
    assert fault_for(V201, violation) is Fault.TYPE
    assert len(violation.message) <= 200


def test_a_schemas_own_bounds_stay_within_32_bits() -> None:
    node = tightened({"type": "integer", "minimum": 0.0}, V201)
    assert (node["minimum"], node["maximum"]) == (0, INT32_MAX)
    node = tightened({"type": "integer", "minimum": -5, "maximum": 2**40}, V16)
    assert (node["minimum"], node["maximum"]) == (-5, INT32_MAX)


@given(st.text(max_size=20))
def test_a_16_cistring_holds_printable_ascii_only(schemas: OfficialSchemas, text: str) -> None:
    violation = schemas.check(V16, "Authorize", PayloadKind.REQUEST, {"idTag": text})
    printable = all(" " <= c <= "~" for c in text)
    assert (violation is None) == printable
    if violation is not None:
        assert (violation.keyword, fault_for(V16, violation)) == ("pattern", Fault.TYPE)


@given(st.text(max_size=36))
def test_a_201_identifier_holds_no_control_character(schemas: OfficialSchemas, text: str) -> None:
    payload = {"idToken": {"idToken": text, "type": "Central"}}
    violation = schemas.check(V201, "Authorize", PayloadKind.REQUEST, payload)
    controls = any(unicodedata.category(c) == "Cc" for c in text)
    assert (violation is None) == (not controls)
    if violation is not None:
        assert (violation.path, fault_for(V201, violation)) == ("idToken.idToken", Fault.TYPE)


def test_long_free_text_keeps_its_line_breaks(schemas: OfficialSchemas) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert (
        schemas.check(V16, "DataTransfer", PayloadKind.REQUEST, {"vendorId": "V", "data": "a\nb"})
        is None
    )
    assert (
        schemas.check(
            V16,
            "InstallCertificate",
            PayloadKind.REQUEST,
            {
                "certificateType": "CentralSystemRootCertificate",
                "certificate": pem,
            },
        )
        is None
    )
    assert (
        schemas.check(
            V201,
            "BootNotification",
            PayloadKind.RESPONSE,
            {
                "currentTime": "2026-11-22T10:00:00Z",
                "interval": 300,
                "status": "Accepted",
                "statusInfo": {"reasonCode": "OK", "additionalInfo": "line 1\nline 2\ttabbed"},
            },
        )
        is None
    )
    # but a 2.0.1 identifier may hold any printable character, not only ASCII
    assert schemas.check(V201, "Authorize", PayloadKind.REQUEST, {
        "idToken": {"idToken": "Müller-Ü", "type": "Central"}
    }) is None  # fmt: skip
