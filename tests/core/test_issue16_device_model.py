"""Issue 16 items 6–9: the device model of translated stations (1.6J and IEC 104), core level.

B05 SetVariables, B06 GetVariables, B07 GetBaseReport, K09 GetChargingProfiles, A01 password update.
Each test drives a whole station core (its frames validated against the official schemas by the harness).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bridge.effects import Side
from tests.core import iec104_bench
from tests.core.station_harness import Bench, only

N, S = Side.NORTH, Side.SOUTH
_IDS = itertools.count(1)

# The variables the 2.0.1 appendices (dm_components_vars.csv, Required = yes) require for the functional
# blocks a translated station supports, plus the bridge-owned ones of issue 16 item 7.
# (component, variable, instance, evse, connector)
REQUIRED: list[tuple[str, str, str | None, int | None, int | None]] = [
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetReport", None, None),
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables", None, None),
    ("DeviceDataCtrlr", "ItemsPerMessage", "SetVariables", None, None),
    ("DeviceDataCtrlr", "BytesPerMessage", "GetReport", None, None),
    ("DeviceDataCtrlr", "BytesPerMessage", "GetVariables", None, None),
    ("DeviceDataCtrlr", "BytesPerMessage", "SetVariables", None, None),
    ("ClockCtrlr", "DateTime", None, None, None),
    ("ClockCtrlr", "TimeSource", None, None, None),
    ("ChargingStation", "AvailabilityState", None, None, None),
    ("ChargingStation", "Available", None, None, None),
    ("ChargingStation", "SupplyPhases", None, None, None),
    ("EVSE", "AvailabilityState", None, 1, None),
    ("EVSE", "Available", None, 1, None),
    ("EVSE", "SupplyPhases", None, 1, None),
    ("Connector", "AvailabilityState", None, 1, 1),
    ("Connector", "Available", None, 1, 1),
    ("Connector", "ConnectorType", None, 1, 1),
    ("Connector", "SupplyPhases", None, 1, 1),
    ("SampledDataCtrlr", "TxStartedMeasurands", None, None, None),
    ("SampledDataCtrlr", "TxEndedMeasurands", None, None, None),
    ("SampledDataCtrlr", "TxEndedInterval", None, None, None),
    ("SampledDataCtrlr", "TxUpdatedMeasurands", None, None, None),
    ("SampledDataCtrlr", "TxUpdatedInterval", None, None, None),
    ("TxCtrlr", "TxStartPoint", None, None, None),
    ("TxCtrlr", "TxStopPoint", None, None, None),
    ("TxCtrlr", "EVConnectionTimeOut", None, None, None),
    ("TxCtrlr", "StopTxOnInvalidId", None, None, None),
    ("TxCtrlr", "StopTxOnEVSideDisconnect", None, None, None),
    ("OCPPCommCtrlr", "HeartbeatInterval", None, None, None),
    ("OCPPCommCtrlr", "OfflineThreshold", None, None, None),
    ("OCPPCommCtrlr", "MessageTimeout", "Default", None, None),
    ("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent", None, None),
    ("OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent", None, None),
    ("OCPPCommCtrlr", "RetryBackOffWaitMinimum", None, None, None),
    ("OCPPCommCtrlr", "RetryBackOffRandomRange", None, None, None),
    ("OCPPCommCtrlr", "RetryBackOffRepeatTimes", None, None, None),
    ("OCPPCommCtrlr", "ResetRetries", None, None, None),
    ("OCPPCommCtrlr", "NetworkConfigurationPriority", None, None, None),
    ("SecurityCtrlr", "SecurityProfile", None, None, None),
    ("SecurityCtrlr", "Identity", None, None, None),
    ("AuthCtrlr", "AuthorizeRemoteStart", None, None, None),
    ("AuthCtrlr", "LocalAuthorizeOffline", None, None, None),
    ("AuthCtrlr", "LocalPreAuthorize", None, None, None),
    ("EVSE", "Power", None, 1, None),
    ("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", None, None, None),
    ("OCPPCommCtrlr", "FileTransferProtocols", None, None, None),
    ("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", None, None, None),
    ("SecurityCtrlr", "OrganizationName", None, None, None),
]
# A 104 station answers these too (a 1.6 charger's configuration gives only CertificateEntries' maximum
# and has no SmartChargingCtrlr unless it has the Smart Charging profile's keys).
REQUIRED_104 = [
    *REQUIRED,
    ("SecurityCtrlr", "CertificateEntries", None, None, None),
    ("SmartChargingCtrlr", "Entries", "ChargingProfiles", None, None),
    ("SmartChargingCtrlr", "LimitChangeSignificance", None, None, None),
    ("SmartChargingCtrlr", "PeriodsPerSchedule", None, None, None),
    ("SmartChargingCtrlr", "ProfileStackLevel", None, None, None),
    ("SmartChargingCtrlr", "RateUnit", None, None, None),
]

# What a 1.6 charger's GetConfiguration says (the 1.6 Core profile's required keys).
CONFIGURATION_16 = {
    "configurationKey": [
        {"key": "AuthorizeRemoteTxRequests", "readonly": False, "value": "true"},
        {"key": "ConnectionTimeOut", "readonly": False, "value": "60"},
        {"key": "HeartbeatInterval", "readonly": False, "value": "240"},
        {"key": "LocalAuthorizeOffline", "readonly": False, "value": "true"},
        {"key": "LocalPreAuthorize", "readonly": False, "value": "false"},
        {"key": "MeterValuesSampledData", "readonly": False, "value": "Energy.Active.Import.Register"},
        {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        {"key": "ResetRetries", "readonly": False, "value": "3"},
        {"key": "StopTransactionOnEVSideDisconnect", "readonly": False, "value": "true"},
        {"key": "StopTransactionOnInvalidId", "readonly": False, "value": "true"},
        {"key": "StopTxnSampledData", "readonly": False, "value": "Energy.Active.Import.Register"},
        {"key": "TransactionMessageAttempts", "readonly": False, "value": "3"},
        {"key": "UnlockConnectorOnEVSideDisconnect", "readonly": False, "value": "true"},
        {"key": "SupportedFileTransferProtocols", "readonly": True, "value": "FTP,HTTP,HTTPS"},
        {"key": "CpoName", "readonly": False, "value": "Example CPO"},
        {"key": "CertificateStoreMaxLength", "readonly": True, "value": "10"},
        {"key": "Cst_BackendUrl", "readonly": False, "value": "ws://bridge:8180/ocpp"},
        {"key": "Cst_ChargeBoxId", "readonly": False, "value": "CP-1"},
        {"key": "Cst_FreeVend", "readonly": False, "value": "FALSE"},
    ]
}  # fmt: skip


def item(
    component: str,
    variable: str,
    instance: str | None = None,
    evse: int | None = None,
    connector: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    comp: dict[str, Any] = {"name": component}
    if evse is not None:
        comp["evse"] = {"id": evse} if connector is None else {"id": evse, "connectorId": connector}
    var: dict[str, Any] = {"name": variable}
    if instance is not None:
        var["instance"] = instance
    return {"component": comp, "variable": var, **extra}


def registered16() -> Bench:
    bench = Bench()
    bench.boot()
    bench.charger(
        "StatusNotification", {"connectorId": 1, "status": "Available", "errorCode": "NoError"}
    )
    bench.answer_all(N)
    return bench


def ask16(bench: Bench, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A CSMS request to the 1.6 station; the charger answers GetConfiguration from CONFIGURATION_16."""
    message_id = f"q{next(_IDS)}"
    bench.csms(action, payload, message_id=message_id)
    while (call := bench.outstanding(S)) is not None:
        assert call.action in ("GetConfiguration", "ChangeConfiguration")
        answer = CONFIGURATION_16 if call.action == "GetConfiguration" else {"status": "Accepted"}
        bench.answer(S, answer)
    bench.answer_all(N)  # the NotifyReport parts go one at a time
    return only([f for f in bench.frames(N) if f.message_id == message_id], kind=3).payload


