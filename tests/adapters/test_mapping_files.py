"""Mapping tables on disk: PATH:LINE:COLUMN for every kind of problem, `extends`, the shipped tables."""

from __future__ import annotations

import re
import textwrap
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.mapping_files import (
    MappingFileError,
    MappingProblem,
    check_paths,
    compile_file,
    load_file,
    load_folder,
    load_reference,
    shipped_tables,
)
from bridge.stations.iec104 import (
    CommandRule,
    CounterRule,
    EnumRule,
    MeasurementRule,
    SetpointRule,
    StatusRule,
    TypeId,
)

# Line numbers below count from this text's first line ("identity: ...") as line 1.
VALID = """\
identity: {vendor_name: ACME, model: DC-1}
charger:
  points:
    emergency_stop: {kind: status, ioa: 0x0001, type: M_SP_NA_1}
    reset: {kind: command, ioa: 0x6100, type: C_SC_NA_1, actions: {Reset: "on"}}
connectors:
  max_count: 2
  blocks:
    status:
      base: 0x0021
      stride: 0x20
      points:
        plug_connected: {kind: status, at: 0, type: M_SP_NA_1}
        charging: {kind: status, at: 2, type: M_SP_NA_1}
rules:
  connector_status:
    - {status: Faulted, when: emergency_stop}
    - {status: Occupied, when: plug_connected}
    - {status: Available}
"""


