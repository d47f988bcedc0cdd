"""What a station core asks its adapter to do: the whole interface between the two layers.

Rules
- A core (`StationCore`) never performs I/O. It appends effects; the adapter drains them with `effects()` and carries them
  out in order: `Send` writes a text frame, `Close` closes that side's connection, `Report` logs a
  diagnostic (bound with the station id, side and protocol version) and counts it, `Persist` writes
  durable state before anything after it is carried out.
- The set is open: a station kind whose charger does not speak OCPP-J over a WebSocket (IEC 104) has
  effects of its own, subclasses of `KindEffect` (`bridge.stations.iec104.southbound`). The driver hands those,
  in order and after the `Persist` runs before them are committed, to the station kind's adapter
  (`adapters.translated.StationKind.handle`); it knows nothing else of them.
- `Side.SOUTH` is the charger-facing connection, `Side.NORTH` the CSMS-facing one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.ocppj.rpc import Diagnostic


class Side(enum.Enum):
    SOUTH = "south"
    NORTH = "north"

    # Members are singletons compared by identity: an identity hash is consistent with that and
    # costs no Python call (Enum's own hashes the name: measurable on every frame, as a dict key).
    __hash__ = object.__hash__

    @property
    def other(self) -> Side:
        return Side.NORTH if self is Side.SOUTH else Side.SOUTH


# WebSocket close codes (RFC 6455 §7.4.1) the cores use.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TRY_AGAIN_LATER = 1013


@dataclass(frozen=True, slots=True)
class Send:
    side: Side
    frame: str


@dataclass(frozen=True, slots=True)
class Close:
    side: Side
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Report:
    side: Side
    diagnostic: Diagnostic


JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Persist:
    """Write `value` under (`table`, `key`) of this station's durable state; None deletes it.

    The adapter makes every run of consecutive `Persist` effects durable (one atomic, fsync'd commit;
    `Report` effects between them do not end the run) before it carries out any effect that follows
    them: a frame that acknowledges something to a peer is only sent once what it acknowledges is on
    disk.
    """

    table: str
    key: str
    value: JsonValue | None


class KindEffect:
    """Base of the effects only one station kind has (module rules): its adapter carries them out.

    Subclasses are frozen dataclasses with slots, as the shared effects are."""

    __slots__ = ()


Effect = Send | Close | Report | Persist | KindEffect


class StationCore(Protocol):
    """What the adapters' driver needs from a station core (sans-I/O, in the spirit of aioquic).

    Every input carries the time it happened twice: `now` (monotonic seconds, for deadlines) and
    `wall` (seconds since the epoch, UTC, for timestamps and wall-clock validity). The adapter reads
    both clocks at the same place; the core reads neither.
    """

    def connection_made(self, side: Side, now: float, wall: float) -> None:
        """`side`'s connection is up (the driver calls it before serving the connection)."""
        ...

    def receive(self, side: Side, data: str | bytes, now: float, wall: float) -> None:
        """A message arrived on `side`. Never raises on peer input."""
        ...

    def connection_lost(self, side: Side, now: float, wall: float) -> None:
        """`side`'s connection ended."""
        ...

    def handle_timer(self, now: float, wall: float) -> None:
        """Called at (or after) `next_deadline()`."""
        ...

    def next_deadline(self) -> float | None:
        """When the core next needs `handle_timer`, or None."""
        ...

    def effects(self) -> list[Effect]:
        """Drain what to do, in order."""
        ...