OWNED_WRITES = {
    ("OCPPCommCtrlr", "HeartbeatInterval", None): "120",
    ("OCPPCommCtrlr", "MessageTimeout", "Default"): "45",
    ("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent"): "7",
    ("OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent"): "20",
    ("OCPPCommCtrlr", "RetryBackOffWaitMinimum", None): "11",
    ("OCPPCommCtrlr", "RetryBackOffRandomRange", None): "12",
    ("OCPPCommCtrlr", "RetryBackOffRepeatTimes", None): "4",
}
EXPECTED_STATUS: dict[str, str] = {}  # every owned value applies at once
PASSWORD = "n3w-Pa55word-0123456789"


class TestIssue16Item6RequiredVariables16:
    def test_b06_every_required_variable_answers(self) -> None:
        bench = registered16()
        wanted = [item(*entry) for entry in REQUIRED]
        response = ask16(bench, "GetVariables", {"getVariableData": wanted})
        statuses = {
            (r["component"]["name"], r["variable"]["name"]): r["attributeStatus"]
            for r in response["getVariableResult"]
        }
        assert all(status == "Accepted" for status in statuses.values()), statuses

    def test_b07_full_inventory_has_the_required_components(self) -> None:
        bench = registered16()
        assert ask16(bench, "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}) == {
            "status": "Accepted"
        }
        data = [d for f in bench.frames(N, "NotifyReport", 2) for d in f.payload["reportData"]]
        names = {
            (
                d["component"]["name"],
                d["variable"]["name"],
                d["variable"].get("instance"),
                d["component"].get("evse", {}).get("id"),
                d["component"].get("evse", {}).get("connectorId"),
            )
            for d in data
        }
        missing = [entry for entry in REQUIRED if entry not in names]
        assert not missing
        # NumberOfConnectors said 2: both EVSEs are in the model
        assert ("EVSE", "AvailabilityState", None, 2, None) in names