def write(folder: Path, text: str, name: str = "table.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[MappingProblem]:
    with pytest.raises(MappingFileError) as caught:
        load_file(path)
    return list(caught.value.problems)


def test_the_valid_example_loads(tmp_path: Path) -> None:
    table = load_file(write(tmp_path, VALID)).compile(2)
    assert table.monitoring[0x0041].key == "plug_connected"


# (what is broken, the table, "LINE:COLUMN", a fragment of the message)
BROKEN = [
    (
        "YAML syntax",
        VALID.replace("{kind: status, at: 2, type: M_SP_NA_1}", "{kind: status, at: 2"),
        "15:6",
        "YAML: while parsing a flow mapping expected ',' or '}', but got ':'",
    ),
    (
        "duplicate YAML key",
        VALID.replace("  max_count: 2\n", "  max_count: 2\n  max_count: 3\n"),
        "8:3",
        'found duplicate key "max_count"',
    ),
    (
        "unknown key, at the key",
        VALID.replace("at: 2, type", "at: 2, ofset: 1, type"),
        "14:41",
        "unknown key 'ofset' (did you mean 'offset'?)",
    ),
    (
        "unknown top-level key",
        VALID + "extra: 1\n",
        "20:1",
        "unknown key 'extra'",
    ),
    (
        "IOA beyond three bytes",
        VALID.replace("ioa: 0x6100", "ioa: 0x1000000"),
        "5:33",
        "IOA 0x1000000 is out of range",
    ),
    ("IOA that is no number", VALID.replace("ioa: 0x0001", "ioa: one"), "4:41", "is not an IOA"),
    (
        "counter on a single point",
        VALID.replace("charging: {kind: status", "charging: {kind: counter"),
        "14:48",
        "a counter point needs M_IT_NA_1 or M_IT_TB_1, not M_SP_NA_1",
    ),
    (
        "command on a monitoring type",
        VALID.replace("type: C_SC_NA_1", "type: M_SP_NA_1"),
        "5:47",
        "a command point needs C_SC_NA_1, C_DC_NA_1 or C_RP_NA_1, not M_SP_NA_1",
    ),
    (
        "setpoint on a single command",
        VALID.replace("kind: command", "kind: setpoint, unit: kW"),
        "5:58",
        "a setpoint point needs C_SE_NA_1, C_SE_NB_1 or C_SE_NC_1, not C_SC_NA_1",
    ),
    (
        "unknown measurand",
        VALID.replace(
            "charging: {kind: status, at: 2, type: M_SP_NA_1}",
            "volts: {kind: measurement, at: 2, type: M_ME_NC_1, measurand: Volt, unit: V}",
        ),
        "14:71",
        "unknown measurand 'Volt' (did you mean 'Voltage'?)",
    ),
    (
        "unit of another quantity",
        VALID.replace(
            "charging: {kind: status, at: 2, type: M_SP_NA_1}",
            "volts: {kind: measurand, at: 2, type: M_ME_NC_1, measurand: Voltage, unit: A}",
        ).replace("kind: measurand", "kind: measurement"),
        "14:86",
        "Voltage is in V, not A",
    ),
    (
        "duplicate IOA names the other place",
        VALID.replace("ioa: 0x6100", "ioa: 0x0001"),
        "5:33",
        "IOA 0x0001 of the charger's 'reset' is already used by the charger's 'emergency_stop'"
        " (at {path}:4:36)",
    ),
    (
        "duplicate after stride expansion",
        VALID.replace("stride: 0x20", "stride: 0x02"),
        "11:15",
        "stride 0x0002 is smaller than the block's span 0x0003: IOA 0x0023 of connector 2's"
        " 'plug_connected' is already used by connector 1's 'charging' (at {path}:14:34)",
    ),
    (
        "missing key, at the point's name",
        VALID.replace("charging: {kind: status, at: 2, type: M_SP_NA_1}", "charging: {at: 2}"),
        "14:9",
        "missing key 'kind'",
    ),
    (
        "rule names an unknown point",
        VALID.replace("when: plug_connected", "when: plug_conected"),
        "18:32",
        "no point named 'plug_conected' (did you mean 'plug_connected'?)",
    ),
    (
        "unknown time zone",
        "station: {time_zone: Asia/Shanghia}\n" + VALID,
        "1:22",
        "unknown time zone 'Asia/Shanghia' (did you mean 'Asia/Shanghai'?)",
    ),
    (
        "missing extends target",
        "extends: gb-dc-chargr\n" + VALID,
        "1:10",
        "no shipped table 'gb-dc-chargr' (did you mean 'gb-dc-charger'?)",
    ),
    ("missing relative base", "extends: ./nope.yaml\n" + VALID, "1:10", "extends: no file"),
    ("empty file", "", "1:1", "empty file"),
    ("not a mapping", "- 1\n- 2\n", "1:1", "a mapping table is a YAML mapping"),
    (
        "a key of another kind",
        VALID.replace("kind: command", "kind: setpoint, unit: kW"),
        "5:69",
        "unknown key 'actions' here",
    ),
    ("unsupported tag", VALID.replace("max_count: 2", "max_count: !!int2 2"), "7:14", "tag"),
]


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_broken_table_is_located(tmp_path: Path, text: str, position: str, fragment: str) -> None:
    path = write(tmp_path, text)
    found = problems(path)
    lines = [str(problem) for problem in found]
    expected_start = f"{path}:{position}: "
    assert any(
        line.startswith(expected_start) and fragment.replace("{path}", str(path)) in line
        for line in lines
    ), lines


def test_problem_format_is_path_line_column_message() -> None:
    assert str(MappingProblem("a.yaml", 3, 7, "bad")) == "a.yaml:3:7: bad"


def test_every_problem_of_a_file_is_listed(tmp_path: Path) -> None:
    text = VALID.replace("ioa: 0x6100", "ioa: 0x1000000").replace("at: 2", "at: 2, x: 1")
    found = problems(write(tmp_path, text))
    assert [(p.line, p.column) for p in found] == [(5, 33), (14, 41)]


def test_file_that_cannot_be_read(tmp_path: Path) -> None:
    found = problems(tmp_path / "missing.yaml")
    assert found == [
        MappingProblem(
            str(tmp_path / "missing.yaml"), 1, 1, "cannot read: No such file or directory"
        )
    ]


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("description: caf\xe9\n".encode("latin-1"))
    assert problems(path)[0].message == "not UTF-8 text"


# --- extends -------------------------------------------------------------------------------------


def test_vendor_table_overrides_a_shipped_one(tmp_path: Path) -> None:
    vendor = write(
        tmp_path,
        """\
        extends: gb-dc-charger
        identity: {vendor_name: ACME, model: ACME-120}
        station: {time_zone: Europe/Berlin, command_mode: select-execute, expects_act_term: true}
        charger:
          points:
            smoke: null                       # this model has no smoke detector
            reset: {type: C_RP_NA_1, actions: {Reset: 1}}
        connectors:
          max_count: 2
          blocks:
            status:
              points:
                output_contactor: {type: M_DP_TB_1}
            counters:
              points:
                energy_total: {scale: 1}      # this meter counts in Wh
        """,
    )
    table = compile_file(vendor, 2)
    assert table.identity.model == "ACME-120"
    assert table.station.expects_act_term is True
    assert table.rule_at(0x0004) is None
    reset = table.command("Reset", None)
    assert (reset.ioa, reset.type_id, reset.value) == (0x6100, TypeId.C_RP_NA_1, 1)
    assert table.rule_at(0x0045).type_id == TypeId.M_DP_TB_1
    energy = table.rule_at(0x6401)
    assert isinstance(energy, CounterRule)
    assert (energy.scale, energy.unit) == (1, "Wh")
    assert table.rule_at(0x0041).key == "plug_connected"  # inherited untouched


def test_problem_in_an_override_is_located_in_the_vendor_file(tmp_path: Path) -> None:
    vendor = write(
        tmp_path,
        """\
        extends: gb-dc-charger
        connectors:
          blocks:
            status:
              points:
                charging: {type: M_IT_NA_1}
        """,
    )
    (problem,) = problems(vendor)
    assert (problem.path, problem.line, problem.column) == (str(vendor), 6, 26)
    assert "a status point needs" in problem.message


def test_problem_inherited_from_a_base_is_located_in_the_base(tmp_path: Path) -> None:
    write(tmp_path, VALID.replace("at: 2", "at: 2, shape: round"), "base.yaml")
    vendor = write(tmp_path, "extends: ./base.yaml\nidentity: {model: X}\n", "vendor.yaml")
    (problem,) = problems(vendor)
    assert (problem.path, problem.line, problem.column) == (str(tmp_path / "base.yaml"), 14, 41)


def test_overlap_caused_by_an_override_is_located_at_its_stride(tmp_path: Path) -> None:
    write(tmp_path, VALID, "base.yaml")
    vendor = write(
        tmp_path,
        "extends: ./base.yaml\nconnectors:\n  blocks:\n    status: {stride: 2}\n",
        "vendor.yaml",
    )
    (problem,) = problems(vendor)
    assert (problem.path, problem.line, problem.column) == (str(vendor), 4, 22)
    assert "stride 0x0002 is smaller than the block's span 0x0003" in problem.message
    # the other point is in the base table
    assert problem.message.endswith(f"(at {tmp_path / 'base.yaml'}:14:34)")


def test_relative_extends_chain(tmp_path: Path) -> None:
    (tmp_path / "vendors").mkdir()
    write(tmp_path, VALID, "base.yaml")
    write(tmp_path / "vendors", "extends: ../base.yaml\nidentity: {model: MID}\n", "mid.yaml")
    leaf = write(tmp_path, "extends: ./vendors/mid.yaml\nidentity: {vendor_name: LEAF}\n")
    identity = load_file(leaf).table.identity
    assert (identity.vendor_name, identity.model) == ("LEAF", "MID")


def test_extends_cycle(tmp_path: Path) -> None:
    write(tmp_path, "extends: ./b.yaml\n" + VALID, "a.yaml")
    write(tmp_path, "extends: ./a.yaml\n", "b.yaml")
    found = problems(tmp_path / "a.yaml")
    assert found == [
        MappingProblem(str(tmp_path / "b.yaml"), 1, 10, "extends cycle: a.yaml → b.yaml → a.yaml")
    ]


def test_load_reference_finds_shipped_tables_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loaded = load_reference("gb-ac-charger")
    assert loaded.table.identity.model == "GB-AC"


def test_more_connectors_than_the_table_allows_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    with pytest.raises(MappingFileError) as caught:
        compile_file(path, 3)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (7, 14)
    assert "the station has 3 connectors" in problem.message


# --- folders -------------------------------------------------------------------------------------


def test_check_paths_mixes_files_and_folders(tmp_path: Path) -> None:
    write(tmp_path, VALID, "good.yaml")
    write(tmp_path, VALID.replace("M_SP_NA_1}", "M_SP_NA_9}", 1), "bad.yml")
    write(tmp_path, "legacy_component: X\nkeys: {}\n", "other-format.yaml")
    (tmp_path / "notes.txt").write_text("not a table")
    single = write(tmp_path / "..", VALID, "single.yaml")
    result = check_paths([tmp_path, single])
    assert result.checked == [str(tmp_path / "bad.yml"), str(tmp_path / "good.yaml"), str(single)]
    assert result.skipped == [str(tmp_path / "other-format.yaml")]
    assert [(p.path, p.line) for p in result.problems] == [(str(tmp_path / "bad.yml"), 4)]


def test_a_folder_without_tables_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "legacy_component: X\n", "other-format.yaml")
    result = check_paths([tmp_path])
    assert result.checked == []
    assert result.problems[0].message == "no IEC 104 mapping tables here"


