"""One side of one OCPP-J connection: call correlation, one outstanding CALL, timeouts and validation.

An `RpcEndpoint` is a plain synchronous object (sans-I/O): text frames go in through `receive`, events come
out; frames to write are drained with `take_outgoing`; time is an argument (`now`, monotonic seconds).

Rules
- `receive` never raises on peer input. Broken frames and invalid CALLs are answered here with the CALLERROR
  of the table in `bridge.ocppj.errors` and never reach the owner; they surface as `Diagnostic` events.
- At most one of our CALLs is outstanding (OCPP-J 1.6 §4.1.1, 2.0.1 part 4 §4.1.1). Further calls wait in
  FIFO order and are sent when the outstanding one is answered, fails or times out.
- A late answer on a live link is still the answer (`late_answer_wait`, when given): at the call timeout the
  CALL is reported `CallOverdue` and stays outstanding; an answer that comes later is matched to it as
  usual (with a "late-answer" diagnostic), and nothing is resent on this connection. Only when no answer
  came for `late_answer_wait` more seconds is the connection given up: `Unresponsive`, then the endpoint
  goes offline as with `go_offline` (the owner closes the connection; resending is for the next one).
  With `late_then_fail` the connection is kept instead: the call fails then (`CallFailed` TIMEOUT) and
  the next one is sent. Without `late_answer_wait`, the call fails at its timeout (`CallFailed` TIMEOUT)
  and a later answer is dropped as a "late-response" diagnostic.
- Every CALL gets a fresh message id from the injected generator at the moment it is sent, so a retry of the
  same payload never reuses an id (2.0.1 part 4 §4.1.4).
- A CALLRESULT or CALLERROR is matched to the outstanding CALL by message id only. Anything else (a late
  answer to a call that timed out, an unknown id) is dropped and reported, never matched to another call.
- Received CALL and CALLRESULT payloads are validated against the official schema; an invalid CALLRESULT
  fails its call (`CallFailed`, reason INVALID_RESPONSE).
- With `peer` (who is on the other end), a received CALL that party may not send (`bridge.ocppj.directions`:
  a CSMS sending Heartbeat) is answered NotSupported and never reaches the owner.
- With `naive_times_as_utc` (the CSMS side), a received date-time without a UTC offset that the schema
  refuses for its format is read as UTC and goes on with a `Z` (`bridge.ocppj.naive_times`); the first one on
  each connection is reported ("timestamp-without-offset"), the others are not.
- Payloads we send are validated too, unless the caller states they were already validated against the same
  schema (2.0.1 pass-through). An invalid one raises `OutboundPayloadInvalid`: a bridge bug, not peer input.
- Every received CALL is answered exactly once with `reply`, `reply_error` or `forward_error`; answering an
  id that is not waiting for an answer raises `BridgeMisuse` (check with `is_awaiting` after a disconnect).
- `go_offline` fails the outstanding and all queued calls (in order) and forgets unanswered incoming calls;
  calls made while offline wait for `go_online`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.ocppj.directions import Sender, may_send
from bridge.ocppj.errors import (
    BridgeMisuse,
    Fault,
    OcppVersion,
    OutboundPayloadInvalid,
    QueueFull,
    fault_of,
    normalize_code,
)
from bridge.ocppj.frames import (
    Call,
    CallError,
    CallResult,
    FrameError,
    Payload,
    is_message_id,
    make_error,
    parse_frame,
)
from bridge.ocppj.naive_times import with_utc_offset
from bridge.ocppj.schema import PayloadKind, SchemaRegistry, Violation, fault_for

MessageIdSource = Callable[[], str]

_EXCERPT = 120
_REMEMBERED_TIMEOUTS = 32
_MAX_TIME_REPAIRS = 16  # offset-less date-times read as UTC in one payload, at most


@dataclass(slots=True, eq=False)
class PendingCall:
    """A CALL of ours: queued, then outstanding, then answered or failed."""

    action: str
    payload: Payload
    context: Any = None  # opaque to the endpoint: whatever the owner needs when the answer comes
    message_id: str = ""  # assigned when the call is sent
    deadline: float = 0.0
    overdue: bool = False  # its call timeout passed; it is still outstanding (late_answer_wait)


class FailureReason(enum.Enum):
    TIMEOUT = "timeout"
    INVALID_RESPONSE = "invalid-response"
    CONNECTION_LOST = "connection-lost"


@dataclass(frozen=True, slots=True)
class CallReceived:
    """A valid CALL from the peer. The owner must answer it."""

    call: Call


@dataclass(frozen=True, slots=True)
class ResultReceived:
    request: PendingCall
    payload: Payload


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    request: PendingCall
    error: CallError

    @property
    def fault(self) -> Fault:
        return fault_of(self.error.code)


@dataclass(frozen=True, slots=True)
class CallFailed:
    request: PendingCall
    reason: FailureReason
    detail: str


@dataclass(frozen=True, slots=True)
class CallOverdue:
    """No answer within the call timeout; the call stays outstanding and a late answer is its answer."""

    request: PendingCall


@dataclass(frozen=True, slots=True)
class Unresponsive:
    """The outstanding call went unanswered for call timeout + late_answer_wait. The endpoint is now
    offline (its calls follow as `CallFailed` CONNECTION_LOST); the owner must close the connection."""

    request: PendingCall
    detail: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Something worth a log line and a counter; never an exception."""

    kind: str
    message: str
    message_id: str | None = None
    action: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


