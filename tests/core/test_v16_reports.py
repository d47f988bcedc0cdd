"""bridge.stations.v16.reports: B07 GetBaseReport and B08 GetReport → NotifyReport from GetConfiguration."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.device_model_file import load_config_table
from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.device_model import BridgeVariable, VariableRef
from bridge.stations.v16.outcome import Forward
from bridge.stations.v16.reports import base_report, custom_report, get_configuration_for_report

SCHEMAS = OfficialSchemas()
TABLE = load_config_table()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
NOW = "2026-03-01T12:00:00Z"

CONFIGURATION = {
    "configurationKey": [
        {"key": "ConnectionTimeOut", "readonly": False, "value": "300"},
        {"key": "MeterValuesSampledData", "readonly": False, "value": "Energy.Active.Import.Register,Voltage"},
        {"key": "MeterValuesSampledDataMaxLength", "readonly": True, "value": "8"},
        {"key": "LocalAuthListMaxLength", "readonly": True, "value": "1000"},
        {"key": "LocalAuthListEnabled", "readonly": False, "value": "True"},
        {"key": "ChargeProfileMaxStackLevel", "readonly": False, "value": "10"},
        {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Current,Power"},
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
        {"key": "VendorKey", "readonly": False, "value": "on"},
        {"key": "AuthorizationKey", "readonly": False},
        {"key": "CentralSystemURI", "readonly": False, "value": "ws://bridge/ocpp"},
    ]
}  # fmt: skip
BRIDGE = [
    BridgeVariable(VariableRef("ChargingStation", "Model"), "Wallbox 22"),
    BridgeVariable(
        VariableRef("EVSE", "AvailabilityState", evse_id=1), "Available", "OptionList", summary=True
    ),
    BridgeVariable(VariableRef("EVSE", "Available", evse_id=1), "true", "boolean", summary=True),
]


def check_reports(outcome: Any, action: str) -> list[dict[str, Any]]:
    assert SCHEMAS.check(V201, action, RES, outcome.response) is None
    for report in outcome.reports:
        violation = SCHEMAS.check(V201, "NotifyReport", REQ, report)
        assert violation is None, violation
    return [data for report in outcome.reports for data in report["reportData"]]


def by_name(data: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["component"]["name"], d["variable"]["name"]): d for d in data}


def test_the_1_6_call_asks_for_every_key() -> None:
    call = get_configuration_for_report({"requestId": 1, "reportBase": "FullInventory"})
    assert call == Forward("GetConfiguration", {})
    assert SCHEMAS.check(V16, "GetConfiguration", REQ, call.payload) is None


class TestB07GetBaseReport:
    def test_full_inventory(self) -> None:
        request = {"requestId": 6, "reportBase": "FullInventory"}
        outcome = base_report(
            request, CONFIGURATION, TABLE, generated_at=NOW, bridge_variables=BRIDGE
        )
        assert outcome.response == {"status": "Accepted"}
        data = by_name(check_reports(outcome, "GetBaseReport"))
        assert ("OCPP16LegacyCtrlr", "AuthorizationKey") not in data
        assert not any("CentralSystemURI" in str(d) for d in data.values())
        assert data[("TxCtrlr", "EVConnectionTimeOut")] == {
            "component": {"name": "TxCtrlr"},
            "variable": {"name": "EVConnectionTimeOut"},
            "variableAttribute": [{"type": "Actual", "mutability": "ReadWrite", "value": "300"}],
            "variableCharacteristics": {
                "supportsMonitoring": False,
                "dataType": "integer",
                "unit": "s",
            },
        }
        measurands = data[("SampledDataCtrlr", "TxUpdatedMeasurands")]
        assert (
            measurands["variableAttribute"][0]["value"] == "Energy.Active.Import.Register,Voltage"
        )
        characteristics = measurands["variableCharacteristics"]
        assert characteristics["dataType"] == "MemberList"
        assert characteristics["maxLimit"] == 8
        # issue 16 item 8: a MemberList carries its valuesList
        assert "Energy.Active.Import.Register" in characteristics["valuesList"].split(",")
        entries = data[("LocalAuthListCtrlr", "Entries")]
        assert entries["variableAttribute"] == [{"type": "Actual", "mutability": "ReadOnly"}]
        assert entries["variableCharacteristics"]["maxLimit"] == 1000
        assert data[("LocalAuthListCtrlr", "Enabled")]["variableAttribute"][0]["value"] == "true"
        # the table's mutability wins over the charger's readonly flag
        stack = data[("SmartChargingCtrlr", "ProfileStackLevel")]["variableAttribute"][0]
        assert stack["mutability"] == "ReadOnly"
        rate = data[("SmartChargingCtrlr", "RateUnit")]["variableCharacteristics"]
        assert rate["valuesList"] == "A,W"
        assert data[("OCPP16LegacyCtrlr", "VendorKey")]["variableAttribute"][0]["value"] == "on"
        assert data[("ChargingStation", "Model")]["variableAttribute"][0]["value"] == "Wallbox 22"

    def test_configuration_inventory_lists_only_what_can_be_set(self) -> None:
        request = {"requestId": 6, "reportBase": "ConfigurationInventory"}
        outcome = base_report(
            request, CONFIGURATION, TABLE, generated_at=NOW, bridge_variables=BRIDGE
        )
        names = {variable for _, variable in by_name(check_reports(outcome, "GetBaseReport"))}
        assert names == {"EVConnectionTimeOut", "TxUpdatedMeasurands", "Enabled", "VendorKey"}

    def test_summary_inventory_is_the_bridge_summary(self) -> None:
        request = {"requestId": 6, "reportBase": "SummaryInventory"}
        outcome = base_report(
            request, CONFIGURATION, TABLE, generated_at=NOW, bridge_variables=BRIDGE
        )
        data = check_reports(outcome, "GetBaseReport")
        assert [(d["component"], d["variable"]["name"]) for d in data] == [
            ({"name": "EVSE", "evse": {"id": 1}}, "AvailabilityState"),
            ({"name": "EVSE", "evse": {"id": 1}}, "Available"),
        ]

    @pytest.mark.parametrize("size", [1, 3, 100])
    def test_parts_and_sequence(self, size: int) -> None:
        request = {"requestId": 9, "reportBase": "FullInventory"}
        outcome = base_report(
            request, CONFIGURATION, TABLE, generated_at=NOW, bridge_variables=BRIDGE, max_items=size
        )
        total = len(check_reports(outcome, "GetBaseReport"))
        assert total == 11  # 8 variables from 10 visible keys, 3 bridge variables
        assert [r["seqNo"] for r in outcome.reports] == list(range(len(outcome.reports)))
        assert all(len(r["reportData"]) <= size for r in outcome.reports)
        assert [r.get("tbc", False) for r in outcome.reports] == [True] * (
            len(outcome.reports) - 1
        ) + [False]
        assert {(r["requestId"], r["generatedAt"]) for r in outcome.reports} == {(9, NOW)}

    def test_no_answer_from_the_charger(self) -> None:
        outcome = base_report(
            {"requestId": 1, "reportBase": "FullInventory"}, None, TABLE, generated_at=NOW
        )
        assert (outcome.response, outcome.reports) == ({"status": "Rejected"}, [])

    def test_nothing_to_report(self) -> None:
        request = {"requestId": 1, "reportBase": "SummaryInventory"}
        outcome = base_report(request, CONFIGURATION, TABLE, generated_at=NOW)
        assert (outcome.response, outcome.reports) == ({"status": "EmptyResultSet"}, [])
        assert SCHEMAS.check(V201, "GetBaseReport", RES, outcome.response) is None


class TestB08GetReport:
    def report(self, **fields: Any) -> list[dict[str, Any]]:
        request = {"requestId": 3, **fields}
        assert SCHEMAS.check(V201, "GetReport", REQ, request) is None
        outcome = custom_report(
            request, CONFIGURATION, TABLE, generated_at=NOW, bridge_variables=BRIDGE
        )
        return check_reports(outcome, "GetReport")

    def test_by_component(self) -> None:
        data = self.report(componentVariable=[{"component": {"name": "LocalAuthListCtrlr"}}])
        assert sorted(d["variable"]["name"] for d in data) == ["Enabled", "Entries"]

    def test_by_component_and_variable(self) -> None:
        data = self.report(
            componentVariable=[
                {"component": {"name": "TxCtrlr"}, "variable": {"name": "EVConnectionTimeOut"}},
                {
                    "component": {"name": "EVSE", "evse": {"id": 1}},
                    "variable": {"name": "Available"},
                },
            ]
        )
        assert [d["variable"]["name"] for d in data] == ["EVConnectionTimeOut", "Available"]

    def test_by_criteria(self) -> None:
        """B08.FR.07-09: a component counts when its criterion variable is true or when it has none;
        B08.FR.10: Problem only when true."""
        every = {d["component"]["name"] for d in self.report()}
        assert {"EVSE", "LocalAuthListCtrlr", "SmartChargingCtrlr"} <= every
        data = self.report(componentCriteria=["Available"])
        assert {d["component"]["name"] for d in data} == every
        enabled = self.report(componentCriteria=["Enabled"])
        assert {d["component"]["name"] for d in enabled} == every
        outcome = custom_report(
            {"requestId": 3, "componentCriteria": ["Enabled"]},
            {
                "configurationKey": [
                    {**e, "value": "false"} if e["key"] == "LocalAuthListEnabled" else e
                    for e in CONFIGURATION["configurationKey"]
                ]
            },
            TABLE,
            generated_at=NOW,
            bridge_variables=BRIDGE,
        )
        disabled = {d["component"]["name"] for d in check_reports(outcome, "GetReport")}
        assert disabled == every - {"LocalAuthListCtrlr"}
        problem = custom_report(
            {"requestId": 3, "componentCriteria": ["Problem"]},
            CONFIGURATION,
            TABLE,
            generated_at=NOW,
            bridge_variables=BRIDGE,
        )
        assert problem.response == {"status": "EmptyResultSet"}

    def test_empty_result(self) -> None:
        request = {
            "requestId": 3,
            "componentVariable": [{"component": {"name": "DisplayMessageCtrlr"}}],
        }
        outcome = custom_report(request, CONFIGURATION, TABLE, generated_at=NOW)
        assert (outcome.response, outcome.reports) == ({"status": "EmptyResultSet"}, [])


class TestIssue16Reports:
    """Issue 16 items 8 and 9, in the 1.6 report synthesis."""

    def test_b07_vendor_booleans_are_typed_boolean(self) -> None:
        configuration = {
            "configurationKey": [{"key": "Cst_FreeVend", "readonly": False, "value": "TRUE"}]
        }
        outcome = base_report(
            {"requestId": 1, "reportBase": "FullInventory"}, configuration, TABLE, generated_at=NOW
        )
        [data] = check_reports(outcome, "GetBaseReport")
        assert data["variableCharacteristics"]["dataType"] == "boolean"
        assert data["variableAttribute"][0]["value"] == "true"

    def test_b07_every_list_variable_carries_its_values_list(self) -> None:
        configuration = {
            "configurationKey": [{"key": key, "readonly": False, "value": ""} for key in TABLE.rows]
        }
        outcome = base_report(
            {"requestId": 1, "reportBase": "FullInventory"}, configuration, TABLE, generated_at=NOW
        )
        for data in check_reports(outcome, "GetBaseReport"):
            characteristics = data["variableCharacteristics"]
            if characteristics["dataType"] in ("OptionList", "MemberList", "SequenceList"):
                assert characteristics.get("valuesList"), data

    @pytest.mark.parametrize(
        "key",
        ["Cst_BackendUrl", "Cst_ChargeBoxId", "OcppHost", "BackendPort", "ChargePointIdentity"],
    )
    def test_b07_keys_that_re_point_the_charger_are_read_only(self, key: str) -> None:
        configuration = {"configurationKey": [{"key": key, "readonly": False, "value": "x"}]}
        outcome = base_report(
            {"requestId": 1, "reportBase": "FullInventory"}, configuration, TABLE, generated_at=NOW
        )
        [data] = check_reports(outcome, "GetBaseReport")
        assert data["variableAttribute"][0]["mutability"] == "ReadOnly"
        configuration_inventory = base_report(
            {"requestId": 1, "reportBase": "ConfigurationInventory"},
            configuration,
            TABLE,
            generated_at=NOW,
        )
        assert configuration_inventory.response == {"status": "EmptyResultSet"}