def test_a_broken_yaml_file_in_a_folder_is_checked_not_skipped(tmp_path: Path) -> None:
    write(tmp_path, "a: [1,\n", "broken.yaml")
    result = check_paths([tmp_path])
    assert result.skipped == []
    assert result.problems[0].message.startswith("YAML:")


def test_load_folder(tmp_path: Path) -> None:
    write(tmp_path, VALID, "one.yaml")
    write(tmp_path, VALID.replace("DC-1", "DC-2"), "two.yaml")
    tables = load_folder(tmp_path)
    assert sorted(tables) == ["one", "two"]
    assert tables["two"].table.identity.model == "DC-2"
    write(tmp_path, "identity: 3\n", "three.yaml")
    with pytest.raises(MappingFileError) as caught:
        load_folder(tmp_path)
    assert caught.value.problems[0].path == str(tmp_path / "three.yaml")


# --- the shipped tables --------------------------------------------------------------------------


def test_shipped_tables_are_listed_and_valid() -> None:
    assert shipped_tables() == ["example-dialin-card", "gb-ac-charger", "gb-dc-charger"]
    folder = resources.files("mappings")
    for name in shipped_tables():
        loaded = load_reference(name)
        assert loaded.compile().connectors == 16
    result = check_paths([Path(str(folder))])
    assert result.problems == []
    assert [Path(p).name for p in result.checked] == [
        "example-dialin-card.yaml",
        "gb-ac-charger.yaml",
        "gb-dc-charger.yaml",
    ]


