"""bridge.stations.v16.variables: B06 GetVariables → GetConfiguration, B05 SetVariables → ChangeConfiguration."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.device_model_file import load_config_table
from adapters.schemas import OfficialSchemas
from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind
from bridge.stations.v16.device_model import BridgeVariable, VariableRef
from bridge.stations.v16.outcome import Forward
from bridge.stations.v16.variables import (
    get_variables_response,
    plan_get_variables,
    plan_set_variables,
    set_variables_response,
)

SCHEMAS = OfficialSchemas()
TABLE = load_config_table()
V16, V201 = OcppVersion.V16, OcppVersion.V201
REQ, RES = PayloadKind.REQUEST, PayloadKind.RESPONSE
BRIDGE = [
    BridgeVariable(VariableRef("ChargingStation", "Model"), "Wallbox 22"),
    BridgeVariable(VariableRef("OCPPCommCtrlr", "OfflineThreshold"), "600", "integer", "ReadWrite"),
]


def check(version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]) -> None:
    violation = SCHEMAS.check(version, action, kind, payload)
    assert violation is None, violation


def item(component: str, variable: str, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"component": {"name": component}, "variable": {"name": variable}}
    for name in ("component_instance", "variable_instance"):
        if name in extra:
            entry[name.split("_")[0]]["instance"] = extra.pop(name)
    if "evse" in extra:
        entry["component"]["evse"] = extra.pop("evse")
    entry.update(extra)
    return entry


class TestB06GetVariables:
    REQUEST = {
        "getVariableData": [
            item("TxCtrlr", "EVConnectionTimeOut"),
            item("AuthCtrlr", "AuthorizeRemoteStart", attributeType="Actual"),
            item("OCPPCommCtrlr", "MessageAttempts", variable_instance="TransactionEvent"),
            item("SampledDataCtrlr", "TxUpdatedMeasurands"),
            item("OCPP16LegacyCtrlr", "BlinkRepeat"),
            item("OCPP16LegacyCtrlr", "VendorKey"),
            item("TxCtrlr", "EVConnectionTimeOut", attributeType="Target"),
            item("LocalAuthListCtrlr", "Entries"),
            item("OCPPCommCtrlr", "NoSuchVariable"),
            item("DisplayMessageCtrlr", "Enabled"),
            item("OCPP16LegacyCtrlr", "AuthorizationKey"),
            item("ChargingStation", "Model"),
            item("TxCtrlr", "EVConnectionTimeOut", evse={"id": 1}),
            item("OCPP16LegacyCtrlr", "GetConfigurationMaxKeys"),
        ]
    }
    CONFIGURATION = {
        "configurationKey": [
            {"key": "ConnectionTimeOut", "readonly": False, "value": "0300"},
            {"key": "AuthorizeRemoteTxRequests", "readonly": True, "value": "TRUE"},
            {"key": "TransactionMessageAttempts", "readonly": False, "value": "3"},
            {"key": "MeterValuesSampledData", "readonly": False, "value": "Energy.Active.Import.Register, Voltage"},
            {"key": "blinkrepeat", "readonly": False},
        ],
        "unknownKey": ["VendorKey"],
    }  # fmt: skip

    def test_plan_asks_each_key_once_in_order(self) -> None:
        check(V201, "GetVariables", REQ, self.REQUEST)
        plan = plan_get_variables(self.REQUEST, TABLE, bridge_variables=BRIDGE)
        keys = [
            "ConnectionTimeOut", "AuthorizeRemoteTxRequests",
            "MeterValuesSampledData", "BlinkRepeat", "VendorKey", "GetConfigurationMaxKeys",
        ]  # fmt: skip
        assert plan.calls == (Forward("GetConfiguration", {"key": keys}),)
        check(V16, "GetConfiguration", REQ, plan.calls[0].payload)

    def test_plan_splits_by_max_keys(self) -> None:
        plan = plan_get_variables(self.REQUEST, TABLE, max_keys=3)
        assert [len(call.payload["key"]) for call in plan.calls] == [3, 3]

    def test_response(self) -> None:
        plan = plan_get_variables(self.REQUEST, TABLE, bridge_variables=BRIDGE)
        check(V16, "GetConfiguration", RES, self.CONFIGURATION)
        response = get_variables_response(plan, [self.CONFIGURATION])
        check(V201, "GetVariables", RES, response)
        summary = [
            (
                r["component"]["name"],
                r["variable"]["name"],
                r["attributeStatus"],
                r.get("attributeValue"),
            )
            for r in response["getVariableResult"]
        ]
        assert summary == [
            ("TxCtrlr", "EVConnectionTimeOut", "Accepted", "300"),
            ("AuthCtrlr", "AuthorizeRemoteStart", "Accepted", "true"),
            ("OCPPCommCtrlr", "MessageAttempts", "UnknownVariable", None),  # the bridge's own
            ("SampledDataCtrlr", "TxUpdatedMeasurands", "Accepted", "Energy.Active.Import.Register,Voltage"),
            ("OCPP16LegacyCtrlr", "BlinkRepeat", "Accepted", ""),  # key matched case-insensitively
            ("OCPP16LegacyCtrlr", "VendorKey", "UnknownVariable", None),
            ("TxCtrlr", "EVConnectionTimeOut", "NotSupportedAttributeType", None),
            ("LocalAuthListCtrlr", "Entries", "Rejected", None),
            ("OCPPCommCtrlr", "NoSuchVariable", "UnknownVariable", None),
            ("DisplayMessageCtrlr", "Enabled", "UnknownComponent", None),
            ("OCPP16LegacyCtrlr", "AuthorizationKey", "UnknownVariable", None),
            ("ChargingStation", "Model", "Accepted", "Wallbox 22"),
            ("TxCtrlr", "EVConnectionTimeOut", "UnknownComponent", None),
            ("OCPP16LegacyCtrlr", "GetConfigurationMaxKeys", "UnknownVariable", None),
        ]  # fmt: skip
        # the request's own component and variable are echoed
        assert response["getVariableResult"][2]["variable"] == {
            "name": "MessageAttempts",
            "instance": "TransactionEvent",
        }
        assert response["getVariableResult"][12]["component"]["evse"] == {"id": 1}

    def test_charger_did_not_answer(self) -> None:
        plan = plan_get_variables(
            {"getVariableData": [item("TxCtrlr", "EVConnectionTimeOut")]}, TABLE
        )
        response = get_variables_response(plan, [None])
        [result] = response["getVariableResult"]
        assert result["attributeStatus"] == "Rejected"
        check(V201, "GetVariables", RES, response)

    def test_only_bridge_variables_need_no_call(self) -> None:
        request = {"getVariableData": [item("ChargingStation", "Model")]}
        plan = plan_get_variables(request, TABLE, bridge_variables=BRIDGE)
        assert plan.calls == ()
        response = get_variables_response(plan, [])
        assert response["getVariableResult"][0]["attributeValue"] == "Wallbox 22"


class TestB05SetVariables:
    REQUEST = {
        "setVariableData": [
            item("TxCtrlr", "EVConnectionTimeOut", attributeValue="300"),
            item("AuthCtrlr", "LocalPreAuthorize", attributeValue="true"),
            item("OCPP16LegacyCtrlr", "VendorKey", attributeValue="x"),
            item("SmartChargingCtrlr", "ProfileStackLevel", attributeValue="5"),
            item("TxCtrlr", "EVConnectionTimeOut", attributeValue="5 minutes"),
            item("OCPPCommCtrlr", "NoSuchVariable", attributeValue="1"),
            item("DisplayMessageCtrlr", "Enabled", attributeValue="true"),
            item("TxCtrlr", "EVConnectionTimeOut", attributeValue="1", attributeType="MaxSet"),
            item("ChargingStation", "Model", attributeValue="other"),
            item("OCPPCommCtrlr", "OfflineThreshold", attributeValue="900"),
            item("SampledDataCtrlr", "TxUpdatedMeasurands", attributeValue="Voltage, SoC"),
            item("TxCtrlr", "EVConnectionTimeOut", attributeValue="60"),
        ]
    }

    def test_plan_and_response(self) -> None:
        check(V201, "SetVariables", REQ, self.REQUEST)
        plan = plan_set_variables(self.REQUEST, TABLE, bridge_variables=BRIDGE)
        assert plan.calls == (
            Forward("ChangeConfiguration", {"key": "ConnectionTimeOut", "value": "300"}),
            Forward("ChangeConfiguration", {"key": "LocalPreAuthorize", "value": "true"}),
            Forward("ChangeConfiguration", {"key": "VendorKey", "value": "x"}),
            Forward(
                "ChangeConfiguration", {"key": "MeterValuesSampledData", "value": "Voltage,SoC"}
            ),
            Forward("ChangeConfiguration", {"key": "ConnectionTimeOut", "value": "60"}),
        )
        for call in plan.calls:
            check(V16, "ChangeConfiguration", REQ, call.payload)
        assert [
            (index, variable.ref.variable, value) for index, variable, value in plan.bridge_writes
        ] == [(9, "OfflineThreshold", "900")]
        answers = [
            {"status": "Accepted"},
            {"status": "RebootRequired"},
            {"status": "NotSupported"},
            {"status": "Rejected"},
            None,
        ]
        response = set_variables_response(plan, answers, {9: "Accepted"})
        check(V201, "SetVariables", RES, response)
        summary = [
            (
                r["variable"]["name"],
                r["attributeStatus"],
                r.get("attributeStatusInfo", {}).get("reasonCode"),
            )
            for r in response["setVariableResult"]
        ]
        assert summary == [
            ("EVConnectionTimeOut", "Accepted", None),
            ("LocalPreAuthorize", "RebootRequired", None),
            ("VendorKey", "UnknownVariable", None),
            ("ProfileStackLevel", "Rejected", "ReadOnly"),
            ("EVConnectionTimeOut", "Rejected", "InvalidValue"),
            ("NoSuchVariable", "UnknownVariable", None),
            ("Enabled", "UnknownComponent", None),
            ("EVConnectionTimeOut", "NotSupportedAttributeType", None),
            ("Model", "Rejected", "ReadOnly"),
            ("OfflineThreshold", "Accepted", None),
            ("TxUpdatedMeasurands", "Rejected", None),
            ("EVConnectionTimeOut", "Rejected", "Unspecified"),
        ]  # fmt: skip

    @pytest.mark.parametrize(
        ("status", "expected"),
        [("Accepted", "Accepted"), ("Rejected", "Rejected"), ("RebootRequired", "RebootRequired"),
         ("NotSupported", "UnknownVariable")],
    )  # fmt: skip
    def test_each_1_6_status(self, status: str, expected: str) -> None:
        request = {
            "setVariableData": [item("AuthCtrlr", "LocalPreAuthorize", attributeValue="false")]
        }
        plan = plan_set_variables(request, TABLE)
        response = set_variables_response(plan, [{"status": status}])
        assert response["setVariableResult"][0]["attributeStatus"] == expected
        check(V201, "SetVariables", RES, response)


class TestIssue16Variables:
    @pytest.mark.parametrize("key", ["Cst_BackendUrl", "Cst_ChargeBoxId", "CentralSystemUrl"])
    def test_b05_keys_that_re_point_the_charger_are_never_forwarded(self, key: str) -> None:
        request = {"setVariableData": [item("OCPP16LegacyCtrlr", key, attributeValue="ws://evil")]}
        plan = plan_set_variables(request, TABLE)
        assert plan.calls == ()
        response = set_variables_response(plan, [])
        [result] = response["setVariableResult"]
        assert result["attributeStatus"] == "Rejected"
        assert result["attributeStatusInfo"]["reasonCode"] == "ReadOnly"

    def test_b06_a_legacy_boolean_is_normalized(self) -> None:
        request = {"getVariableData": [item("OCPP16LegacyCtrlr", "Cst_FreeVend")]}
        plan = plan_get_variables(request, TABLE)
        answer = {"configurationKey": [{"key": "Cst_FreeVend", "readonly": False, "value": "True"}]}
        [result] = get_variables_response(plan, [answer])["getVariableResult"]
        assert result["attributeValue"] == "true"

    def test_b05_owned_write_statuses_carry_their_reason(self) -> None:
        owned = BridgeVariable(
            VariableRef("OCPPCommCtrlr", "HeartbeatInterval"), "300", mutability="ReadWrite"
        )
        request = {
            "setVariableData": [item("OCPPCommCtrlr", "HeartbeatInterval", attributeValue="x")]
        }
        plan = plan_set_variables(request, TABLE, bridge_variables=[owned])
        response = set_variables_response(plan, [], {0: ("Rejected", "InvalidValue")})
        [result] = response["setVariableResult"]
        assert result["attributeStatusInfo"]["reasonCode"] == "InvalidValue"
