"""The tables of docs/ rendered from the tables the code runs, between markers in the Markdown.

Rules
- A generated region is written `<!-- generated: NAME -->` … `<!-- end generated: NAME -->`; everything
  between the two markers is this module's output, everything outside is written by hand.
- Regions and their sources:
  - `ocpp16-charger-actions`, `ocpp16-csms-actions` (docs/ocpp16-mapping.md): `bridge.stations.v16.actions`,
    the tables the 1.6 station core dispatches on;
  - `ocpp16-config-keys` (docs/ocpp16-mapping.md): mappings/ocpp16-config.yaml as the bridge reads it
    (`adapters.device_model_file`), in the file's order, hidden keys included;
  - `table-gb-dc-charger`, `table-gb-ac-charger`, `table-example-dialin-card` (docs/mapping-language.md):
    the shipped IEC 104 tables compiled for one connector, as `ocpp-bridge mappings explain --format
    markdown` prints them (with the registration and private ASDUs as byte diagrams).
- `python -m adapters.cli.docs_tables` rewrites every region in place; a test fails when a committed document
  differs from what the tables render (or lacks a region).
"""

from __future__ import annotations

import importlib.resources
import re
import sys
from collections.abc import Callable
from pathlib import Path

from adapters.device_model_file import SHIPPED_TABLE, plain
from bridge.stations.v16.actions import CHARGER_ACTIONS, CSMS_ACTIONS, ActionTreatment
from bridge.stations.v16.device_model import LEGACY_COMPONENT, TableModel

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _actions(rows: list[ActionTreatment], heading: str) -> str:
    lines = [f"| Action | status | {heading} | notes |", "|---|---|---|---|"]
    for row in rows:
        cells = (row.action, row.treatment.value, row.via, row.note)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def charger_actions() -> str:
    return _actions(list(CHARGER_ACTIONS.values()), "2.0.1 (to the CSMS)")


def csms_actions() -> str:
    return _actions(list(CSMS_ACTIONS.values()), "1.6J (to the charger)")


def config_keys() -> str:
    from ruamel.yaml import YAML

    text = importlib.resources.files("mappings").joinpath(SHIPPED_TABLE).read_text("utf-8")
    model = TableModel.model_validate(plain(YAML(typ="rt").load(text)))
    legacy = model.legacy_component or LEGACY_COMPONENT
    lines = [
        "| 1.6 key | 2.0.1 component | variable | target | data type | mutability |",
        "|---|---|---|---|---|---|",
    ]
    for key, row in model.keys.items():
        if row.hidden:
            lines.append(f"| {key} | *hidden* | — | — | — | — |")
            continue
        component = row.component or legacy
        if row.component_instance:
            component += f"[{row.component_instance}]"
        variable = row.variable or key
        if row.variable_instance:
            variable += f"[{row.variable_instance}]"
        cells = (key, component, variable, row.target, row.data_type, row.mutability or "charger")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def point_table(name: str) -> Callable[[], str]:
    def render() -> str:
        from adapters.cli.mappings import markdown_table
        from adapters.mapping_files import load_reference

        compiled = load_reference(name).compile(1)
        return markdown_table(f"mappings/{name}.yaml", compiled)

    return render


REGIONS: dict[str, dict[str, Callable[[], str]]] = {
    "ocpp16-mapping.md": {
        "ocpp16-charger-actions": charger_actions,
        "ocpp16-csms-actions": csms_actions,
        "ocpp16-config-keys": config_keys,
    },
    "mapping-language.md": {
        "table-gb-dc-charger": point_table("gb-dc-charger"),
        "table-gb-ac-charger": point_table("gb-ac-charger"),
        "table-example-dialin-card": point_table("example-dialin-card"),
    },
}


class MissingRegion(ValueError):
    pass


def render_document(text: str, regions: dict[str, Callable[[], str]]) -> str:
    """`text` with every region's content replaced by its rendering. Raises MissingRegion."""
    for name, render in regions.items():
        pattern = re.compile(
            rf"(<!-- generated: {re.escape(name)} -->\n).*?(<!-- end generated: {re.escape(name)} -->)",
            re.DOTALL,
        )
        if not pattern.search(text):
            raise MissingRegion(f"no region {name!r}")
        body = render()

        def between_marks(match: re.Match[str], body: str = body) -> str:
            return match.group(1) + body + "\n" + match.group(2)

        text = pattern.sub(between_marks, text)
    return text


def rendered(folder: Path = DOCS) -> dict[Path, str]:
    """Each document with regions, as the tables render it now."""
    out = {}
    for file_name, regions in REGIONS.items():
        path = folder / file_name
        out[path] = render_document(path.read_text(encoding="utf-8"), regions)
    return out


def main() -> int:
    for path, text in rendered().items():
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            sys.stderr.write(f"{path}: rewritten\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
