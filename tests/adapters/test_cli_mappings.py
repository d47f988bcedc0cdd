"""`ocpp-bridge mappings validate|explain|schema`: exit codes, output lines, the JSON Schema."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
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


# --- registration and private ASDUs ----------------------------------------------------------------

CARD = SHIPPED / "example-dialin-card.yaml"

# Line numbers count from "extends: ..." as line 1.
BROKEN_PRIVATE = """\
extends: gb-dc-charger
identity: {vendor_name: ACME, model: CARD-2}
registration:
  start: "AA 55"
  fields:
    - {name: serial, type: ascii, size: rest}
  checksum: {rule: sum8}
  id: serail
  accepted: "AA 55 01 00"
  refused: "AA 55 01 01"
private_asdus:
  card_request:
    type: 130
    direction: in
    cot: 3
    ioa: {base: 0x7001, stride: 1}
    fields:
      - {name: card, type: uint32}
    meaning: {kind: authorize, id_token: card, answer: card_answer}
  card_answer:
    type: 131
    direction: out
    cot: 7
    ioa: {base: 0x7001, stride: 1}
    fields:
      - {name: result, type: uint8}
    meaning:
      kind: authorize_answer
      result: result
      codes: {Accepted: 0, Invalid: 4}
"""


def test_validate_locates_registration_and_private_asdu_problems(tmp_path: Path) -> None:
    broken = tmp_path / "card.yaml"
    broken.write_text(BROKEN_PRIVATE)
    result = runner.invoke(app, ["mappings", "validate", str(broken)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{broken}:8:7: no field named 'serail' (did you mean 'serial'?)",
        f"{broken}:19:42: 'card' is a uint32 field; an id token needs ascii or bcd",
        f"{broken}:30:14: no code for Blocked, ConcurrentTx, Expired, NoCredit, NotAllowedTypeEVSE,"
        " NotAtThisLocation, NotAtThisTime, Unknown, which the CSMS may answer: add them or a"
        " `default` code",
    ]


def test_validate_locates_a_private_ioa_on_a_point(tmp_path: Path) -> None:
    text = BROKEN_PRIVATE.replace("id: serail", "id: serial").replace(
        "{name: card, type: uint32}", "{name: card, type: bcd, size: 8}"
    )
    text = text.replace(
        "codes: {Accepted: 0, Invalid: 4}", "codes: {Accepted: 0}\n      default: 4"
    )
    text = text.replace(
        "ioa: {base: 0x7001, stride: 1}\n    fields:\n      - {name: result",
        "ioa: 0x6100\n    fields:\n      - {name: result",
    )
    broken = tmp_path / "card.yaml"
    broken.write_text(text)
    result = runner.invoke(app, ["mappings", "validate", str(broken)])
    assert result.exit_code == 1
    [line] = result.stdout.splitlines()
    match = PROBLEM_LINE.match(line)
    assert match is not None
    assert (match["line"], match["column"]) == ("24", "10")
    assert match["message"].startswith("IOA 0x6100 of 'card_answer' is the charger's 'reset' (at ")
    assert "gb-dc-charger.yaml:" in match["message"]


def test_explain_draws_the_registration_and_private_asdus() -> None:
    result = runner.invoke(app, ["mappings", "explain", "-n", "1", "-f", "markdown", str(CARD)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("**registration (charger → bridge on connect") for line in lines)
    assert "| 0 | 2 | start | bytes | AA 55 |" in lines
    assert "| 2 | 1 | length | uint8 | the payload's bytes |" in lines
    assert (
        "| 3 | rest | serial | ascii[rest] | the charger's serial number; registration_id |"
        in lines
    )
    assert "| end | 1 | checksum | sum8 | sum8 of the payload |" in lines
    assert (
        "**card_request: card authorization request: type 130, in (charger → bridge), COT 3,"
        " IOA 0x7001 + (n − 1) × 1, 8 bytes of data**"
    ) in lines
    assert (
        "OCPP 2.0.1: Authorize: idToken ← card (type Local); answered with card_answer; while the"
        " CSMS is unreachable: refuse"
    ) in lines
    assert "| 6 | 3 | IOA | uint24 | 0x7001 + (n − 1) × 1 |" in lines
    assert (
        "| 9 | 8 | card | bcd[8] | card number (16 digits); Authorize idToken (type Local) |"
        in lines
    )
    settlement = [line for line in lines if line.startswith("| 43 | 1 | stop_reason |")]
    assert settlement == [
        "| 43 | 1 | stop_reason | uint8 | why the session ended; stoppedReason: 0 Local, 1 Remote,"
        " 2 EmergencyStop, 3 Other, 4 EVDisconnected, 5 SOCLimitReached, otherwise Other |"
    ]
    assert (
        "| 10 | 4 | balance | float32 le | card balance in yuan (0 when unknown); sent as 0 (no balance in OCPP 2.0.1) |"
        in lines
    )
    rich = runner.invoke(app, ["mappings", "explain", "-n", "1", str(CARD)])
    assert rich.exit_code == 0
    assert "settlement_ack: settlement record acknowledgement: type 133" in rich.stdout


def test_schema_agrees_with_validate_on_the_references_examples(tmp_path: Path) -> None:
    from ruamel.yaml import YAML

    from adapters.mapping_files import MappingFileError, load_file

    schema = json.loads(runner.invoke(app, ["mappings", "schema"]).stdout)
    validator = jsonschema.Draft202012Validator(schema)
    docs = Path(__file__).resolve().parents[2] / "docs" / "mapping-language.md"
    examples = re.findall(r"```yaml\n(.*?)```", docs.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert any("extends:" in example for example in examples)
    for index, example in enumerate(examples):
        path = tmp_path / f"example{index}.yaml"
        path.write_text(example, encoding="utf-8")
        try:
            load_file(path)
            valid = True
        except MappingFileError:
            valid = False
        data = YAML(typ="safe", pure=True).load(example)
        schema_errors = list(validator.iter_errors(data))
        if valid:
            assert schema_errors == [], (index, [e.message for e in schema_errors])
    # a key the language does not know, in an extending table, is refused by both
    data = YAML(typ="safe", pure=True).load(CARD.read_text(encoding="utf-8"))
    data["private_asdus"]["card_request"]["meaning"]["id_tokn"] = "card"
    assert list(validator.iter_errors(data))
    data = YAML(typ="safe", pure=True).load(CARD.read_text(encoding="utf-8"))
    data["registration"]["checksum"]["rule"] = "crc8"
    assert list(validator.iter_errors(data))
