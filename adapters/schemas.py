"""The official OCPP JSON schemas, compiled: the `bridge.schema.SchemaRegistry` the runtime uses.

Rules
- The schemas come from the `ocpp` package (PyPI), which ships the OCA's files: OCPP 1.6 core plus the
  security white paper's messages (`ocpp/v16/schemas`) and OCPP 2.0.1 (`ocpp/v201/schemas`).
- Every schema is compiled once, at construction, with jsonschema-rs (a compiled validator: about 3 µs for
  a 2.0.1 TransactionEvent, where the `ocpp` package's jsonschema path costs about 600 µs); date-time and
  the other formats are checked.
- OCPP 1.6 date-times are checked with `bridge.v16.timestamps.is_date_time_text` instead of RFC 3339:
  many 1.6 chargers send times without an offset, which the core reads in the station's configured
  offset. Text that is no date-time at all is still a TypeConstraintViolation.
- Valid payloads take one `is_valid` call; only an invalid payload pays for error collection.
"""

from __future__ import annotations

import importlib.resources
from typing import Any

import jsonschema_rs
import orjson

from bridge.errors import OcppVersion
from bridge.schema import PayloadKind, Violation
from bridge.v16.timestamps import is_date_time_text

_FORMATS: dict[OcppVersion, dict[str, Any]] = {
    OcppVersion.V16: {"formats": {"date-time": is_date_time_text}},
    OcppVersion.V201: {},
}
_FOLDERS = {OcppVersion.V16: "v16/schemas", OcppVersion.V201: "v201/schemas"}


def _file_names(version: OcppVersion, action: str) -> dict[PayloadKind, str]:
    request = f"{action}.json" if version is OcppVersion.V16 else f"{action}Request.json"
    return {PayloadKind.REQUEST: request, PayloadKind.RESPONSE: f"{action}Response.json"}


class OfficialSchemas:
    """Compiled validators for every action of OCPP 1.6 (+ security) and OCPP 2.0.1."""

    def __init__(self) -> None:
        self._validators: dict[tuple[OcppVersion, str, PayloadKind], Any] = {}
        self._actions: dict[OcppVersion, frozenset[str]] = {}
        package = importlib.resources.files("ocpp")
        for version, folder in _FOLDERS.items():
            directory = package.joinpath(folder)
            names = {entry.name for entry in directory.iterdir() if entry.name.endswith(".json")}
            actions = set()
            for name in names:
                if name.endswith("Response.json"):
                    actions.add(name.removesuffix("Response.json"))
            for action in actions:
                for kind, file_name in _file_names(version, action).items():
                    if file_name not in names:
                        raise RuntimeError(f"the ocpp package lacks {folder}/{file_name}")
                    text = directory.joinpath(file_name).read_bytes().decode("utf-8-sig")
                    self._validators[(version, action, kind)] = jsonschema_rs.validator_for(
                        orjson.loads(text), validate_formats=True, **_FORMATS[version]
                    )
            self._actions[version] = frozenset(actions)

    def actions(self, version: OcppVersion) -> frozenset[str]:
        return self._actions[version]

    def knows(self, version: OcppVersion, action: str) -> bool:
        return action in self._actions[version]

    def check(
        self, version: OcppVersion, action: str, kind: PayloadKind, payload: dict[str, Any]
    ) -> Violation | None:
        validator = self._validators.get((version, action, kind))
        if validator is None:
            return Violation("action", "", f"{action} is not an OCPP {version.value} action")
        if validator.is_valid(payload):
            return None
        error = next(iter(validator.iter_errors(payload)))
        schema_path = list(error.schema_path)
        keyword = str(schema_path[-1]) if schema_path else "schema"
        path = ".".join(str(part) for part in error.instance_path)
        return Violation(keyword, path, error.message)
