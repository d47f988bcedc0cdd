"""A mapping table compiled for one charger with N connectors: frozen lookups for the station core.

```python
table = compile_table(validate_table(data), connectors=2)
table.monitoring[0x0023]                       # StatusRule: connector 1 'charging'
table.command("RequestStartTransaction", 1)    # CommandTarget(ioa=0x6001, type_id=C_SC_NA_1, value='on')
table.setpoint(1, "A")                         # SetpointRule at 0x6202, C_SE_NC_1
table.logic_for(2).connector_status(values)    # 'Occupied'
table.private_in[130, 0x7001]                  # PrivateRule 'card_request' (bridge.stations.iec104.private)
table.registration.parse(buffer)               # NeedMore | Registered | RegistrationError
asdu_format(table)                             # AsduFormat(cot_size=2, ca_size=2, ioa_size=3)
```

Rules
- Compiling re-runs the table's cross-checks and places every point for exactly `connectors`
  connectors (1..max_count): a table that compiles has no IOA beyond 0xFFFFFF and no IOA used twice.
- Lookups are read-only mappings: IOA → monitoring rule, IOA → control rule, (action, connector) →
  command, (connector, rate unit) → setpoint; connector None is the charger as a whole.
- Point names in derived rules resolve to the connector's own copy of a block point, else to the
  charger-level point of that name.
- Private ASDUs compile for the same `connectors`: `private` by name, `private_in` by (type id, IOA)
  for every connector's IOA (in ASDUs only; out ASDUs are found by name, from their meaning's
  `answer` or the tariff's component). `connector_addresses` is `station.common_addresses` for the
  station's connectors (a table that gives them must give one per connector), else empty.
- `points()` lists every rule by IOA, each with its meaning and OCPP target in words (`explain`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bridge.stations.iec104 import conditions as c
from bridge.stations.iec104.addresses import Placement, place_points
from bridge.stations.iec104.asdu import AsduFormat
from bridge.stations.iec104.checks import check_table
from bridge.stations.iec104.frame_checks import (
    build_layout,
    frame_address_problems,
    layout_size,
    max_payload,
)
from bridge.stations.iec104.frames import (
    AnyMeaning,
    AuthorizeAnswerMeaning,
    AuthorizeMeaning,
    IoaBlock,
    SettlementAckMeaning,
    SettlementMeaning,
    hex_to_bytes,
)
from bridge.stations.iec104.logic import (
    Always,
    Between,
    Conjunction,
    ConnectorLogic,
    Disjunction,
    HasCode,
    IsOn,
    Negation,
    Test,
    TransactionLogic,
    WasAccepted,
)
from bridge.stations.iec104.model import Identity, LinkOptions, MappingTable, StationOptions
from bridge.stations.iec104.points import (
    AnyPoint,
    CommandDef,
    CounterDef,
    DeviceVariable,
    EnumDef,
    MeasurementDef,
    SetpointDef,
    StatusDef,
)
from bridge.stations.iec104.private import (
    Amount,
    Authorize,
    AuthorizeAnswer,
    Layout,
    Meaning,
    MeterReading,
    PrivateRule,
    Settlement,
    SettlementAck,
    StopReasonCodes,
    Tariff,
)
from bridge.stations.iec104.problems import TableError, TableProblem
from bridge.stations.iec104.registration import RegistrationSpec
from bridge.stations.iec104.rules import (
    CommandRule,
    CommandTarget,
    ControlRule,
    CounterRule,
    EnumRule,
    MeasurementRule,
    MonitoringRule,
    PointRule,
    SetpointRule,
    StatusRule,
)
from bridge.stations.iec104.vocabulary import CommandAction, RateUnit


@dataclass(frozen=True, slots=True)
class CompiledTable:
    description: str | None
    connectors: int
    station: StationOptions
    identity: Identity
    monitoring: Mapping[int, MonitoringRule]
    controls: Mapping[int, ControlRule]
    commands: Mapping[tuple[CommandAction, int | None], CommandTarget]
    setpoints: Mapping[tuple[int | None, RateUnit], SetpointRule]
    logic: tuple[ConnectorLogic, ...]
    readers: Mapping[int, tuple[int, ...]]
    """IOA → the connectors whose derived rules read it."""
    link: LinkOptions = field(default_factory=LinkOptions)
    registration: RegistrationSpec | None = None
    """The frame the charger sends on connect before STARTDT, if the table declares one."""
    private: Mapping[str, PrivateRule] = field(default_factory=lambda: MappingProxyType({}))
    """Every private ASDU by name (in and out)."""
    private_in: Mapping[tuple[int, int], PrivateRule] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """(type id, IOA) → the in private ASDU, for every IOA of the station's connectors."""
    connector_addresses: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    """connector → its own common address (`station.common_addresses`); empty: one address for all."""

    def connector_at(self, common_address: int) -> int | None:
        """The connector with this common address (`connector_addresses`), if any."""
        for connector, address in self.connector_addresses.items():
            if address == common_address:
                return connector
        return None

    def points(self) -> Iterator[PointRule]:
        """Every rule, by IOA."""
        rules: dict[int, PointRule] = {**self.monitoring, **self.controls}
        for ioa in sorted(rules):
            yield rules[ioa]

    def rule_at(self, ioa: int) -> PointRule | None:
        return self.monitoring.get(ioa) or self.controls.get(ioa)

    def command(self, action: CommandAction, connector: int | None) -> CommandTarget | None:
        return self.commands.get((action, connector))

    def setpoint(self, connector: int | None, rate_unit: RateUnit) -> SetpointRule | None:
        return self.setpoints.get((connector, rate_unit))

    def logic_for(self, connector: int) -> ConnectorLogic:
        if not 1 <= connector <= self.connectors:
            raise KeyError(f"connector {connector} is not 1..{self.connectors}")
        return self.logic[connector - 1]


