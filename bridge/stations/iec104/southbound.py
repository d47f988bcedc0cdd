"""The 104 side of a station core: what the charger's link tells the core, and what the core asks of it.

The north side of a 104 station is an OCPP-J websocket (`bridge.effects.Send` frames); the south side is
not. The 104 session (`bridge.stations.iec104.session`, fed bytes by `adapters.iec104.link`) turns the charger's
ASDUs into the typed events below and hands them to the core (`Station104.handle_link_event`); the
core asks for 104 traffic with the two effects below, which the session carries out.

Rules
- Values arrive as plain Python values: single points as bool, double
  points as their state number (0 intermediate, 1 off, 2 on, 3 indeterminate), normalized measurements
  as float (−1..+1), scaled measurements as int, float measurements as float, integrated totals as int.
- `quality` names the IEC 60870-5-101 quality flags that are set (`Invalid`, `NonTopical`,
  `Substituted`, `Blocked`, `Overflow`; counters: `Invalid`, `Carry`, `Adjusted`). An empty set is good.
- `timestamp` is the point's time tag as seconds since the epoch (UTC), already read in the station's
  time zone by the session; None when the ASDU type carries no CP56Time2a time tag.
- An ASDU of a type the codec does not know (private types 128–255 included) arrives as `RawAsdu`
  with its objects' bytes undecoded, for a table to map.
- Every `Send104Command` is answered exactly once by a `CommandConfirmed` with the same `command_id`:
  positive on a positive ACT_CON (and ACT_TERM when the table expects it), negative on a negative
  confirmation, a timeout, a lost link or a command the adapter cannot send; `detail` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

from bridge.effects import KindEffect
from bridge.stations.iec104.vocabulary import TypeId

PointValue = bool | int | float

QUALITY_FLAGS: Final = ("Invalid", "NonTopical", "Substituted", "Blocked", "Overflow", "Carry")
_NO_FLAGS: frozenset[str] = frozenset()


class PointUpdate(NamedTuple):
    """One information object as received (spontaneous, interrogated or requested).

    A NamedTuple, not a dataclass: the session builds one per point received, the hottest path of a
    104 station (a tuple is built about 5 times faster).
    """

    ioa: int
    type_id: str
    value: PointValue | None
    quality: frozenset[str] = _NO_FLAGS
    timestamp: float | None = None

    @property
    def invalid(self) -> bool:
        return "Invalid" in self.quality


@dataclass(frozen=True, slots=True)
class CommandConfirmed:
    """The outcome of one `Send104Command`."""

    command_id: int
    ioa: int
    positive: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LinkUp:
    """The connection is open and unmuted: monitoring data flows from now on."""


@dataclass(frozen=True, slots=True)
class LinkDown:
    reason: str = ""


class RawAsdu(NamedTuple):
    """An ASDU the codec does not decode: its data unit identifier and its objects' bytes."""

    type_id: int
    cot: int
    common_address: int
    number: int  # the VSQ's number of objects
    sequence: bool
    objects: bytes
    negative: bool = False
    test: bool = False
    connection: int = 0  # which of the session's connections it came on (answers go back there)


LinkEvent = PointUpdate | CommandConfirmed | LinkUp | LinkDown | RawAsdu


@dataclass(frozen=True, slots=True)
class Send104Command(KindEffect):
    """Send a command (C_SC/C_DC/C_RP) or a setpoint (C_SE) to the charger and report the outcome.

    `value`: True/False for single and double commands (on/off), the qualifier (1..255) for C_RP_NA_1,
    the value on the wire for setpoints (normalized −1..+1, scaled int, or float). `select`: select
    before execute. `purpose` says why, for logs. `deadline` (monotonic, the core's `now`): a command
    that could not leave before then is not sent at all and is answered negatively, because the CSMS
    request it serves was answered meanwhile (a charger must not carry out a start or a stop the CSMS
    was told was rejected); None: send however late.
    """

    command_id: int
    ioa: int
    type_id: TypeId
    value: PointValue
    select: bool = False
    qualifier: str = "none"
    purpose: str = ""
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class Interrogate104(KindEffect):
    """Ask the charger for its values now: integrated totals (`counters`) or a general interrogation."""

    counters: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Send104Private(KindEffect):
    """Send a private ASDU (a vendor table's): one information object, `objects` being its IOA and
    data as the table lays them out; the session adds the data unit identifier. No confirmation is
    tracked: these are answers to the charger (authorization, settlement acknowledgement)."""

    type_id: int
    cot: int
    objects: bytes
    purpose: str = ""
    common_address: int | None = None  # a connector's own address; None: the station's
    connection: int = 0  # the connection the request it answers came on; 0: whichever is current


SouthEffect = Send104Command | Interrogate104 | Send104Private
