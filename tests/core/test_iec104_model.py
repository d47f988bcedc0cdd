"""The mapping language (bridge.stations.iec104): what it accepts, and the exact problem for what it refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.stations.iec104 import (
    MappingTable,
    TableError,
    TableProblem,
    merge_tables,
    validate_table,
)
from bridge.stations.iec104.vocabulary import (
    MEASURANDS,
    TYPES_BY_KIND,
    UNITS,
    TypeId,
    format_ioa,
    parse_address,
    parse_ioa,
)


def minimal() -> dict[str, Any]:
    """A small valid table: one charger alarm, one command, a status and an energy block."""
    return {
        "identity": {"vendor_name": "ACME", "model": "DC-1"},
        "charger": {
            "points": {
                "emergency_stop": {"kind": "status", "ioa": 0x0001, "type": "M_SP_NA_1"},
                "reset": {
                    "kind": "command",
                    "ioa": 0x6100,
                    "type": "C_SC_NA_1",
                    "actions": {"Reset": "on"},
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
                            "unit": "Wh",
                            "measurand": "Energy.Active.Import.Register",
                        }
                    },
                },
            },
        },
        "rules": {
            "connector_status": [
                {"status": "Faulted", "when": "emergency_stop"},
                {"status": "Occupied", "when": "plug_connected"},
                {"status": "Available"},
            ],
            "transaction": {
                "starts_when": "charging",
                "ends": [{"when": {"not": "charging"}, "reason": "Local"}],
                "meter": "energy",
            },
        },
    }


STATUS = ("connectors", "blocks", "status", "points")
CHARGER = ("charger", "points")


def problems_of(data: dict[str, Any]) -> list[TableProblem]:
    with pytest.raises(TableError) as caught:
        validate_table(data)
    return list(caught.value.problems)


def only_problem(data: dict[str, Any]) -> TableProblem:
    problems = problems_of(data)
    assert len(problems) == 1, problems
    return problems[0]


def test_the_minimal_table_is_valid() -> None:
    table = validate_table(minimal())
    assert isinstance(table, MappingTable)
    assert table.charger.points["reset"].ioa == 0x6100
    assert table.station.time_zone == "UTC"
    assert table.station.command_mode == "direct"
    assert table.station.expects_act_term is False


def test_a_table_is_immutable() -> None:
    table = validate_table(minimal())
    with pytest.raises(ValueError, match="frozen"):
        table.station.common_address = 2  # type: ignore[misc]


# --- IOAs ----------------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=0xFFFFFF))
def test_ioa_round_trips_through_hex_decimal_and_int(ioa: int) -> None:
    assert parse_ioa(ioa) == ioa
    assert parse_ioa(hex(ioa)) == ioa
    assert parse_ioa(hex(ioa).upper().replace("0X", "0x")) == ioa
    assert parse_ioa(str(ioa)) == ioa
    assert parse_ioa(format_ioa(ioa)) == ioa


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=0x1000000)))
def test_ioa_outside_three_bytes_is_refused(ioa: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_ioa(ioa)


@given(
    st.text().filter(lambda s: not s.strip().isdigit() and not s.strip().lower().startswith("0x"))
)
def test_text_that_is_no_number_is_never_an_ioa(text: str) -> None:
    with pytest.raises(ValueError, match="not an IOA"):
        parse_ioa(text)


@pytest.mark.parametrize("value", [True, False, 1.5, None, [1]])
def test_non_integers_are_not_ioas(value: object) -> None:
    with pytest.raises(ValueError, match="is a number such as 0x0021"):
        parse_ioa(value)


def test_offsets_may_be_zero_but_ioas_not() -> None:
    assert parse_address(0, minimum=0, what="offset") == 0
    with pytest.raises(ValueError, match="out of range"):
        parse_ioa(0)


def test_format_ioa_uses_four_digits_then_six() -> None:
    assert format_ioa(0x21) == "0x0021"
    assert format_ioa(0xFFFF) == "0xFFFF"
    assert format_ioa(0x10000) == "0x010000"


def test_ioa_written_as_hex_string_is_accepted() -> None:
    data = minimal()
    data["charger"]["points"]["reset"]["ioa"] = "0x6100"
    assert validate_table(data).charger.points["reset"].ioa == 0x6100


def test_ioa_out_of_range_is_located_at_the_value() -> None:
    data = minimal()
    data["charger"]["points"]["reset"]["ioa"] = 0x1000000
    problem = only_problem(data)
    assert problem.path == (*CHARGER, "reset", "ioa")
    assert not problem.on_key
    assert "0x1000000 is out of range" in problem.message


# --- keys and kinds --------------------------------------------------------------------------------


def test_unknown_key_is_named_with_a_hint_at_the_key() -> None:
    data = minimal()
    data["connectors"]["blocks"]["status"]["points"]["charging"]["ofset"] = 1
    problem = only_problem(data)
    assert problem.path == (*STATUS, "charging", "ofset")
    assert problem.on_key
    assert problem.message == "unknown key 'ofset' (did you mean 'offset'?)"


def test_missing_key_is_reported_at_the_mapping_that_lacks_it() -> None:
    data = minimal()
    del data["connectors"]["blocks"]["status"]["points"]["charging"]["type"]
    problem = only_problem(data)
    assert problem.path == (*STATUS, "charging")
    assert problem.on_key
    assert problem.message == "missing key 'type'"


def test_unknown_kind_lists_the_kinds() -> None:
    data = minimal()
    data["charger"]["points"]["reset"]["kind"] = "comand"
    problem = only_problem(data)
    assert problem.path == (*CHARGER, "reset", "kind")
    assert "unknown kind 'comand' (did you mean 'command'?)" in problem.message


def test_missing_kind() -> None:
    data = minimal()
    del data["charger"]["points"]["reset"]["kind"]
    problem = only_problem(data)
    assert problem.path == (*CHARGER, "reset")
    assert problem.message.startswith("missing key 'kind'")


@pytest.mark.parametrize(
    ("kind", "type_id", "fragment"),
    [
        ("counter", "M_SP_NA_1", "a counter point needs M_IT_NA_1 or M_IT_TB_1, not M_SP_NA_1"),
        ("command", "M_SP_NA_1", "a monitoring type"),
        ("setpoint", "C_SC_NA_1", "needs C_SE_NA_1, C_SE_NB_1 or C_SE_NC_1, not C_SC_NA_1"),
        ("status", "M_ME_NC_1", "a status point needs"),
        ("enum", "M_ME_NA_1", "an enum point needs"),
    ],
)
def test_a_type_id_must_suit_the_kind(kind: str, type_id: str, fragment: str) -> None:
    point: dict[str, Any] = {"kind": kind, "ioa": 0x100, "type": type_id}
    point.update(
        {
            "counter": {},
            "command": {"actions": {"Reset": "on"}},
            "setpoint": {"unit": "kW"},
            "status": {},
            "enum": {"values": {1: "idle"}},
        }[kind]
    )
    data = minimal()
    data["charger"]["points"]["extra"] = point
    problem = only_problem(data)
    assert problem.path == (*CHARGER, "extra", "type")
    assert fragment in problem.message


def test_every_type_id_is_accepted_by_some_kind() -> None:
    accepted = {type_id for types in TYPES_BY_KIND.values() for type_id in types}
    assert accepted == set(TypeId)
    assert len(TypeId) == 18


def test_unknown_type_id_gets_a_hint() -> None:
    data = minimal()
    data["charger"]["points"]["emergency_stop"]["type"] = "M_SP_NA_2"
    assert "unknown type id 'M_SP_NA_2' (did you mean 'M_SP_NA_1'?)" in only_problem(data).message


def test_names_must_be_lower_snake_case() -> None:
    data = minimal()
    data["charger"]["points"]["Emergency-Stop"] = data["charger"]["points"].pop("emergency_stop")
    data["rules"]["connector_status"][0]["when"] = "plug_connected"
    problem = only_problem(data)
    assert problem.path == (*CHARGER, "Emergency-Stop")
    assert problem.on_key
    assert "not a valid name" in problem.message


def test_point_names_are_unique_across_charger_and_blocks() -> None:
    data = minimal()
    data["charger"]["points"]["charging"] = {"kind": "status", "ioa": 0x2, "type": "M_SP_NA_1"}
    problem = only_problem(data)
    assert problem.path == (*STATUS, "charging")
    assert problem.related == (*CHARGER, "charging")
    assert "already used by another point" in problem.message


# --- measurements, counters, enums ---------------------------------------------------------------


def measurement(**fields: Any) -> dict[str, Any]:
    data = minimal()
    point = {"kind": "measurement", "at": 5, "type": "M_ME_NC_1", **fields}
    data["connectors"]["blocks"]["status"]["points"]["value"] = point
    return data


def test_copied_ocpp_vocabularies_are_complete() -> None:
    assert len(MEASURANDS) == 25
    assert len(UNITS) == 33
    assert "Energy.Active.Import.Register" in MEASURANDS


def test_a_valid_measurement() -> None:
    table = validate_table(
        measurement(measurand="Current.Import", unit="A", phase="L1", scale=0.1, offset=-5)
    )
    point = table.connectors.blocks["status"].points["value"]
    assert point.kind == "measurement"
    assert (point.scale, point.offset, point.phase) == (0.1, -5.0, "L1")


@pytest.mark.parametrize(
    ("fields", "key", "fragment"),
    [
        ({"measurand": "Volts", "unit": "V"}, "measurand", "unknown measurand 'Volts'"),
        ({"measurand": "Voltage", "unit": "Volt"}, "unit", "unknown unit 'Volt'"),
        ({"measurand": "Voltage", "unit": "A"}, "unit", "Voltage is in V, not A"),
        ({"measurand": "Power.Active.Import", "unit": "kWh"}, "unit", "is in W or kW, not kWh"),
        ({"unit": "V", "phase": "L1"}, "phase", "a phase needs a measurand"),
        ({"measurand": "Power.Factor", "unit": "W"}, "unit", "Power.Factor has no unit"),
        ({"scale": 0}, "scale", "scale must not be 0"),
    ],
)
def test_measurement_problems(fields: dict[str, Any], key: str, fragment: str) -> None:
    problem = only_problem(measurement(**fields))
    assert problem.path == (*STATUS, "value", key)
    assert fragment in problem.message


def test_a_measurand_with_units_needs_one() -> None:
    problem = only_problem(measurement(measurand="Voltage"))
    assert problem.path == (*STATUS, "value")
    assert problem.message == "missing key 'unit': Voltage is in V"


def test_counter_of_current_is_refused() -> None:
    data = minimal()
    counter = data["connectors"]["blocks"]["counters"]["points"]["energy"]
    counter["measurand"] = "Current.Import"
    problems = problems_of(data)
    assert any(
        p.path[-1] == "measurand" and "not an energy measurand" in p.message for p in problems
    )


def test_enum_value_names_are_distinct() -> None:
    data = minimal()
    data["charger"]["points"]["work"] = {
        "kind": "enum",
        "ioa": 0x4000,
        "type": "M_ME_NB_1",
        "values": {1: "idle", 2: "idle"},
    }
    problem = only_problem(data)
    assert problem.path == (*CHARGER, "work", "values")
    assert "'idle' names both 1 and 2" in problem.message


# --- commands and setpoints ----------------------------------------------------------------------


def command(ioa: int = 0x6001, **fields: Any) -> dict[str, Any]:
    data = minimal()
    data["charger"]["points"]["cmd"] = {"kind": "command", "ioa": ioa, **fields}
    return data


@pytest.mark.parametrize(
    ("fields", "path", "fragment"),
    [
        ({"type": "C_SC_NA_1", "actions": {"Reset": 1}}, ("actions", "Reset"), "sends on or off"),
        ({"type": "C_RP_NA_1", "actions": {"Reset": "on"}}, ("actions", "Reset"), "qualifier"),
        ({"type": "C_SC_NA_1", "actions": {"Reset": True}}, ("actions", "Reset"), "true cannot"),
        (
            {"type": "C_SC_NA_1", "actions": {"UnlockConnector": "on"}},
            ("actions", "UnlockConnector"),
            "UnlockConnector needs a connector",
        ),
        (
            {"type": "C_SC_NA_1", "actions": {"Restart": "on"}},
            ("actions", "Restart"),
            "unknown command action 'Restart'",
        ),
        (
            {"type": "C_RP_NA_1", "actions": {"Reset": 1}, "qualifier": "short_pulse"},
            ("qualifier",),
            "applies to C_SC_NA_1 and C_DC_NA_1",
        ),
    ],
)
def test_command_problems(fields: dict[str, Any], path: tuple[str, ...], fragment: str) -> None:
    data = command(**fields)
    del data["charger"]["points"]["reset"]  # keep Reset free for the point under test
    problem = only_problem(data)
    assert problem.path == (*CHARGER, "cmd", *path)
    assert fragment in problem.message


def test_one_point_per_action_and_level() -> None:
    data = command(type="C_RP_NA_1", actions={"Reset": 1})
    problem = only_problem(data)
    assert problem.path == (*CHARGER, "cmd", "actions", "Reset")
    assert problem.related == (*CHARGER, "reset", "actions", "Reset")
    assert "a second point serves Reset for the charger" in problem.message


def test_a_reset_process_command_is_valid() -> None:
    data = command(type="C_RP_NA_1", actions={"Reset": 1})
    del data["charger"]["points"]["reset"]
    assert validate_table(data).charger.points["cmd"].type == TypeId.C_RP_NA_1


def setpoint(**fields: Any) -> dict[str, Any]:
    data = minimal()
    data["charger"]["points"]["limit"] = {"kind": "setpoint", "ioa": 0x6300, **fields}
    return data


def test_normalized_setpoint_needs_full_scale() -> None:
    problem = only_problem(setpoint(type="C_SE_NA_1", unit="kW"))
    assert problem.path == (*CHARGER, "limit")
    assert "missing key 'full_scale'" in problem.message
    assert validate_table(setpoint(type="C_SE_NA_1", unit="kW", full_scale=500))


def test_full_scale_only_for_normalized_setpoints() -> None:
    problem = only_problem(setpoint(type="C_SE_NC_1", unit="A", full_scale=500))
    assert problem.path == (*CHARGER, "limit", "full_scale")


def test_one_setpoint_per_rate_unit_and_level() -> None:
    data = setpoint(type="C_SE_NC_1", unit="kW")
    data["charger"]["points"]["limit_w"] = {
        "kind": "setpoint",
        "ioa": 0x6301,
        "type": "C_SE_NC_1",
        "unit": "W",
    }
    problem = only_problem(data)
    assert problem.path == (*CHARGER, "limit_w", "unit")
    assert "a second power setpoint for the charger" in problem.message


# --- rules ---------------------------------------------------------------------------------------


def with_rule(when: Any) -> dict[str, Any]:
    data = minimal()
    data["rules"]["connector_status"][0]["when"] = when
    return data


RULE = ("rules", "connector_status", 0, "when")


def test_conditions_of_every_shape_are_accepted() -> None:
    data = minimal()
    data["charger"]["points"]["work"] = {
        "kind": "enum",
        "ioa": 0x4000,
        "type": "M_ME_NB_1",
        "values": {1: "fault", 2: "idle"},
    }
    data["charger"]["points"]["amps"] = {
        "kind": "measurement",
        "ioa": 0x4001,
        "type": "M_ME_NC_1",
        "unit": "A",
    }
    data["connectors"]["blocks"]["commands"] = {
        "base": 0x6001,
        "stride": 0x10,
        "points": {
            "start": {
                "kind": "command",
                "at": 0,
                "type": "C_SC_NA_1",
                "actions": {"RequestStartTransaction": "on"},
            }
        },
    }
    data["rules"]["connector_status"][0]["when"] = {
        "any": [
            "emergency_stop",
            {"all": [{"not": "charging"}, {"enum": "work", "in": ["fault"]}]},
            {"measurement": "amps", "above": 1.0, "below": 500},
            {"command_accepted": "RequestStartTransaction"},
        ]
    }
    assert validate_table(data)


@pytest.mark.parametrize(
    ("when", "path", "fragment"),
    [
        ("plug_conected", RULE, "no point named 'plug_conected' (did you mean 'plug_connected'?)"),
        ("energy", RULE, "'energy' is a counter point; name a status point"),
        ({"all": ["charging", "nope"]}, (*RULE, "all", 1), "no point named 'nope'"),
        ({"not": {"enum": "charging", "in": ["x"]}}, (*RULE, "not", "enum"), "name an enum point"),
        ({"measurement": "charging", "above": 1}, (*RULE, "measurement"), "a measurement point"),
        ({"measurement": "x"}, RULE, "give `above`, `below` or both"),
        ({"nott": "charging"}, RULE, "unknown condition key 'nott' (did you mean 'not'?)"),
        ({"all": []}, (*RULE, "all"), "at least 1 item"),
        (3, RULE, "a condition is a point name or a mapping"),
        (
            {"command_accepted": "RequestStartTransaction"},
            (*RULE, "command_accepted"),
            "no connector command serves RequestStartTransaction",
        ),
    ],
)
def test_condition_problems(when: Any, path: tuple[Any, ...], fragment: str) -> None:
    problem = only_problem(with_rule(when))
    assert problem.path == path
    assert fragment in problem.message


def test_enum_condition_names_known_values() -> None:
    data = with_rule({"enum": "work", "in": ["idle", "chargin"]})
    data["charger"]["points"]["work"] = {
        "kind": "enum",
        "ioa": 0x4000,
        "type": "M_ME_NB_1",
        "values": {2: "idle", 3: "charging"},
    }
    problem = only_problem(data)
    assert problem.path == (*RULE, "in", 1)
    assert "'work' has no value 'chargin' (did you mean 'charging'?)" in problem.message


def test_a_rule_without_condition_must_come_last() -> None:
    data = minimal()
    data["rules"]["connector_status"].insert(1, {"status": "Unavailable"})
    problem = only_problem(data)
    assert problem.path == ("rules", "connector_status", 2)
    assert "never reached: rule [1] has no `when`" in problem.message


def test_unknown_connector_status_is_refused() -> None:
    data = minimal()
    data["rules"]["connector_status"][0]["status"] = "Broken"
    problem = only_problem(data)
    assert problem.path == ("rules", "connector_status", 0, "status")
    assert problem.message == (
        "unknown connector status 'Broken'; expected one of"
        " Available, Occupied, Reserved, Unavailable, Faulted"
    )


def test_the_meter_is_a_connectors_energy_point() -> None:
    data = minimal()
    data["rules"]["transaction"]["meter"] = "charging"
    assert "counter or measurement in Wh or kWh" in only_problem(data).message
    data["charger"]["points"]["station_energy"] = {
        "kind": "counter",
        "ioa": 0x6500,
        "type": "M_IT_NA_1",
    }
    data["rules"]["transaction"]["meter"] = "station_energy"
    assert "a connector's point" in only_problem(data).message


def test_every_problem_is_reported_not_just_the_first() -> None:
    data = minimal()
    data["station"] = {"common_address": 0, "command_mode": "select"}
    data["identity"]["model"] = "M" * 21
    paths = {problem.path for problem in problems_of(data)}
    assert paths == {
        ("station", "common_address"),
        ("station", "command_mode"),
        ("identity", "model"),
    }


def test_station_options() -> None:
    data = minimal()
    data["station"] = {
        "common_address": 65534,
        "time_zone": "Asia/Shanghai",
        "general_interrogation_interval": 0,
        "counter_interrogation_interval": 60,
        "command_mode": "select-execute",
        "expects_act_term": True,
        "command_timeout": 2.5,
    }
    station = validate_table(data).station
    assert station.command_mode == "select-execute"
    assert station.time_zone == "Asia/Shanghai"
    data["station"]["time_zone"] = "Beijing time"
    assert only_problem(data).path == ("station", "time_zone")


def test_a_table_that_is_not_a_mapping() -> None:
    with pytest.raises(TableError, match="a mapping table is a YAML mapping"):
        validate_table([1, 2])


def test_json_schema_has_a_definition_per_kind() -> None:
    schema = MappingTable.model_json_schema()
    for name in ("StatusPoint", "CounterPoint", "ChargerSetpointPoint", "StationOptions", "AllOf"):
        assert name in schema["$defs"]
    assert schema["$defs"]["CounterPoint"]["properties"]["type"]["enum"] == [
        "M_IT_NA_1",
        "M_IT_TB_1",
    ]
    assert schema["additionalProperties"] is False


# --- extends -------------------------------------------------------------------------------------


def test_merge_overrides_a_point_key_by_key() -> None:
    base = minimal()
    vendor = {
        "extends": "base",
        "connectors": {
            "blocks": {"status": {"points": {"charging": {"type": "M_SP_TB_1", "at": 3}}}}
        },
    }
    merged = merge_tables(base, vendor)
    charging = merged["connectors"]["blocks"]["status"]["points"]["charging"]
    assert charging == {"kind": "status", "at": 3, "type": "M_SP_TB_1"}
    assert merged["extends"] == "base"
    assert base == minimal()  # neither input is modified


def test_merge_null_removes_and_lists_replace() -> None:
    base = minimal()
    override = {
        "charger": {"points": {"emergency_stop": None}},
        "rules": {"connector_status": [{"status": "Available"}]},
    }
    merged = merge_tables(base, override)
    assert "emergency_stop" not in merged["charger"]["points"]
    assert merged["rules"]["connector_status"] == [{"status": "Available"}]
    assert merged["rules"]["transaction"] == base["rules"]["transaction"]
    assert validate_table(merged)


def test_merge_replaces_a_point_whose_kind_changes() -> None:
    base = minimal()
    override = {
        "connectors": {
            "blocks": {
                "counters": {
                    "points": {
                        "energy": {
                            "kind": "measurement",
                            "at": 0,
                            "type": "M_ME_NC_1",
                            "unit": "kWh",
                        }
                    }
                }
            }
        }
    }
    merged = merge_tables(base, override)
    energy = merged["connectors"]["blocks"]["counters"]["points"]["energy"]
    assert "scale" not in energy and "measurand" not in energy
    assert validate_table(merged)


def test_extends_is_not_inherited() -> None:
    base = copy.deepcopy(minimal())
    base["extends"] = "grandparent"
    assert "extends" not in merge_tables(base, {"description": "x"})


# --- totality ------------------------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False),
    st.sampled_from(["status", "M_SP_NA_1", "0x21", "on", "Voltage", "charging", "kind", "at"]),
    st.text(max_size=8),
)
_KEYS = st.sampled_from(
    ["kind", "type", "at", "ioa", "points", "blocks", "when", "all", "not", "status", "x"]
)
_DATA = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=20,
)


def outcome(data: Any) -> tuple[TableProblem, ...]:
    """The problems of `data`, or () when it is a valid table."""
    try:
        validate_table(data)
    except TableError as exc:
        return exc.problems
    return ()


@given(_DATA)
def test_any_data_is_a_table_or_table_error(data: Any) -> None:
    """Whatever YAML holds, validation answers with problems located in the data, never a crash."""
    problems = outcome(data)
    assert problems or isinstance(data, dict)
    for problem in problems:
        assert isinstance(problem.message, str) and problem.message


@given(st.dictionaries(_KEYS, _DATA, max_size=5))
def test_any_point_data_in_a_table_is_handled(point: dict[str, Any]) -> None:
    data = minimal()
    data["connectors"]["blocks"]["status"]["points"]["fuzzed"] = point
    for problem in outcome(data):
        assert problem.path[: len(STATUS) + 1] == (*STATUS, "fuzzed") or problem.related