class TestIssue16Item7OwnedValues16:
    def test_b05_owned_values_are_settable_applied_and_durable(self) -> None:
        bench = registered16()
        writes = [item(c, v, i, attributeValue=value) for (c, v, i), value in OWNED_WRITES.items()]
        response = ask16(bench, "SetVariables", {"setVariableData": writes})
        assert [r["attributeStatus"] for r in response["setVariableResult"]] == [
            EXPECTED_STATUS.get(v, "Accepted") for (_, v, _) in OWNED_WRITES
        ]
        assert bench.core.north.heartbeat_interval == 120
        assert bench.core.north.outbox.message_attempts == 7
        assert bench.core.north.call_timeout == 45  # at once
        bench.restart()
        bench.connect(N)
        assert bench.core.north.outbox.message_attempts == 7
        assert bench.core.north.outbox.attempt_interval == 20
        assert bench.core.owned.backoff().wait_minimum == 11
        assert bench.core.north.call_timeout == 45  # durable
        wanted = [item(c, v, i) for (c, v, i) in OWNED_WRITES]
        response = ask16(bench, "GetVariables", {"getVariableData": wanted})
        assert [r["attributeValue"] for r in response["getVariableResult"]] == list(
            OWNED_WRITES.values()
        )

    def test_b05_invalid_owned_values_are_rejected(self) -> None:
        bench = registered16()
        writes = [
            item("OCPPCommCtrlr", "HeartbeatInterval", attributeValue="5 minutes"),
            item("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent", attributeValue="0"),
            item("SecurityCtrlr", "BasicAuthPassword", attributeValue="short"),
            item("SecurityCtrlr", "SecurityProfile", attributeValue="3"),
        ]
        response = ask16(bench, "SetVariables", {"setVariableData": writes})
        assert [
            (r["attributeStatus"], r["attributeStatusInfo"]["reasonCode"])
            for r in response["setVariableResult"]
        ] == [
            ("Rejected", "InvalidValue"),
            ("Rejected", "ValueOutOfRange"),
            ("Rejected", "InvalidValue"),
            ("Rejected", "ReadOnly"),
        ]
        assert bench.core.north.heartbeat_interval == 300

    def test_a01_basic_auth_password_is_kept_durably_and_never_shown(self) -> None:
        bench = registered16()
        write = item("SecurityCtrlr", "BasicAuthPassword", attributeValue=PASSWORD)
        response = ask16(bench, "SetVariables", {"setVariableData": [write]})
        assert response["setVariableResult"][0]["attributeStatus"] == "Accepted"
        assert "security-event" in bench.report_kinds()
        assert all(PASSWORD not in str(r) for r in bench.reports)  # A01.FR.12
        bench.restart()
        assert bench.core.owned.password == PASSWORD
        bench.connect(N)
        read = ask16(
            bench, "GetVariables", {"getVariableData": [item("SecurityCtrlr", "BasicAuthPassword")]}
        )
        [result] = read["getVariableResult"]
        assert result["attributeStatus"] == "Rejected" and "attributeValue" not in result

    def test_b01_an_accepted_boot_interval_is_the_heartbeat_interval(self) -> None:
        bench = registered16()  # the CSMS answered interval 300
        assert bench.core.owned.integer("HeartbeatInterval") == 300
        write = item("OCPPCommCtrlr", "HeartbeatInterval", attributeValue="90")
        ask16(bench, "SetVariables", {"setVariableData": [write]})
        bench.restart()
        assert bench.core.north.heartbeat_interval == 90


class TestIssue16Item8Reports16:
    def test_b07_summary_inventory_reports_availability(self) -> None:
        bench = registered16()
        response = ask16(bench, "GetBaseReport", {"requestId": 2, "reportBase": "SummaryInventory"})
        assert response == {"status": "Accepted"}
        data = [d for f in bench.frames(N, "NotifyReport", 2) for d in f.payload["reportData"]]
        states = {
            (d["component"]["name"], d["component"].get("evse", {}).get("id")): d[
                "variableAttribute"
            ][0].get("value")
            for d in data
        }
        assert states[("ChargingStation", None)] == "Available"
        assert states[("EVSE", 1)] == "Available"
        assert {d["variable"]["name"] for d in data} == {"AvailabilityState"}

    def test_k09_get_charging_profiles_reports_the_installed_rounded_profile(self) -> None:
        bench = registered16()
        profile = {
            "id": 5,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.25}],
                }
            ],
        }
        bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        bench.answer(S, {"status": "Accepted"})
        bench.csms("GetChargingProfiles", {"requestId": 9, "chargingProfile": {}})
        [report] = [f.payload for f in bench.frames(N, "ReportChargingProfiles", 2)]
        period = report["chargingProfile"][0]["chargingSchedule"][0]["chargingSchedulePeriod"][0]
        assert period["limit"] == 16.2


