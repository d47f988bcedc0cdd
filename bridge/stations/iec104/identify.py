"""Who dialled in: a charger's connection before the bridge knows which station it is, sans-IO.

```python
who = Identification(parameters, now=now)        # STARTDT act queued
result = who.receive_data(data, now)             # None until known: Identified or NotIdentified
transport.write(who.data_to_send()); deadline = who.next_deadline(); result = who.handle_timer(now)
```

Rules
- A charger that dials in is still the controlled station: the bridge sends STARTDT act and, once
  confirmed, a general interrogation to the global common address (0xFFFF). The common address of the
  first ASDU the charger sends (the interrogation's confirmation, or anything spontaneous) identifies
  it. That ASDU and every one read until the hand-over stay in `asdus`, in order, for the station's
  session, which continues on the same `link` (sequence numbers and all).
- A link failure (bad bytes, t1, a sequence error) or no ASDU within `timeout` is `NotIdentified` with
  its reason; so is an ASDU too short to hold a common address.
- What the charger sends is bounded: at most `MAX_ASDUS` ASDUs are kept before the hand-over.
- Registration frames (`registrations`: the layouts the dial-in stations' tables declare): the bridge
  first waits up to `registration_wait` for the charger's first bytes. A frame one of the layouts
  reads is `RegisteredCharger` (its id, the layout, the bytes after it); the listener answers it and
  calls `start_link` (STARTDT act) before the hand-over. Bytes no layout reads are `NotIdentified`
  (`registration`) once they are too many or wrong for every layout. A charger whose first byte is a
  104 frame's (0x68), or that sends nothing within the wait, goes the common-address way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

from bridge.stations.iec104.apci import (
    ApciLink,
    AsduReceived,
    DataTransferStarted,
    LinkFailed,
    LinkParameters,
)
from bridge.stations.iec104.asdu import (
    STANDARD,
    TYPE_IDS,
    Asdu,
    AsduFormat,
    InfoObject,
    encode_asdu,
)
from bridge.stations.iec104.registration import (
    NeedMore,
    Registered,
    RegistrationError,
    RegistrationSpec,
)
from bridge.stations.iec104.session import COT_ACTIVATION, GLOBAL_ADDRESS, QOI_STATION

MAX_ASDUS: Final = 64
DEFAULT_TIMEOUT: Final = 30.0
REGISTRATION_WAIT: Final = 5.0


class Identified(NamedTuple):
    common_address: int


class RegisteredCharger(NamedTuple):
    registration_id: str
    spec: RegistrationSpec
    rest: bytes  # what the charger sent after its registration frame


class NotIdentified(NamedTuple):
    kind: str  # a metric label, as LinkFailed.kind, or "timeout"
    reason: str


class Identification:
    def __init__(
        self,
        parameters: LinkParameters,
        *,
        now: float,
        asdu_format: AsduFormat = STANDARD,
        timeout: float = DEFAULT_TIMEOUT,
        registrations: Sequence[RegistrationSpec] = (),
        registration_wait: float = REGISTRATION_WAIT,
    ) -> None:
        self.link = ApciLink(parameters, now)
        self.asdus: list[bytes] = []
        self._format = asdu_format
        self._deadline = now + timeout
        self._timeout = timeout
        self._registrations = tuple(registrations)
        self._pre: bytes | None = None  # bytes while a registration may come; None: 104 from now
        self._pre_deadline: float | None = None
        if self._registrations:
            self._pre = b""
            self._pre_deadline = now + registration_wait
        else:
            self.link.start(now)
        self.result: Identified | RegisteredCharger | NotIdentified | None = None

    def start_link(self, now: float) -> None:
        """After a registration was answered: STARTDT act."""
        self.link.start(now)

    def _registration(self, data: bytes, now: float) -> bytes:
        """Bytes while a registration may come: those left for the 104 link (b"" while waiting)."""
        assert self._pre is not None
        buffer = self._pre + data
        starts = {spec.start[:1] for spec in self._registrations}
        if buffer[:1] == b"\x68" and b"\x68" not in starts:
            self._pre = self._pre_deadline = None
            self.link.start(now)
            return buffer
        waiting = False
        problem: RegistrationError | None = None
        for spec in self._registrations:
            found = spec.parse(buffer)
            if isinstance(found, Registered):
                self._pre = self._pre_deadline = None
                self.result = RegisteredCharger(found.id, spec, buffer[found.consumed :])
                return b""
            if isinstance(found, NeedMore) and len(buffer) <= spec.max_size:
                waiting = True
            elif isinstance(found, RegistrationError) and problem is None:
                problem = found
        if waiting:
            self._pre = buffer
        elif problem is not None:
            self.result = NotIdentified(
                "registration", f"bad registration frame at byte {problem.offset}: {problem.reason}"
            )
        else:
            self.result = NotIdentified(
                "registration", f"no registration frame in the first {len(buffer)} bytes"
            )
        return b""

    def receive_data(
        self, data: bytes, now: float
    ) -> Identified | RegisteredCharger | NotIdentified | None:
        if self.result is not None:
            return None
        if self._pre is not None:
            data = self._registration(data, now)
            if not data:
                return self.result
        for event in self.link.receive_data(data, now):
            if isinstance(event, DataTransferStarted):
                interrogation = Asdu(
                    TYPE_IDS["C_IC_NA_1"],
                    COT_ACTIVATION,
                    GLOBAL_ADDRESS,
                    (InfoObject(0, None, 0, None, QOI_STATION),),
                )
                self.link.send_asdu(encode_asdu(interrogation, self._format), now)
            elif isinstance(event, AsduReceived):
                self._asdu(event.asdu)
            elif isinstance(event, LinkFailed):
                self.result = NotIdentified(event.kind, event.reason)
        return self.result

    def _asdu(self, asdu: bytes) -> None:
        if len(self.asdus) >= MAX_ASDUS:
            return
        self.asdus.append(asdu)
        if self.result is not None or len(self.asdus) > 1:
            return
        fmt = self._format
        start = 2 + fmt.cot_size
        end = start + fmt.ca_size
        if len(asdu) < end:
            self.result = NotIdentified(
                "bad_frame", f"the first ASDU ({len(asdu)} bytes) is too short for a common address"
            )
            return
        self.result = Identified(int.from_bytes(asdu[start:end], "little"))

    def data_to_send(self) -> bytes:
        return self.link.data_to_send()

    def next_deadline(self) -> float | None:
        if self.result is not None:
            return None
        if self._pre_deadline is not None:
            return min(self._pre_deadline, self._deadline)
        link_deadline = self.link.next_deadline()
        if link_deadline is None or link_deadline > self._deadline:
            return self._deadline
        return link_deadline

    def handle_timer(self, now: float) -> Identified | RegisteredCharger | NotIdentified | None:
        if self.result is not None:
            return None
        if self._pre_deadline is not None and now >= self._pre_deadline:
            self._pre = self._pre_deadline = None  # no registration: the common-address way
            self.link.start(now)
        for event in self.link.handle_timer(now):
            if isinstance(event, LinkFailed):
                self.result = NotIdentified(event.kind, event.reason)
                return self.result
        if now >= self._deadline:
            self.result = NotIdentified(
                "timeout", f"no ASDU within {self._timeout:g} s of the connection"
            )
        return self.result
