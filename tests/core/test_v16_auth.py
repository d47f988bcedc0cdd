"""bridge.stations.v16.auth: C01 authorize, D01 SendLocalList, D02 GetLocalListVersion, C11 ClearCache."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.auth import (
    authorize_request,
    authorize_response,
    clear_cache,
    clear_cache_response,
    get_local_list_version,
    get_local_list_version_response,
    id_tag_info,
    send_local_list,
    send_local_list_response,
)
from bridge.stations.v16.id_token import IdTokenTypeRule
from bridge.stations.v16.outcome import Forward, Payload, Reply

SCHEMAS = OfficialSchemas()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
LONG = "x" * 30


def check(version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]) -> None:
    violation = SCHEMAS.check(version, action, kind, payload)
    assert violation is None, violation


def alias(token: Payload) -> str | None:
    return "ALIAS-" + str(len(token["idToken"])) if token["idToken"] == LONG else None


class TestC01Authorize:
    def test_request(self) -> None:
        check(V16, "Authorize", REQ, {"idTag": "E004010012345678"})
        request = authorize_request({"idTag": "E004010012345678"})
        assert request == {"idToken": {"idToken": "E004010012345678", "type": "ISO15693"}}
        check(V201, "Authorize", REQ, request)

    def test_request_with_station_rule(self) -> None:
        request = authorize_request({"idTag": "card-1"}, rule=IdTokenTypeRule(default="Local"))
        assert request["idToken"]["type"] == "Local"

    def test_response_with_expiry_and_group(self) -> None:
        answer = {
            "idTokenInfo": {
                "status": "Accepted",
                "cacheExpiryDateTime": "2026-04-01T02:00:00+02:00",
                "groupIdToken": {"idToken": LONG, "type": "Central"},
                "chargingPriority": 3,
                "language1": "de",
            }
        }
        check(V201, "Authorize", RES, answer)
        response = authorize_response(answer, alias=alias)
        assert response == {
            "idTagInfo": {
                "status": "Accepted",
                "expiryDate": "2026-04-01T00:00:00Z",
                "parentIdTag": "ALIAS-30",
            }
        }
        check(V16, "Authorize", RES, response)

    @pytest.mark.parametrize(
        ("status", "expected"),
        [("Accepted", "Accepted"), ("Blocked", "Blocked"), ("Expired", "Expired"),
         ("ConcurrentTx", "ConcurrentTx"), ("NoCredit", "Invalid"), ("NotAtThisTime", "Invalid"),
         ("NotAllowedTypeEVSE", "Invalid"), ("NotAtThisLocation", "Invalid"), ("Unknown", "Invalid")],
    )  # fmt: skip
    def test_statuses(self, status: str, expected: str) -> None:
        response = authorize_response({"idTokenInfo": {"status": status}})
        assert response == {"idTagInfo": {"status": expected}}
        check(V16, "Authorize", RES, response)

    def test_group_without_idtag_is_omitted(self) -> None:
        info = id_tag_info(
            {"status": "Accepted", "groupIdToken": {"idToken": "y" * 25, "type": "Central"}}
        )
        assert info == {"status": "Accepted"}


def local_list(*entries: dict[str, Any], update: str = "Differential") -> dict[str, Any]:
    request: dict[str, Any] = {"versionNumber": 5, "updateType": update}
    if entries:
        request["localAuthorizationList"] = list(entries)
    check(V201, "SendLocalList", REQ, request)
    return request


class TestD01SendLocalList:
    def test_entries_become_idtags(self) -> None:
        request = local_list(
            {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"},
             "idTokenInfo": {"status": "Accepted", "cacheExpiryDateTime": "2026-12-31T23:59:59Z"}},
            {"idToken": {"idToken": LONG, "type": "eMAID"}, "idTokenInfo": {"status": "NotAtThisTime"}},
            {"idToken": {"idToken": "OLD1", "type": "Central"}},
            update="Full",
        )  # fmt: skip
        result = send_local_list(request, alias=alias)
        assert result == Forward(
            "SendLocalList",
            {
                "listVersion": 5,
                "updateType": "Full",
                "localAuthorizationList": [
                    {"idTag": "04A2B3C4", "idTagInfo": {"status": "Accepted", "expiryDate": "2026-12-31T23:59:59Z"}},
                    {"idTag": "ALIAS-30", "idTagInfo": {"status": "Invalid"}},
                    {"idTag": "OLD1"},
                ],
            },
        )  # fmt: skip
        check(V16, "SendLocalList", REQ, result.payload)

    def test_empty_full_list(self) -> None:
        result = send_local_list(local_list(update="Full"))
        assert result == Forward("SendLocalList", {"listVersion": 5, "updateType": "Full"})
        check(V16, "SendLocalList", REQ, result.payload)

    def test_token_without_idtag_fails_the_whole_list(self) -> None:
        request = local_list({"idToken": {"idToken": "z" * 25, "type": "Central"}})
        result = send_local_list(request, alias=alias)
        assert isinstance(result, Reply)
        assert result.response["status"] == "Failed"
        assert result.response["statusInfo"]["reasonCode"] == "InvalidIdToken"
        check(V201, "SendLocalList", RES, result.response)

    def test_evse_restriction_is_refused_rather_than_widened(self) -> None:
        request = local_list(
            {"idToken": {"idToken": "A1", "type": "Central"}, "idTokenInfo": {"status": "Accepted", "evseId": [1]}}
        )  # fmt: skip
        result = send_local_list(request)
        assert isinstance(result, Reply)
        assert result.response["statusInfo"]["reasonCode"] == "UnsupportedParam"
        check(V201, "SendLocalList", RES, result.response)

    @pytest.mark.parametrize(
        ("status", "expected"),
        [("Accepted", "Accepted"), ("Failed", "Failed"), ("VersionMismatch", "VersionMismatch"),
         ("NotSupported", "Failed")],
    )  # fmt: skip
    def test_response(self, status: str, expected: str) -> None:
        response = send_local_list_response({"status": status})
        assert response["status"] == expected
        assert ("statusInfo" in response) is (status == "NotSupported")
        check(V201, "SendLocalList", RES, response)


class TestD02GetLocalListVersion:
    def test_request(self) -> None:
        assert get_local_list_version({}) == Forward("GetLocalListVersion", {})

    @pytest.mark.parametrize(("version", "expected"), [(7, 7), (0, 0), (-1, 0)])
    def test_response(self, version: int, expected: int) -> None:
        check(V16, "GetLocalListVersion", RES, {"listVersion": version})
        response = get_local_list_version_response({"listVersion": version})
        assert response == {"versionNumber": expected}
        check(V201, "GetLocalListVersion", RES, response)


class TestC11ClearCache:
    def test_request(self) -> None:
        assert clear_cache({}) == Forward("ClearCache", {})

    @pytest.mark.parametrize("status", ["Accepted", "Rejected"])
    def test_response(self, status: str) -> None:
        response = clear_cache_response({"status": status})
        assert response == {"status": status}
        check(V201, "ClearCache", RES, response)