def compile_table(table: MappingTable, connectors: int | None = None) -> CompiledTable:
    """Place and resolve every point for `connectors` (default: max_count). Raises TableError."""
    count = table.connectors.max_count if connectors is None else connectors
    problems = check_table(table)
    if not 1 <= count <= table.connectors.max_count:
        problems.append(
            TableProblem(
                ("connectors", "max_count"),
                f"the station has {count} connectors; this table describes 1 to"
                f" {table.connectors.max_count}",
            )
        )
    if problems:
        raise TableError(problems)
    addresses = table.station.common_addresses
    if addresses is not None and count > len(addresses):
        problems.append(
            TableProblem(
                ("station", "common_addresses"),
                f"the station has {count} connectors; common addresses are given for"
                f" {len(addresses)}",
            )
        )
        raise TableError(problems)
    placements, address_problems = place_points(table, count)
    address_problems += frame_address_problems(table, placements, count)
    if address_problems:
        raise TableError(address_problems)
    return _Compiler(table, count, placements).build()


class _Compiler:
    def __init__(self, table: MappingTable, count: int, placements: list[Placement]) -> None:
        self.table = table
        self.count = count
        self.placements = placements
        self.ioas = {(p.key, p.connector): p.ioa for p in placements}
        self.uses = _uses(table)

    def build(self) -> CompiledTable:
        monitoring: dict[int, MonitoringRule] = {}
        controls: dict[int, ControlRule] = {}
        commands: dict[tuple[CommandAction, int | None], CommandTarget] = {}
        setpoints: dict[tuple[int | None, RateUnit], SetpointRule] = {}
        for placement in self.placements:
            rule = self.rule(placement)
            if isinstance(rule, CommandRule):
                controls[rule.ioa] = rule
                for action, value in rule.actions.items():
                    commands[action, rule.connector] = CommandTarget(
                        action,
                        rule.connector,
                        rule.ioa,
                        rule.type_id,
                        value,
                        rule.qualifier,
                        rule.mode,
                        rule.key,
                    )
            elif isinstance(rule, SetpointRule):
                controls[rule.ioa] = rule
                setpoints[rule.connector, rule.rate_unit] = rule
            else:
                monitoring[rule.ioa] = rule
        connector_logic = tuple(self.connector_logic(n) for n in range(1, self.count + 1))
        private = private_rules(self.table, self.count)
        private_in = {
            (rule.type_id, ioa): rule
            for rule in private.values()
            if rule.direction == "in"
            for ioa in rule.ioas()
        }
        readers: dict[int, list[int]] = {}
        for item in connector_logic:
            for ioa in sorted(item.inputs()):
                readers.setdefault(ioa, []).append(item.connector)
        return CompiledTable(
            description=self.table.description,
            connectors=self.count,
            station=self.table.station,
            identity=self.table.identity,
            monitoring=MappingProxyType(monitoring),
            controls=MappingProxyType(controls),
            commands=MappingProxyType(commands),
            setpoints=MappingProxyType(setpoints),
            logic=connector_logic,
            readers=MappingProxyType({ioa: tuple(found) for ioa, found in readers.items()}),
            link=self.table.link,
            registration=registration_spec(self.table),
            private=MappingProxyType(private),
            private_in=MappingProxyType(private_in),
            connector_addresses=MappingProxyType(
                {
                    n: ca
                    for n, ca in (self.table.station.common_addresses or {}).items()
                    if n <= self.count
                }
            ),
        )

    def rule(self, placement: Placement) -> PointRule:
        point = placement.point
        common: dict[str, Any] = {
            "ioa": placement.ioa,
            "type_id": point.type,
            "key": placement.key,
            "connector": placement.connector,
            "meaning": point.description or placement.key.replace("_", " "),
            "target": self.target(placement.key, point, placement.connector),
        }
        mode = getattr(point, "mode", None) or self.table.station.command_mode
        if isinstance(point, StatusDef):
            return StatusRule(**common, invert=point.invert, report=point.report)
        if isinstance(point, MeasurementDef):
            return MeasurementRule(
                **common,
                scale=point.scale,
                offset=point.offset,
                unit=point.unit,
                measurand=point.measurand,
                phase=point.phase,
                location=point.location,
                report=point.report,
            )
        if isinstance(point, EnumDef):
            return EnumRule(
                **common, values=MappingProxyType(dict(point.values)), report=point.report
            )
        if isinstance(point, CounterDef):
            return CounterRule(
                **common,
                scale=point.scale,
                unit=point.unit,
                measurand=point.measurand,
                report=point.report,
            )
        if isinstance(point, CommandDef):
            return CommandRule(
                **common,
                actions=MappingProxyType(dict(point.actions)),
                qualifier=point.qualifier,
                mode=mode,
            )
        assert isinstance(point, SetpointDef)
        return SetpointRule(
            **common,
            unit=point.unit,
            scale=point.scale,
            full_scale=point.full_scale,
            minimum=point.minimum,
            maximum=point.maximum,
            mode=mode,
        )

    def target(self, key: str, point: AnyPoint, connector: int | None) -> str:
        parts: list[str] = []
        if isinstance(point, MeasurementDef | CounterDef) and point.measurand is not None:
            phase = f" {point.phase}" if isinstance(point, MeasurementDef) and point.phase else ""
            unit = f" [{point.unit}]" if point.unit else ""
            parts.append(f"MeterValues {point.measurand}{phase}{unit}")
        if isinstance(point, CommandDef):
            parts.extend(f"{action} → {value}" for action, value in point.actions.items())
        if isinstance(point, SetpointDef):
            rate = "A" if point.unit == "A" else "W"
            scope = "ChargingStationMaxProfile" if connector is None else f"EVSE {connector}"
            parts.append(f"SetChargingProfile limit ({rate}), {scope}")
        parts.extend(self.uses.get(key, []))
        report = getattr(point, "report", None)
        if isinstance(report, DeviceVariable):
            instance = f"[{report.instance}]" if report.instance else ""
            parts.append(f"NotifyEvent {report.component}.{report.variable}{instance}")
        return "; ".join(parts) if parts else "— (informational)"

    def connector_logic(self, connector: int) -> ConnectorLogic:
        rules = self.table.rules
        transaction = None
        if rules.transaction is not None:
            meter = rules.transaction.meter
            transaction = TransactionLogic(
                starts_when=self.test(rules.transaction.starts_when, connector),
                ends=tuple(
                    (self.test(end.when, connector), end.reason) for end in rules.transaction.ends
                ),
                meter_ioa=None if meter is None else self.ioa(meter, connector),
            )
        return ConnectorLogic(
            connector=connector,
            status_rules=tuple(
                (rule.status, self.test(rule.when, connector)) for rule in rules.connector_status
            ),
            charging_state_rules=tuple(
                (rule.state, self.test(rule.when, connector)) for rule in rules.charging_state
            ),
            transaction=transaction,
        )

    def ioa(self, name: str, connector: int) -> int:
        found = self.ioas.get((name, connector))
        return self.ioas[name, None] if found is None else found

    def test(self, condition: Any, connector: int) -> Test:
        if condition is None:
            return Always()
        if isinstance(condition, str):
            return IsOn(self.ioa(condition, connector))
        if isinstance(condition, c.AllOf):
            return Conjunction(tuple(self.test(part, connector) for part in condition.all_))
        if isinstance(condition, c.AnyOf):
            return Disjunction(tuple(self.test(part, connector) for part in condition.any_))
        if isinstance(condition, c.Not):
            return Negation(self.test(condition.not_, connector))
        if isinstance(condition, c.EnumIn):
            point = self._enum(condition.enum)
            codes = frozenset(code for code, name in point.values.items() if name in condition.in_)
            return HasCode(self.ioa(condition.enum, connector), codes)
        if isinstance(condition, c.InRange):
            ioa = self.ioa(condition.measurement, connector)
            return Between(ioa, condition.above, condition.below)
        assert isinstance(condition, c.CommandAccepted)
        return WasAccepted(condition.command_accepted)

    def _enum(self, name: str) -> EnumDef:
        for placement in self.placements:
            if placement.key == name and isinstance(placement.point, EnumDef):
                return placement.point
        raise AssertionError(name)  # check_table guarantees the enum exists


