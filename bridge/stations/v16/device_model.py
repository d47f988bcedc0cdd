"""The OCPP 1.6 configuration key ⇄ OCPP 2.0.1 component/variable table: its language, its compiler and
the value conversions.

Rules
- The table is data (mappings/ocpp16-config.yaml, loaded by adapters.device_model_file); this module
  validates it with pydantic (extra="forbid": a misspelt field is an error) and compiles it into frozen
  lookups. `compile_config_table(data)` raises `ConfigTableError`, one problem per line, each naming the
  1.6 key it is about.
- A row maps one 1.6 key to one 2.0.1 variable attribute: component (+ instance), variable (+ instance),
  and `target`: an attribute type (Actual, Target, MinSet, MaxSet) or `maxLimit`, the variable's
  characteristic (e.g. LocalAuthListMaxLength → LocalAuthListCtrlr.Entries maxLimit). Several keys may feed
  one variable (MeterValuesSampledData → Actual, MeterValuesSampledDataMaxLength → maxLimit), never the
  same attribute twice.
- Keys with no row (and rows naming no component) live on the legacy component (OCPP16LegacyCtrlr, as in
  EVerest) under their own name, or the row's `variable`. A legacy name taken by a row wins over a charger
  key of that name.
- `hidden: true` keys are never shown to nor set by the CSMS: the charger ↔ bridge link (the charger's
  Central System URL, its basic-auth key and security profile point at the bridge, and changing them from
  the CSMS would cut the charger off).
- `read_only` (patterns, shell-style, case-insensitive) names keys that re-point the charger (backend
  URLs, hosts, charge box ids: a firmware's vendor keys included): never writable from the CSMS. A key
  matching one is shown ReadOnly, whatever its row or the charger says, and a SetVariables of it is
  Rejected (ReadOnly) without bothering the charger.
- Mutability is the row's when it states one, else the charger's `readonly` flag (ReadOnly / ReadWrite).
- OptionList, MemberList and SequenceList rows state their `values_list` (2.0.1 reports it).
- A legacy key (no row) whose value is "true" or "false" (any case) is a boolean (`data_type_of`).
- Values (2.0.1 part 2 §2.1.3 data types): 1.6 → 2.0.1 normalizes booleans to "true"/"false", integers
  to no sign or leading zeros, and comma-separated lists to "a,b" without blanks; text that does not
  parse as the declared type travels unchanged (the charger's truth). 2.0.1 → 1.6 checks the value against
  the declared type first: a value of the wrong type is refused (InvalidValue) without bothering the
  charger, and one longer than 1.6's 500 characters too (TooLargeElement).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

LEGACY_COMPONENT: Final = "OCPP16LegacyCtrlr"
MAX_V16_VALUE: Final = 500
MAX_NAME: Final = 50

Target = Literal["Actual", "Target", "MinSet", "MaxSet", "maxLimit"]
DataType = Literal[
    "string",
    "decimal",
    "integer",
    "dateTime",
    "boolean",
    "OptionList",
    "SequenceList",
    "MemberList",
]
Mutability = Literal["ReadOnly", "ReadWrite", "WriteOnly"]
ATTRIBUTE_TYPES: Final = ("Actual", "Target", "MinSet", "MaxSet")
_LISTS: Final = frozenset({"SequenceList", "MemberList"})


class KeyRow(BaseModel):
    """One row of the table, for one 1.6 key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    component: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    component_instance: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    variable: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    variable_instance: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    target: Target = "Actual"
    data_type: DataType = "string"
    unit: str | None = Field(None, min_length=1, max_length=16)
    values_list: list[str] | None = Field(None, min_length=1)
    mutability: Mutability | None = None
    hidden: bool = False
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> KeyRow:
        if self.hidden and (self.component or self.variable):
            raise ValueError("a hidden key maps to no component or variable")
        if self.target == "maxLimit" and self.data_type not in ("integer", "decimal"):
            raise ValueError("a maxLimit comes from a number: data_type integer or decimal")
        if self.values_list is not None and len(",".join(self.values_list)) > 1000:
            raise ValueError("values_list is longer than 1000 characters joined")
        if (
            self.target != "maxLimit"
            and self.data_type in ("OptionList", *_LISTS)
            and self.values_list is None
        ):
            raise ValueError(f"a {self.data_type} states its values_list")
        return self


class TableModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    legacy_component: str = Field(LEGACY_COMPONENT, min_length=1, max_length=MAX_NAME)
    read_only: list[str] = Field(default_factory=list)
    keys: dict[str, KeyRow]


