"""The official OCPP JSON schemas, compiled: the `bridge.ocppj.schema.SchemaRegistry` the runtime uses.

Rules
- The schemas come from the `ocpp` package (PyPI), which ships the OCA's files: OCPP 1.6 core plus the
  security white paper's messages (`ocpp/v16/schemas`) and OCPP 2.0.1 (`ocpp/v201/schemas`).
- Every schema is compiled once, at construction, with jsonschema-rs (a compiled validator: about 3 µs for
  a 2.0.1 TransactionEvent, where the `ocpp` package's jsonschema path costs about 600 µs); date-time and
  the other formats are checked.
- OCPP 1.6 date-times are checked with `bridge.timestamps.is_date_time_text` instead of RFC 3339:
  many 1.6 chargers send times without an offset, which the core reads in the station's configured
  offset. Text that is no date-time at all is still a TypeConstraintViolation.
- Valid payloads take one `is_valid` call; only an invalid payload pays for error collection.
- Values keep their meaning (issue 17): the schemas are tightened before they are compiled, so a value
  that would change or be misread on its way through is refused instead of re-encoded:
  - integers: every schema is read as draft-04, whose `integer` is a number without a fraction or
    exponent (draft-06, which the 2.0.1 files name, also takes 1.0, -0.0 and 1e308). Their features
    are the same for these files otherwise: they use no keyword draft-06 added. And an integer field
    holds a 32-bit integer (1.6 §7 and 2.0.1 part 2 §2.1: "integer: 32 bit (31 bit resolution, 1 sign
    bit)"), within the schema's own minimum and maximum. A value outside 32 bits is reported as a
    `type` violation (TypeConstraintViolation), one outside the schema's own bounds as before
    (`minimum`/`maximum`: PropertyConstraintViolation).
  - strings: the schemas do not say which strings are CiStrings or identifiers, so the rule is by
    length. 1.6: a string of at most 500 characters without a format is a CiString (CiString20, 25,
    50, 255 and 500Type; the security extension's hashes (128) and serial numbers (40) too) and holds
    printable ASCII only (1.6 §7: "Only printable ASCII allowed"). 2.0.1: a string of at most 255
    characters without a format is an identifier, token, name or code (idToken, transactionId,
    vendorId, serialNumber, component and variable names, reasonCode, ...) and holds no control
    character (Unicode Cc: U+0000-U+001F, U+007F-U+009F). Longer strings (certificates and CSRs, free
    text such as additionalInfo and message content, variable values, URLs, DataTransfer data) are
    not restricted. A string that breaks its rule is a `pattern` violation (TypeConstraintViolation).
"""

from __future__ import annotations

import importlib.resources
from typing import Any

import jsonschema_rs
import orjson

from bridge.ocppj.errors import OcppVersion
from bridge.ocppj.schema import PayloadKind, Violation
from bridge.timestamps import is_date_time_text

_FORMATS: dict[OcppVersion, dict[str, Any]] = {
    OcppVersion.V16: {"formats": {"date-time": is_date_time_text}},
    OcppVersion.V201: {},
}
_FOLDERS = {OcppVersion.V16: "v16/schemas", OcppVersion.V201: "v201/schemas"}

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# the longest string that is a CiString (1.6) or an identifier (2.0.1), and the characters it may hold
_SHORT_STRING = {OcppVersion.V16: 500, OcppVersion.V201: 255}
_CHARACTERS = {
    OcppVersion.V16: "^[\\u0020-\\u007e]*$",
    OcppVersion.V201: "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
}
_MAX_MESSAGE = 200
_RULE = {
    OcppVersion.V16: "is not printable ASCII (a CiString)",
    OcppVersion.V201: "holds a control character",
}


def tightened(schema: Any, version: OcppVersion) -> Any:
    """`schema` with the rules above: 32-bit bounds on integers, character patterns on short strings."""
    if isinstance(schema, list):
        return [tightened(item, version) for item in schema]
    if not isinstance(schema, dict):
        return schema
    node = {key: tightened(value, version) for key, value in schema.items()}
    kind = node.get("type")
    if kind == "integer":
        node["minimum"] = max(node.get("minimum", INT32_MIN), INT32_MIN)
        node["maximum"] = min(node.get("maximum", INT32_MAX), INT32_MAX)
    elif (
        kind == "string"
        and "enum" not in node
        and "format" not in node
        and node.get("maxLength", _SHORT_STRING[version] + 1) <= _SHORT_STRING[version]
    ):
        node["pattern"] = _CHARACTERS[version]
    return node


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
                    schema = tightened(orjson.loads(text), version)
                    self._validators[(version, action, kind)] = jsonschema_rs.Draft4Validator(
                        schema, validate_formats=True, **_FORMATS[version]
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
        message = error.message
        if keyword in ("minimum", "maximum") and not INT32_MIN <= error.instance <= INT32_MAX:
            keyword, message = "type", f"{error.instance} is not a 32-bit integer"
        elif keyword == "pattern":
            message = f"{orjson.dumps(error.instance).decode()} {_RULE[version]}"
        if len(message) > _MAX_MESSAGE:  # 1e308 is written out in full
            message = message[: _MAX_MESSAGE - 1] + "…"
        return Violation(keyword, path, message)