def asdu_format(table: CompiledTable) -> AsduFormat:
    """The ASDU field sizes of the table's link (`link.cot_size`, `ca_size`, `ioa_size`)."""
    link = table.link
    return AsduFormat(link.cot_size, link.ca_size, link.ioa_size)


def registration_spec(table: MappingTable) -> RegistrationSpec | None:
    """The compiled registration of a checked table."""
    definition = table.registration
    if definition is None:
        return None
    specs, _ = build_layout(definition.fields, ("registration", "fields"), registration=True)
    checksum = definition.checksum
    length = definition.length
    return RegistrationSpec(
        start=hex_to_bytes(definition.start),
        length_size=length.size,
        length_endian=length.endian,
        length_counts=length.counts,
        fields=specs,
        checksum=checksum.rule,
        checksum_over=checksum.over,
        checksum_endian=checksum.endian,
        id_field=definition.id,
        accepted=hex_to_bytes(definition.accepted),
        refused=hex_to_bytes(definition.refused),
        max_payload=max_payload(definition),
    )


def private_rules(table: MappingTable, connectors: int) -> dict[str, PrivateRule]:
    """The compiled private ASDUs of a checked table, by name, for `connectors` connectors."""
    rules: dict[str, PrivateRule] = {}
    for name, definition in table.private_asdus.items():
        specs, _ = build_layout(definition.fields, ("private_asdus", name, "fields"))
        ioa = definition.ioa
        base, stride = (ioa.base, ioa.stride) if isinstance(ioa, IoaBlock) else (ioa, None)
        rules[name] = PrivateRule(
            name=name,
            type_id=definition.type,
            direction=definition.direction,
            cot=definition.cot,
            base=base,
            stride=stride,
            connectors=connectors,
            layout=Layout(specs, layout_size(specs)),
            meaning=_meaning(definition.meaning),
            description=definition.description,
        )
    return rules


