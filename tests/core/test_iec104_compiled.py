"""Compiled tables (bridge.stations.iec104.compiled): stride expansion, lookups, overrides, derived rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.stations.iec104 import (
    CommandRule,
    CounterRule,
    EnumRule,
    MappingTable,
    MeasurementRule,
    SetpointRule,
    StatusRule,
    TableError,
    TypeId,
    compile_table,
    merge_tables,
    validate_table,
)
from bridge.stations.iec104.logic import Between, Conjunction, Disjunction, HasCode, IsOn, Negation


def table_data() -> dict[str, Any]:
    """Two blocks per connector, charger points, and rules using every condition shape."""
    return {
        "station": {"command_mode": "select-execute"},
        "identity": {"vendor_name": "ACME", "model": "DC-2", "firmware_version": "1.2"},
        "charger": {
            "points": {
                "emergency_stop": {"kind": "status", "ioa": 0x0001, "type": "M_SP_NA_1"},
                "reset": {
                    "kind": "command",
                    "ioa": 0x6100,
                    "type": "C_SC_NA_1",
                    "actions": {"Reset": "on"},
                    "mode": "direct",
                },
                "station_limit": {
                    "kind": "setpoint",
                    "ioa": 0x6300,
                    "type": "C_SE_NC_1",
                    "unit": "kW",
                },
            }
        },
        "connectors": {
            "max_count": 4,
            "blocks": {
                "status": {
                    "base": 0x0021,
                    "stride": 0x20,
                    "points": {
                        "plug_connected": {"kind": "status", "at": 0, "type": "M_SP_NA_1"},
                        "charging": {"kind": "status", "at": 2, "type": "M_SP_NA_1"},
                        "contactor": {"kind": "status", "at": 4, "type": "M_DP_NA_1"},
                        "out_of_service": {
                            "kind": "status",
                            "at": 12,
                            "type": "M_SP_NA_1",
                            "invert": True,
                        },
                    },
                },
                "measurements": {
                    "base": 0x4001,
                    "stride": 0x40,
                    "points": {
                        "current": {
                            "kind": "measurement",
                            "at": 1,
                            "type": "M_ME_NB_1",
                            "scale": 0.1,
                            "offset": -400,
                            "unit": "A",
                            "measurand": "Current.Import",
                        },
                        "work_status": {
                            "kind": "enum",
                            "at": 14,
                            "type": "M_ME_NC_1",
                            "values": {1: "fault", 2: "idle", 3: "charging", 4: "finished"},
                        },
                    },
                },
                "counters": {
                    "base": 0x6401,
                    "stride": 0x10,
                    "points": {
                        "energy": {
                            "kind": "counter",
                            "at": 0,
                            "type": "M_IT_NA_1",
                            "scale": 10,
                            "measurand": "Energy.Active.Import.Register",
                        }
                    },
                },
                "commands": {
                    "base": 0x6001,
                    "stride": 0x10,
                    "points": {
                        "start_stop": {
                            "kind": "command",
                            "at": 0,
                            "type": "C_SC_NA_1",
                            "actions": {
                                "RequestStartTransaction": "on",
                                "RequestStopTransaction": "off",
                            },
                        }
                    },
                },
                "setpoints": {
                    "base": 0x6201,
                    "stride": 0x10,
                    "points": {
                        "power_limit": {
                            "kind": "setpoint",
                            "at": 0,
                            "type": "C_SE_NC_1",
                            "unit": "kW",
                        },
                        "current_limit": {
                            "kind": "setpoint",
                            "at": 1,
                            "type": "C_SE_NB_1",
                            "unit": "A",
                            "scale": 0.1,
                            "minimum": 6,
                            "maximum": 250,
                        },
                    },
                },
            },
        },
        "rules": {
            "connector_status": [
                {
                    "status": "Faulted",
                    "when": {"any": ["emergency_stop", {"enum": "work_status", "in": ["fault"]}]},
                },
                {"status": "Unavailable", "when": "out_of_service"},
                {"status": "Occupied", "when": {"any": ["plug_connected", "charging"]}},
                {"status": "Available"},
            ],
            "charging_state": [
                {"state": "Charging", "when": {"measurement": "current", "above": 1.0}},
                {"state": "EVConnected", "when": "plug_connected"},
            ],
            "transaction": {
                "starts_when": {
                    "any": [
                        "charging",
                        {
                            "all": [
                                "plug_connected",
                                {"command_accepted": "RequestStartTransaction"},
                            ]
                        },
                    ]
                },
                "ends": [
                    {"when": {"not": "plug_connected"}, "reason": "EVDisconnected"},
                    {"when": "emergency_stop", "reason": "EmergencyStop"},
                    {"when": {"not": "charging"}, "reason": "Local"},
                ],
                "meter": "energy",
            },
        },
    }


def compiled(connectors: int = 2, data: dict[str, Any] | None = None) -> Any:
    return compile_table(validate_table(data or table_data()), connectors)


# --- expansion -----------------------------------------------------------------------------------


@pytest.mark.parametrize("connectors", [1, 2, 3, 4])
def test_blocks_expand_by_stride_for_each_connector(connectors: int) -> None:
    table = compiled(connectors)
    assert table.connectors == connectors
    charger_points = 3
    per_connector = 4 + 2 + 1 + 1 + 2
    assert len(list(table.points())) == charger_points + per_connector * connectors
    for n in range(1, connectors + 1):
        offset = n - 1
        assert table.monitoring[0x0021 + offset * 0x20].key == "plug_connected"
        assert table.monitoring[0x0023 + offset * 0x20].connector == n
        assert table.monitoring[0x4002 + offset * 0x40].key == "current"
        assert table.monitoring[0x6401 + offset * 0x10].key == "energy"
        assert table.controls[0x6001 + offset * 0x10].key == "start_stop"
        assert table.controls[0x6202 + offset * 0x10].connector == n
    assert table.rule_at(0x0021 + connectors * 0x20) is None
    assert [rule.ioa for rule in table.points()] == sorted(rule.ioa for rule in table.points())


@given(
    connectors=st.integers(min_value=1, max_value=4),
    base=st.integers(min_value=0x100, max_value=0x10000),
    ats=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=8, unique=True),
    gap=st.integers(min_value=0, max_value=100),
)
def test_stride_expansion_formula(connectors: int, base: int, ats: list[int], gap: int) -> None:
    stride = max(ats) + 1 + gap
    data: dict[str, Any] = {
        "identity": {"vendor_name": "v", "model": "m"},
        "connectors": {
            "max_count": 4,
            "blocks": {
                "b": {
                    "base": base,
                    "stride": stride,
                    "points": {
                        f"p{at}": {"kind": "status", "at": at, "type": "M_SP_NA_1"} for at in ats
                    },
                }
            },
        },
        "rules": {"connector_status": [{"status": "Available"}]},
    }
    table = compiled(connectors, data)
    expected = {
        base + (n - 1) * stride + at: (n, f"p{at}") for n in range(1, connectors + 1) for at in ats
    }
    assert {ioa: (r.connector, r.key) for ioa, r in table.monitoring.items()} == expected


def overlapping() -> MappingTable:
    data = table_data()
    data["connectors"]["blocks"]["status"]["stride"] = 0x04  # the block spans 13 IOAs
    # built without validate_table, which checks the largest connector count
    return MappingTable.model_validate(data)


def test_one_connector_does_not_overlap_but_two_do() -> None:
    assert compile_table(overlapping(), 1).connectors == 1
    with pytest.raises(TableError) as caught:
        compile_table(overlapping(), 2)
    (problem,) = caught.value.problems  # one per block: the stride is at fault
    assert problem.path == ("connectors", "blocks", "status", "stride")
    assert problem.related == ("connectors", "blocks", "status", "points", "contactor", "at")
    assert problem.message == (
        "stride 0x0004 is smaller than the block's span 0x000D: IOA 0x0025 of connector 2's"
        " 'plug_connected' is already used by connector 1's 'contactor'"
    )


def test_a_clash_between_blocks_is_reported_at_the_point() -> None:
    data = table_data()
    data["connectors"]["blocks"]["counters"]["base"] = 0x6211  # connector 2's power limit
    table = MappingTable.model_validate(data)
    assert compile_table(table, 1)
    with pytest.raises(TableError) as caught:
        compile_table(table, 2)
    (problem,) = caught.value.problems
    assert problem.path == ("connectors", "blocks", "setpoints", "points", "power_limit", "at")
    assert problem.related == ("connectors", "blocks", "counters", "points", "energy", "at")
    assert "IOA 0x6211 of connector 2's 'power_limit' is already used by connector 1's" in (
        problem.message
    )


def test_overlap_is_reported_once_per_point() -> None:
    with pytest.raises(TableError) as caught:
        compile_table(overlapping(), 4)
    paths = [problem.path for problem in caught.value.problems]
    assert len(paths) == len(set(paths))


def test_validate_checks_the_largest_connector_count() -> None:
    data = table_data()
    data["connectors"]["blocks"]["status"]["stride"] = 0x04
    with pytest.raises(TableError, match="already used by"):
        validate_table(data)


def test_duplicate_ioas_across_blocks_and_charger() -> None:
    data = table_data()
    data["charger"]["points"]["emergency_stop"]["ioa"] = 0x0021
    with pytest.raises(TableError) as caught:
        validate_table(data)
    (problem,) = caught.value.problems
    assert problem.path[-1] == "at"
    assert problem.related == ("charger", "points", "emergency_stop", "ioa")
    assert "connector 1's 'plug_connected' is already used by the charger's 'emergency_stop'" in (
        problem.message
    )


def test_expansion_beyond_three_bytes() -> None:
    data = table_data()
    data["connectors"]["blocks"]["status"]["base"] = 0xFFFFF0
    with pytest.raises(TableError) as caught:
        validate_table(data)
    assert any("beyond 0xFFFFFF" in problem.message for problem in caught.value.problems)


def test_more_connectors_than_the_table_describes() -> None:
    with pytest.raises(TableError) as caught:
        compiled(5)
    (problem,) = caught.value.problems
    assert problem.path == ("connectors", "max_count")
    assert "the station has 5 connectors; this table describes 1 to 4" in problem.message


# --- lookups -------------------------------------------------------------------------------------


def test_commands_by_action_and_connector() -> None:
    table = compiled(2)
    start = table.command("RequestStartTransaction", 2)
    assert (start.ioa, start.type_id, start.value) == (0x6011, TypeId.C_SC_NA_1, "on")
    assert start.mode == "select-execute"  # the station's default
    stop = table.command("RequestStopTransaction", 1)
    assert (stop.ioa, stop.value) == (0x6001, "off")
    reset = table.command("Reset", None)
    assert (reset.ioa, reset.mode, reset.connector) == (0x6100, "direct", None)
    assert table.command("Reset", 1) is None
    assert table.command("UnlockConnector", 1) is None


def test_setpoints_by_connector_and_rate_unit() -> None:
    table = compiled(2)
    assert table.setpoint(1, "A").ioa == 0x6202
    assert table.setpoint(2, "W").ioa == 0x6211
    assert table.setpoint(None, "W").ioa == 0x6300
    assert table.setpoint(None, "A") is None


def test_identity_and_station_are_carried() -> None:
    table = compiled(1)
    assert table.identity.firmware_version == "1.2"
    assert table.station.command_mode == "select-execute"


def test_lookups_are_read_only() -> None:
    table = compiled(1)
    with pytest.raises(TypeError):
        table.monitoring[1] = table.monitoring[1]  # type: ignore[index]


def test_every_rule_has_meaning_and_target() -> None:
    table = compiled(1)
    by_key = {rule.key: rule for rule in table.points()}
    assert by_key["plug_connected"].meaning == "plug connected"
    assert "StatusNotification (Occupied)" in by_key["plug_connected"].target
    assert "transaction end (EVDisconnected)" in by_key["plug_connected"].target
    assert by_key["current"].target.startswith("MeterValues Current.Import [A]")
    assert "chargingState (Charging)" in by_key["current"].target
    assert "meter value at transaction start and end" in by_key["energy"].target
    assert (
        by_key["start_stop"].target == "RequestStartTransaction → on; RequestStopTransaction → off"
    )
    assert by_key["station_limit"].target.endswith("ChargingStationMaxProfile")
    assert by_key["contactor"].target == "— (informational)"


# --- conversions ---------------------------------------------------------------------------------


def test_status_decoding() -> None:
    table = compiled(1)
    plug = table.monitoring[0x0021]
    contactor = table.monitoring[0x0025]
    out_of_service = table.monitoring[0x002D]
    assert isinstance(plug, StatusRule)
    assert (plug.decode(True), plug.decode(False)) == (True, False)
    assert isinstance(contactor, StatusRule)
    # double point: 0 intermediate, 1 off, 2 on, 3 indeterminate
    assert [contactor.decode(v) for v in (0, 1, 2, 3)] == [None, False, True, None]
    assert isinstance(out_of_service, StatusRule)
    assert out_of_service.decode(False) is True


def test_measurement_counter_enum_conversion() -> None:
    table = compiled(1)
    current = table.monitoring[0x4002]
    assert isinstance(current, MeasurementRule)
    assert current.convert(4325) == pytest.approx(32.5)
    energy = table.monitoring[0x6401]
    assert isinstance(energy, CounterRule)
    assert energy.convert(123456) == 1234560
    assert energy.wh(123456) == 1234560
    assert energy.scaling == "×10 Wh"
    work = table.monitoring[0x400F]
    assert isinstance(work, EnumRule)
    assert (work.name_of(3.0), work.name_of(3.5), work.name_of(9)) == ("charging", None, None)


def test_setpoint_values() -> None:
    table = compiled(1)
    power = table.setpoint(1, "W")
    assert isinstance(power, SetpointRule)
    assert power.device_value(11000, "W") == 11.0
    current = table.setpoint(1, "A")
    assert current.type_id == TypeId.C_SE_NB_1
    assert current.device_value(32.0, "A") == 320.0
    assert current.device_value(2.0, "A") == 60.0  # raised to the minimum, 6 A
    assert current.device_value(1000.0, "A") == 2500.0  # lowered to the maximum, 250 A
    with pytest.raises(ValueError, match="takes limits in A, not W"):
        current.device_value(1000, "W")


def test_normalized_setpoint() -> None:
    data = table_data()
    data["charger"]["points"]["station_limit"] = {
        "kind": "setpoint",
        "ioa": 0x6300,
        "type": "C_SE_NA_1",
        "unit": "kW",
        "full_scale": 200,
    }
    limit = compiled(1, data).setpoint(None, "W")
    assert limit.device_value(100_000, "W") == 0.5
    assert limit.device_value(400_000, "W") == 32767 / 32768


def test_command_rule_keeps_every_action() -> None:
    rule = compiled(1).controls[0x6001]
    assert isinstance(rule, CommandRule)
    assert dict(rule.actions) == {"RequestStartTransaction": "on", "RequestStopTransaction": "off"}


# --- derived rules -------------------------------------------------------------------------------


def test_conditions_resolve_to_the_connectors_own_ioas() -> None:
    logic = compiled(2).logic_for(2)
    faulted, unavailable, occupied, _available = logic.status_rules
    assert faulted[1] == Disjunction((IsOn(0x0001), HasCode(0x404F, frozenset({1}))))
    assert unavailable == ("Unavailable", IsOn(0x004D))
    assert occupied[1] == Disjunction((IsOn(0x0041), IsOn(0x0043)))
    assert logic.charging_state_rules[0][1] == Between(0x4042, 1.0, None)
    assert logic.transaction is not None
    assert logic.transaction.ends[0][0] == Negation(IsOn(0x0041))
    assert logic.transaction.meter_ioa == 0x6411
    starts = logic.transaction.starts_when
    assert isinstance(starts, Disjunction)
    assert isinstance(starts.parts[1], Conjunction)


def test_connector_status_first_match_and_three_valued_logic() -> None:
    logic = compiled(1).logic_for(1)
    idle = {0x0001: False, 0x400F: 2, 0x002D: False, 0x0021: False, 0x0023: False}
    assert logic.connector_status(idle) == "Available"
    assert logic.connector_status({**idle, 0x0021: True}) == "Occupied"
    assert logic.connector_status({**idle, 0x0021: True, 0x0001: True}) == "Faulted"
    assert logic.connector_status({**idle, 0x400F: 1}) == "Faulted"
    assert logic.connector_status({**idle, 0x002D: True}) == "Unavailable"
    # nothing known: the emergency stop is unknown, so Faulted is unknown and cannot be skipped
    assert logic.connector_status({}) is None
    # not faulted, in service, plugged in: "charging" is unknown but `any` is already true
    known = {0x0001: False, 0x400F: 2, 0x002D: False}
    assert logic.connector_status({**known, 0x0021: True}) == "Occupied"
    # plug unknown: Occupied might apply, so Available must not be reported
    assert logic.connector_status(known) is None


def test_charging_state_from_a_measurement_threshold() -> None:
    logic = compiled(1).logic_for(1)
    assert logic.charging_state({0x4002: 16.0, 0x0021: True}) == "Charging"
    assert logic.charging_state({0x4002: 0.2, 0x0021: True}) == "EVConnected"
    assert logic.charging_state({0x4002: 0.2, 0x0021: False}) is None


def test_transaction_start_and_end_reasons() -> None:
    transaction = compiled(1).logic_for(1).transaction
    assert transaction is not None
    plugged = {0x0021: True, 0x0023: False, 0x0001: False}
    assert not transaction.starts(plugged)
    assert transaction.starts(plugged, {"RequestStartTransaction"})
    assert transaction.starts({**plugged, 0x0023: True})
    assert transaction.end_reason({**plugged, 0x0023: True}) is None
    assert transaction.end_reason({**plugged, 0x0021: False}) == "EVDisconnected"
    assert transaction.end_reason({0x0021: True, 0x0023: False, 0x0001: True}) == "EmergencyStop"
    assert transaction.end_reason(plugged) == "Local"


def test_readers_map_ioas_to_connectors() -> None:
    table = compiled(2)
    assert table.readers[0x0001] == (1, 2)  # the charger's emergency stop concerns both
    assert table.readers[0x0041] == (2,)
    assert table.readers[0x6401] == (1,)  # the meter
    assert 0x0025 not in table.readers  # the contactor is read by no rule
    with pytest.raises(KeyError):
        table.logic_for(3)


# --- overrides -----------------------------------------------------------------------------------


def test_a_vendor_override_changes_only_what_it_names() -> None:
    vendor = {
        "extends": "acme",
        "identity": {"model": "DC-2X"},
        "charger": {"points": {"station_limit": None}},
        "connectors": {
            "blocks": {
                "status": {"stride": 0x10},
                "counters": {"points": {"energy": {"scale": 1, "unit": "kWh"}}},
            }
        },
    }
    table = compile_table(validate_table(merge_tables(table_data(), vendor)), 2)
    assert table.identity.model == "DC-2X"
    assert table.identity.vendor_name == "ACME"
    assert table.setpoint(None, "W") is None
    assert table.monitoring[0x0031].key == "plug_connected"  # connector 2 at the new stride
    assert table.monitoring[0x0031].connector == 2
    energy = table.monitoring[0x6401]
    assert isinstance(energy, CounterRule)
    assert energy.wh(5) == 5000
    assert energy.measurand == "Energy.Active.Import.Register"  # inherited
