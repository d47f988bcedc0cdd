"""Loads the OCPP 1.6 configuration-key table (mappings/ocpp16-config.yaml) for the core.

Rules
- YAML 1.2 through ruamel.yaml's round-trip loader, so every problem names its place: `PATH:LINE:COLUMN:
  key: message` (lines and columns from 1). Duplicate keys are errors, as YAML 1.2 says.
- The document becomes plain dicts, lists and scalars before it reaches the core, which validates and
  compiles it (`bridge.stations.v16.device_model.compile_config_table`); the core never sees a file.
- Without a path, the table shipped in the `mappings` package is loaded (works from any directory).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from bridge.stations.v16.device_model import ConfigTable, ConfigTableError, compile_config_table

SHIPPED_TABLE = "ocpp16-config.yaml"


class DeviceModelFileError(Exception):
    """The table cannot be used; `problems` has one `PATH:LINE:COLUMN: message` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config_table(path: Path | None = None) -> ConfigTable:
    if path is None:
        resource = importlib.resources.files("mappings").joinpath(SHIPPED_TABLE)
        name, text = f"mappings/{SHIPPED_TABLE}", resource.read_text(encoding="utf-8")
    else:
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise DeviceModelFileError([f"{name}: {error.strerror or error}"]) from None
    return parse_config_table(text, name)


def parse_config_table(text: str, name: str = "<table>") -> ConfigTable:
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        raise DeviceModelFileError([f"{where}: {error.problem or error}"]) from None
    except YAMLError as error:
        raise DeviceModelFileError([f"{name}: {error}"]) from None
    try:
        return compile_config_table(plain(document))
    except ConfigTableError as error:
        raise DeviceModelFileError(
            [f"{_place(document, name, p.key)}: {p.describe()}" for p in error.problems]
        ) from None


def plain(node: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists."""
    if isinstance(node, CommentedMap | dict):
        return {str(key): plain(value) for key, value in node.items()}
    if isinstance(node, CommentedSeq | list):
        return [plain(item) for item in node]
    return node


def _place(document: Any, name: str, key: str | None) -> str:
    keys = document.get("keys") if isinstance(document, CommentedMap) else None
    if key is not None and isinstance(keys, CommentedMap) and key in keys:
        line, column = keys.lc.key(key)
        return f"{name}:{line + 1}:{column + 1}"
    if isinstance(document, CommentedMap):
        return f"{name}:{document.lc.line + 1}:{document.lc.col + 1}"
    return f"{name}:1:1"
