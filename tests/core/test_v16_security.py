"""bridge.stations.v16.security: A02 SignCertificate / CertificateSigned, A04 SecurityEventNotification,
M03 GetInstalledCertificateIds, M04 DeleteCertificate, M05 InstallCertificate."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.outcome import Forward, ForwardAll, Reply
from bridge.stations.v16.security import (
    certificate_signed,
    certificate_signed_response,
    delete_certificate,
    delete_certificate_response,
    get_installed_certificate_ids,
    get_installed_certificate_ids_response,
    install_certificate,
    install_certificate_response,
    security_event_notification,
    sign_certificate,
    sign_certificate_response,
)

SCHEMAS = OfficialSchemas()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
RECEIVED = "2026-03-01T12:00:00Z"
HASH = {
    "hashAlgorithm": "SHA256",
    "issuerNameHash": "aa",
    "issuerKeyHash": "bb",
    "serialNumber": "01",
}
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"


def check(version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]) -> None:
    violation = SCHEMAS.check(version, action, kind, payload)
    assert violation is None, violation


class TestA04SecurityEvent:
    def test_event_with_normalized_time(self) -> None:
        request = {
            "type": "FirmwareUpdated",
            "timestamp": "2026-03-01T11:00:00+01:00",
            "techInfo": "v2",
        }
        check(V16, "SecurityEventNotification", REQ, request)
        payload, problem = security_event_notification(request, received_at=RECEIVED)
        assert payload == {
            "type": "FirmwareUpdated",
            "timestamp": "2026-03-01T10:00:00Z",
            "techInfo": "v2",
        }
        assert problem is None
        check(V201, "SecurityEventNotification", REQ, payload)

    def test_unsynchronised_clock(self) -> None:
        payload, problem = security_event_notification(
            {"type": "StartupOfTheDevice", "timestamp": "1970-01-01T00:00:09Z"},
            received_at=RECEIVED,
        )
        assert payload["timestamp"] == RECEIVED
        assert problem is not None


class TestA02Certificates:
    def test_sign_certificate(self) -> None:
        request = sign_certificate({"csr": "-----BEGIN CERTIFICATE REQUEST-----"})
        assert request["certificateType"] == "ChargingStationCertificate"
        check(V201, "SignCertificate", REQ, request)
        for status in ("Accepted", "Rejected"):
            answer = {"status": status, "statusInfo": {"reasonCode": "InvalidCSR"}}
            response = sign_certificate_response(answer)
            assert response == {"status": status}
            check(V16, "SignCertificate", RES, response)

    def test_certificate_signed(self) -> None:
        request = {"certificateChain": PEM, "certificateType": "ChargingStationCertificate"}
        check(V201, "CertificateSigned", REQ, request)
        result = certificate_signed(request)
        assert result == Forward("CertificateSigned", {"certificateChain": PEM})
        check(V16, "CertificateSigned", REQ, result.payload)
        response = certificate_signed_response({"status": "Rejected"})
        assert response == {"status": "Rejected"}
        check(V201, "CertificateSigned", RES, response)

    def test_v2g_certificate_is_rejected(self) -> None:
        result = certificate_signed({"certificateChain": PEM, "certificateType": "V2GCertificate"})
        assert isinstance(result, Reply)
        assert result.response["statusInfo"]["reasonCode"] == "UnsupportedParam"
        check(V201, "CertificateSigned", RES, result.response)


class TestM05InstallCertificate:
    @pytest.mark.parametrize(
        ("kind", "kind_16"),
        [("CSMSRootCertificate", "CentralSystemRootCertificate"),
         ("ManufacturerRootCertificate", "ManufacturerRootCertificate")],
    )  # fmt: skip
    def test_known_types(self, kind: str, kind_16: str) -> None:
        result = install_certificate({"certificateType": kind, "certificate": PEM})
        assert result == Forward(
            "InstallCertificate", {"certificateType": kind_16, "certificate": PEM}
        )
        check(V16, "InstallCertificate", REQ, result.payload)

    @pytest.mark.parametrize("kind", ["V2GRootCertificate", "MORootCertificate"])
    def test_iso_15118_roots_are_rejected(self, kind: str) -> None:
        result = install_certificate({"certificateType": kind, "certificate": PEM})
        assert isinstance(result, Reply)
        assert result.response["status"] == "Rejected"
        check(V201, "InstallCertificate", RES, result.response)

    @pytest.mark.parametrize("status", ["Accepted", "Failed", "Rejected"])
    def test_response(self, status: str) -> None:
        response = install_certificate_response({"status": status})
        assert response == {"status": status}
        check(V201, "InstallCertificate", RES, response)


class TestM04DeleteCertificate:
    def test_request_and_response(self) -> None:
        request = {"certificateHashData": HASH}
        check(V201, "DeleteCertificate", REQ, request)
        result = delete_certificate(request)
        assert result == Forward("DeleteCertificate", {"certificateHashData": HASH})
        check(V16, "DeleteCertificate", REQ, result.payload)
        for status in ("Accepted", "Failed", "NotFound"):
            response = delete_certificate_response({"status": status})
            assert response == {"status": status}
            check(V201, "DeleteCertificate", RES, response)


class TestM03GetInstalledCertificateIds:
    def test_absent_list_asks_for_both_1_6_types(self) -> None:
        result = get_installed_certificate_ids({})
        assert isinstance(result, ForwardAll)
        assert [call.payload["certificateType"] for call in result.calls] == [
            "CentralSystemRootCertificate",
            "ManufacturerRootCertificate",
        ]
        for call in result.calls:
            check(V16, "GetInstalledCertificateIds", REQ, call.payload)

    def test_only_iso_15118_types_cannot_be_listed(self) -> None:
        request = {"certificateType": ["V2GRootCertificate", "V2GCertificateChain"]}
        check(V201, "GetInstalledCertificateIds", REQ, request)
        result = get_installed_certificate_ids(request)
        assert isinstance(result, Reply)
        assert result.response["status"] == "NotFound"
        check(V201, "GetInstalledCertificateIds", RES, result.response)

    def test_answers_are_merged(self) -> None:
        request = {
            "certificateType": [
                "CSMSRootCertificate",
                "MORootCertificate",
                "ManufacturerRootCertificate",
            ]
        }
        result = get_installed_certificate_ids(request)
        assert isinstance(result, ForwardAll)
        answers = [{"status": "Accepted", "certificateHashData": [HASH]}, {"status": "NotFound"}]
        for answer in answers:
            check(V16, "GetInstalledCertificateIds", RES, answer)
        response = get_installed_certificate_ids_response(result.calls, answers)
        assert response == {
            "status": "Accepted",
            "certificateHashDataChain": [
                {"certificateType": "CSMSRootCertificate", "certificateHashData": HASH}
            ],
        }
        check(V201, "GetInstalledCertificateIds", RES, response)

    def test_nothing_found_or_failed(self) -> None:
        result = get_installed_certificate_ids({"certificateType": ["CSMSRootCertificate"]})
        assert isinstance(result, ForwardAll)
        assert get_installed_certificate_ids_response(result.calls, [None]) == {
            "status": "NotFound"
        }