def gb_dc(connectors: int = 4) -> object:
    return load_reference("gb-dc-charger").compile(connectors)


# The reference's default point table, in its order: (offset, name).
CONNECTOR_STATUS = [
    "plug_connected",
    "gun_holstered",
    "charging",
    "lock_engaged",
    "output_contactor",
    "battery_connected",
    "faulted",
    "warning",
    "bms_comm_fault",
    "connector_over_temperature",
    "pe_break",
    "control_pilot_alarm",
    "out_of_service",
]
MEASUREMENTS = [
    "output_voltage",
    "output_current",
    "output_power",
    "soc",
    "demand_voltage",
    "demand_current",
    "max_cell_voltage",
    "min_cell_voltage",
    "max_battery_temperature",
    "min_battery_temperature",
    "elapsed_time",
    "remaining_time",
    "session_energy",
    "session_amount",
    "work_status",
    "gun_temperature",
    "input_voltage_l1",
    "input_voltage_l2",
    "input_voltage_l3",
    "input_current_l1",
    "input_current_l2",
    "input_current_l3",
]
COUNTERS = ["energy_total", "energy_sharp", "energy_peak", "energy_flat", "energy_valley"]
COMMANDS = ["start_stop", "unlock", "set_out_of_service"]
SETPOINTS = ["power_limit", "current_limit"]
CHARGER_STATUS = [
    "emergency_stop",
    "door_open",
    "surge_arrester_fault",
    "smoke",
    "cabinet_over_temperature",
    "input_voltage_fault",
    "breaker_fault",
    "meter_fault",
    "card_reader_fault",
    "communication_fault",
    "power_module_fault",
    "insulation_fault",
]


