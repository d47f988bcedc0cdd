"""The IEC 60870-5-104 link layer (APCI, §5) of one TCP connection, on the controlling station's side.

An `ApciLink` is a plain synchronous object (sans-I/O): received bytes go in through `receive_data`,
events come out; bytes to write are drained with `data_to_send`; time is an argument (`now`, monotonic
seconds) and `next_deadline` says when `handle_timer` must next be called. ASDUs are opaque bytes here:
their codec lives elsewhere and this module does not depend on it.

Rules
- The bridge is always the controlling station, whoever dialled: it sends STARTDT act and STOPDT act,
  answers TESTFR act, and sends TESTFR act after t3 without a received frame. A STARTDT act or STOPDT
  act from the peer is a protocol failure; a TESTFR con, STARTDT con or STOPDT con that answers nothing
  is ignored (some stations send them).
- I-frames flow only between STARTDT con and STOPDT act: `send_asdu` queues (at most `max_queued`)
  until then and while k sent I-frames are unacknowledged. A received I-frame before STARTDT con or after
  STOPDT con fails the link; between STOPDT act and con they are delivered and acknowledged at once, so
  the station can confirm the stop (§5.3).
- Received I-frames are acknowledged by an S-frame after w of them or when the oldest is t2 old,
  whichever comes first, and by every I-frame the bridge sends (it carries N(R)).
- Sequence numbers count modulo 32768. A received N(S) other than V(R), or an N(R) outside the range
  from the oldest unacknowledged N(S) to V(S), fails the link ("sequence").
- Timeouts (t1) fail the link: an unacknowledged sent I-frame, an unconfirmed STARTDT/STOPDT act
  ("t1") or an unanswered TESTFR act ("testfr").
- `receive_data` never raises on peer input, takes any split of the stream and buffers at most one
  partial APDU (< 255 bytes). A malformed APDU fails the link ("bad_frame"); the reason names the
  offending octet by its offset from the start of the connection's stream.
- A failure is reported exactly once, as the last event of the call that found it. From then on every
  call is a no-op: no events, no bytes (anything not yet drained is dropped), `send_asdu` returns False,
  `next_deadline` is None. The owner closes the TCP connection.
- Misuse by the owner (an ASDU of the wrong size, invalid parameters) raises `BridgeMisuse`.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from dataclasses import dataclass
from typing import Final, NamedTuple

from bridge.ocppj.errors import BridgeMisuse

SEQUENCE_MODULO: Final = 32768
MAX_APDU: Final = 253  # the length octet's largest value the standard allows (§5.1)

_MASK: Final = SEQUENCE_MODULO - 1
_HALF: Final = SEQUENCE_MODULO // 2
_START: Final = 0x68

STARTDT_ACT: Final = 0x07
STARTDT_CON: Final = 0x0B
STOPDT_ACT: Final = 0x13
STOPDT_CON: Final = 0x23
TESTFR_ACT: Final = 0x43
TESTFR_CON: Final = 0x83

_U_NAMES: Final = {
    STARTDT_ACT: "STARTDT act",
    STARTDT_CON: "STARTDT con",
    STOPDT_ACT: "STOPDT act",
    STOPDT_CON: "STOPDT con",
    TESTFR_ACT: "TESTFR act",
    TESTFR_CON: "TESTFR con",
}
_U_FRAMES: Final = {code: bytes((_START, 4, code, 0, 0, 0)) for code in _U_NAMES}

_HEADER = struct.Struct("<BBHH")
_S_FRAME = struct.Struct("<BBHH")
_CONTROL = struct.Struct("<HH")
_new = tuple.__new__  # a NamedTuple without its Python-level argument handling


@dataclass(frozen=True, slots=True)
class LinkParameters:
    """The link's timers (seconds) and window sizes (§5.4, §5.5); defaults are the standard's."""

    t0: float = 30.0  # connection establishment: applied by the adapter, carried here with the rest
    t1: float = 15.0  # acknowledgement of a sent I-frame or of a STARTDT/STOPDT/TESTFR act
    t2: float = 10.0  # latest acknowledgement of received I-frames (t2 < t1)
    t3: float = 20.0  # idle time without a received frame before a TESTFR act
    k: int = 12  # most unacknowledged sent I-frames
    w: int = 8  # acknowledge at the latest after w received I-frames

    def problems(self) -> list[str]:
        """What is wrong with these parameters; [] when they are usable."""
        found = []
        for name in ("t0", "t1", "t2", "t3"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                found.append(f"{name} must be a positive number of seconds, not {value!r}")
        if not found and self.t2 >= self.t1:
            found.append(f"t2 ({self.t2:g} s) must be shorter than t1 ({self.t1:g} s)")
        for name in ("k", "w"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool)):
                found.append(f"{name} must be an integer, not {value!r}")
        if not found and not 1 <= self.w <= self.k <= _MASK:
            found.append(f"need 1 <= w <= k <= {_MASK}, got w={self.w}, k={self.k}")
        return found


@dataclass(frozen=True, slots=True)
class DataTransferStarted:
    """STARTDT con received: I-frames may flow both ways."""


@dataclass(frozen=True, slots=True)
class DataTransferStopped:
    """STOPDT con received: no more I-frames until the next STARTDT con."""


class AsduReceived(NamedTuple):
    """One received I-frame's ASDU: the bytes after its 6-octet APCI.

    A NamedTuple, not a dataclass: one is built per received I-frame, on the hot path.
    """

    asdu: bytes


@dataclass(frozen=True, slots=True)
class LinkFailed:
    """The link is unusable; the owner closes the TCP connection.

    `kind` is a short metric label ("t1", "testfr", "sequence", "bad_frame", "protocol"); `reason` is a
    sentence for the log, with the numbers.
    """

    kind: str
    reason: str


LinkEvent = DataTransferStarted | AsduReceived | DataTransferStopped | LinkFailed


class ApciLink:
    """One connection's APCI state machine, the bridge being the controlling station."""

    def __init__(
        self,
        parameters: LinkParameters,
        now: float,
        *,
        max_apdu: int = MAX_APDU,
        max_queued: int = 256,
        send_sequence: int = 0,
        receive_sequence: int = 0,
    ) -> None:
        problems = parameters.problems()
        if not 5 <= max_apdu <= MAX_APDU:
            problems.append(f"max_apdu must lie in 5..{MAX_APDU}, not {max_apdu}")
        if max_queued < 0:
            problems.append(f"max_queued must not be negative, not {max_queued}")
        if not (0 <= send_sequence <= _MASK and 0 <= receive_sequence <= _MASK):
            problems.append(f"initial sequence numbers must lie in 0..{_MASK}")
        if problems:
            raise BridgeMisuse("invalid APCI link parameters: " + "; ".join(problems))
        self._p = parameters
        self._t1 = parameters.t1
        self._k = parameters.k
        self._w = parameters.w
        self._max_apdu = max_apdu
        self._max_queued = max_queued

        self._failed: LinkFailed | None = None
        self._out = bytearray()
        self._buf = b""  # the partial APDU at the end of the stream so far
        self._consumed = 0  # stream offset of self._buf's first byte

        self._started = False  # between STARTDT con and STOPDT con
        self._ever_started = False
        self._stopping = False  # STOPDT act sent, con not yet received
        self._startdt_sent: float | None = None
        self._stopdt_sent: float | None = None
        self._testfr_sent: float | None = None
        self._last_received = now

        self._vs = send_sequence  # V(S): N(S) of the next I-frame we send
        self._acked = send_sequence  # the peer's latest N(R): our oldest unacknowledged N(S)
        self._sent_at: deque[float] = (
            deque()
        )  # send time of each unacknowledged I-frame, oldest first
        self._queue: deque[bytes] = deque()

        self._vr = receive_sequence  # V(R): the N(S) the next received I-frame must carry
        self._unacked_received = 0
        self._oldest_received: float | None = None  # arrival of the oldest unacknowledged I-frame

        self.frames_received = 0  # I-frames
        self.frames_sent = 0  # I-frames
        self.bytes_received = 0

    # -- state -----------------------------------------------------------------------------------

    @property
    def parameters(self) -> LinkParameters:
        return self._p

    def retune(self, parameters: LinkParameters) -> None:
        """Continue with other timers and windows: a charger that dialled in was identified under
        the listener's, and its own table's apply from then on (frames in flight keep their send
        times; a smaller k only holds back what is sent next)."""
        problems = parameters.problems()
        if problems:
            raise BridgeMisuse("invalid APCI link parameters: " + "; ".join(problems))
        self._p = parameters
        self._t1 = parameters.t1
        self._k = parameters.k
        self._w = parameters.w

    @property
    def started(self) -> bool:
        """True from STARTDT con to STOPDT con (I-frames we send also wait while a STOPDT act is out)."""
        return self._started

    @property
    def failed(self) -> LinkFailed | None:
        return self._failed

    @property
    def unacknowledged(self) -> int:
        """I-frames sent and not yet acknowledged by the peer."""
        return len(self._sent_at)

    @property
    def queued(self) -> int:
        """ASDUs accepted by `send_asdu` and not yet sent."""
        return len(self._queue)

    @property
    def send_sequence(self) -> int:
        """V(S): the N(S) the next I-frame sent will carry."""
        return self._vs

    @property
    def receive_sequence(self) -> int:
        """V(R): the N(S) the next received I-frame must carry."""
        return self._vr

    # -- commands from the owner -----------------------------------------------------------------

    def start(self, now: float) -> None:
        """Ask for data transfer (STARTDT act); `DataTransferStarted` follows its con.

        Ignored when started, already asked for, or while a STOPDT act awaits its con (the two acts
        would cross): call again after `DataTransferStopped`.
        """
        if self._failed is not None or self._startdt_sent is not None or self._started:
            return
        self._out += _U_FRAMES[STARTDT_ACT]
        self._startdt_sent = now

    def stop(self, now: float) -> None:
        """Stop data transfer gracefully (STOPDT act); `DataTransferStopped` follows its con."""
        if self._failed is not None or self._stopping:
            return
        if not self._started and self._startdt_sent is None:
            return
        # The station confirms the stop only once all its I-frames are acknowledged (§5.3).
        if self._unacked_received:
            self._send_s()
        self._out += _U_FRAMES[STOPDT_ACT]
        self._stopdt_sent = now
        self._stopping = True

    def send_asdu(self, asdu: bytes, now: float) -> bool:
        """Send one ASDU in an I-frame, now if data transfer and the k window allow, else queued.

        False when the link failed or the queue is full (the ASDU is not taken).
        """
        if not 1 <= len(asdu) <= self._max_apdu - 4:
            raise BridgeMisuse(f"ASDU of {len(asdu)} bytes (1..{self._max_apdu - 4})")
        if self._failed is not None:
            return False
        if (
            self._started
            and not self._stopping
            and not self._queue
            and len(self._sent_at) < self._k
        ):
            self._send_i(bytes(asdu), now)
            return True
        if len(self._queue) >= self._max_queued:
            return False
        self._queue.append(bytes(asdu))
        return True

    def data_to_send(self) -> bytes:
        """Everything to write to the socket since the last call."""
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- time ------------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `handle_timer` must next be called; None when nothing is timed (or the link failed)."""
        if self._failed is not None:
            return None
        # asked after every read: written out rather than as a min over a list
        t1 = self._t1
        testfr = self._testfr_sent
        best = self._last_received + self._p.t3 if testfr is None else testfr + t1
        if self._sent_at:
            due = self._sent_at[0] + t1
            if due < best:
                best = due
        if self._startdt_sent is not None and self._startdt_sent + t1 < best:
            best = self._startdt_sent + t1
        if self._stopdt_sent is not None and self._stopdt_sent + t1 < best:
            best = self._stopdt_sent + t1
        if self._oldest_received is not None and self._oldest_received + self._p.t2 < best:
            best = self._oldest_received + self._p.t2
        return best

    def handle_timer(self, now: float) -> list[LinkEvent]:
        """Act on every timer due at `now`: fail on t1, acknowledge on t2, test the link on t3."""
        if self._failed is not None:
            return []
        t1 = self._t1
        if self._sent_at and now >= self._sent_at[0] + t1:
            return [
                self._fail(
                    "t1", f"t1 expired waiting for the acknowledgement of N(S)={self._acked}"
                )
            ]
        if self._startdt_sent is not None and now >= self._startdt_sent + t1:
            return [self._fail("t1", f"STARTDT con unanswered for {t1:g} s")]
        if self._stopdt_sent is not None and now >= self._stopdt_sent + t1:
            return [self._fail("t1", f"STOPDT con unanswered for {t1:g} s")]
        if self._testfr_sent is not None and now >= self._testfr_sent + t1:
            return [self._fail("testfr", f"TESTFR act unanswered for {t1:g} s")]
        if self._oldest_received is not None and now >= self._oldest_received + self._p.t2:
            self._send_s()
        if self._testfr_sent is None and now >= self._last_received + self._p.t3:
            self._out += _U_FRAMES[TESTFR_ACT]
            self._testfr_sent = now
        return []

    # -- received bytes --------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[LinkEvent]:
        """Parse received bytes (any split of the stream); return what they mean, in order."""
        if self._failed is not None or not data:
            return []
        self.bytes_received += len(data)
        if self._buf:
            data = self._buf + data
        elif type(data) is not bytes:
            data = bytes(data)  # slices of it become the events' ASDUs
        events: list[LinkEvent] = []
        append = events.append
        n = len(data)
        pos = 0
        max_apdu = self._max_apdu
        unpack = _CONTROL.unpack_from
        failure: LinkFailed | None = None
        while pos < n:
            if data[pos] != _START:
                failure = self._bad(pos, f"start byte 0x{data[pos]:02X}, expected 0x68")
                break
            if pos + 1 == n:
                break
            length = data[pos + 1]
            if length < 4 or length > max_apdu:
                failure = self._bad(pos + 1, f"APDU length {length} (4..{max_apdu})")
                break
            end = pos + 2 + length
            if end > n:
                break
            c1 = data[pos + 2]
            if not c1 & 1:
                if length == 4:
                    failure = self._bad(pos + 1, "an I-frame without ASDU (APDU length 4)")
                    break
                if not self._started:
                    failure = self._fail(
                        "protocol",
                        "I-frame after STOPDT con"
                        if self._ever_started
                        else "I-frame before STARTDT con",
                    )
                    break
                ns, nr = unpack(data, pos + 2)
                ns >>= 1
                nr >>= 1
                if ns != self._vr:
                    failure = self._fail(
                        "sequence", f"sequence error: expected N(S)={self._vr}, got N(S)={ns}"
                    )
                    break
                acked = (nr - self._acked) & _MASK
                if acked > len(self._sent_at):
                    failure = self._bad_ack(nr)
                    break
                self._vr = (ns + 1) & _MASK
                self.frames_received += 1
                append(_new(AsduReceived, (data[pos + 6 : end],)))
                if not self._unacked_received:
                    self._oldest_received = now
                self._unacked_received += 1
                if acked:
                    self._acknowledge(acked, nr, now)
                if self._unacked_received >= self._w or self._stopping:
                    self._send_s()
            elif c1 == 0x01:
                if length != 4:
                    failure = self._bad(pos + 1, f"S-frame of APDU length {length}, expected 4")
                    break
                if data[pos + 4] & 1:
                    failure = self._bad(pos + 4, "reserved bit set in an S-frame")
                    break
                nr = unpack(data, pos + 2)[1] >> 1
                acked = (nr - self._acked) & _MASK
                if acked > len(self._sent_at):
                    failure = self._bad_ack(nr)
                    break
                if acked:
                    self._acknowledge(acked, nr, now)
            else:
                failure = self._u_frame(data, pos, length, now, events)
                if failure is not None:
                    break
            pos = end
        if failure is not None:
            append(failure)
            return events
        if pos:
            self._last_received = now
        self._consumed += pos
        self._buf = data[pos:] if pos < n else b""
        return events

    # -- internals -------------------------------------------------------------------------------

    def _u_frame(
        self, data: bytes, pos: int, length: int, now: float, events: list[LinkEvent]
    ) -> LinkFailed | None:
        code = data[pos + 2]
        name = _U_NAMES.get(code)
        if name is None:
            if code & 0x03 == 0x01:
                return self._bad(pos + 2, f"S-frame control octet 0x{code:02X}, expected 0x01")
            return self._bad(pos + 2, f"U-frame control octet 0x{code:02X}")
        if length != 4:
            return self._bad(pos + 1, f"{name} of APDU length {length}, expected 4")
        if data[pos + 4] & 1:
            return self._bad(pos + 4, f"reserved bit set in a {name}")
        if code == TESTFR_ACT:
            self._out += _U_FRAMES[TESTFR_CON]
        elif code == TESTFR_CON:
            self._testfr_sent = None
        elif code == STARTDT_CON:
            if self._startdt_sent is not None:
                self._startdt_sent = None
                self._started = True
                self._ever_started = True
                events.append(DataTransferStarted())
                if not self._stopping:
                    self._pump(now)
        elif code == STOPDT_CON:
            if self._stopdt_sent is not None:
                self._stopdt_sent = None
                self._stopping = False
                self._started = False
                events.append(DataTransferStopped())
        else:
            return self._fail(
                "protocol",
                f"{name} from the controlled station (the bridge is the controlling one)",
            )
        return None

    def _acknowledge(self, count: int, nr: int, now: float) -> None:
        self._acked = nr
        sent_at = self._sent_at
        for _ in range(count):
            sent_at.popleft()
        if self._queue:
            self._pump(now)

    def _pump(self, now: float) -> None:
        queue = self._queue
        if not self._started or self._stopping:
            return
        while queue and len(self._sent_at) < self._k:
            self._send_i(queue.popleft(), now)

    def _send_i(self, asdu: bytes, now: float) -> None:
        self._out += _HEADER.pack(_START, len(asdu) + 4, self._vs << 1, self._vr << 1)
        self._out += asdu
        self._vs = (self._vs + 1) & _MASK
        self._sent_at.append(now)
        self.frames_sent += 1
        self._unacked_received = 0
        self._oldest_received = None

    def _send_s(self) -> None:
        self._out += _S_FRAME.pack(_START, 4, 0x01, self._vr << 1)
        self._unacked_received = 0
        self._oldest_received = None

    def _bad_ack(self, nr: int) -> LinkFailed:
        unacked = len(self._sent_at)
        if (nr - self._acked) & _MASK < _HALF:
            reason = f"N(R)={nr} acknowledges I-frames never sent (next N(S)={self._vs})"
        else:
            reason = (
                f"N(R)={nr} goes back before the oldest unacknowledged N(S)={self._acked}"
                if unacked
                else f"N(R)={nr} goes back before N(S)={self._acked}, already acknowledged"
            )
        return self._fail("sequence", reason)

    def _bad(self, at: int, what: str) -> LinkFailed:
        return self._fail("bad_frame", f"bad frame at byte {self._consumed + at}: {what}")

    def _fail(self, kind: str, reason: str) -> LinkFailed:
        failure = LinkFailed(kind, reason)
        self._failed = failure
        self._out.clear()
        self._buf = b""
        self._queue.clear()
        return failure