@dataclass(frozen=True, slots=True)
class VariableRef:
    """A 2.0.1 component/variable identity (evse only for bridge-owned variables)."""

    component: str
    variable: str
    component_instance: str | None = None
    variable_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None

    @staticmethod
    def of(component: Mapping[str, Any], variable: Mapping[str, Any]) -> VariableRef:
        evse = component.get("evse") or {}
        return VariableRef(
            component=component["name"],
            variable=variable["name"],
            component_instance=component.get("instance"),
            variable_instance=variable.get("instance"),
            evse_id=evse.get("id"),
            connector_id=evse.get("connectorId"),
        )

    def component_payload(self) -> dict[str, Any]:
        component: dict[str, Any] = {"name": self.component}
        if self.component_instance is not None:
            component["instance"] = self.component_instance
        if self.evse_id is not None:
            component["evse"] = {"id": self.evse_id}
            if self.connector_id is not None:
                component["evse"]["connectorId"] = self.connector_id
        return component

    def variable_payload(self) -> dict[str, Any]:
        variable: dict[str, Any] = {"name": self.variable}
        if self.variable_instance is not None:
            variable["instance"] = self.variable_instance
        return variable


@dataclass(frozen=True, slots=True)
class BridgeVariable:
    """A variable the bridge owns and the core passes in (boot identity, availability, its own
    heartbeat interval...). It takes precedence over a table row of the same identity."""

    ref: VariableRef
    value: str | None
    data_type: str = "string"
    mutability: str = "ReadOnly"
    unit: str | None = None
    values_list: tuple[str, ...] | None = None
    max_limit: float | int | None = None
    summary: bool = False  # part of a SummaryInventory report (availability, problems)
    fallback: bool = False  # only when the charger's configuration does not have the variable


@dataclass(frozen=True, slots=True)
class KeyMapping:
    """A compiled row: where one 1.6 key lives in the 2.0.1 device model."""

    key: str
    ref: VariableRef
    target: str
    data_type: str
    unit: str | None = None
    values_list: tuple[str, ...] | None = None
    mutability: str | None = None
    legacy: bool = False


@dataclass(frozen=True, slots=True)
class ConfigTable:
    legacy_component: str
    rows: Mapping[str, KeyMapping]  # 1.6 key → mapping (hidden keys absent)
    hidden: frozenset[str]
    by_variable: Mapping[VariableRef, Mapping[str, KeyMapping]]  # ref → target → mapping
    read_only: tuple[str, ...] = ()  # lower-case patterns of keys never writable from the CSMS

    def denied(self, key: str) -> bool:
        """A key that re-points the charger (`read_only` patterns)."""
        lower = key.lower()
        return any(fnmatch.fnmatchcase(lower, pattern) for pattern in self.read_only)

    def mapping_for_key(self, key: str) -> KeyMapping | None:
        """Where a charger key appears; None for a hidden key or a legacy name a row took."""
        if key in self.hidden:
            return None
        row = self.rows.get(key)
        if row is not None:
            return row
        ref = VariableRef(self.legacy_component, key)
        if ref in self.by_variable or len(key) > MAX_NAME:
            return None
        mutability = "ReadOnly" if self.denied(key) else None
        return KeyMapping(key, ref, "Actual", "string", mutability=mutability, legacy=True)

    def mappings_for(self, ref: VariableRef) -> Mapping[str, KeyMapping] | None:
        """The attributes (target → mapping) of a 2.0.1 variable, or None when it is not in the table.

        Any variable of the legacy component is a candidate key of that name (the charger decides).
        """
        found = self.by_variable.get(ref)
        if found is not None:
            return found
        if (
            ref.component == self.legacy_component
            and ref.component_instance is None
            and ref.variable_instance is None
            and ref.evse_id is None
        ):
            mapping = self.mapping_for_key(ref.variable)
            if mapping is not None and mapping.legacy:
                return MappingProxyType({"Actual": mapping})
        return None

    def knows_component(self, ref: VariableRef) -> bool:
        if ref.evse_id is None and ref.component == self.legacy_component:
            return ref.component_instance is None
        return any(
            other.component == ref.component
            and other.component_instance == ref.component_instance
            and other.evse_id == ref.evse_id
            for other in self.by_variable
        )


