"""A 2.0.1 charger relayed to the CSMS as itself: the Local Controller of OCPP 2.0.1 part 4 §6.

Rules
- Both connections speak 2.0.1. Every frame is validated where it enters (by that side's `RpcEndpoint`);
  an invalid frame is answered there with the right CALLERROR and is not forwarded, and so is a CALL in
  the wrong direction (a CSMS sending Heartbeat: NotSupported, `bridge.ocppj.directions`).
- A valid CALL from one side is re-sent on the other with a message id of the bridge's own (part 4 §6.4:
  ids the bridge sends must never collide with the peers'); the answer travels back under the original id.
  Payloads are forwarded untouched; they are not validated a second time against the same schema.
- Each side keeps one outstanding CALL; a peer that pipelines CALLs has them queued, not reordered.
- A forwarded CALL that fails on the far side is answered truthfully: a CALLERROR from the far peer is
  forwarded as is; a timeout, an invalid answer or a lost connection becomes `InternalError` with the
  reason in the description.
- While the CSMS connection is up, the bridge never answers a charger's CALL on the CSMS's behalf: a CALL
  the CSMS has not answered within `csms_call_timeout` stays outstanding (`late_answer_wait`) and its late
  answer is forwarded whenever it comes (answering InternalError made the charger resend, and the CSMS
  processed both). When the CSMS has not answered for `late_answer_wait` more seconds, its connection is
  given up: both connections are closed, as when the CSMS connection is lost.
- The same the other way (CSMS → charger): while the charger's connection is up, a CALL it has not
  answered within `charger_call_timeout` stays outstanding and its late answer is forwarded to the CSMS
  whenever it comes (counted as a late answer on the south side). Bounded: one CALL outstanding toward
  the charger, at most `max_queued` waiting behind it (more are answered GenericError), and after
  `late_answer_wait` more seconds the CSMS is answered `InternalError` and the next CALL goes; the charger's
  connection stays (a firmware that never answers one action must not lose its link), and an answer
  after that is dropped as a late-response.
- With `naive_times_as_utc`, date-times without a UTC offset from the CSMS are read as UTC and forwarded
  with `Z` (`bridge.ocppj.naive_times`), instead of failing the charger's call or being refused.
- Connections follow each other (part 4 §6.3): when the charger's connection goes, the CSMS connection is
  closed, so the CSMS sees the station offline; when the CSMS connection goes, the charger's is closed, so
  the charger queues its messages as it would with a direct link.
"""

from __future__ import annotations

from bridge.effects import (
    CLOSE_GOING_AWAY,
    CLOSE_TRY_AGAIN_LATER,
    Close,
    Effect,
    Report,
    Send,
    Side,
)
from bridge.ocppj.directions import Sender
from bridge.ocppj.errors import Fault, OcppVersion, QueueFull
from bridge.ocppj.rpc import (
    CallFailed,
    CallOverdue,
    CallReceived,
    Diagnostic,
    ErrorReceived,
    MessageIdSource,
    ResultReceived,
    RpcEndpoint,
    RpcEvent,
    Unresponsive,
)
from bridge.ocppj.schema import SchemaRegistry

_PEER_NAME = {Side.SOUTH: "charging station", Side.NORTH: "CSMS"}