def _meaning(meaning: AnyMeaning) -> Meaning:
    if isinstance(meaning, AuthorizeMeaning):
        return Authorize(meaning.id_token, meaning.id_token_type, meaning.answer, meaning.offline)
    if isinstance(meaning, AuthorizeAnswerMeaning):
        return AuthorizeAnswer(
            meaning.result,
            MappingProxyType({str(k): v for k, v in meaning.codes.items()}),
            meaning.default,
            meaning.balance,
        )
    if isinstance(meaning, SettlementMeaning):
        reason = meaning.stop_reason
        amount = meaning.amount
        return Settlement(
            id_token=meaning.id_token,
            id_token_type=meaning.id_token_type,
            started_at=meaning.started_at,
            ended_at=meaning.ended_at,
            meter_start=MeterReading(meaning.meter_start.field, meaning.meter_start.wh_per_count),
            meter_stop=MeterReading(meaning.meter_stop.field, meaning.meter_stop.wh_per_count),
            amount=None if amount is None else Amount(amount.field, amount.scale),
            stop_reason=None
            if reason is None
            else StopReasonCodes(
                reason.field, MappingProxyType(dict(reason.codes)), reason.default
            ),
            answer=meaning.answer,
            answer_values=MappingProxyType(dict(meaning.answer_values)),
            wins=meaning.wins,
        )
    if isinstance(meaning, SettlementAckMeaning):
        return SettlementAck(meaning.result)
    return Tariff(
        meaning.component, MappingProxyType(dict(meaning.variables)), meaning.confirmation
    )


def condition_names(condition: Any) -> Iterator[str]:
    """Every point name a model condition reads."""
    if isinstance(condition, str):
        yield condition
    elif isinstance(condition, c.AllOf | c.AnyOf):
        for part in condition.all_ if isinstance(condition, c.AllOf) else condition.any_:
            yield from condition_names(part)
    elif isinstance(condition, c.Not):
        yield from condition_names(condition.not_)
    elif isinstance(condition, c.EnumIn):
        yield condition.enum
    elif isinstance(condition, c.InRange):
        yield condition.measurement


def _uses(table: MappingTable) -> dict[str, list[str]]:
    """Point name → what its value feeds through the derived rules, in words."""
    grouped: dict[str, dict[str, list[str]]] = {}

    def add(condition: Any, heading: str, detail: str) -> None:
        for name in condition_names(condition):
            details = grouped.setdefault(name, {}).setdefault(heading, [])
            if detail and detail not in details:
                details.append(detail)

    rules = table.rules
    for status_rule in rules.connector_status:
        add(status_rule.when, "StatusNotification", status_rule.status)
    for state_rule in rules.charging_state:
        add(state_rule.when, "chargingState", state_rule.state)
    if rules.transaction is not None:
        add(rules.transaction.starts_when, "transaction start", "")
        for end in rules.transaction.ends:
            add(end.when, "transaction end", end.reason)
        if rules.transaction.meter is not None:
            add(rules.transaction.meter, "meter value at transaction start and end", "")
    return {
        name: [
            f"{heading} ({', '.join(details)})" if details else heading
            for heading, details in uses.items()
        ]
        for name, uses in grouped.items()
    }
