"""`ocpp-bridge mappings validate|explain|schema`: exit codes, output lines, the JSON Schema."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from adapters.cli import app
from adapters.mapping_files import load_reference

runner = CliRunner()
SHIPPED = Path(str(resources.files("mappings")))
DC = SHIPPED / "gb-dc-charger.yaml"
PROBLEM_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)$")

BROKEN = """\
identity: {vendor_name: ACME, model: DC-1}
connectors:
  max_count: 2
  blocks:
    status:
      base: 0x0021
      stride: 0x20
      points:
        plug_connected: {kind: counter, at: 0, type: M_SP_NA_1}
        charging: {kind: status, at: 0x1000000, type: M_SP_NA_1}
rules:
  connector_status:
    - {status: Ocupied, when: plug_connected}
"""


def test_mappings_is_registered_on_the_main_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "mappings" in result.stdout


@pytest.mark.parametrize("command", ["validate", "explain", "schema"])
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, ["mappings", command, "--help"])
    assert result.exit_code == 0
    assert "Usage: ocpp-bridge mappings " + command in result.stdout


def test_validate_shipped_tables_exits_0() -> None:
    result = runner.invoke(app, ["mappings", "validate", str(DC), str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{DC}: valid",
        f"{SHIPPED / 'example-dialin-card.yaml'}: valid",
        f"{SHIPPED / 'gb-ac-charger.yaml'}: valid",
        f"{DC}: valid",
    ]
    # the folder's other YAML table is no 104 table: named, not failed
    assert "ocpp16-config.yaml: skipped" in result.stderr


def test_validate_prints_one_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    result = runner.invoke(app, ["mappings", "validate", str(DC), str(broken)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    parsed = [PROBLEM_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m["path"], m["line"], m["column"]) for m in parsed if m] == [
        (str(broken), "9", "54"),
        (str(broken), "10", "38"),
        (str(broken), "13", "16"),
    ]
    assert "a counter point needs M_IT_NA_1 or M_IT_TB_1" in lines[0]
    assert "out of range" in lines[1]
    assert "unknown connector status 'Ocupied' (did you mean 'Occupied'?)" in lines[2]
    assert "3 problems in 2 checked file(s)" in result.stderr


def test_validate_a_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["mappings", "validate", str(tmp_path / "none.yaml")])
    assert result.exit_code == 1
    assert (
        result.stdout == f"{tmp_path / 'none.yaml'}:1:1: cannot read: No such file or directory\n"
    )


def test_validate_needs_a_path() -> None:
    assert runner.invoke(app, ["mappings", "validate"]).exit_code == 2


def test_explain_lists_every_point_with_its_ioa() -> None:
    result = runner.invoke(app, ["mappings", "explain", str(DC)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    compiled = load_reference("gb-dc-charger").compile(2)
    for rule in compiled.points():
        assert f"0x{rule.ioa:04X}" in out
    for text in (
        "0x0021",
        "0x0041",  # connector 2: two connectors by default
        "0x4002",
        "0x6401",
        "0x6001",
        "0x6202",
        "0x6300",
        "Energy.Active.Import.Register",
        "RequestStartTransaction → on",
        "×10 Wh",
        "vendorName 'Generic GB/T'",
        "time zone Asia/Shanghai",
    ):
        assert text in out, text


def test_explain_for_one_connector() -> None:
    result = runner.invoke(app, ["mappings", "explain", "--connectors", "1", str(DC)])
    assert result.exit_code == 0
    assert "0x0021" in result.stdout
    assert "0x0041" not in result.stdout


def test_explain_as_markdown() -> None:
    result = runner.invoke(app, ["mappings", "explain", "-n", "1", "-f", "markdown", str(DC)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "| IOA | conn. | name | type | scale | meaning | OCPP 2.0.1 target |" in lines
    row = next(line for line in lines if line.startswith("| 0x6401 |"))
    assert row.split(" | ")[1:5] == ["1", "energy_total", "M_IT_NA_1", "×10 Wh"]


def test_explain_refuses_an_invalid_table(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    result = runner.invoke(app, ["mappings", "explain", str(broken)])
    assert result.exit_code == 1
    assert f"{broken}:9:54:" in result.stderr
    assert result.stdout == ""


def test_explain_more_connectors_than_allowed(tmp_path: Path) -> None:
    result = runner.invoke(app, ["mappings", "explain", "-n", "17", str(DC)])
    assert result.exit_code == 1
    assert "the station has 17 connectors; this table describes 1 to 16" in result.stderr


def test_schema_is_json_with_the_languages_definitions() -> None:
    result = runner.invoke(app, ["mappings", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "ocpp-bridge IEC 104 mapping table"
    assert set(schema["$defs"]["MappingTable"]["required"]) == {"identity", "connectors", "rules"}
    # a table with `extends` overrides its base key by key: the partial variant requires nothing
    assert schema["if"]["required"] == ["extends"]
    assert schema["then"] == {"$ref": "#/$defs/PartialMappingTable"}
    assert "required" not in schema["$defs"]["PartialConnectorsSection"]
    for name in (
        "StationOptions",
        "Identity",
        "Block",
        "StatusPoint",
        "MeasurementPoint",
        "EnumPoint",
        "CounterPoint",
        "CommandPoint",
        "SetpointPoint",
        "ChargerCommandPoint",
        "StatusRule",
        "TransactionRules",
        "AllOf",
        "EnumIn",
        "LinkOptions",
        "RegistrationDef",
        "FieldDef",
        "PrivateAsduDef",
        "AuthorizeMeaning",
        "AuthorizeAnswerMeaning",
        "SettlementMeaning",
        "SettlementAckMeaning",
        "TariffMeaning",
    ):
        assert name in schema["$defs"], name
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_accepts_the_shipped_tables_and_refuses_unknown_keys() -> None:
    from ruamel.yaml import YAML

    schema = json.loads(runner.invoke(app, ["mappings", "schema"]).stdout)
    validator = jsonschema.Draft202012Validator(schema)
    for name in ("gb-dc-charger.yaml", "gb-ac-charger.yaml", "example-dialin-card.yaml"):
        data = YAML(typ="safe", pure=True).load((SHIPPED / name).read_text(encoding="utf-8"))
        assert list(validator.iter_errors(data)) == [], name
    data = YAML(typ="safe", pure=True).load((DC).read_text(encoding="utf-8"))
    data["connectors"]["blocks"]["status"]["points"]["charging"]["ofset"] = 1
    assert list(validator.iter_errors(data))
