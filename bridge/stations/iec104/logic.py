"""Compiled derived rules: conditions over IOAs, evaluated against a station core's current values.

A station core keeps one decoded value per IOA (`StatusRule.decode`, `MeasurementRule.convert`, the raw
code of an enum point) and the set of command actions the charger confirmed on each connector. After a
point changes it re-evaluates the `ConnectorLogic` of every connector that reads the point
(`CompiledTable.readers`) and acts on what changed: a new connector status → StatusNotification, a new
charging state → TransactionEvent Updated, `starts()` turning true → TransactionEvent Started…

Rules
- Evaluation is three-valued (Kleene): an IOA missing from `values` (never received, invalid, a double
  point between states) is unknown (None). `not` of unknown is unknown; `all` is false if any part is
  false, else unknown if any part is unknown; `any` is true if any part is true, else unknown if any is.
- Ordered rules (connector status, charging state) are read top down: a true condition gives the result,
  a false one passes to the next rule, an unknown one makes the result unknown (None), because the rule
  might have matched. On None (and when no rule matches) the core keeps what it reported last: a
  charger whose emergency-stop point has not arrived yet is not reported Available.
- End rules: the first true one ends the transaction and gives the reason; unknown ones are passed over
  (the transaction ends for sure once any rule is true).
- Edges are the core's business: a transaction starts when `starts()` becomes true (it was not true
  before), and ends at the first end rule that becomes true; these objects hold no state.
- Pure and immutable: nothing here reads a clock or remembers an evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Protocol, TypeVar

from bridge.stations.iec104.vocabulary import (
    ChargingState,
    CommandAction,
    ConnectorStatus,
    StopReason,
)

Value = bool | int | float
Values = Mapping[int, Value]
Accepted = Set[CommandAction]
_NONE: frozenset[CommandAction] = frozenset()
_R = TypeVar("_R")


class Test(Protocol):
    def evaluate(self, values: Values, accepted: Accepted = _NONE) -> bool | None: ...

    def inputs(self) -> frozenset[int]:
        """The IOAs this test reads."""
        ...


@dataclass(frozen=True, slots=True)
class Always:
    def evaluate(self, values: Values, accepted: Accepted = _NONE) -> bool | None:
        return True

    def inputs(self) -> frozenset[int]:
        return frozenset()


@dataclass(frozen=True, slots=True)
class IsOn:
    """A status point is on (its decoded value is True)."""

    ioa: int

    def evaluate(self, values: Values, accepted: Accepted = _NONE) -> bool | None:
        value = values.get(self.ioa)
        return None if value is None else bool(value)

    def inputs(self) -> frozenset[int]:
        return frozenset({self.ioa})


@dataclass(frozen=True, slots=True)
class Negation:
    part: Test

    def evaluate(self, values: Values, accepted: Accepted = _NONE) -> bool | None:
        result = self.part.evaluate(values, accepted)
        return None if result is None else not result

    def inputs(self) -> frozenset[int]:
        return self.part.inputs()


@dataclass(frozen=True, slots=True)
class Conjunction:
    parts: tuple[Test, ...]

    def evaluate(self, values: Values, accepted: Accepted = _NONE) -> bool | None:
        results = [part.evaluate(values, accepted) for part in self.parts]
        if False in results:
            return False
        return None if None in results else True

    def inputs(self) -> frozenset[int]:
        return frozenset().union(*(part.inputs() for part in self.parts))


@dataclass(frozen=True, slots=True)
class Disjunction:
    parts: tuple[Test, ...]

    def evaluate(self, values: Values, accepted: Accepted = _NONE) -> bool | None:
        results = [part.evaluate(values, accepted) for part in self.parts]
        if True in results:
            return True
        return None if None in results else False

    def inputs(self) -> frozenset[int]:
        return frozenset().union(*(part.inputs() for part in self.parts))


@dataclass(frozen=True, slots=True)
class HasCode:
    """An enum point holds one of `codes` (raw values)."""

    ioa: int
    codes: frozenset[int]

    def evaluate(self, values: Values, accepted: Accepted = _NONE) -> bool | None:
        value = values.get(self.ioa)
        if value is None:
            return None
        # enums arrive as scaled or float measurements: 3.0 is code 3, 3.5 is no code
        return float(value).is_integer() and int(value) in self.codes

    def inputs(self) -> frozenset[int]:
        return frozenset({self.ioa})


@dataclass(frozen=True, slots=True)
class Between:
    """A measurement (converted to its OCPP unit) lies strictly between `above` and `below`."""

    ioa: int
    above: float | None
    below: float | None

    def evaluate(self, values: Values, accepted: Accepted = _NONE) -> bool | None:
        value = values.get(self.ioa)
        if value is None:
            return None
        low_ok = self.above is None or value > self.above
        high_ok = self.below is None or value < self.below
        return low_ok and high_ok

    def inputs(self) -> frozenset[int]:
        return frozenset({self.ioa})


@dataclass(frozen=True, slots=True)
class WasAccepted:
    """The charger confirmed this command on the connector (the core tracks and clears that)."""

    action: CommandAction

    def evaluate(self, values: Values, accepted: Accepted = _NONE) -> bool | None:
        return self.action in accepted

    def inputs(self) -> frozenset[int]:
        return frozenset()


@dataclass(frozen=True, slots=True)
class TransactionLogic:
    starts_when: Test
    ends: tuple[tuple[Test, StopReason], ...]
    meter_ioa: int | None

    def starts(self, values: Values, accepted: Accepted = _NONE) -> bool:
        return self.starts_when.evaluate(values, accepted) is True

    def end_reason(self, values: Values, accepted: Accepted = _NONE) -> StopReason | None:
        """The reason of the first end rule that is true, or None while the transaction goes on."""
        for test, reason in self.ends:
            if test.evaluate(values, accepted) is True:
                return reason
        return None


@dataclass(frozen=True, slots=True)
class ConnectorLogic:
    """The derived rules of one connector, with every point name resolved to an IOA."""

    connector: int
    status_rules: tuple[tuple[ConnectorStatus, Test], ...]
    charging_state_rules: tuple[tuple[ChargingState, Test], ...]
    transaction: TransactionLogic | None

    def connector_status(
        self, values: Values, accepted: Accepted = _NONE
    ) -> ConnectorStatus | None:
        return _first(self.status_rules, values, accepted)

    def charging_state(self, values: Values, accepted: Accepted = _NONE) -> ChargingState | None:
        return _first(self.charging_state_rules, values, accepted)

    def inputs(self) -> frozenset[int]:
        """Every IOA the connector's rules read: a change elsewhere cannot change their results."""
        tests: list[Test] = [test for _status, test in self.status_rules]
        tests += [test for _state, test in self.charging_state_rules]
        ioas: set[int] = set()
        if self.transaction is not None:
            tests.append(self.transaction.starts_when)
            tests += [test for test, _reason in self.transaction.ends]
            if self.transaction.meter_ioa is not None:
                ioas.add(self.transaction.meter_ioa)
        for test in tests:
            ioas |= test.inputs()
        return frozenset(ioas)


def _first(rules: tuple[tuple[_R, Test], ...], values: Values, accepted: Accepted) -> _R | None:
    for result, test in rules:
        outcome = test.evaluate(values, accepted)
        if outcome is None:
            return None  # the rule might match: a later one must not be taken for it
        if outcome:
            return result
    return None