class PassThroughStation:
    def __init__(
        self,
        station_id: str,
        schemas: SchemaRegistry,
        new_message_id: MessageIdSource,
        *,
        csms_call_timeout: float,
        charger_call_timeout: float,
        max_queued: int = 100,
        late_answer_wait: float | None = None,
        naive_times_as_utc: bool = False,
    ) -> None:
        self.station_id = station_id
        self._endpoints = {
            Side.SOUTH: RpcEndpoint(
                OcppVersion.V201,
                schemas,
                new_message_id,
                call_timeout=charger_call_timeout,
                max_queued=max_queued,
                late_answer_wait=late_answer_wait,
                late_then_fail=True,
                peer=Sender.CHARGER,
            ),
            Side.NORTH: RpcEndpoint(
                OcppVersion.V201,
                schemas,
                new_message_id,
                call_timeout=csms_call_timeout,
                max_queued=max_queued,
                late_answer_wait=late_answer_wait,
                naive_times_as_utc=naive_times_as_utc,
                peer=Sender.CSMS,
            ),
        }
        self._south = self._endpoints[Side.SOUTH]
        self._north = self._endpoints[Side.NORTH]
        self._effects: list[Effect] = []

    # --- the adapter's interface -----------------------------------------------------------------

    def connection_made(self, side: Side, now: float, wall: float) -> None:
        """Both connections are up when the core is made: the CSMS one follows the charger's."""

    def receive(self, side: Side, data: str | bytes, now: float, wall: float) -> None:
        endpoint = self._endpoints[side]
        if not endpoint.online:
            return
        for event in endpoint.receive(data, now):
            self._route(side, event, now)
        self._collect_frames()

    def handle_timer(self, now: float, wall: float) -> None:
        for side, endpoint in self._endpoints.items():
            given_up = False
            for event in endpoint.handle_timer(now):
                given_up = given_up or isinstance(event, Unresponsive)
                self._route(side, event, now)
            if given_up:
                self._follow(side, "not answering", now)
        self._collect_frames()

    def next_deadline(self) -> float | None:
        south = self._south.next_deadline()
        north = self._north.next_deadline()
        if south is None or (north is not None and north < south):
            return north
        return south

    def connection_lost(self, side: Side, now: float, wall: float) -> None:
        """`side`'s connection is gone: fail its calls and close the other side."""
        endpoint = self._endpoints[side]
        if not endpoint.online:
            return
        for event in endpoint.go_offline():
            self._route(side, event, now)
        self._follow(side, "connection lost", now)

    def _follow(self, side: Side, why: str, now: float) -> None:
        """`side`'s endpoint went offline: the other connection follows (part 4 §6.3)."""
        other = side.other
        if self._endpoints[other].online:
            for event in self._endpoints[other].go_offline():
                self._route(other, event, now)
            self._collect_frames()
            if side is Side.SOUTH:
                self._effects.append(
                    Close(Side.NORTH, CLOSE_GOING_AWAY, "charging station disconnected")
                )
            else:
                self._effects.append(Close(Side.SOUTH, CLOSE_TRY_AGAIN_LATER, f"CSMS {why}"))

    def effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    @property
    def pending_calls(self) -> int:
        """CALLs outstanding or queued on both connections."""
        return sum(e.queued + (e.outstanding is not None) for e in self._endpoints.values())

    # --- routing ---------------------------------------------------------------------------------

    def _route(self, side: Side, event: RpcEvent, now: float) -> None:
        """`event` happened on `side`; answers travel to the other side."""
        here, there = self._endpoints[side], self._endpoints[side.other]
        if isinstance(event, CallReceived):
            call = event.call
            try:
                there.call(call.action, call.payload, now, context=call.message_id, validated=True)
            except QueueFull:
                here.reply_error(
                    call.message_id,
                    Fault.GENERIC,
                    f"too many calls waiting for the {_PEER_NAME[side.other]}",
                )
            return
        if isinstance(event, Diagnostic):
            self._effects.append(Report(side, event))
            return
        if isinstance(event, CallOverdue):
            return  # still outstanding: its answer is forwarded whenever it comes
        if isinstance(event, Unresponsive):
            self._effects.append(
                Report(
                    side,
                    Diagnostic(
                        "peer-unresponsive",
                        f"{event.detail}: closing the connection",
                        message_id=event.request.message_id,
                        action=event.request.action,
                    ),
                )
            )
            self._effects.append(Close(side, CLOSE_GOING_AWAY, event.detail[:120]))
            return  # its calls follow as CallFailed (connection lost), answered then
        original_id: str = event.request.context
        if not there.is_awaiting(original_id):
            self._effects.append(
                Report(
                    side,
                    Diagnostic(
                        "answer-dropped",
                        f"the {_PEER_NAME[side.other]} that asked is gone",
                        message_id=original_id,
                        action=event.request.action,
                    ),
                )
            )
            return
        if isinstance(event, ResultReceived):
            there.reply(original_id, event.payload, validated=True)
        elif isinstance(event, ErrorReceived):
            there.forward_error(original_id, event.error)
        else:
            there.reply_error(original_id, Fault.INTERNAL, _failure_text(side, event))
            self._effects.append(
                Report(
                    side,
                    Diagnostic(
                        "forward-failed",
                        event.detail,
                        message_id=event.request.message_id,
                        action=event.request.action,
                        fields={"reason": event.reason.value},
                    ),
                )
            )

    def _collect_frames(self) -> None:
        for side, endpoint in self._endpoints.items():
            if endpoint.has_outgoing:
                for frame in endpoint.take_outgoing():
                    self._effects.append(Send(side, frame))


def _failure_text(side: Side, failure: CallFailed) -> str:
    return f"{failure.request.action} to the {_PEER_NAME[side]} failed: {failure.reason.value} ({failure.detail})"