@pytest.mark.parametrize(
    ("base", "stride", "names"),
    [
        (0x0021, 0x20, CONNECTOR_STATUS),
        (0x4001, 0x40, MEASUREMENTS),
        (0x6401, 0x10, COUNTERS),
        (0x6001, 0x10, COMMANDS),
        (0x6201, 0x10, SETPOINTS),
    ],
)
def test_gb_dc_blocks_follow_the_reference(base: int, stride: int, names: list[str]) -> None:
    table = gb_dc(4)
    for connector in range(1, 5):
        for offset, name in enumerate(names):
            rule = table.rule_at(base + (connector - 1) * stride + offset)  # type: ignore[attr-defined]
            assert (rule.key, rule.connector) == (name, connector)
        after = table.rule_at(base + (connector - 1) * stride + len(names))  # type: ignore[attr-defined]
        assert after is None


def test_gb_dc_charger_points_follow_the_reference() -> None:
    table = gb_dc(1)
    for ioa, name in enumerate(CHARGER_STATUS, start=0x0001):
        rule = table.rule_at(ioa)  # type: ignore[attr-defined]
        assert isinstance(rule, StatusRule)
        assert (rule.key, rule.connector, rule.type_id) == (name, None, TypeId.M_SP_NA_1)
    reset = table.rule_at(0x6100)  # type: ignore[attr-defined]
    assert isinstance(reset, CommandRule)
    assert dict(reset.actions) == {"Reset": "on"}
    station_limit = table.rule_at(0x6300)  # type: ignore[attr-defined]
    assert isinstance(station_limit, SetpointRule)
    assert (station_limit.type_id, station_limit.unit, station_limit.connector) == (
        TypeId.C_SE_NC_1,
        "kW",
        None,
    )


def test_gb_dc_key_points_match_the_reference() -> None:
    table = gb_dc(2)
    charging = table.rule_at(0x0021 + 2)  # type: ignore[attr-defined]
    assert isinstance(charging, StatusRule)
    assert (charging.key, charging.connector) == ("charging", 1)
    plug_2 = table.rule_at(0x0041)  # type: ignore[attr-defined]
    assert (plug_2.key, plug_2.connector) == ("plug_connected", 2)
    contactor = table.rule_at(0x0025)  # type: ignore[attr-defined]
    assert contactor.type_id == TypeId.M_DP_NA_1
    current = table.rule_at(0x4002)  # type: ignore[attr-defined]
    assert isinstance(current, MeasurementRule)
    assert (current.key, current.connector, current.type_id) == (
        "output_current",
        1,
        TypeId.M_ME_NC_1,
    )
    assert (current.measurand, current.unit) == ("Current.Import", "A")
    work = table.rule_at(0x4001 + 14)  # type: ignore[attr-defined]
    assert isinstance(work, EnumRule)
    assert dict(work.values) == {1: "fault", 2: "idle", 3: "charging", 4: "finished"}
    energy = table.rule_at(0x6401)  # type: ignore[attr-defined]
    assert isinstance(energy, CounterRule)
    assert energy.type_id == TypeId.M_IT_NA_1
    assert energy.measurand == "Energy.Active.Import.Register"
    assert energy.wh(1) == 10  # 0.01 kWh per count
    start = table.command("RequestStartTransaction", 1)  # type: ignore[attr-defined]
    stop = table.command("RequestStopTransaction", 1)  # type: ignore[attr-defined]
    assert (start.ioa, start.type_id, start.value) == (0x6001, TypeId.C_SC_NA_1, "on")
    assert (stop.ioa, stop.value) == (0x6001, "off")
    assert table.command("UnlockConnector", 2).ioa == 0x6012  # type: ignore[attr-defined]
    inoperative = table.command("ChangeAvailability.Inoperative", 1)  # type: ignore[attr-defined]
    assert (inoperative.ioa, inoperative.value) == (0x6003, "on")
    current_limit = table.setpoint(1, "A")  # type: ignore[attr-defined]
    assert (current_limit.ioa, current_limit.type_id) == (0x6202, TypeId.C_SE_NC_1)
    power_limit = table.setpoint(2, "W")  # type: ignore[attr-defined]
    assert (power_limit.ioa, power_limit.unit) == (0x6211, "kW")


