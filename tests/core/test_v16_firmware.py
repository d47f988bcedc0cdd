"""bridge.stations.v16.firmware: L01/L02 UpdateFirmware, N01 GetLog, and the status notifications up."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.enums import (
    DIAGNOSTICS_STATUS_UP,
    FIRMWARE_STATUS_UP,
    LOG_STATUS_UP,
    SIGNED_FIRMWARE_STATUS_UP,
)
from bridge.stations.v16.firmware import (
    diagnostics_status_notification,
    firmware_status_notification,
    get_log,
    get_log_response,
    is_uri,
    log_status_notification,
    signed_firmware_status_notification,
    update_firmware,
    update_firmware_response,
)
from bridge.stations.v16.outcome import Forward, Reply

SCHEMAS = OfficialSchemas()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
RETRIEVE = "2026-03-01T02:00:00Z"


def check(version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]) -> None:
    violation = SCHEMAS.check(version, action, kind, payload)
    assert violation is None, violation


def firmware_request(**firmware: Any) -> dict[str, Any]:
    request = {
        "requestId": 31,
        "retries": 3,
        "retryInterval": 60,
        "firmware": {
            "location": "https://fw.example.com/v2.bin",
            "retrieveDateTime": RETRIEVE,
            **firmware,
        },
    }
    check(V201, "UpdateFirmware", REQ, request)
    return request


class TestL01UpdateFirmware:
    def test_unsigned(self) -> None:
        result = update_firmware(firmware_request(installDateTime="2026-03-01T01:00:00Z"))
        assert result == Forward(
            "UpdateFirmware",
            {"location": "https://fw.example.com/v2.bin", "retrieveDate": RETRIEVE, "retries": 3, "retryInterval": 60},
        )  # fmt: skip
        check(V16, "UpdateFirmware", REQ, result.payload)
        response = update_firmware_response("UpdateFirmware", {})
        assert response == {"status": "Accepted"}
        check(V201, "UpdateFirmware", RES, response)

    def test_signed_goes_as_signed_update_firmware(self) -> None:
        request = firmware_request(
            signingCertificate="-----BEGIN CERTIFICATE-----", signature="c2ln", installDateTime="2026-03-02T02:00:00Z"
        )  # fmt: skip
        result = update_firmware(request)
        assert isinstance(result, Forward)
        assert result.action == "SignedUpdateFirmware"
        assert result.payload["requestId"] == 31
        assert result.payload["firmware"]["installDateTime"] == "2026-03-02T02:00:00Z"
        check(V16, "SignedUpdateFirmware", REQ, result.payload)

    @pytest.mark.parametrize(
        "status",
        ["Accepted", "Rejected", "AcceptedCanceled", "InvalidCertificate", "RevokedCertificate"],
    )
    def test_signed_response(self, status: str) -> None:
        response = update_firmware_response("SignedUpdateFirmware", {"status": status})
        assert response == {"status": status}
        check(V201, "UpdateFirmware", RES, response)

    @pytest.mark.parametrize(
        ("firmware", "reason"),
        [
            ({"signature": "c2ln"}, "MissingParam"),
            ({"installDateTime": "2026-03-05T00:00:00Z"}, "UnsupportedParam"),
            ({"location": "fw.bin"}, "InvalidURL"),
        ],
    )
    def test_refused_truthfully(self, firmware: dict[str, Any], reason: str) -> None:
        response = update_firmware(firmware_request(**firmware))
        assert isinstance(response, Reply)
        assert (response.response["status"], response.response["statusInfo"]["reasonCode"]) == (
            "Rejected",
            reason,
        )
        check(V201, "UpdateFirmware", RES, response.response)


@pytest.mark.parametrize(
    ("text", "uri"),
    [
        ("ftp://user:pw@host/dir/", True),
        ("https://example.com/a?b=1&c=%20", True),
        ("sftp://[::1]:22/x", True),
        ("fw.bin", False),
        ("/abs/path", False),
        ("http://a b/", False),
        ("http://x/%zz", False),
    ],
)
def test_is_uri_agrees_with_the_1_6_schema(text: str, uri: bool) -> None:
    assert is_uri(text) is uri
    violation = SCHEMAS.check(V16, "GetDiagnostics", REQ, {"location": text})
    assert (violation is None) is uri


def log_request(log_type: str, **log: Any) -> dict[str, Any]:
    request = {
        "logType": log_type,
        "requestId": 8,
        "retries": 2,
        "log": {"remoteLocation": "ftp://logs.example.com/up/", **log},
    }
    check(V201, "GetLog", REQ, request)
    return request


class TestN01GetLog:
    def test_diagnostics_log_goes_as_get_diagnostics(self) -> None:
        request = log_request(
            "DiagnosticsLog", oldestTimestamp="2026-02-01T00:00:00Z", latestTimestamp="2026-03-01T01:00:00+01:00"
        )  # fmt: skip
        result = update = get_log(request)
        assert update == Forward(
            "GetDiagnostics",
            {
                "location": "ftp://logs.example.com/up/",
                "retries": 2,
                "startTime": "2026-02-01T00:00:00Z",
                "stopTime": "2026-03-01T00:00:00Z",
            },
        )
        assert isinstance(result, Forward)
        check(V16, "GetDiagnostics", REQ, result.payload)

    def test_security_log_goes_as_the_security_get_log(self) -> None:
        result = get_log(log_request("SecurityLog", oldestTimestamp="2026-02-01T00:00:00Z"))
        assert isinstance(result, Forward)
        assert result.action == "GetLog"
        assert result.payload == {
            "logType": "SecurityLog",
            "requestId": 8,
            "retries": 2,
            "log": {
                "remoteLocation": "ftp://logs.example.com/up/",
                "oldestTimestamp": "2026-02-01T00:00:00Z",
            },
        }
        check(V16, "GetLog", REQ, result.payload)

    def test_diagnostics_to_a_location_that_is_no_uri_is_rejected(self) -> None:
        request = {"logType": "DiagnosticsLog", "requestId": 1, "log": {"remoteLocation": "logs"}}
        result = get_log(request)
        assert isinstance(result, Reply)
        check(V201, "GetLog", RES, result.response)

    @pytest.mark.parametrize(
        ("action", "answer", "response"),
        [
            ("GetDiagnostics", {"fileName": "diag.zip"}, {"status": "Accepted", "filename": "diag.zip"}),
            ("GetLog", {"status": "Accepted", "filename": "sec.log"}, {"status": "Accepted", "filename": "sec.log"}),
            ("GetLog", {"status": "AcceptedCanceled"}, {"status": "AcceptedCanceled"}),
            ("GetLog", {"status": "Rejected"}, {"status": "Rejected"}),
        ],
    )  # fmt: skip
    def test_responses(self, action: str, answer: dict[str, Any], response: dict[str, Any]) -> None:
        check(V16, action, RES, answer)
        assert get_log_response(action, answer) == response
        check(V201, "GetLog", RES, response)

    def test_no_diagnostics_available(self) -> None:
        response = get_log_response("GetDiagnostics", {})
        assert (response["status"], response["statusInfo"]["reasonCode"]) == (
            "Rejected",
            "NotFound",
        )
        check(V201, "GetLog", RES, response)


class TestStatusNotificationsUp:
    @pytest.mark.parametrize("status", sorted(FIRMWARE_STATUS_UP))
    def test_l01_firmware_status_with_request_id(self, status: str) -> None:
        check(V16, "FirmwareStatusNotification", REQ, {"status": status})
        request = firmware_status_notification({"status": status}, request_id=31)
        assert request == {"status": status, "requestId": 31}
        check(V201, "FirmwareStatusNotification", REQ, request)

    def test_idle_without_update_has_no_request_id(self) -> None:
        assert firmware_status_notification({"status": "Idle"}, request_id=None) == {
            "status": "Idle"
        }

    @pytest.mark.parametrize("status", sorted(SIGNED_FIRMWARE_STATUS_UP))
    def test_signed_firmware_status(self, status: str) -> None:
        request = signed_firmware_status_notification({"status": status, "requestId": 4})
        assert request == {"status": status, "requestId": 4}
        check(V201, "FirmwareStatusNotification", REQ, request)

    @pytest.mark.parametrize("status", sorted(DIAGNOSTICS_STATUS_UP))
    def test_n01_diagnostics_status_becomes_log_status(self, status: str) -> None:
        request = diagnostics_status_notification({"status": status}, request_id=8)
        assert request == {"status": DIAGNOSTICS_STATUS_UP[status], "requestId": 8}
        check(V201, "LogStatusNotification", REQ, request)

    def test_upload_failed(self) -> None:
        request = diagnostics_status_notification({"status": "UploadFailed"}, request_id=None)
        assert request == {"status": "UploadFailure"}

    @pytest.mark.parametrize("status", sorted(LOG_STATUS_UP))
    def test_security_log_status(self, status: str) -> None:
        check(V16, "LogStatusNotification", REQ, {"status": status, "requestId": 8})
        request = log_status_notification({"status": status, "requestId": 8})
        assert request == {"status": status, "requestId": 8}
        check(V201, "LogStatusNotification", REQ, request)