class TestIssue16Item9DenyList16:
    @pytest.mark.parametrize("key", ["Cst_BackendUrl", "Cst_ChargeBoxId"])
    def test_b05_vendor_keys_that_re_point_the_charger_are_not_forwarded(self, key: str) -> None:
        bench = registered16()
        write = item("OCPP16LegacyCtrlr", key, attributeValue="ws://elsewhere")
        response = ask16(bench, "SetVariables", {"setVariableData": [write]})
        assert response["setVariableResult"][0]["attributeStatus"] == "Rejected"
        assert not bench.frames(S, "ChangeConfiguration")


# --- IEC 104 ---------------------------------------------------------------------------------------


def ready104() -> iec104_bench.Bench:
    bench = iec104_bench.Bench()
    bench.ready()
    return bench


def answer104(bench: iec104_bench.Bench, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    message_id = bench.csms(action, payload)
    frame = bench.answer_to(message_id)
    assert frame is not None
    return frame.payload  # type: ignore[no-any-return]


class TestIssue16Item6RequiredVariables104:
    def test_b06_every_required_variable_answers(self) -> None:
        bench = ready104()
        wanted = [item(*entry) for entry in REQUIRED_104]
        results = []
        for start in range(0, len(wanted), 50):  # ItemsPerMessage[GetVariables]
            chunk = wanted[start : start + 50]
            response = answer104(bench, "GetVariables", {"getVariableData": chunk})
            results += response["getVariableResult"]
        statuses = {
            (r["component"]["name"], r["variable"]["name"]): r["attributeStatus"] for r in results
        }
        assert all(status == "Accepted" for status in statuses.values()), statuses

    def test_b07_every_list_variable_carries_its_values_list(self) -> None:
        bench = ready104()
        answer104(bench, "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"})
        for report in bench.calls("NotifyReport"):
            for data in report["reportData"]:
                characteristics = data["variableCharacteristics"]
                if characteristics["dataType"] in ("OptionList", "MemberList", "SequenceList"):
                    assert characteristics.get("valuesList"), data


class TestIssue16Item7OwnedValues104:
    def test_b05_owned_values_are_settable_and_durable(self) -> None:
        bench = ready104()
        writes = [item(c, v, i, attributeValue=value) for (c, v, i), value in OWNED_WRITES.items()]
        writes.append(item("SecurityCtrlr", "BasicAuthPassword", attributeValue=PASSWORD))
        response = answer104(bench, "SetVariables", {"setVariableData": writes})
        assert [r["attributeStatus"] for r in response["setVariableResult"]] == [
            *(EXPECTED_STATUS.get(v, "Accepted") for (_, v, _) in OWNED_WRITES),
            "Accepted",
        ]
        assert bench.core.north.heartbeat_interval == 120
        bench.restart()
        assert bench.core.north.heartbeat_interval == 120  # until an accepted boot says otherwise
        bench.ready()  # B01: the CSMS's boot interval (300) becomes the HeartbeatInterval
        assert bench.core.owned.password == PASSWORD
        assert bench.core.north.outbox.message_attempts == 7
        wanted = [item(c, v, i) for (c, v, i) in OWNED_WRITES]
        response = answer104(bench, "GetVariables", {"getVariableData": wanted})
        assert [r["attributeValue"] for r in response["getVariableResult"]] == [
            "300",
            *list(OWNED_WRITES.values())[1:],
        ]


class TestIssue16Item8Profiles104:
    def test_k09_get_charging_profiles_answers_from_the_stored_profiles(self) -> None:
        bench = ready104()
        profile = {
            "id": 3,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
                }
            ],
        }
        bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        bench.confirm()
        bench.restart()
        bench.ready()
        response = answer104(bench, "GetChargingProfiles", {"requestId": 4, "chargingProfile": {}})
        assert response == {"status": "Accepted"}
        [report] = bench.calls("ReportChargingProfiles")
        assert report["requestId"] == 4
        assert [p["id"] for p in report["chargingProfile"]] == [3]
        empty = answer104(
            bench,
            "GetChargingProfiles",
            {"requestId": 5, "chargingProfile": {"chargingProfileId": [99]}},
        )
        assert empty == {"status": "NoProfiles"}
