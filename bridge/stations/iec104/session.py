"""One IEC 104 charger's session: the APCI link, the ASDU codec and the 104 control logic, sans-IO.

```python
session = Session104(settings, now=now)
events = session.connection_made(now, wall)   # a TCP connection to the charger is open: STARTDT act
events = session.receive_data(data, now, wall)   # bytes from the charger → LinkEvents for the core
session.command(send104, now); session.interrogate(counters, now)   # the core's SouthEffects
transport.write(session.data_to_send())       # after every call
deadline = session.next_deadline(); events = session.handle_timer(now, wall)
if session.failure: transport.close()         # the link is unusable; its reason says why
events = session.connection_lost(now, "peer closed")
```

This is where the station core (`bridge.stations.iec104.core`, which speaks `LinkEvent`s and `SouthEffect`s,
`bridge.stations.iec104.southbound`) and the link core (`bridge.stations.iec104.apci`, `bridge.stations.iec104.asdu`) meet. The
adapter only moves bytes and calls the timer; time (`now`, monotonic) and wall time (`wall`, seconds
since the epoch, for clock synchronisation) are inputs.

Rules
- The bridge is the controlling station whichever side opened the connection: it sends STARTDT act;
  `LinkUp` follows STARTDT con. With a table that declares a registration frame, STARTDT act waits
  for it (up to t0): a frame with the expected id is answered with the table's `accepted` frame, one
  with another id with `refused` and the link fails (`registration`); a charger that starts with a
  104 frame instead, or sends nothing within t0, gets STARTDT act at once (a notice,
  `registration-missing`, for the latter). A dial-in charger registers with the listener instead. Then, in this order: clock synchronisation (C_CS_NA_1, the table's
  local time with its SU flag, when the table asks for it), a general interrogation (C_IC_NA_1, QOI 20)
  and a counter interrogation (C_CI_NA_1, QCC 5); then a general interrogation every
  `general_interrogation_interval` and a counter interrogation every `counter_interrogation_interval`
  (0: never after the first), and one whenever the core asks (`interrogate`).
- A charger that gives each connector its own common address on one connection
  (`other_addresses`): ASDUs from those addresses are the station's, clock synchronisation and
  interrogations go to every address, and a command goes to the address of its IOA's connector
  (`address_of_ioa`).
- Monitoring ASDUs become `PointUpdate`s (values as `bridge.stations.iec104.southbound` says; time tags read in
  the table's time zone; quality flags by name). An ASDU from a foreign common address is never
  applied: it is dropped with a notice (`foreign-ca`). An ASDU the codec cannot read is dropped with a
  notice naming what and at which byte (`bad-asdu`); a type the codec does not know, private types
  128–255 included, goes to the core as a `RawAsdu` event (which reads a vendor table's private
  ASDUs) and is a notice (`unknown-type`) unless the table declares that type. Notices are rate-limited per
  kind: the first at once, then at most one a minute carrying how many were suppressed.
- Commands: one command per IOA at a time, the others wait in arrival order. A command whose
  `deadline` passed while it waited is not sent (the CSMS was answered already) and is confirmed
  negatively. Direct: ACT_CON decides (and ACT_TERM too when the table expects it). Select-and-execute:
  the select's positive ACT_CON sends the execute, whose ACT_CON (and ACT_TERM when expected) decides.
  A negative ACT_CON/ACT_TERM, or an unknown type/cause/common address/IOA cause (44–47), is
  negative; no decision within the table's `command_timeout` is negative. Every `Send104Command` gets
  exactly one `CommandConfirmed`, also when the link is down or drops meanwhile.
- A link failure (t1, a sequence error, a bad frame, ...) is `failure`; the adapter closes the TCP
  connection and calls `connection_lost`, which reports `LinkDown` with that reason if `LinkUp` was
  reported. After `connection_lost` the session waits for the next `connection_made`.
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from bridge.stations.iec104.apci import (
    ApciLink,
    AsduReceived,
    DataTransferStarted,
    DataTransferStopped,
    LinkFailed,
    LinkParameters,
)
from bridge.stations.iec104.asdu import (
    STANDARD,
    TYPE_IDS,
    TYPE_NAMES,
    Asdu,
    AsduError,
    AsduFormat,
    Cp56,
    InfoObject,
    cp56_from_epoch,
    cp56_to_epoch,
    decode_asdu,
    encode_asdu,
    single_point_reader,
)
from bridge.stations.iec104.registration import (
    NeedMore,
    Registered,
    RegistrationError,
    RegistrationSpec,
)
from bridge.stations.iec104.southbound import (
    CommandConfirmed,
    LinkDown,
    LinkEvent,
    LinkUp,
    PointUpdate,
    RawAsdu,
    Send104Command,
    Send104Private,
)

# Causes of transmission (IEC 60870-5-101 §7.2.3)
COT_SPONTANEOUS: Final = 3
COT_ACTIVATION: Final = 6
COT_ACT_CON: Final = 7
COT_ACT_TERM: Final = 10
COT_UNKNOWN_FIRST: Final = 44  # 44..47: unknown type id, cause, common address, IOA
COT_UNKNOWN_LAST: Final = 47
GLOBAL_ADDRESS: Final = 0xFFFF
QOI_STATION: Final = 20  # general interrogation of the whole station
QCC_GENERAL: Final = 5  # counter interrogation, all groups, read without freeze

_C_IC = TYPE_IDS["C_IC_NA_1"]
_C_CI = TYPE_IDS["C_CI_NA_1"]
_C_CS = TYPE_IDS["C_CS_NA_1"]
_QU: Final = {"none": 0, "short_pulse": 1, "long_pulse": 2, "persistent": 3}
_SELECT: Final = 0x80
_COMMAND_TYPES: Final = frozenset(
    TYPE_IDS[name]
    for name in (
        "C_SC_NA_1",
        "C_DC_NA_1",
        "C_RC_NA_1",
        "C_SE_NA_1",
        "C_SE_NB_1",
        "C_SE_NC_1",
        "C_RP_NA_1",
    )
)
_COUNTER_TYPES: Final = frozenset({TYPE_IDS["M_IT_NA_1"], TYPE_IDS["M_IT_TB_1"]})
# Monitoring types whose time tag is a full CP56Time2a (CP24 tags carry no date: no timestamp).
_MONITORING: Final = frozenset(
    type_id for name, type_id in TYPE_IDS.items() if name.startswith("M_") and name != "M_EI_NA_1"
)
_QUALITY_BITS: Final = ((0x80, "Invalid"), (0x40, "NonTopical"), (0x20, "Substituted"),
                        (0x10, "Blocked"), (0x01, "Overflow"))  # fmt: skip
_COUNTER_BITS: Final = ((0x80, "Invalid"), (0x40, "Adjusted"), (0x20, "Carry"))
NOTICE_INTERVAL: Final = 60.0
_new = tuple.__new__  # a NamedTuple without its Python-level argument handling


class LinkNotice(NamedTuple):
    """Something the charger sent that was not applied, for the log and the metrics."""

    kind: str  # "foreign-ca", "bad-asdu", "unknown-type", "unexpected-confirmation"
    detail: str
    suppressed: int = 0  # notices of this kind left out since the last one reported


@dataclass(frozen=True, slots=True)
class SessionSettings:
    common_address: int
    time_zone: datetime.tzinfo
    link: LinkParameters = field(default_factory=LinkParameters)
    asdu_format: AsduFormat = STANDARD
    command_timeout: float = 10.0
    expects_act_term: bool = False
    general_interrogation_interval: float = 900.0
    counter_interrogation_interval: float = 300.0
    clock_sync: bool = True
    registration: RegistrationSpec | None = None  # the table's registration frame
    registration_id: str | None = None  # the id this charger must register with (None: any)
    private_types: frozenset[int] = frozenset()  # type ids the table's private ASDUs use
    # chargers that give each connector its own common address on one connection
    other_addresses: frozenset[int] = frozenset()  # the connectors' addresses besides this one
    address_of_ioa: Mapping[int, int] = field(default_factory=dict)  # command IOA → its address


@dataclass(slots=True, eq=False)
class _Flight:
    command: Send104Command
    type_id: int
    deadline: float = 0.0  # for its decision, once sent
    executing: bool = False  # select-and-execute: the select was confirmed, the execute is out
    confirmed: bool = False  # the deciding ACT_CON arrived; ACT_TERM still expected


def _quality_names(bits: int, counter: bool) -> frozenset[str]:
    table = _COUNTER_BITS if counter else _QUALITY_BITS
    return frozenset(name for bit, name in table if bits & bit)


_QUALITY_CACHE: dict[tuple[int, bool], frozenset[str]] = {
    (bits, counter): _quality_names(bits, counter)
    for bits in range(256)
    for counter in (False, True)
}
# monitoring type id → its name and its quality names by quality byte (the single-point fast path)
_POINT_NAMES: Final[dict[int, tuple[str, tuple[frozenset[str], ...]]]] = {
    type_id: (
        TYPE_NAMES[type_id],
        tuple(_QUALITY_CACHE[bits, type_id in _COUNTER_TYPES] for bits in range(256)),
    )
    for type_id in _MONITORING
}


class Session104:
    """The 104 session with one charger, across its TCP connections."""

    def __init__(self, settings: SessionSettings, *, now: float) -> None:
        self.settings = settings
        self._link: ApciLink | None = None
        self._up = False
        self._failure: LinkFailed | None = None
        self._waiting: dict[int, deque[Send104Command]] = {}  # IOA → commands not yet sent
        self._flights: dict[int, _Flight] = {}  # IOA → the command out for it
        self._events: list[LinkEvent] = []
        self._next_gi: float | None = None
        self._next_ci: float | None = None
        self._notices: list[LinkNotice] = []
        self._notice_due: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.notice_counts: dict[str, int] = {}  # every notice by kind, logged or suppressed
        self._registering = False
        self._registration_deadline: float | None = None
        self._pre = b""  # bytes received while waiting for the registration frame
        self._pre_out = bytearray()  # the registration's answer
        self.registered_id: str | None = None
        self.connection = 0  # counts the connections: answers go back on the one they belong to
        self.points_received = 0
        self.asdus_received = 0
        self._read_single = single_point_reader(settings.asdu_format)

    # --- connection lifecycle ----------------------------------------------------------------------

    def connection_made(
        self, now: float, wall: float, link: ApciLink | None = None
    ) -> list[LinkEvent]:
        """A new TCP connection: STARTDT act, or adopt a `link` already started (dial-in: the
        listener started it to learn who the charger is; its `ASDU`s are passed to `receive_asdu`).
        Returns `LinkUp` when the adopted link is started already."""
        self._failure = None
        self._up = False
        self._pre = b""
        self._pre_out.clear()
        self.connection += 1
        if link is None:
            link = ApciLink(self.settings.link, now)
            self._link = link
            if self.settings.registration is not None:
                # STARTDT waits for the registration frame, up to t0
                self._registering = True
                self._registration_deadline = now + self.settings.link.t0
            else:
                link.start(now)
        else:
            link.retune(
                self.settings.link
            )  # identified under the listener's timers: now the table's
            self._link = link
            if link.started:
                self._started(now, wall)
        return self._take()

    def connection_lost(self, now: float, reason: str) -> list[LinkEvent]:
        """The TCP connection is gone: every command out or waiting is answered negatively."""
        self._link = None
        self._registering = False
        self._registration_deadline = None
        self._pre = b""
        if self._failure is not None:
            reason = self._failure.reason
        self._failure = None
        self._next_gi = self._next_ci = None
        for flight in list(self._flights.values()):
            self._confirm(flight.command, False, f"the 104 link dropped: {reason}")
        self._flights.clear()
        for queue in self._waiting.values():
            for command in queue:
                self._confirm(command, False, f"the 104 link dropped: {reason}")
        self._waiting.clear()
        if self._up:
            self._up = False
            self._events.append(LinkDown(reason))
        return self._take()

    @property
    def failure(self) -> LinkFailed | None:
        """Why the link is unusable (close the connection), or None."""
        return self._failure

    @property
    def is_up(self) -> bool:
        return self._up

    @property
    def link(self) -> ApciLink | None:
        return self._link

    # --- bytes ---------------------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float, wall: float) -> list[LinkEvent]:
        link = self._link
        if link is None or self._failure is not None:
            return []
        if self._registering:
            rest = self._registration_data(data, now)
            if not rest:
                return self._take()
            data = rest
        for event in link.receive_data(data, now):
            if type(event) is AsduReceived:
                self._asdu(event.asdu, now)
            else:
                self._link_event(event, now, wall)
        return self._take()

    def data_to_send(self) -> bytes:
        out = self._link.data_to_send() if self._link is not None else b""
        if self._pre_out:
            out = bytes(self._pre_out) + out
            self._pre_out.clear()
        return out

    def _registration_data(self, data: bytes, now: float) -> bytes:
        """While waiting for the registration frame: the bytes left for the APCI link once it is
        done (then `_registering` is False), or b"" while it is not, or after a failure."""
        spec = self.settings.registration
        link = self._link
        assert spec is not None and link is not None
        buffer = self._pre + data
        if buffer[:1] == b"\x68" and spec.start[:1] != b"\x68":
            self._end_registration(now)  # a charger that speaks 104 at once
            return buffer
        result = spec.parse(buffer)
        if isinstance(result, NeedMore):
            if len(buffer) > spec.max_size:
                self._failure = LinkFailed(
                    "registration", f"no complete registration frame in {len(buffer)} bytes"
                )
            else:
                self._pre = buffer
            return b""
        if isinstance(result, RegistrationError):
            self._failure = LinkFailed(
                "registration", f"bad registration frame at byte {result.offset}: {result.reason}"
            )
            return b""
        assert isinstance(result, Registered)
        expected = self.settings.registration_id
        if expected is not None and result.id != expected:
            self._pre_out += spec.refused
            self._failure = LinkFailed(
                "registration", f"registered as {result.id[:64]!r}, expected {expected!r}"
            )
            return b""
        self._pre_out += spec.accepted
        self.registered_id = result.id
        self._end_registration(now)
        return buffer[result.consumed :]

    def _end_registration(self, now: float) -> None:
        self._registering = False
        self._registration_deadline = None
        self._pre = b""
        if self._link is not None:
            self._link.start(now)

    def next_deadline(self) -> float | None:
        # asked after every read: written out rather than as a min over a list
        found: float | None = self._registration_deadline
        if self._link is not None and self._failure is None and not self._registering:
            found = self._link.next_deadline()
        if self._flights:
            for flight in self._flights.values():
                if found is None or flight.deadline < found:
                    found = flight.deadline
        deadline = self._next_gi
        if deadline is not None and (found is None or deadline < found):
            found = deadline
        deadline = self._next_ci
        if deadline is not None and (found is None or deadline < found):
            found = deadline
        return found

    def handle_timer(self, now: float, wall: float) -> list[LinkEvent]:
        link = self._link
        if self._registering:
            deadline = self._registration_deadline
            if deadline is not None and now >= deadline:
                # no registration frame: some chargers register only on their first connection
                self._notice("registration-missing", "no registration frame within t0", now)
                self._end_registration(now)
        elif link is not None and self._failure is None:
            for event in link.handle_timer(now):
                self._link_event(event, now, wall)
        timeout = self.settings.command_timeout
        for flight in [f for f in self._flights.values() if f.deadline <= now]:
            self._decided(flight, False, f"no confirmation within {timeout:g} s", now)
        if self._up:
            if self._next_gi is not None and now >= self._next_gi:
                self.interrogate(False, now)
            if self._next_ci is not None and now >= self._next_ci:
                self.interrogate(True, now)
        return self._take()

    def notices(self) -> list[LinkNotice]:
        notices, self._notices = self._notices, []
        return notices

    @property
    def has_notices(self) -> bool:
        """Whether `notices()` has any (asked after every read: no list is made for none)."""
        return bool(self._notices)

    # --- what the core asks ----------------------------------------------------------------------------

    def command(self, command: Send104Command, now: float) -> list[LinkEvent]:
        if not self._up:
            self._confirm(command, False, "the 104 link is down")
            return self._take()
        if command.ioa in self._flights:
            self._waiting.setdefault(command.ioa, deque()).append(command)
        else:
            self._send_command(command, now)
        return self._take()

    def send_private(self, effect: Send104Private, now: float) -> bool:
        """A vendor table's private ASDU (false: the link is down or its queue is full)."""
        if not self._up or (effect.connection and effect.connection != self.connection):
            return False  # its request's connection is gone: the charger asks again on this one
        address = effect.common_address
        asdu = Asdu(
            effect.type_id,
            effect.cot,
            self.settings.common_address if address is None else address,
            raw=effect.objects,
            raw_count=1,
        )
        return self._send(asdu, now)

    def interrogate(self, counters: bool, now: float) -> None:
        """A counter (`counters`) or general interrogation now; the periodic one restarts from now."""
        if not self._up:
            return
        settings = self.settings
        if counters:
            for address in self._addresses():
                self._send(Asdu(_C_CI, COT_ACTIVATION, address, (InfoObject(0, None, 0, None, QCC_GENERAL),)), now)  # fmt: skip
            interval = settings.counter_interrogation_interval
            self._next_ci = now + interval if interval > 0 else None
        else:
            for address in self._addresses():
                self._send(Asdu(_C_IC, COT_ACTIVATION, address, (InfoObject(0, None, 0, None, QOI_STATION),)), now)  # fmt: skip
            interval = settings.general_interrogation_interval
            self._next_gi = now + interval if interval > 0 else None

    # --- inside ----------------------------------------------------------------------------------------

    def _addresses(self) -> list[int]:
        """The station's common address, then its connectors' own ones (in order)."""
        main = self.settings.common_address
        return [main, *sorted(self.settings.other_addresses - {main})]

    def _take(self) -> list[LinkEvent]:
        events, self._events = self._events, []
        return events

    def _link_event(self, event: object, now: float, wall: float) -> None:
        if isinstance(event, LinkFailed):
            self._failure = event
        elif isinstance(event, DataTransferStarted):
            self._started(now, wall)
        elif isinstance(event, DataTransferStopped):
            self._failure = LinkFailed("protocol", "the charger stopped data transfer")

    def _started(self, now: float, wall: float) -> None:
        if self._up:
            return
        self._up = True
        self._events.append(LinkUp())
        settings = self.settings
        if settings.clock_sync:
            stamp = cp56_from_epoch(wall, settings.time_zone)
            sync = InfoObject(0, None, 0, stamp, 0)
            for address in self._addresses():
                self._send(Asdu(_C_CS, COT_ACTIVATION, address, (sync,)), now)
        self.interrogate(False, now)
        self.interrogate(True, now)

    def _send(self, asdu: Asdu, now: float) -> bool:
        link = self._link
        if link is None:
            return False
        return link.send_asdu(encode_asdu(asdu, self.settings.asdu_format), now)

    def receive_asdu(self, data: bytes, now: float) -> list[LinkEvent]:
        """One ASDU the dial-in listener read before the hand-over, as if it arrived now."""
        self._asdu(data, now)
        return self._take()

    def _asdu(self, data: bytes, now: float) -> None:
        self.asdus_received += 1
        single = self._read_single(data)
        if single is not None:
            # the commonest: one spontaneous object without a time tag, read without an `Asdu`
            type_id, address, ioa, value, quality = single
            settings = self.settings
            if address == settings.common_address or address in settings.other_addresses:
                name, flags = _POINT_NAMES[type_id]
                self._events.append(_new(PointUpdate, (ioa, name, value, flags[quality], None)))
                self.points_received += 1
                return
            # from a foreign address: the generic path says so
        asdu = decode_asdu(data, self.settings.asdu_format)
        if type(asdu) is AsduError:
            self._notice("bad-asdu", f"{asdu.what} (at byte {asdu.offset} of the ASDU)", now)
            return
        assert type(asdu) is Asdu
        address = asdu.common_address
        if address != self.settings.common_address and address not in self.settings.other_addresses:
            self._notice(
                "foreign-ca",
                f"{TYPE_NAMES.get(asdu.type_id, asdu.type_id)} from common address"
                f" {asdu.common_address}, expected {self.settings.common_address}",
                now,
            )
            return
        type_id = asdu.type_id
        if type_id in _MONITORING:
            self._points(asdu)
        elif type_id in _COMMAND_TYPES:
            self._confirmation(asdu, now)
        elif type_id not in TYPE_NAMES:
            self._events.append(
                RawAsdu(
                    type_id,
                    asdu.cot,
                    asdu.common_address,
                    asdu.raw_count,
                    asdu.sequence,
                    asdu.raw,
                    asdu.negative,
                    asdu.test,
                    self.connection,
                )
            )
            if type_id not in self.settings.private_types:
                self._notice(
                    "unknown-type",
                    f"type {type_id} (COT {asdu.cot}, {len(asdu.raw)} bytes of objects) is not"
                    " mapped",
                    now,
                )
        # interrogation, clock sync and end-of-initialisation confirmations need nothing

    def _points(self, asdu: Asdu) -> None:
        name = TYPE_NAMES[asdu.type_id]
        counter = asdu.type_id in _COUNTER_TYPES
        zone = self.settings.time_zone
        append = self._events.append
        for obj in asdu.objects:
            stamp = obj.time
            timestamp = cp56_to_epoch(stamp, zone) if type(stamp) is Cp56 else None
            append(
                PointUpdate(
                    obj.ioa, name, obj.value, _QUALITY_CACHE[obj.quality, counter], timestamp
                )
            )
        self.points_received += len(asdu.objects)

    def _send_command(self, command: Send104Command, now: float) -> None:
        if command.deadline is not None and now > command.deadline:
            self._confirm(
                command,
                False,
                "not sent: an earlier command to this point held it until after the CSMS was"
                " answered",
            )
            self._next_waiting(command.ioa, now)
            return
        type_id = TYPE_IDS[str(command.type_id)]
        flight = _Flight(command, type_id, now + self.settings.command_timeout)
        self._flights[command.ioa] = flight
        if not self._send(self._command_asdu(flight, select=command.select), now):
            self._decided(flight, False, "the link's send queue is full", now)

    def _command_asdu(self, flight: _Flight, *, select: bool) -> Asdu:
        command = flight.command
        name = str(command.type_id)
        se = _SELECT if select else 0
        value: bool | int | float | None
        if name == "C_RP_NA_1":
            value, qualifier, ioa = None, int(command.value), command.ioa
        elif name == "C_SC_NA_1":
            value, qualifier, ioa = (
                bool(command.value),
                _QU[command.qualifier] << 2 | se,
                command.ioa,
            )
        elif name in ("C_DC_NA_1", "C_RC_NA_1"):
            value = 2 if command.value else 1  # DCS/RCS: 1 off (lower), 2 on (higher)
            qualifier, ioa = _QU[command.qualifier] << 2 | se, command.ioa
        elif name == "C_SE_NB_1":
            value, qualifier, ioa = int(command.value), se, command.ioa
        else:
            value, qualifier, ioa = float(command.value), se, command.ioa
        obj = InfoObject(ioa, value, 0, None, qualifier)
        settings = self.settings
        address = settings.address_of_ioa.get(ioa, settings.common_address)
        return Asdu(flight.type_id, COT_ACTIVATION, address, (obj,))

    def _confirmation(self, asdu: Asdu, now: float) -> None:
        if not asdu.objects:
            return
        flight = self._flights.get(asdu.objects[0].ioa)
        if flight is None or flight.type_id != asdu.type_id:
            self._notice(
                "unexpected-confirmation",
                f"{TYPE_NAMES[asdu.type_id]} COT {asdu.cot} for IOA 0x{asdu.objects[0].ioa:04X},"
                " which has no command out",
                now,
            )
            return
        cot = asdu.cot
        if COT_UNKNOWN_FIRST <= cot <= COT_UNKNOWN_LAST:
            self._decided(flight, False, f"refused by the charger (cause {cot})", now)
        elif cot == COT_ACT_CON:
            if asdu.negative:
                self._decided(flight, False, "negative confirmation", now)
            elif flight.command.select and not flight.executing:
                flight.executing = True
                if not self._send(self._command_asdu(flight, select=False), now):
                    self._decided(flight, False, "the link's send queue is full", now)
            elif self.settings.expects_act_term:
                flight.confirmed = True
            else:
                self._decided(flight, True, "", now)
        elif cot == COT_ACT_TERM:
            if asdu.negative:
                self._decided(flight, False, "negative termination", now)
            elif flight.confirmed or not flight.command.select or flight.executing:
                self._decided(flight, True, "", now)

    def _decided(self, flight: _Flight, positive: bool, detail: str, now: float) -> None:
        ioa = flight.command.ioa
        if self._flights.get(ioa) is flight:
            del self._flights[ioa]
        self._confirm(flight.command, positive, detail)
        self._next_waiting(ioa, now)

    def _next_waiting(self, ioa: int, now: float) -> None:
        queue = self._waiting.get(ioa)
        if not queue:
            self._waiting.pop(ioa, None)
            return
        command = queue.popleft()
        if not queue:
            del self._waiting[ioa]
        self._send_command(command, now)

    def _confirm(self, command: Send104Command, positive: bool, detail: str) -> None:
        self._events.append(CommandConfirmed(command.command_id, command.ioa, positive, detail))

    def _notice(self, kind: str, detail: str, now: float) -> None:
        self.notice_counts[kind] = self.notice_counts.get(kind, 0) + 1
        due = self._notice_due.get(kind)
        if due is not None and now < due:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._notice_due[kind] = now + NOTICE_INTERVAL
        self._notices.append(LinkNotice(kind, detail[:300], self._suppressed.pop(kind, 0)))
