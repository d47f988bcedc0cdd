"""Validating a mapping table: the entry point `validate_table`, and the checks that span several keys.

Rules
- `validate_table(data)` returns a `MappingTable` or raises `TableError` with every problem of the first
  stage that finds any: (1) the per-key problems of the pydantic models, translated ("unknown key
  'ofset' (did you mean 'offset'?)", "missing key 'type'"); (2) the cross-checks below, which need a
  structurally valid table; (3) the IOA checks for `connectors.max_count` connectors (a clash with fewer
  connectors is also a clash with more, so the largest count covers all). Fixing one stage's problems
  can therefore reveal the next stage's.
- Cross-checks: point names are unique across the charger and all blocks; a measurand takes only its
  units; a phase or location needs a measurand; a command sends on/off with C_SC_NA_1 and C_DC_NA_1 and a
  qualifier with C_RP_NA_1; connector-only actions are not charger commands; one point per command action
  and one setpoint per rate unit (A or W) at each level; C_SE_NA_1 needs `full_scale` and only it takes
  one; every name in a rule is a point of the right kind; an unconditional rule comes last; the
  transaction meter is a connector's energy point. The registration, the private ASDUs, the link's field
  sizes and per-connector common addresses are checked by `bridge.stations.iec104.frame_checks` (stage 2, and
  their IOAs in stage 3).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from bridge.stations.iec104 import conditions as c
from bridge.stations.iec104.addresses import iter_points, place_points
from bridge.stations.iec104.frame_checks import check_frames, frame_address_problems
from bridge.stations.iec104.frames import MEANING_KINDS
from bridge.stations.iec104.model import MappingTable
from bridge.stations.iec104.points import (
    AnyPoint,
    CommandDef,
    CounterDef,
    EnumDef,
    MeasurementDef,
    SetpointDef,
    StatusDef,
)
from bridge.stations.iec104.problems import Path, TableError, TableProblem, data_path, lookup
from bridge.stations.iec104.vocabulary import (
    CHARGER_ACTIONS,
    COUNTER_UNITS,
    POINT_KINDS,
    SWITCH_COMMAND_TYPES,
    UNITS_BY_MEASURAND,
    TypeId,
    hint,
)


def validate_table(data: Any) -> MappingTable:
    """Data read from YAML → a checked table, or TableError listing every problem."""
    if not isinstance(data, Mapping):
        raise TableError([TableProblem((), "a mapping table is a YAML mapping of keys to values")])
    try:
        table = MappingTable.model_validate(data)
    except ValidationError as exc:
        raise TableError(describe_errors(exc, data)) from None
    problems = check_table(table)
    if not problems:
        placements, problems = place_points(table, table.connectors.max_count)
        problems += frame_address_problems(table, placements, table.connectors.max_count)
    if problems:
        raise TableError(problems)
    return table


# --- pydantic errors → problems ------------------------------------------------------------------


def _language_keys() -> frozenset[str]:
    """Every key the language knows, for "did you mean" hints on unknown keys."""
    keys: set[str] = set()
    pending: list[type[c.StrictModel]] = [c.StrictModel]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        keys.update(field.alias or name for name, field in model.model_fields.items())
    return frozenset(keys)


_KEYS = _language_keys()


def describe_errors(exc: ValidationError, data: Any) -> list[TableProblem]:
    """One problem per pydantic error, located in `data`."""
    problems: list[TableProblem] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        kind = error["type"]
        path = data_path(data, loc)
        on_key = bool(loc) and loc[-1] == "[key]"
        message = error["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            key = str(loc[-1])
            # a key of the language in the wrong place gets no "did you mean" itself
            where = " here" if key in _KEYS else hint(key, _KEYS)
            message, on_key = f"unknown key {key!r}{where}", True
        elif kind == "missing":
            message, on_key = f"missing key {loc[-1]!r}", True
        elif kind == "union_tag_invalid":
            tag = error.get("ctx", {}).get("tag")
            kinds = MEANING_KINDS if "meaning" in path else POINT_KINDS
            message = f"unknown kind {tag!r}{hint(str(tag), kinds)}; expected one of " + (
                ", ".join(kinds)
            )
            path = (*path, "kind")
        elif kind == "union_tag_not_found":
            kinds = MEANING_KINDS if "meaning" in path else POINT_KINDS
            message, on_key = "missing key 'kind' (" + ", ".join(kinds) + ")", True
        elif kind == "condition":
            value = lookup(data, path)
            if isinstance(value, Mapping):
                message = c.unknown_condition_key(dict(value))
        problems.append(TableProblem(path, message, on_key=on_key))
    return problems


# --- cross-checks --------------------------------------------------------------------------------


def check_table(table: MappingTable) -> list[TableProblem]:
    """Problems that involve more than one key of a structurally valid table."""
    problems: list[TableProblem] = []
    points: dict[str, tuple[Path, AnyPoint]] = {}
    served: dict[tuple[str, bool], Path] = {}
    rates: dict[tuple[str, bool], Path] = {}
    for block, key, point in iter_points(table):
        path: Path = (
            ("charger", "points", key)
            if block is None
            else ("connectors", "blocks", block, "points", key)
        )
        if key in points:
            problems.append(
                TableProblem(
                    path,
                    f"the name {key!r} is already used by another point",
                    on_key=True,
                    related=points[key][0],
                )
            )
        else:
            points[key] = (path, point)
        problems.extend(_check_point(point, path, block is None, served, rates))
    problems.extend(_RuleChecker(table, points).check())
    problems.extend(check_frames(table, points))
    return problems


def _check_point(
    point: AnyPoint,
    path: Path,
    charger: bool,
    served: dict[tuple[str, bool], Path],
    rates: dict[tuple[str, bool], Path],
) -> Iterator[TableProblem]:
    if isinstance(point, MeasurementDef | CounterDef):
        yield from _check_units(point, path)
    if isinstance(point, MeasurementDef) and point.measurand is None:
        for key in ("phase", "location"):
            if getattr(point, key) is not None:
                yield TableProblem((*path, key), f"a {key} needs a measurand")
    if isinstance(point, CommandDef):
        yield from _check_command(point, path, charger, served)
    if isinstance(point, SetpointDef):
        yield from _check_setpoint(point, path, charger, rates)


def _check_units(point: MeasurementDef | CounterDef, path: Path) -> Iterator[TableProblem]:
    if point.measurand is None:
        return
    allowed = UNITS_BY_MEASURAND[point.measurand]
    if isinstance(point, CounterDef) and not set(allowed) & set(COUNTER_UNITS):
        yield TableProblem(
            (*path, "measurand"),
            f"a counter counts energy; {point.measurand} is not an energy measurand",
        )
    elif not allowed and point.unit is not None:
        yield TableProblem((*path, "unit"), f"{point.measurand} has no unit in OCPP; remove `unit`")
    elif allowed and point.unit is None:
        yield TableProblem(
            path, f"missing key 'unit': {point.measurand} is in {_or(allowed)}", True
        )
    elif allowed and point.unit not in allowed:
        yield TableProblem(
            (*path, "unit"), f"{point.measurand} is in {_or(allowed)}, not {point.unit}"
        )


def _check_command(
    point: CommandDef, path: Path, charger: bool, served: dict[tuple[str, bool], Path]
) -> Iterator[TableProblem]:
    switch = point.type in SWITCH_COMMAND_TYPES
    for action, value in point.actions.items():
        where = (*path, "actions", action)
        if switch and value not in ("on", "off"):
            yield TableProblem(where, f"{point.type} sends on or off, not {value!r}")
        elif not switch and not isinstance(value, int):
            yield TableProblem(
                where,
                f"{point.type} sends a qualifier of reset process 1..255 (1: general reset),"
                f" not {value!r}",
            )
        if charger and action not in CHARGER_ACTIONS:
            yield TableProblem(
                where, f"{action} needs a connector: put this command in a connector block", True
            )
        if (action, charger) in served:
            level = "the charger" if charger else "each connector"
            yield TableProblem(
                where,
                f"a second point serves {action} for {level}",
                True,
                related=served[action, charger],
            )
        else:
            served[action, charger] = where
    if not switch and point.qualifier != "none":
        yield TableProblem((*path, "qualifier"), "a qualifier applies to C_SC_NA_1 and C_DC_NA_1")


def _check_setpoint(
    point: SetpointDef, path: Path, charger: bool, rates: dict[tuple[str, bool], Path]
) -> Iterator[TableProblem]:
    if point.type == TypeId.C_SE_NA_1:
        if point.full_scale is None:
            yield TableProblem(
                path, "missing key 'full_scale': C_SE_NA_1 sends limit ÷ full_scale", True
            )
        if point.scale != 1:
            yield TableProblem((*path, "scale"), "C_SE_NA_1 uses full_scale, not scale")
    elif point.full_scale is not None:
        yield TableProblem((*path, "full_scale"), "full_scale applies to C_SE_NA_1 only; use scale")
    if point.minimum is not None and point.maximum is not None and point.minimum > point.maximum:
        yield TableProblem((*path, "minimum"), f"minimum {point.minimum} exceeds maximum")
    rate = "current" if point.unit == "A" else "power"
    if (rate, charger) in rates:
        level = "the charger" if charger else "each connector"
        yield TableProblem(
            (*path, "unit"),
            f"a second {rate} setpoint for {level}",
            related=rates[rate, charger],
        )
    else:
        rates[rate, charger] = (*path, "unit")


def _or(values: tuple[str, ...]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + f" or {values[-1]}"


class _RuleChecker:
    """Names in the derived rules: each must be a point of the kind its condition reads."""

    def __init__(self, table: MappingTable, points: dict[str, tuple[Path, AnyPoint]]) -> None:
        self.table = table
        self.points = points
        self.problems: list[TableProblem] = []
        self.actions = {
            action
            for _block, _key, point in iter_points(table)
            if isinstance(point, CommandDef) and _block is not None
            for action in point.actions
        }

    def check(self) -> list[TableProblem]:
        rules = self.table.rules
        self.ordered("connector_status", [rule.when for rule in rules.connector_status])
        self.ordered("charging_state", [rule.when for rule in rules.charging_state])
        transaction = rules.transaction
        if transaction is not None:
            self.condition(transaction.starts_when, ("rules", "transaction", "starts_when"))
            for index, end in enumerate(transaction.ends):
                self.condition(end.when, ("rules", "transaction", "ends", index, "when"))
            if transaction.meter is not None:
                self.meter(transaction.meter, ("rules", "transaction", "meter"))
        return self.problems

    def ordered(self, field: str, conditions: list[Any]) -> None:
        for index, when in enumerate(conditions):
            if when is not None:
                self.condition(when, ("rules", field, index, "when"))
            elif index + 1 < len(conditions):
                self.problems.append(
                    TableProblem(
                        ("rules", field, index + 1),
                        f"never reached: rule [{index}] has no `when`, so it always matches",
                    )
                )

    def condition(self, condition: Any, path: Path) -> None:
        if isinstance(condition, str):
            self.point(condition, path, StatusDef, "status", "or use {measurement: …} or {enum: …}")
        elif isinstance(condition, c.AllOf | c.AnyOf):
            key = "all" if isinstance(condition, c.AllOf) else "any"
            parts = condition.all_ if isinstance(condition, c.AllOf) else condition.any_
            for index, part in enumerate(parts):
                self.condition(part, (*path, key, index))
        elif isinstance(condition, c.Not):
            self.condition(condition.not_, (*path, "not"))
        elif isinstance(condition, c.EnumIn):
            point = self.point(condition.enum, (*path, "enum"), EnumDef, "enum")
            if isinstance(point, EnumDef):
                names = list(point.values.values())
                for index, name in enumerate(condition.in_):
                    if name not in names:
                        self.problems.append(
                            TableProblem(
                                (*path, "in", index),
                                f"{condition.enum!r} has no value {name!r}{hint(name, names)};"
                                f" it has {', '.join(names)}",
                            )
                        )
        elif isinstance(condition, c.InRange):
            self.point(condition.measurement, (*path, "measurement"), MeasurementDef, "measurement")
        elif (
            isinstance(condition, c.CommandAccepted)
            and condition.command_accepted not in self.actions
        ):
            self.problems.append(
                TableProblem(
                    (*path, "command_accepted"),
                    f"no connector command serves {condition.command_accepted}",
                )
            )

    def point(
        self, name: str, path: Path, wanted: type[c.StrictModel], kind: str, advice: str = ""
    ) -> AnyPoint | None:
        found = self.points.get(name)
        if found is None:
            self.problems.append(
                TableProblem(path, f"no point named {name!r}{hint(name, self.points)}")
            )
            return None
        point: AnyPoint = found[1]
        if not isinstance(point, wanted):
            article = "an" if kind == "enum" else "a"
            extra = f", {advice}" if advice else ""
            self.problems.append(
                TableProblem(
                    path, f"{name!r} is a {point.kind} point; name {article} {kind} point{extra}"
                )
            )
            return None
        return found[1]

    def meter(self, name: str, path: Path) -> None:
        found = self.points.get(name)
        if found is None:
            self.problems.append(
                TableProblem(path, f"no point named {name!r}{hint(name, self.points)}")
            )
            return
        point_path, point = found
        energy = isinstance(point, CounterDef | MeasurementDef) and point.unit in ("Wh", "kWh")
        if not energy:
            self.problems.append(
                TableProblem(path, "the meter must be a counter or measurement in Wh or kWh")
            )
        elif point_path[0] != "connectors":
            self.problems.append(
                TableProblem(path, "the meter must be a connector's point, not the charger's")
            )
