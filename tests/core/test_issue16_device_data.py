"""Issue 16 item 6: DeviceDataCtrlr's limits are enforced and GetReport (B08) is served by 104 stations.

B06.FR.16/17, B08.FR.17/18 (and the same for SetVariables): a request beyond ItemsPerMessage or
BytesPerMessage gets CALLERROR OccurrenceConstraintViolation or FormatViolation, on 1.6 and 104 stations,
before the charger is asked. B08: GetReport with componentVariable and componentCriteria on a 104 station,
filtered like the 1.6 station's (one shared `bridge.north.device_data`). Whole station cores, frames validated
against the official schemas by the harnesses.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
import pytest

from bridge.effects import Side
from bridge.north.device_data import BYTES_PER_MESSAGE, ITEMS_PER_MESSAGE
from tests.core.iec104_bench import POWER, fl
from tests.core.station_harness import only
from tests.core.test_issue16_device_model import (
    CONFIGURATION_16,
    answer104,
    item,
    ready104,
    registered16,
)

N, S = Side.NORTH, Side.SOUTH
WANTED = item("OCPPCommCtrlr", "HeartbeatInterval")
BIG = {"vendorId": "org.example", "blob": "x" * BYTES_PER_MESSAGE}  # customData: any properties


def too_many(action: str) -> dict[str, Any]:
    many = ITEMS_PER_MESSAGE + 1
    if action == "GetVariables":
        return {"getVariableData": [WANTED] * many}
    if action == "SetVariables":
        return {"setVariableData": [{**WANTED, "attributeValue": "60"}] * many}
    return {"requestId": 1, "componentVariable": [WANTED] * many}


def just_enough(action: str) -> dict[str, Any]:
    if action == "GetVariables":
        return {"getVariableData": [WANTED] * ITEMS_PER_MESSAGE}
    if action == "SetVariables":
        return {"setVariableData": [{**WANTED, "attributeValue": "60"}] * ITEMS_PER_MESSAGE}
    return {"requestId": 1, "componentVariable": [WANTED] * ITEMS_PER_MESSAGE}


def one(action: str) -> dict[str, Any]:
    if action == "GetVariables":
        return {"getVariableData": [WANTED]}
    if action == "SetVariables":
        return {"setVariableData": [{**WANTED, "attributeValue": "60"}]}
    return {"requestId": 1, "componentVariable": [WANTED]}


ACTIONS = ["GetVariables", "SetVariables", "GetReport"]


def error16(action: str, payload: dict[str, Any]) -> tuple[int, str]:
    bench = registered16()
    bench.csms(action, payload, message_id="q1")
    frame = only([f for f in bench.frames(N) if f.message_id == "q1"])
    assert not bench.frames(S, "GetConfiguration") and not bench.frames(S, "ChangeConfiguration")
    return frame.kind, frame.code if frame.kind == 4 else ""


def error104(action: str, payload: dict[str, Any]) -> tuple[int, str]:
    bench = ready104()
    frame = bench.answer_to(bench.csms(action, payload))
    assert frame is not None
    return frame.kind, frame.payload["code"] if frame.kind == 4 else ""


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("station", [error16, error104], ids=["ocpp16", "iec104"])
class TestLimits:
    def test_b06_fr_16_more_items_than_items_per_message(self, station: Any, action: str) -> None:
        assert station(action, too_many(action)) == (4, "OccurrenceConstraintViolation")

    def test_b06_fr_17_more_bytes_than_bytes_per_message(self, station: Any, action: str) -> None:
        assert station(action, {**one(action), "customData": BIG}) == (4, "FormatViolation")


@pytest.mark.parametrize("action", ACTIONS)
def test_b06_items_per_message_items_are_served(action: str) -> None:
    bench = ready104()
    frame = bench.answer_to(bench.csms(action, just_enough(action)))
    assert frame is not None and frame.kind == 3


# --- GetReport on a 104 station (B08) --------------------------------------------------------------


def report104(request: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    bench = ready104()
    answer = answer104(bench, "GetReport", {"requestId": 7, **request})
    parts = bench.calls("NotifyReport")
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert all(p["requestId"] == 7 and len(p["reportData"]) <= ITEMS_PER_MESSAGE for p in parts)
    assert [bool(p.get("tbc")) for p in parts] == [True] * (len(parts) - 1) + [False] * bool(parts)
    return answer, [d for p in parts for d in p["reportData"]]


def names(data: list[dict[str, Any]]) -> set[tuple[str, str, int | None]]:
    return {
        (d["component"]["name"], d["variable"]["name"], d["component"].get("evse", {}).get("id"))
        for d in data
    }


class TestGetReport104:
    def test_b08_fr_11_component_variable_selects_one_variable(self) -> None:
        answer, data = report104({"componentVariable": [item("EVSE", "AvailabilityState", evse=1)]})
        assert answer == {"status": "Accepted"}
        assert names(data) == {("EVSE", "AvailabilityState", 1)}
        assert data[0]["variableAttribute"][0]["value"] == "Available"
        assert "variableCharacteristics" in data[0]  # B08.FR.12

    def test_b08_fr_20_a_component_without_variable_reports_all_its_variables(self) -> None:
        _, data = report104({"componentVariable": [{"component": {"name": "DeviceDataCtrlr"}}]})
        assert len(data) == 6 and {d["component"]["name"] for d in data} == {"DeviceDataCtrlr"}

    def test_b08_fr_23_a_component_without_evse_reports_every_evse(self) -> None:
        _, data = report104({"componentVariable": [{"component": {"name": "EVSE"}}]})
        assert {evse for _, _, evse in names(data)} == {1, 2}

    def test_b08_fr_09_component_criteria_enabled_counts_components_without_enabled(self) -> None:
        _, data = report104({"componentCriteria": ["Enabled"]})
        _, everything = report104({})
        assert len(everything) > ITEMS_PER_MESSAGE
        # SmartChargingCtrlr has Enabled true; no other component has Enabled: all of them count
        assert {d["component"]["name"] for d in data} >= {
            "SmartChargingCtrlr",
            "OCPPCommCtrlr",
            "DeviceDataCtrlr",
            "EVSE",
        }
        assert len(data) == len(everything)

    def test_b08_fr_10_component_criteria_problem_needs_problem_true(self) -> None:
        assert report104({"componentCriteria": ["Problem"]}) == ({"status": "EmptyResultSet"}, [])

    def test_b08_fr_05_criteria_and_component_variable_both_apply(self) -> None:
        wanted = {"componentVariable": [item("EVSE", "AvailabilityState", evse=1)]}
        answer, data = report104({**wanted, "componentCriteria": ["Available"]})
        assert answer == {"status": "Accepted"}
        assert names(data) == {("EVSE", "AvailabilityState", 1)}
        empty, none = report104({**wanted, "componentCriteria": ["Problem"]})
        assert (empty, none) == ({"status": "EmptyResultSet"}, [])  # B08.FR.15

    def test_b08_fr_15_nothing_selected_is_an_empty_result_set(self) -> None:
        answer, data = report104({"componentVariable": [{"component": {"name": "NoSuchCtrlr"}}]})
        assert (answer, data) == ({"status": "EmptyResultSet"}, [])

    def test_b07_full_inventory_parts_respect_items_per_message(self) -> None:
        bench = ready104()
        answer104(bench, "GetBaseReport", {"requestId": 3, "reportBase": "FullInventory"})
        parts = bench.calls("NotifyReport")
        assert sum(len(p["reportData"]) for p in parts) > ITEMS_PER_MESSAGE  # more than one part
        assert all(len(p["reportData"]) <= ITEMS_PER_MESSAGE for p in parts)
        assert [p["seqNo"] for p in parts] == list(range(len(parts)))
        assert [bool(p.get("tbc")) for p in parts] == [True] * (len(parts) - 1) + [False]


# --- Required variables with live values on a 104 station -------------------------------------------


def values104(bench: Any, *entries: tuple[Any, ...]) -> list[str | None]:
    wanted = [item(*entry) for entry in entries]
    response = answer104(bench, "GetVariables", {"getVariableData": wanted})
    assert {r["attributeStatus"] for r in response["getVariableResult"]} == {"Accepted"}
    return [r.get("attributeValue") for r in response["getVariableResult"]]


def test_b06_evse_power_is_the_live_power_in_watts_104() -> None:
    bench = ready104()
    power = ("EVSE", "Power", None, 1)
    assert values104(bench, power) == [""]  # not yet known: empty (B06.FR.13)
    bench.points(fl(POWER, 7.5))  # the table's output_power is in kW
    assert values104(bench, power) == ["7500"]


def test_b06_smart_charging_entries_count_the_installed_profiles_104() -> None:
    bench = ready104()
    entries = ("SmartChargingCtrlr", "Entries", "ChargingProfiles")
    assert values104(bench, entries) == ["0"]
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
    assert values104(bench, entries) == ["1"]


def test_b06_fr_09_a_write_only_variable_is_rejected_and_never_shown_104() -> None:
    bench = ready104()
    wanted = [item("SecurityCtrlr", "BasicAuthPassword")]
    response = answer104(bench, "GetVariables", {"getVariableData": wanted})
    [result] = response["getVariableResult"]
    assert result["attributeStatus"] == "Rejected" and "attributeValue" not in result


# --- A 1.6 charger without the optional keys behind required variables ------------------------------

OPTIONAL_16 = (
    "SupportedFileTransferProtocols",
    "UnlockConnectorOnEVSideDisconnect",
    "CpoName",
    "CertificateStoreMaxLength",
)
BEHIND = [
    ("OCPPCommCtrlr", "FileTransferProtocols"),
    ("OCPPCommCtrlr", "UnlockOnEVSideDisconnect"),
    ("SecurityCtrlr", "OrganizationName"),
]


def ask16_with(bench: Any, configuration: dict[str, Any], action: str, payload: Any) -> Any:
    """A CSMS request to the 1.6 station whose charger has `configuration` (ChangeConfiguration of a
    key it lacks: NotSupported, as a 1.6 charger answers)."""
    bench.csms(action, payload, message_id="q9")
    keys = {entry["key"] for entry in configuration["configurationKey"]}
    while (call := bench.outstanding(S)) is not None:
        if call.action == "GetConfiguration":
            asked = call.payload.get("key") or sorted(keys)
            known = [e for e in configuration["configurationKey"] if e["key"] in asked]
            unknown = [k for k in asked if k not in keys]
            answer: dict[str, Any] = {"configurationKey": known}
            if unknown:
                answer["unknownKey"] = unknown
            bench.answer(S, answer)
        else:
            bench.answer(
                S, {"status": "Accepted" if call.payload["key"] in keys else "NotSupported"}
            )
    bench.answer_all(N)
    return only([f for f in bench.frames(N) if f.message_id == "q9"], kind=3).payload


def without_optional() -> dict[str, Any]:
    return {
        "configurationKey": [
            e for e in CONFIGURATION_16["configurationKey"] if e["key"] not in OPTIONAL_16
        ]
    }


def test_b06_required_variables_a_16_charger_lacks_are_present_without_value() -> None:
    bench = registered16()
    wanted = [item(c, v) for c, v in BEHIND]
    response = ask16_with(bench, without_optional(), "GetVariables", {"getVariableData": wanted})
    assert [(r["attributeStatus"], r["attributeValue"]) for r in response["getVariableResult"]] == [
        ("Accepted", "")
    ] * 3


def test_b06_the_16_chargers_own_keys_win_over_the_fallback() -> None:
    bench = registered16()
    wanted = [item(c, v) for c, v in BEHIND]
    response = ask16_with(bench, CONFIGURATION_16, "GetVariables", {"getVariableData": wanted})
    assert [r["attributeValue"] for r in response["getVariableResult"]] == [
        "FTP,HTTP,HTTPS",
        "true",
        "Example CPO",
    ]


def test_b07_full_inventory_lists_them_once_either_way() -> None:
    for configuration in (without_optional(), CONFIGURATION_16):
        bench = registered16()
        request = {"requestId": 5, "reportBase": "FullInventory"}
        assert ask16_with(bench, configuration, "GetBaseReport", request) == {"status": "Accepted"}
        data = [d for f in bench.frames(N, "NotifyReport", 2) for d in f.payload["reportData"]]
        listed = [(d["component"]["name"], d["variable"]["name"]) for d in data]
        expected = [*BEHIND, ("SecurityCtrlr", "CertificateEntries")]
        assert all(listed.count(entry) == 1 for entry in expected), listed


def test_b05_writing_a_fallback_the_16_charger_lacks_is_rejected_read_only() -> None:
    bench = registered16()
    write = item("SecurityCtrlr", "OrganizationName", attributeValue="Other CPO")
    response = ask16_with(bench, without_optional(), "SetVariables", {"setVariableData": [write]})
    [result] = response["setVariableResult"]
    assert (result["attributeStatus"], result["attributeStatusInfo"]["reasonCode"]) == (
        "Rejected",
        "ReadOnly",
    )


# --- componentCriteria (B08.FR.07-10, B08.FR.13), the shared filter --------------------------------

CRITERIA_MODEL: list[tuple[tuple[str, None, int | None, None, str, None], str | None]] = [
    (("On", None, None, None, "Enabled", None), "true"),
    (("Off", None, None, None, "Enabled", None), "false"),
    (("Off", None, None, None, "Problem", None), "true"),
    (("Unknown", None, None, None, "Enabled", None), None),
    (("Plain", None, None, None, "Interval", None), "5"),
    (("EVSE", None, 1, None, "Available", None), "true"),
    (("EVSE", None, 2, None, "Available", None), "false"),
    (("EVSE", None, 2, None, "Active", None), "True"),
]


def chosen_components(criteria: list[str]) -> set[tuple[str, int | None]]:
    from bridge.north.device_data import custom_report

    found = custom_report(
        {"requestId": 1, "componentCriteria": criteria},
        CRITERIA_MODEL,
        lambda v: v[0],
        lambda v: v[1],
    )
    return {(v[0][0], v[0][2]) for v in found}


ALL = {("On", None), ("Off", None), ("Unknown", None), ("Plain", None), ("EVSE", 1), ("EVSE", 2)}


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        # B08.FR.09: Enabled true, or no Enabled variable at all; false or unknown do not count
        (["Enabled"], ALL - {("Off", None), ("Unknown", None)}),
        # B08.FR.08
        (["Available"], ALL - {("EVSE", 2)}),
        # B08.FR.07: values are booleans, "True" is true
        (["Active"], ALL),
        # B08.FR.10: only a component whose Problem is true
        (["Problem"], {("Off", None)}),
        # B08.FR.13: any of them (logical OR)
        (["Problem", "Available"], ALL - {("EVSE", 2)}),
        (["Enabled", "Problem"], ALL - {("Unknown", None)}),
    ],
)
def test_b08_component_criteria(criteria: list[str], expected: set[Any]) -> None:
    assert chosen_components(criteria) == expected


# --- BytesPerMessage: the frame as received, and NotifyReport parts within it ----------------------


def padded(action: str, message_id: str) -> str:
    """One small request whose frame, with blanks a JSON writer may put in, is over BytesPerMessage
    (its compact JSON is far below it)."""
    frame = json.dumps([2, message_id, action, one(action)], indent=BYTES_PER_MESSAGE // 8)
    assert (
        len(frame) > BYTES_PER_MESSAGE > 4 * len(json.dumps([2, message_id, action, one(action)]))
    )
    return frame


@pytest.mark.parametrize("action", ACTIONS)
def test_b06_fr_17_bytes_per_message_counts_the_frame_as_received_104(action: str) -> None:
    bench = ready104()
    bench.waiting["big"] = action
    bench.core.receive(N, padded(action, "big"), bench.now, bench.wall())
    bench.drain()
    frame = bench.answer_to("big")
    assert frame is not None and (frame.kind, frame.payload["code"]) == (4, "FormatViolation")


@pytest.mark.parametrize("action", ACTIONS)
def test_b06_fr_17_bytes_per_message_counts_the_frame_as_received_16(action: str) -> None:
    bench = registered16()
    bench.waiting[N]["big"] = action
    bench.core.receive(N, padded(action, "big"), bench.now, bench.wall())
    bench.drain()
    frame = only([f for f in bench.frames(N) if f.message_id == "big"])
    assert (frame.kind, frame.code) == (4, "FormatViolation")
    assert not bench.frames(S, "GetConfiguration") and not bench.frames(S, "ChangeConfiguration")


def test_b06_a_multibyte_frame_counts_its_utf8_bytes() -> None:
    from bridge.north.device_data import frame_bytes, over_limit

    text = json.dumps(
        [
            2,
            "m",
            "GetVariables",
            {
                **one("GetVariables"),
                "customData": {"vendorId": "org.example", "note": "é" * (BYTES_PER_MESSAGE // 2)},
            },
        ],
        ensure_ascii=False,
    )
    assert len(text) < BYTES_PER_MESSAGE < frame_bytes(text) == len(text.encode())
    assert over_limit("GetVariables", json.loads(text)[3], text) is not None
    assert over_limit("GetVariables", json.loads(text)[3], text.encode()) is not None


def test_b08_notify_report_parts_keep_within_bytes_per_message() -> None:
    from bridge.north.device_data import notify_report_parts

    data = [
        {
            "component": {"name": "VendorCtrlr"},
            "variable": {"name": f"Key{i}"},
            "variableAttribute": [{"type": "Actual", "value": "v" * 2500}],
            "variableCharacteristics": {"dataType": "string", "supportsMonitoring": False},
        }
        for i in range(ITEMS_PER_MESSAGE)
    ]
    parts = notify_report_parts(data, 4, "2026-12-07T10:00:00Z")
    assert len(parts) > 1
    longest_id = "x" * 36
    for part in parts:
        assert len(orjson.dumps([2, longest_id, "NotifyReport", part])) <= BYTES_PER_MESSAGE
    assert [d for p in parts for d in p["reportData"]] == data
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert [bool(p.get("tbc")) for p in parts] == [True] * (len(parts) - 1) + [False]
    # the parts are as full as the limit allows: the next item would not have fitted
    for part, following in itertools.pairwise(parts):
        fuller = {**part, "reportData": [*part["reportData"], following["reportData"][0]]}
        assert len(orjson.dumps([2, longest_id, "NotifyReport", fuller])) > BYTES_PER_MESSAGE


# --- Mutability per part 2 (SecurityCtrlr.OrganizationName, SmartChargingCtrlr.LimitChangeSignificance)


def report_entry104(bench: Any, component: str, variable: str) -> dict[str, Any]:
    request = {"requestId": 8, "componentVariable": [item(component, variable)]}
    assert answer104(bench, "GetReport", request) == {"status": "Accepted"}
    [data] = [
        d for p in bench.calls("NotifyReport") if p["requestId"] == 8 for d in p["reportData"]
    ]
    return data  # type: ignore[no-any-return]


READ_WRITE_104 = [
    ("SecurityCtrlr", "OrganizationName", "Example Charging Services Ltd", "string"),
    ("SmartChargingCtrlr", "LimitChangeSignificance", "12.5", "decimal"),
]


@pytest.mark.parametrize(("component", "variable", "value", "data_type"), READ_WRITE_104)
def test_b05_read_write_variables_are_settable_and_durable_104(
    component: str, variable: str, value: str, data_type: str
) -> None:
    bench = ready104()
    entry = report_entry104(bench, component, variable)
    assert entry["variableAttribute"][0]["mutability"] == "ReadWrite"
    assert entry["variableCharacteristics"]["dataType"] == data_type
    write = item(component, variable, attributeValue=value)
    response = answer104(bench, "SetVariables", {"setVariableData": [write]})
    assert response["setVariableResult"][0]["attributeStatus"] == "Accepted"
    bench.restart()
    bench.ready()
    response = answer104(bench, "GetVariables", {"getVariableData": [item(component, variable)]})
    assert [(r["attributeStatus"], r["attributeValue"]) for r in response["getVariableResult"]] == [
        ("Accepted", value)
    ]


@pytest.mark.parametrize(
    ("component", "variable", "value", "reason"),
    [
        ("SecurityCtrlr", "OrganizationName", "x" * 65, "TooLargeElement"),
        ("SecurityCtrlr", "OrganizationName", "line\nbreak", "InvalidValue"),
        ("SecurityCtrlr", "OrganizationName", "  ", "InvalidValue"),
        ("SmartChargingCtrlr", "LimitChangeSignificance", "-1", "InvalidValue"),
        ("SmartChargingCtrlr", "LimitChangeSignificance", "ten", "InvalidValue"),
        ("SmartChargingCtrlr", "LimitChangeSignificance", "100.5", "ValueOutOfRange"),
    ],
)
def test_b05_bad_values_are_rejected_and_change_nothing_104(
    component: str, variable: str, value: str, reason: str
) -> None:
    bench = ready104()
    before = answer104(bench, "GetVariables", {"getVariableData": [item(component, variable)]})
    write = item(component, variable, attributeValue=value)
    response = answer104(bench, "SetVariables", {"setVariableData": [write]})
    [result] = response["setVariableResult"]
    assert (result["attributeStatus"], result["attributeStatusInfo"]["reasonCode"]) == (
        "Rejected",
        reason,
    )
    after = answer104(bench, "GetVariables", {"getVariableData": [item(component, variable)]})
    assert after == before


# --- ProfileStackLevel: the limit a 104 station declares is the one it enforces (K01) --------------


def tx_default(stack_level: int, profile_id: int = 3) -> dict[str, Any]:
    return {
        "id": profile_id,
        "stackLevel": stack_level,
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


def test_k01_profile_stack_level_is_declared_and_enforced_104() -> None:
    bench = ready104()
    [declared] = values104(bench, ("SmartChargingCtrlr", "ProfileStackLevel"))
    assert declared is not None and 0 < int(declared) < 2**31 - 1
    limit = int(declared)
    entries = ("SmartChargingCtrlr", "Entries", "ChargingProfiles")
    commands = len(bench.commands)
    over = bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": tx_default(limit + 1)})
    answer = bench.answer_to(over)
    assert answer is not None and answer.kind == 3
    assert answer.payload["status"] == "Rejected"
    assert answer.payload["statusInfo"]["reasonCode"] == "InvalidStackLevel"
    assert len(bench.commands) == commands and values104(bench, entries) == ["0"]
    at = bench.csms("SetChargingProfile", {"evseId": 1, "chargingProfile": tx_default(limit, 4)})
    bench.confirm()
    answer = bench.answer_to(at)
    assert answer is not None and answer.payload["status"] == "Accepted"
    assert values104(bench, entries) == ["1"]


# --- Mutability: what part 2 ("Referenced Components and Variables") says, and the stated exceptions


READ_WRITE = "ReadWrite"
READ_ONLY = "ReadOnly"
# Part 2's mutability of the variables translated stations report (either: the station's choice).
PART2 = {
    ("ClockCtrlr", "DateTime"): READ_ONLY,
    ("ClockCtrlr", "TimeSource"): READ_WRITE,
    ("DeviceDataCtrlr", "BytesPerMessage"): READ_ONLY,
    ("DeviceDataCtrlr", "ItemsPerMessage"): READ_ONLY,
    ("ChargingStation", "AvailabilityState"): READ_ONLY,
    ("EVSE", "AvailabilityState"): READ_ONLY,
    ("Connector", "AvailabilityState"): READ_ONLY,
    ("OCPPCommCtrlr", "FileTransferProtocols"): READ_ONLY,
    ("OCPPCommCtrlr", "HeartbeatInterval"): READ_WRITE,
    ("OCPPCommCtrlr", "MessageAttemptInterval"): READ_WRITE,
    ("OCPPCommCtrlr", "MessageAttempts"): READ_WRITE,
    ("OCPPCommCtrlr", "MessageTimeout"): READ_ONLY,
    ("OCPPCommCtrlr", "NetworkConfigurationPriority"): READ_WRITE,
    ("OCPPCommCtrlr", "NetworkProfileConnectionAttempts"): READ_WRITE,
    ("OCPPCommCtrlr", "OfflineThreshold"): READ_WRITE,
    ("OCPPCommCtrlr", "ResetRetries"): READ_WRITE,
    ("OCPPCommCtrlr", "UnlockOnEVSideDisconnect"): "either",
    ("SampledDataCtrlr", "TxEndedMeasurands"): READ_WRITE,
    ("SampledDataCtrlr", "TxStartedMeasurands"): READ_WRITE,
    ("SampledDataCtrlr", "TxUpdatedInterval"): READ_WRITE,
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): READ_WRITE,
    ("SecurityCtrlr", "BasicAuthPassword"): "WriteOnly",
    ("SecurityCtrlr", "CertificateEntries"): READ_ONLY,
    ("SecurityCtrlr", "Identity"): "either",
    ("SecurityCtrlr", "OrganizationName"): READ_WRITE,
    ("SecurityCtrlr", "SecurityProfile"): READ_ONLY,
    ("SmartChargingCtrlr", "Enabled"): READ_WRITE,
    ("SmartChargingCtrlr", "Entries"): READ_ONLY,
    ("SmartChargingCtrlr", "LimitChangeSignificance"): READ_WRITE,
    ("SmartChargingCtrlr", "PeriodsPerSchedule"): READ_ONLY,
    ("SmartChargingCtrlr", "ProfileStackLevel"): READ_ONLY,
    ("TxCtrlr", "EVConnectionTimeOut"): READ_WRITE,
    ("TxCtrlr", "StopTxOnEVSideDisconnect"): "either",
    ("TxCtrlr", "StopTxOnInvalidId"): READ_WRITE,
    ("TxCtrlr", "TxStartPoint"): "either",
    ("TxCtrlr", "TxStopPoint"): "either",
    ("AuthCtrlr", "AuthorizeRemoteStart"): "either",
}
# Where a 104 station differs, each with its reason in bridge/north/owned_variables.py.
EXCEPTIONS_104 = {
    ("ClockCtrlr", "TimeSource"): READ_ONLY,
    ("OCPPCommCtrlr", "MessageTimeout"): READ_WRITE,
    ("OCPPCommCtrlr", "NetworkConfigurationPriority"): READ_ONLY,
    ("OCPPCommCtrlr", "OfflineThreshold"): READ_ONLY,
    ("OCPPCommCtrlr", "ResetRetries"): READ_ONLY,
    ("SampledDataCtrlr", "TxEndedMeasurands"): READ_ONLY,
    ("SampledDataCtrlr", "TxStartedMeasurands"): READ_ONLY,
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): READ_ONLY,
    ("SmartChargingCtrlr", "Enabled"): READ_ONLY,
    ("TxCtrlr", "EVConnectionTimeOut"): READ_ONLY,
    ("TxCtrlr", "StopTxOnInvalidId"): READ_ONLY,
}


def test_b07_mutability_is_part2s_or_a_stated_exception_104() -> None:
    bench = ready104()
    answer104(bench, "GetBaseReport", {"requestId": 2, "reportBase": "FullInventory"})
    reported: dict[tuple[str, str], set[str]] = {}
    for part in bench.calls("NotifyReport"):
        for data in part["reportData"]:
            key = (data["component"]["name"], data["variable"]["name"])
            reported.setdefault(key, set()).update(
                a.get("mutability", READ_WRITE) for a in data["variableAttribute"]
            )
    assert set(EXCEPTIONS_104) <= set(PART2) and set(PART2) <= set(reported)
    wrong = {
        key: sorted(found)
        for key, found in reported.items()
        if key in PART2
        and EXCEPTIONS_104.get(key, PART2[key]) != "either"
        and found != {EXCEPTIONS_104.get(key, PART2[key])}
    }
    assert wrong == {}


# Where a 1.6 station differs (the rest is the charger's: its keys' readonly flags).
EXCEPTIONS_16 = {
    ("ClockCtrlr", "TimeSource"): READ_ONLY,
    ("OCPPCommCtrlr", "MessageTimeout"): READ_WRITE,
    ("OCPPCommCtrlr", "NetworkConfigurationPriority"): READ_ONLY,
    ("OCPPCommCtrlr", "OfflineThreshold"): READ_ONLY,
    ("SampledDataCtrlr", "TxStartedMeasurands"): READ_ONLY,
}


def test_b07_mutability_is_part2s_or_a_stated_exception_16() -> None:
    bench = registered16()
    request = {"requestId": 2, "reportBase": "FullInventory"}
    assert ask16_with(bench, CONFIGURATION_16, "GetBaseReport", request) == {"status": "Accepted"}
    reported: dict[tuple[str, str], set[str]] = {}
    for frame in bench.frames(N, "NotifyReport", 2):
        for data in frame.payload["reportData"]:
            key = (data["component"]["name"], data["variable"]["name"])
            reported.setdefault(key, set()).update(
                a.get("mutability", READ_WRITE) for a in data["variableAttribute"]
            )
    assert set(EXCEPTIONS_16) <= set(reported)
    wrong = {
        key: sorted(found)
        for key, found in reported.items()
        if key in PART2
        and EXCEPTIONS_16.get(key, PART2[key]) != "either"
        and found != {EXCEPTIONS_16.get(key, PART2[key])}
    }
    assert wrong == {}