RpcEvent = (
    CallReceived
    | ResultReceived
    | ErrorReceived
    | CallFailed
    | CallOverdue
    | Unresponsive
    | Diagnostic
)


class RpcEndpoint:
    def __init__(
        self,
        version: OcppVersion,
        schemas: SchemaRegistry,
        new_message_id: MessageIdSource,
        *,
        call_timeout: float,
        max_queued: int = 100,
        online: bool = True,
        late_answer_wait: float | None = None,
        late_then_fail: bool = False,
        naive_times_as_utc: bool = False,
        peer: Sender | None = None,
    ) -> None:
        self.version = version
        self._late_then_fail = late_then_fail
        self._peer = peer
        self._naive_times_as_utc = naive_times_as_utc
        self._warned_naive = False  # this connection's first offset-less date-time was reported
        self._schemas = schemas
        self._new_message_id = new_message_id
        self._call_timeout = call_timeout
        self._late_answer_wait = late_answer_wait
        self._max_queued = max_queued
        self._online = online
        # Lists rather than deques: an empty deque costs 624 bytes, and these stay short or empty
        # (measured: 2.5 KiB of every station's state went to four empty deques).
        self._queue: list[PendingCall] = []
        self._outstanding: PendingCall | None = None
        self._awaiting: dict[str, str] = {}  # received CALL id -> action, until we answer it
        self._timed_out: list[str] = []  # the last _REMEMBERED_TIMEOUTS ids, oldest first
        self._outgoing: list[str] = []

    # --- state -------------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._online

    @property
    def outstanding(self) -> PendingCall | None:
        return self._outstanding

    @property
    def call_timeout(self) -> float:
        return self._call_timeout

    @call_timeout.setter
    def call_timeout(self, seconds: float) -> None:
        """From the next CALL sent on; the outstanding one keeps its deadline."""
        self._call_timeout = seconds

    @property
    def queued(self) -> int:
        """Calls waiting behind the outstanding one."""
        return len(self._queue)

    def is_awaiting(self, message_id: str) -> bool:
        """Whether a received CALL with this id still needs our answer."""
        return message_id in self._awaiting

    def next_deadline(self) -> float | None:
        return self._outstanding.deadline if self._outstanding is not None else None

    @property
    def has_outgoing(self) -> bool:
        """Whether `take_outgoing` would return frames."""
        return bool(self._outgoing)

    def take_outgoing(self) -> list[str]:
        frames, self._outgoing = self._outgoing, []
        return frames

    # --- input from the peer ---------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> list[RpcEvent]:
        frame = parse_frame(data, self.version)
        if isinstance(frame, FrameError):
            if frame.reply is not None:
                self._outgoing.append(frame.reply.serialize())
            return [
                Diagnostic(
                    "invalid-frame",
                    frame.reason,
                    message_id=frame.reply.message_id if frame.reply else None,
                    fields={"excerpt": _excerpt(data), "answered": frame.reply is not None},
                )
            ]
        if isinstance(frame, Call):
            return self._receive_call(frame)
        return self._receive_answer(frame, now)

    def _receive_call(self, call: Call) -> list[RpcEvent]:
        if call.message_id in self._awaiting:
            return self._refuse(
                call, Fault.RPC_FRAMEWORK, "message id is in use by a call being handled"
            )
        if len(self._awaiting) >= self._max_queued:
            return self._refuse(call, Fault.GENERIC, "too many calls waiting for an answer")
        if not self._schemas.knows(self.version, call.action):
            return self._refuse(call, Fault.NOT_IMPLEMENTED, f"unknown action {call.action!r}")
        if self._peer is not None and not may_send(self.version, self._peer, call.action):
            return self._refuse(
                call, Fault.NOT_SUPPORTED, f"{call.action} is not sent by a {self._peer.value}"
            )
        violation, payload, notes = self._check(call.action, PayloadKind.REQUEST, call.payload)
        if payload is not call.payload:
            call = Call(call.message_id, call.action, payload)
        if violation is not None:
            return self._refuse(
                call,
                # null for a payload the action needs is as malformed as a string (part 4 §4.2.3)
                Fault.FORMAT if call.null_payload else fault_for(self.version, violation),
                violation.describe(),
                {"keyword": violation.keyword, "path": violation.path},
            )
        self._awaiting[call.message_id] = call.action
        return [*notes, CallReceived(call)]

    def _check(
        self, action: str, kind: PayloadKind, payload: Payload
    ) -> tuple[Violation | None, Payload, list[RpcEvent]]:
        """The schema check, reading offset-less date-times as UTC when allowed: (violation, the
        payload to use, the report of the connection's first such date-time)."""
        violation = self._schemas.check(self.version, action, kind, payload)
        notes: list[RpcEvent] = []
        for _ in range(_MAX_TIME_REPAIRS):
            if violation is None or violation.keyword != "format" or not self._naive_times_as_utc:
                break
            repaired = with_utc_offset(payload, violation.path)
            if repaired is None:
                break
            if not self._warned_naive:
                self._warned_naive = True
                notes.append(
                    Diagnostic(
                        "timestamp-without-offset",
                        f"{action} {kind.value} has date-times without a UTC offset: read as UTC"
                        " (reported once per connection)",
                        action=action,
                        fields={"path": violation.path},
                    )
                )
            payload = repaired
            violation = self._schemas.check(self.version, action, kind, payload)
        return violation, payload, notes

    def _refuse(
        self, call: Call, fault: Fault, reason: str, details: Payload | None = None
    ) -> list[RpcEvent]:
        error = make_error(self.version, call.message_id, fault, reason, details)
        self._outgoing.append(error.serialize())
        return [
            Diagnostic(
                "invalid-call",
                reason,
                message_id=call.message_id,
                action=call.action,
                fields={"code": error.code},
            )
        ]

    def _receive_answer(self, answer: CallResult | CallError, now: float) -> list[RpcEvent]:
        request = self._outstanding
        if request is None or answer.message_id != request.message_id:
            late = answer.message_id in self._timed_out
            return [
                Diagnostic(
                    "late-response" if late else "unknown-response",
                    "answer to a call that timed out"
                    if late
                    else "answer matches no outstanding call",
                    message_id=answer.message_id,
                )
            ]
        self._outstanding = None
        events: list[RpcEvent] = []
        if request.overdue:
            events.append(
                Diagnostic(
                    "late-answer",
                    f"answer after the {self._call_timeout:g} s call timeout, taken as the answer",
                    message_id=request.message_id,
                    action=request.action,
                )
            )
        if isinstance(answer, CallResult):
            violation, payload, notes = self._check(
                request.action, PayloadKind.RESPONSE, answer.payload
            )
            events.extend(notes)
            if violation is None:
                events.append(ResultReceived(request, payload))
            else:
                events.append(
                    CallFailed(request, FailureReason.INVALID_RESPONSE, violation.describe())
                )
        else:
            events.append(ErrorReceived(request, answer))
        self._send_next(now)
        return events

    # --- our calls ----------------------------------------------------------------------------

    def call(
        self,
        action: str,
        payload: Payload,
        now: float,
        *,
        context: Any = None,
        validated: bool = False,
    ) -> PendingCall:
        """Queue a CALL; it is sent at once when nothing else is outstanding."""
        if len(self._queue) >= self._max_queued:
            raise QueueFull(f"{len(self._queue)} calls already wait on this connection")
        if not validated:
            self._validate_outbound(action, PayloadKind.REQUEST, payload)
        request = PendingCall(action, payload, context)
        self._queue.append(request)
        self._send_next(now)
        return request

    def _send_next(self, now: float) -> None:
        if self._outstanding is not None or not self._queue or not self._online:
            return
        request = self._queue.pop(0)
        message_id = self._new_message_id()
        if not is_message_id(message_id):
            raise BridgeMisuse(f"message id source produced an invalid id {message_id!r}")
        request.message_id = message_id
        request.deadline = now + self._call_timeout
        self._outstanding = request
        self._outgoing.append(Call(message_id, request.action, request.payload).serialize())

    # --- our answers ----------------------------------------------------------------------------

    def reply(self, message_id: str, payload: Payload, *, validated: bool = False) -> None:
        if not validated and message_id in self._awaiting:
            # Checked before the call stops waiting, so the owner can still answer with an error.
            self._validate_outbound(self._awaiting[message_id], PayloadKind.RESPONSE, payload)
        self._take_awaiting(message_id)
        self._outgoing.append(CallResult(message_id, payload).serialize())

    def reply_error(
        self, message_id: str, fault: Fault, description: str, details: Payload | None = None
    ) -> None:
        self._take_awaiting(message_id)
        error = make_error(self.version, message_id, fault, description, details)
        self._outgoing.append(error.serialize())

    def forward_error(self, message_id: str, error: CallError) -> None:
        """Answer with an error received from the other side; its code re-spelled for our version."""
        self._take_awaiting(message_id)
        code = normalize_code(self.version, error.code)
        forwarded = CallError(message_id, code, error.description, error.details)
        self._outgoing.append(forwarded.serialize())

    def _take_awaiting(self, message_id: str) -> str:
        try:
            return self._awaiting.pop(message_id)
        except KeyError:
            raise BridgeMisuse(
                f"no received call {message_id!r} is waiting for an answer"
            ) from None

    def _validate_outbound(self, action: str, kind: PayloadKind, payload: Payload) -> None:
        violation = self._schemas.check(self.version, action, kind, payload)
        if violation is not None:
            raise OutboundPayloadInvalid(action, kind.value, violation.describe())

    # --- time and connection --------------------------------------------------------------------

    def handle_timer(self, now: float) -> list[RpcEvent]:
        request = self._outstanding
        if request is None or now < request.deadline:
            return []
        if self._late_answer_wait is not None:
            if not request.overdue:
                request.overdue = True
                request.deadline += (
                    self._late_answer_wait
                )  # from the call timeout, not when noticed
                return [CallOverdue(request)]
            waited = self._call_timeout + self._late_answer_wait
            if self._late_then_fail:
                return self._time_out(request, now, f"no answer within {waited:g} s")
            given_up: list[RpcEvent] = [
                Unresponsive(request, f"no answer to {request.action} within {waited:g} s")
            ]
            return given_up + self.go_offline()
        return self._time_out(request, now, f"no answer within {self._call_timeout:g} s")

    def _time_out(self, request: PendingCall, now: float, detail: str) -> list[RpcEvent]:
        """The outstanding call failed for want of an answer; a later one is a late-response."""
        self._outstanding = None
        self._timed_out.append(request.message_id)
        if len(self._timed_out) > _REMEMBERED_TIMEOUTS:
            del self._timed_out[0]
        self._send_next(now)
        return [CallFailed(request, FailureReason.TIMEOUT, detail)]

    def go_offline(self) -> list[RpcEvent]:
        """The connection is gone: fail what was sent or queued, forget what we owed."""
        self._online = False
        failed: list[PendingCall] = []
        if self._outstanding is not None:
            failed.append(self._outstanding)
            self._outstanding = None
        failed.extend(self._queue)
        self._queue.clear()
        self._awaiting.clear()
        self._outgoing.clear()
        return [CallFailed(r, FailureReason.CONNECTION_LOST, "connection lost") for r in failed]

    def go_online(self, now: float) -> None:
        self._online = True
        self._warned_naive = False
        self._send_next(now)


def _excerpt(data: str | bytes) -> str:
    text = data if isinstance(data, str) else data[: _EXCERPT * 4].decode("utf-8", "replace")
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"