@dataclass(frozen=True, slots=True)
class TableProblem:
    key: str | None
    message: str

    def describe(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigTableError(ValueError):
    def __init__(self, problems: list[TableProblem]) -> None:
        super().__init__("\n".join(p.describe() for p in problems))
        self.problems = problems


def compile_config_table(data: Any) -> ConfigTable:
    """Validate and compile the table's plain data (see the module rules)."""
    try:
        model = TableModel.model_validate(data)
    except ValidationError as error:
        raise ConfigTableError([_problem_of(e) for e in error.errors()]) from None
    rows: dict[str, KeyMapping] = {}
    hidden: set[str] = set()
    by_variable: dict[VariableRef, dict[str, KeyMapping]] = {}
    problems: list[TableProblem] = []
    for key, row in model.keys.items():
        if not 1 <= len(key) <= MAX_NAME:
            problems.append(TableProblem(key, f"a 1.6 key has 1 to {MAX_NAME} characters"))
            continue
        if row.hidden:
            hidden.add(key)
            continue
        legacy = row.component is None
        ref = VariableRef(
            component=row.component or model.legacy_component,
            variable=row.variable or key,
            component_instance=row.component_instance,
            variable_instance=row.variable_instance,
        )
        mapping = KeyMapping(
            key=key,
            ref=ref,
            target=row.target,
            data_type=row.data_type,
            unit=row.unit,
            values_list=tuple(row.values_list) if row.values_list else None,
            mutability=row.mutability,
            legacy=legacy,
        )
        if mapping.mutability != "WriteOnly" and any(
            fnmatch.fnmatchcase(key.lower(), p.lower()) for p in model.read_only
        ):
            mapping = KeyMapping(
                mapping.key,
                mapping.ref,
                mapping.target,
                mapping.data_type,
                mapping.unit,
                mapping.values_list,
                "ReadOnly",
                mapping.legacy,
            )
        attributes = by_variable.setdefault(ref, {})
        if row.target in attributes:
            problems.append(
                TableProblem(
                    key,
                    f"{_describe(ref)} {row.target} is already fed by {attributes[row.target].key}",
                )
            )
            continue
        attributes[row.target] = mapping
        rows[key] = mapping
    if problems:
        raise ConfigTableError(problems)
    return ConfigTable(
        legacy_component=model.legacy_component,
        rows=MappingProxyType(rows),
        hidden=frozenset(hidden),
        by_variable=MappingProxyType(
            {ref: MappingProxyType(attrs) for ref, attrs in by_variable.items()}
        ),
        read_only=tuple(pattern.lower() for pattern in model.read_only),
    )


def _problem_of(error: Any) -> TableProblem:
    location = [str(part) for part in error["loc"]]
    key = location[1] if len(location) >= 2 and location[0] == "keys" else None
    rest = location[2:] if key is not None else location
    where = ".".join(rest)
    return TableProblem(key, f"{where}: {error['msg']}" if where else error["msg"])


def _describe(ref: VariableRef) -> str:
    component = ref.component + (f"[{ref.component_instance}]" if ref.component_instance else "")
    variable = ref.variable + (f"[{ref.variable_instance}]" if ref.variable_instance else "")
    return f"{component}.{variable}"


# --- value conversions -----------------------------------------------------------------------------


def data_type_of(mapping: KeyMapping, value: str | None) -> str:
    """The 2.0.1 data type of a key's value: the row's; a legacy boolean-looking value is boolean."""
    if (
        mapping.legacy
        and mapping.data_type == "string"
        and value is not None
        and value.strip().lower() in ("true", "false")
    ):
        return "boolean"
    return mapping.data_type


_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_STRICT_INTEGER = re.compile(r"^-?(?:0|[1-9]\d*)$")


def value_up(value: str, data_type: str) -> str:
    """A 1.6 configuration value as a 2.0.1 attribute value of `data_type`."""
    if data_type == "boolean" and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    if data_type == "integer" and _INTEGER.match(value):
        return str(int(value))
    if data_type == "decimal":
        number = _decimal(value)
        return _decimal_text(number) if number is not None else value
    if data_type in _LISTS:
        return ",".join(part.strip() for part in value.split(",") if part.strip())
    return value


def value_down(value: str, data_type: str) -> tuple[str | None, str]:
    """A 2.0.1 attribute value for ChangeConfiguration: (value, "") or (None, reason code)."""
    valid = True
    if data_type == "boolean":
        valid = value in ("true", "false")
    elif data_type == "integer":
        valid = bool(_STRICT_INTEGER.match(value))
    elif data_type == "decimal":
        valid = _decimal(value) is not None
    elif data_type in _LISTS:
        value = ",".join(part.strip() for part in value.split(",") if part.strip())
    if not valid:
        return None, "InvalidValue"
    if len(value) > MAX_V16_VALUE:
        return None, "TooLargeElement"
    return value, ""


def number_of(value: str) -> float | int | None:
    """A 1.6 value as a number (for maxLimit), or None."""
    if _INTEGER.match(value):
        return int(value)
    number = _decimal(value)
    return float(number) if number is not None else None


def _decimal(value: str) -> Decimal | None:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _decimal_text(number: Decimal) -> str:
    text = format(number, "f")
    return text.lstrip("+")
