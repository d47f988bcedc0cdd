"""Conditions of the derived rules: when a connector is Faulted, when a transaction starts or ends.

A condition is written in YAML as one of
- a point name: `plug_connected` is true while that status point is on (after `invert`);
- `{all: [c1, c2, ...]}`, `{any: [...]}`, `{not: c}`;
- `{enum: work_status, in: [charging, finished]}`: an enum point holds one of the named values;
- `{measurement: output_current, above: 1.0, below: 500}`: a measurement (after scale and offset, in its
  unit) lies strictly between the bounds; give at least one;
- `{command_accepted: RequestStartTransaction}`: that command was confirmed positively by the charger
  on this connector and the transaction it asked for has not ended yet.

Rules
- The union is discriminated by which key the mapping holds (a callable discriminator), so a mistake is
  reported against the branch the author meant, never as "none of six alternatives matched".
- Points named in connector rules are the connector's own points or charger-level points; names are
  checked against the table in `bridge.stations.iec104.checks`, not here (a condition alone cannot know them).
- Evaluation is three-valued (see `bridge.stations.iec104.logic`): a point never received, or a double point in
  its intermediate or indeterminate state, is unknown, and a rule whose condition is unknown does not match.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag
from pydantic import model_validator as _model_validator

from bridge.stations.iec104.vocabulary import COMMAND_ACTIONS, CommandAction, one_of
from bridge.stations.iec104.vocabulary import hint as _hint

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
_NAME_RULE = "lower_snake_case: a-z, 0-9 and _, starting with a letter, at most 64 characters"


def check_name(value: object) -> object:
    """Point, block and enum-value names: lower_snake_case, so they read the same in YAML and rules."""
    if isinstance(value, str):
        ok = 0 < len(value) <= 64 and value[0].isascii() and value[0].islower()
        ok = ok and all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in value)
        if not ok:
            raise ValueError(f"{value!r} is not a valid name: {_NAME_RULE}")
    return value


def _known_action(value: object) -> object:
    if isinstance(value, str) and value not in COMMAND_ACTIONS:
        raise ValueError(one_of(value, COMMAND_ACTIONS, "command action"))
    return value


Name = Annotated[str, BeforeValidator(check_name), Field(pattern=NAME_PATTERN, max_length=64)]
Action = Annotated[CommandAction, BeforeValidator(_known_action)]


class StrictModel(BaseModel):
    """Every model of the language: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AllOf(StrictModel):
    all_: list[Condition] = Field(alias="all", min_length=1, description="true when all are true")


class AnyOf(StrictModel):
    any_: list[Condition] = Field(alias="any", min_length=1, description="true when one is true")


class Not(StrictModel):
    not_: Condition = Field(alias="not", description="true when the condition is false")


class EnumIn(StrictModel):
    enum: Name = Field(description="an enum point")
    in_: list[Name] = Field(alias="in", min_length=1, description="names of its values")


class InRange(StrictModel):
    measurement: Name = Field(description="a measurement point")
    above: float | None = Field(None, description="true when the value is greater than this")
    below: float | None = Field(None, description="true when the value is less than this")

    @_model_validator(mode="after")
    def _bounded(self) -> InRange:
        if self.above is None and self.below is None:
            raise ValueError("give `above`, `below` or both")
        if self.above is not None and self.below is not None and self.above >= self.below:
            raise ValueError(f"`above` ({self.above}) must be less than `below` ({self.below})")
        return self


class CommandAccepted(StrictModel):
    command_accepted: Action = Field(
        description="true from the charger's positive confirmation of this command on the connector"
        " until the transaction ends"
    )


_TAGS = {
    "all": "all-of",
    "any": "any-of",
    "not": "not-of",
    "enum": "enum-in",
    "measurement": "in-range",
    "command_accepted": "command-accepted",
}
# Tags never equal a key of the YAML (they contain a '-'), so error locations can drop them.
CONDITION_TAGS = frozenset({"point", *_TAGS.values()})
_CONDITION_SHAPES = "a point name or a mapping with one of the keys " + ", ".join(_TAGS)


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "point"
    if isinstance(value, dict):
        for key, tag in _TAGS.items():
            if key in value:
                return tag
        return None
    for tag, model in _MODELS.items():
        if isinstance(value, model):
            return tag
    return None


Condition = Annotated[
    Annotated[Name, Tag("point")]
    | Annotated[AllOf, Tag("all-of")]
    | Annotated[AnyOf, Tag("any-of")]
    | Annotated[Not, Tag("not-of")]
    | Annotated[EnumIn, Tag("enum-in")]
    | Annotated[InRange, Tag("in-range")]
    | Annotated[CommandAccepted, Tag("command-accepted")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition",
        custom_error_message=f"a condition is {_CONDITION_SHAPES}",
    ),
]

_MODELS: dict[str, type[StrictModel]] = {
    "all-of": AllOf,
    "any-of": AnyOf,
    "not-of": Not,
    "enum-in": EnumIn,
    "in-range": InRange,
    "command-accepted": CommandAccepted,
}

for _model in _MODELS.values():
    _model.model_rebuild()


def unknown_condition_key(mapping: dict[str, Any]) -> str:
    """A hint for a condition mapping without a known key (used when reporting the error)."""
    keys = [str(key) for key in mapping]
    for key in keys:
        suggestion = _hint(key, _TAGS)
        if suggestion:
            return f"unknown condition key {key!r}{suggestion}"
    return f"a condition is {_CONDITION_SHAPES}"
