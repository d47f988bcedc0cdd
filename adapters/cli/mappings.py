"""`ocpp-bridge mappings …`: check, explain and describe IEC 104 mapping tables (a typer sub-app).

Rules
- `validate PATH...` checks files and folders (the *.yaml and *.yml of a folder that are IEC 104 tables;
  other YAML files, such as mappings/ocpp16-config.yaml, are listed as skipped on stderr) for the most
  connectors each table allows. All valid: one `PATH: valid …` line per file, exit 0. Otherwise: one
  `PATH:LINE:COLUMN: message` line per problem on stdout, a count on stderr, exit 1.
- `explain PATH` prints every point of a valid table (IOA in hex, connector, name, type id, scale,
  meaning, the OCPP 2.0.1 message or field it feeds or the request it serves), as a rich table or, with
  `--format markdown`, as Markdown for documentation. An invalid table prints its problems on stderr
  and exits 1.
- `schema` prints the JSON Schema of the language, generated from the same pydantic models that
  validate tables (for editors and CI); a table with `extends` is checked against a partial variant
  (nothing required, `null` removes a key), since it overrides its base key by key.
- `explain` also prints the registration frame and every private ASDU as a byte diagram (offset,
  size, field, type, meaning) with what it means in OCPP 2.0.1.
- `replay PATH EVENTS` runs recorded 104 point changes (JSON lines, see `adapters.cli.mapping_replay` and
  docs/mapping-language.md) through the table and the station core with a fake clock, and prints every
  OCPP 2.0.1 frame that would go to the CSMS on stdout, one per line after its time (`+12.000s`), each
  validated against the official schema. 104 commands, interrogations and diagnostics go to stderr as
  `# ` lines. Exit 1 when a frame is invalid, the table is invalid or the events file is broken.
- The commands import their machinery when they run, so `ocpp-bridge run` does not pay for them.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from bridge.stations.iec104 import CompiledTable
    from bridge.stations.iec104.private import FieldSpec, PrivateRule

app = typer.Typer(
    help="IEC 104 mapping tables: check them, explain them point by point, print their JSON Schema,"
    " replay recorded point changes through them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(enum.StrEnum):
    table = "table"
    markdown = "markdown"


VALIDATE_HELP = (
    "Check mapping tables: print PATH:LINE:COLUMN: message for every problem and exit 1, or"
    " 'PATH: valid' per file and exit 0."
    "\n\nChecks the YAML, unknown and missing keys, type ids against point kinds, IOAs (3 bytes, each"
    " used once, for the most connectors a table allows), measurands and units, command values, the"
    " names the rules use, the time zone, the registration frame and private ASDUs (layouts, the fields"
    " their meanings use, answers, code tables, APDU size, IOAs), and every table named by `extends`."
)
EXPLAIN_HELP = (
    "Print every point of a table: IOA, connector, type, scale, meaning, and the OCPP 2.0.1 message"
    " or field it feeds or the CSMS request it serves."
    "\n\nConnector blocks are expanded by their stride, so the IOAs shown are the ones on the wire."
    " The registration frame and private ASDUs follow as byte diagrams."
)
REPLAY_HELP = (
    "Dry run without a charger: feed recorded 104 point changes (JSON lines) through the table and"
    " print every OCPP 2.0.1 frame that would go to the CSMS, each validated against the official"
    " schema; exit 1 on any invalid frame."
    '\n\nEach line: {"t": 5, "ioa": "0x0021", "type": "M_SP_NA_1", "value": true}, or'
    ' {"t": 60, "link": "down"}, or {"t": 9, "csms": "RequestStartTransaction",'
    ' "payload": {...}}, or for vendor tables {"t": 0, "registration": "AA 55 ..."} and'
    ' {"t": 3, "private": "card_request", "connector": 1, "fields": {"card": "1234"}}; t in'
    " seconds from --start, or an RFC 3339 time. A fake CSMS accepts everything (Authorize:"
    ' Accepted unless a line {"token_status": {...}} says otherwise) and 104 commands are'
    " confirmed at once."
)
SCHEMA_HELP = (
    "Print the JSON Schema of the mapping language, for editors and CI."
    "\n\nWith the YAML language server: save it as mapping.schema.json and start a table with"
    " '# yaml-language-server: $schema=mapping.schema.json'."
)


@app.command(help=VALIDATE_HELP)
def validate(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Mapping tables (*.yaml) or folders holding them; a folder's YAML files that are"
            " no IEC 104 table (such as ocpp16-config.yaml) are skipped.",
            show_default=False,
        ),
    ],
) -> None:
    """Check mapping tables (see VALIDATE_HELP)."""
    from adapters.mapping_files import check_paths

    result = check_paths(paths)
    for skipped in result.skipped:
        typer.echo(f"{skipped}: skipped, not an IEC 104 mapping table", err=True)
    if result.problems:
        for problem in result.problems:
            typer.echo(str(problem))
        count = len(result.problems)
        noun = "problem" if count == 1 else "problems"
        typer.echo(f"{count} {noun} in {len(result.checked)} checked file(s)", err=True)
        raise typer.Exit(1)
    for file in result.checked:
        typer.echo(f"{file}: valid")


@app.command(help=EXPLAIN_HELP)
def explain(
    path: Annotated[
        Path,
        typer.Argument(
            help="A mapping table (*.yaml), or a shipped table's name (mappings list).",
            show_default=False,
        ),
    ],
    connectors: Annotated[
        int | None,
        typer.Option(
            "--connectors",
            "-n",
            min=1,
            help="Expand the connector blocks for this many connectors"
            " (default: 2, or 1 when the table allows only one).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Format, typer.Option("--format", "-f", help="A rich table for people, or Markdown.")
    ] = Format.table,
) -> None:
    """Print every point of a table (see EXPLAIN_HELP)."""
    from adapters.mapping_files import MappingFileError, load_file, table_path

    path = table_path(path)
    try:
        loaded = load_file(path)
        count = connectors or min(2, loaded.table.connectors.max_count)
        compiled = loaded.compile(count)
    except MappingFileError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None
    if output is Format.markdown:
        typer.echo(markdown_table(path, compiled))
    else:
        _rich(path, compiled)


@app.command(help=REPLAY_HELP)
def replay(
    path: Annotated[
        Path,
        typer.Argument(
            help="A mapping table (*.yaml), or a shipped table's name (mappings list).",
            show_default=False,
        ),
    ],
    events: Annotated[
        Path, typer.Argument(help="Recorded point changes, JSON lines.", show_default=False)
    ],
    connectors: Annotated[
        int | None,
        typer.Option(
            "--connectors",
            "-n",
            min=1,
            help="Connectors of the station (default: as many as the events' IOAs need).",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        str, typer.Option(help="The wall-clock time of t = 0 (RFC 3339).")
    ] = "2026-01-01T00:00:00Z",
    settle: Annotated[
        float, typer.Option(min=0, help="Seconds the clock runs on after the last event.")
    ] = 10.0,
) -> None:
    """Replay recorded point changes (see REPLAY_HELP)."""
    from adapters.cli.mapping_replay import ReplayError, replay_file
    from adapters.mapping_files import MappingFileError, load_file, table_path
    from adapters.schemas import OfficialSchemas

    path = table_path(path)
    try:
        loaded = load_file(path)
        loaded.compile(1)
    except MappingFileError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None

    def on_frame(seconds: float, frame: str, problem: str | None) -> None:
        typer.echo(f"+{seconds:.3f}s {frame}")
        if problem is not None:
            typer.echo(f"# INVALID frame at +{seconds:.3f}s: {problem}", err=True)

    def on_note(seconds: float, text: str) -> None:
        typer.echo(f"# +{seconds:.3f}s {text}", err=True)

    try:
        result = replay_file(
            lambda count: loaded.compile(count),
            events,
            OfficialSchemas(),
            connectors=connectors,
            start=start,
            settle=settle,
            on_frame=on_frame,
            on_note=on_note,
        )
    except (ReplayError, MappingFileError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"# {result.frames} frame(s) to the CSMS, {result.invalid} invalid", err=True)
    if result.invalid:
        raise typer.Exit(1)


@app.command(
    name="list", help="List the shipped tables, usable by name wherever a table is asked for."
)
def list_tables() -> None:
    """The shipped tables (see its help)."""
    from adapters.mapping_files import compile_file, shipped_table, shipped_tables

    for name in shipped_tables():
        description = compile_file(str(shipped_table(name)), 1).description or ""
        typer.echo(f"{name}\t{description}")


@app.command(help=SCHEMA_HELP)
def schema() -> None:
    """Print the JSON Schema (see SCHEMA_HELP)."""
    typer.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))


def json_schema() -> dict[str, Any]:
    """The language's JSON Schema. A table with `extends` is checked against the partial variant of
    every definition (`Partial…`: no key required, a mapping may be empty, every mapping value may be
    `null` to remove the key, a union's branches tried in turn), because it overrides a base key by key; lists are replaced
    whole, so their items keep the full definitions."""
    from bridge.stations.iec104 import MappingTable

    full = MappingTable.model_json_schema()
    definitions: dict[str, Any] = full.pop("$defs")
    definitions["MappingTable"] = full
    partial: dict[str, Any] = {}

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref":
                name = value.rsplit("/", 1)[-1]
                if name not in partial:
                    partial[name] = {}
                    partial[name] = convert(definitions[name])
                out[key] = f"#/$defs/Partial{name}"
            elif key == "items" or key == "prefixItems":
                out[key] = value  # a list is replaced whole: its items are complete
            elif key == "properties":
                out[key] = {name: _nullable(convert(item)) for name, item in value.items()}
            elif key == "additionalProperties" and isinstance(value, dict):
                out[key] = _nullable(convert(value))
            elif key in ("required", "discriminator", "minProperties"):
                continue  # an override may leave out or empty what the base has
            elif key == "oneOf":
                out["anyOf"] = convert(value)
            else:
                out[key] = convert(value)
        return out

    partial["MappingTable"] = convert(full)
    for name, definition in partial.items():
        definitions[f"Partial{name}"] = definition
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ocpp-bridge IEC 104 mapping table",
        "description": full.get("description", ""),
        "$defs": definitions,
        "if": {"required": ["extends"], "properties": {"extends": {"type": "string"}}},
        "then": {"$ref": "#/$defs/PartialMappingTable"},
        "else": {"$ref": "#/$defs/MappingTable"},
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_COLUMNS = ("IOA", "conn.", "name", "type", "scale", "meaning", "OCPP 2.0.1 target")


def _rows(compiled: CompiledTable) -> list[tuple[str, ...]]:
    from bridge.stations.iec104 import format_ioa

    return [
        (
            format_ioa(rule.ioa),
            "—" if rule.connector is None else str(rule.connector),
            rule.key,
            str(rule.type_id),
            rule.scaling,
            rule.meaning,
            rule.target,
        )
        for rule in compiled.points()
    ]


def _summary(path: str | Path, compiled: CompiledTable) -> list[str]:
    station = compiled.station
    identity = compiled.identity
    lines = [
        f"{path}: {compiled.description or 'mapping table'}",
        f"BootNotification: vendorName {identity.vendor_name!r}, model {identity.model!r}",
        f"station: common address {station.common_address}, time zone {station.time_zone},"
        f" general interrogation every {station.general_interrogation_interval} s, counter"
        f" interrogation every {station.counter_interrogation_interval} s, commands"
        f" {station.command_mode}, ACT_TERM {'expected' if station.expects_act_term else 'not expected'},"
        f" timeout {station.command_timeout:g} s",
        f"connectors shown: {compiled.connectors} (EVSE n = connector n)",
    ]
    link = compiled.link
    if (link.cot_size, link.ca_size, link.ioa_size) != (2, 2, 3):
        lines.append(
            f"ASDU fields: cause of transmission {link.cot_size}, common address {link.ca_size},"
            f" IOA {link.ioa_size} byte(s)"
        )
    if compiled.connector_addresses:
        pairs = ", ".join(f"{n} → {ca}" for n, ca in compiled.connector_addresses.items())
        lines.append(f"common address per connector: {pairs}")
    return lines


_FRAME_COLUMNS = ("offset", "size", "field", "type", "meaning")
Diagram = tuple[list[str], list[tuple[str, ...]]]


def _diagrams(compiled: CompiledTable) -> list[Diagram]:
    """The registration and every private ASDU as byte diagrams: (heading lines, rows)."""
    diagrams: list[Diagram] = []
    if compiled.registration is not None:
        diagrams.append(_registration_diagram(compiled))
    for rule in compiled.private.values():
        diagrams.append(_private_diagram(compiled, rule))
    return diagrams


def _registration_diagram(compiled: CompiledTable) -> Diagram:
    from bridge.stations.iec104.registration import spaced_hex

    spec = compiled.registration
    assert spec is not None
    heading = [
        "registration (charger → bridge on connect, before STARTDT): the value of"
        f" {spec.id_field!r} is the station's registration_id; answers: accepted"
        f" {spaced_hex(spec.accepted)}, refused {spaced_hex(spec.refused)}; payload at most"
        f" {spec.max_payload} bytes"
    ]
    counts = {
        "payload": "the payload's bytes",
        "payload_and_checksum": "the bytes of the payload and the checksum",
        "frame": "the frame's bytes",
    }[spec.length_counts]
    start = len(spec.start)
    endian = f" {spec.length_endian}-endian" if spec.length_size == 2 else ""
    rows: list[tuple[str, ...]] = [
        ("0", str(start), "start", "bytes", spaced_hex(spec.start)),
        (
            str(start),
            str(spec.length_size),
            "length",
            f"uint{8 * spec.length_size}",
            f"{counts}{endian}",
        ),
    ]
    header = spec.header_size
    after_rest = False
    for field in spec.fields:
        if field.size is None:
            size, after_rest = "rest", True
        else:
            size = str(field.size)
        role = "registration_id" if field.name == spec.id_field else ""
        rows.append(
            (
                str(header + field.offset),
                size,
                field.name,
                _field_type(field),
                "; ".join(part for part in (field.description or "", role) if part) or "—",
            )
        )
    if spec.checksum != "none":
        end = "end" if after_rest else str(header + spec.min_payload)
        rows.append(
            (
                end,
                str(spec.checksum_size),
                "checksum",
                spec.checksum,
                f"{spec.checksum} of the {spec.checksum_over}",
            )
        )
    return heading, rows


def _private_diagram(compiled: CompiledTable, rule: PrivateRule) -> Diagram:
    from bridge.stations.iec104 import format_ioa

    link = compiled.link
    way = "charger → bridge" if rule.direction == "in" else "bridge → charger"
    if rule.stride is None:
        where = f"IOA {format_ioa(rule.base)}"
    else:
        where = f"IOA {format_ioa(rule.base)} + (n − 1) × {rule.stride}"
    about = f": {rule.description}" if rule.description else ""
    heading = [
        f"{rule.name}{about}: type {rule.type_id}, {rule.direction} ({way}), COT {rule.cot},"
        f" {where}, {rule.layout.size} byte{'s' * (rule.layout.size != 1)} of data",
        f"OCPP 2.0.1: {rule.meaning.describe()}",
    ]
    cot = "cause of transmission" + (", originator address" if link.cot_size == 2 else "")
    addresses = "common address"
    if compiled.connector_addresses:
        addresses += " (the connector's: station.common_addresses)"
    rows: list[tuple[str, ...]] = [
        ("0", "1", "type id", "uint8", str(rule.type_id)),
        ("1", "1", "VSQ", "uint8", "0x01: one object"),
        ("2", str(link.cot_size), "COT", f"uint{8 * link.cot_size}", f"{rule.cot}, {cot}"),
        (str(2 + link.cot_size), str(link.ca_size), "CA", f"uint{8 * link.ca_size}", addresses),
        (
            str(2 + link.cot_size + link.ca_size),
            str(link.ioa_size),
            "IOA",
            f"uint{8 * link.ioa_size}",
            where.removeprefix("IOA "),
        ),
    ]
    base = 2 + link.cot_size + link.ca_size + link.ioa_size
    roles = _roles(rule)
    for field in rule.layout.fields:
        meaning = "; ".join(part for part in (field.description, roles.get(field.name)) if part)
        rows.append(
            (
                str(base + field.offset),
                str(field.size),
                field.name,
                _field_type(field),
                meaning or "—",
            )
        )
    return heading, rows


def _field_type(field: FieldSpec) -> str:
    text = field.type
    if field.type in ("bcd", "ascii", "raw"):
        text += f"[{field.size if field.size is not None else 'rest'}]"
    if (field.size or 0) > 1 and field.type not in ("bcd", "ascii", "raw", "cp56"):
        text += " le" if field.endian == "little" else " be"
    if field.scale is not None:
        text += f" ×{field.scale:g}"
    return text


def _roles(rule: PrivateRule) -> dict[str, str]:
    """Field name → what the meaning does with it."""
    from bridge.stations.iec104.private import (
        Authorize,
        AuthorizeAnswer,
        Settlement,
        SettlementAck,
        Tariff,
    )

    meaning = rule.meaning
    if isinstance(meaning, Authorize):
        return {meaning.id_token: f"Authorize idToken (type {meaning.id_token_type})"}
    if isinstance(meaning, AuthorizeAnswer):
        codes = ", ".join(f"{status} {code}" for status, code in meaning.codes.items())
        more = "" if meaning.default is None else f", otherwise {meaning.default}"
        roles = {meaning.result: f"idTokenInfo.status: {codes}{more}"}
        if meaning.balance is not None:
            roles[meaning.balance] = "sent as 0 (no balance in OCPP 2.0.1)"
        return roles
    if isinstance(meaning, Settlement):
        roles = {
            meaning.id_token: f"idToken (type {meaning.id_token_type})",
            meaning.started_at: "transaction start",
            meaning.ended_at: "TransactionEvent Ended timestamp",
            meaning.meter_start.field: f"meter start, × {meaning.meter_start.wh_per_count:g} Wh",
            meaning.meter_stop.field: f"meter stop, × {meaning.meter_stop.wh_per_count:g} Wh",
        }
        if meaning.amount is not None:
            roles[meaning.amount.field] = f"amount, × {meaning.amount.scale:g}"
        if meaning.stop_reason is not None:
            reason = meaning.stop_reason
            codes = ", ".join(f"{code} {name}" for code, name in reason.codes.items())
            more = "" if reason.default is None else f", otherwise {reason.default}"
            roles[reason.field] = f"stoppedReason: {codes}{more}"
        return roles
    if isinstance(meaning, SettlementAck):
        return {meaning.result: "acknowledgement result"}
    assert isinstance(meaning, Tariff)
    return {field: f"{meaning.component}.{name}" for name, field in meaning.variables.items()}


def _rich(path: Path, compiled: CompiledTable) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=220)  # piped: do not wrap to a guessed 80 columns
    for line in _summary(path, compiled):
        console.print(line, highlight=False, markup=False)
    table = Table(show_lines=False)
    for column in _COLUMNS:
        wrap = column in ("scale", "meaning", "OCPP 2.0.1 target")
        table.add_column(column, no_wrap=not wrap, overflow="fold")
    for row in _rows(compiled):
        table.add_row(*row)
    console.print(table)
    for heading, rows in _diagrams(compiled):
        console.print()
        for line in heading:
            console.print(line, highlight=False, markup=False)
        diagram = Table(show_lines=False)
        for column in _FRAME_COLUMNS:
            diagram.add_column(column, no_wrap=column != "meaning", overflow="fold")
        for row in rows:
            diagram.add_row(*row)
        console.print(diagram)


def markdown_table(path: str | Path, compiled: CompiledTable) -> str:
    """The summary and point table of `explain --format markdown` (also rendered into docs/)."""
    lines = [f"- {line}" for line in _summary(path, compiled)]
    lines += ["", "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    for row in _rows(compiled):
        cells = (cell.replace("|", "\\|") for cell in row)
        lines.append("| " + " | ".join(cells) + " |")
    for heading, rows in _diagrams(compiled):
        lines += ["", *(f"**{line}**" if n == 0 else line for n, line in enumerate(heading))]
        lines += ["", "| " + " | ".join(_FRAME_COLUMNS) + " |", "|" + "---|" * len(_FRAME_COLUMNS)]
        for row in rows:
            cells = (cell.replace("|", "\\|") for cell in row)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