def test_gb_dc_station_options() -> None:
    table = gb_dc(1)
    station = table.station  # type: ignore[attr-defined]
    assert station.time_zone == "Asia/Shanghai"
    assert station.general_interrogation_interval == 900
    assert (station.command_mode, station.expects_act_term) == ("direct", False)


def test_gb_dc_derivations_follow_the_reference() -> None:
    logic = gb_dc(1).logic_for(1)  # type: ignore[attr-defined]
    in_service = {
        0x0001: False,
        0x0007: False,
        0x000B: False,
        0x000C: False,
        0x0027: False,
        0x400F: 2,
        0x002D: False,
    }
    holstered = {**in_service, 0x0021: False, 0x0023: False, 0x0022: True}
    assert logic.connector_status(holstered) == "Available"
    assert logic.connector_status({**holstered, 0x0021: True}) == "Occupied"
    assert logic.connector_status({**holstered, 0x002D: True}) == "Unavailable"
    assert logic.connector_status({**holstered, 0x0001: True}) == "Faulted"
    plugged = {**holstered, 0x0021: True}
    assert not logic.transaction.starts(plugged)
    assert logic.transaction.starts(plugged, {"RequestStartTransaction"})
    assert logic.transaction.starts({**plugged, 0x0023: True})
    assert logic.transaction.end_reason({**plugged, 0x0021: False}) == "EVDisconnected"
    assert logic.transaction.meter_ioa == 0x6401


def test_gb_ac_has_phases_and_no_bms_points() -> None:
    table = load_reference("gb-ac-charger").compile(1)
    keys = {rule.key for rule in table.points()}
    assert {"voltage_l1", "current_l3", "energy_total", "start_stop"} <= keys
    assert not keys & {"soc", "battery_connected", "bms_comm_fault", "max_cell_voltage"}
    current_l2 = table.rule_at(0x4001 + 20)
    assert isinstance(current_l2, MeasurementRule)
    assert (current_l2.measurand, current_l2.phase) == ("Current.Import", "L2")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=200) | st.sampled_from([VALID[:n] for n in range(0, len(VALID), 7)]))
def test_any_text_gives_a_table_or_located_problems(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    found: tuple[MappingProblem, ...] = ()
    try:
        load_file(path)
    except MappingFileError as exc:
        found = exc.problems
        assert found
    for problem in found:
        assert problem.path == str(path)
        assert problem.line >= 1 and problem.column >= 1


# --- the language reference ----------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "mapping-language.md"


def test_the_reference_names_every_key_of_the_language() -> None:
    from bridge.stations.iec104.checks import _language_keys

    text = DOCS.read_text(encoding="utf-8")
    missing = [key for key in sorted(_language_keys()) if not re.search(rf"\b{key}\b", text)]
    assert missing == []


def test_the_references_yaml_examples_are_valid(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    examples = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    broken = [example for example in examples if example.startswith("# broken on purpose")]
    assert len(examples) - len(broken) >= 2
    for index, example in enumerate(examples):
        path = tmp_path / f"example{index}.yaml"
        path.write_text(example, encoding="utf-8")
        if example in broken:
            assert [(p.line, p.column) for p in problems(path)] == [(4, 22), (12, 40)]
        else:
            assert load_file(path).compile().connectors >= 1
