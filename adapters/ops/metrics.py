"""Prometheus metrics of one running bridge (`GET /metrics`, served by `adapters.ops.health`).

Rules
- `BridgeMetrics` owns a private `CollectorRegistry`, never the process-wide default one, so several
  runtimes can live in one process (tests) without sharing or colliding.
- No per-station labels: every label has a small, fixed set of values. Label values taken from peer input
  are checked against closed vocabularies: an action name outside the official OCPP 1.6 and 2.0.1 schema
  sets counts as "other", a CALLERROR code outside the codes both versions define as "other", a frame whose
  head cannot be read as "invalid". A misbehaving charger cannot grow the series.
- Counters and histograms carry no `*_created` series (switched off process-wide on import).
- Counting a frame is cheap (about 0.5 µs; it ran at 2–2.7 µs, 4 frames per relayed request/response
  pair, with a regex per frame and a locked prometheus Counter child): `frame_label` reads only the head
  of the frame, with string searches for the usual head (`[2,"<id>","<Action>"` and `[3,"`) and one
  anchored regular expression for anything else (no JSON parse of the payload); the message and
  CALLERROR counts are plain integers in dicts (every count happens on the event loop's thread) that a
  collector turns into the `_total` series at scrape time.
- The series (all prefixed `ocpp_bridge_`):
  - `stations_connected{side,protocol}` gauge: open OCPP connections, side south (chargers) or north
    (CSMS); `connected(side, protocol, station_id)` is the one hook that keeps it (and `reconnects`) true.
  - `messages_total{action,direction}`: OCPP-J frames; action is the CALL's action, or "CALLRESULT",
    "CALLERROR", "other", "invalid"; direction is charger_to_bridge, bridge_to_charger, csms_to_bridge or
    bridge_to_csms.
  - `callerrors_total{code,side}`: CALLERROR frames on that side's link, either direction.
  - `outbox_depth`, `outbox_oldest_age_seconds` gauges: read at scrape time from the callback given to
    `set_outbox_source` (0 until one is given).
  - `reconnects_total{side}`: connections of a station id that had been connected on that side before
    (since the process started).
  - `iec104_links{state}` gauge: IEC 104 links per state (up, down; under leases `elsewhere`: the
    station's lease is held by another replica, so it is neither up nor down here), kept by the
    `LinkState` of each link.
  - `iec104_point_updates_total`: point updates the 104 links handed to the station cores, read at
    scrape time from the callback given to `set_iec104_points_source` (each link counts its own).
  - `iec104_link_drops_total{reason}`: IEC 104 connections lost or attempts failed, by reason: t1,
    testfr, sequence, bad_frame, protocol, overflow (the link core's), peer_closed, connection_error,
    replaced; under leases lease_lost and given_up (another replica serves the station now).
  - `iec104_notices_total{kind}`: ASDUs not applied: foreign-ca, bad-asdu, unknown-type,
    unexpected-confirmation, registration-missing; every one, also those the rate-limited log leaves
    out (read at scrape time from the callback given to `set_iec104_notices_source`).
  - `iec104_refused_total{reason}`: dial-in connections refused: unknown_charger, duplicate, timeout,
    overload, or the link core's reason.
  - `south_refused_total{reason}`: OCPP-J charger connections refused or replaced at the handshake:
    unknown_station (404), unauthorized (401), duplicate (a second connection of a connected station,
    either policy), subprotocol (none the station speaks: 1002); every one, also those the
    rate-limited log leaves out.
  - `late_answers_total{side}`: answers that came after the call timeout and were taken as the call's
    answer (nothing resent on a live connection; issue 16).
  - `resends_total{reason}`: messages toward the CSMS sent again (outbox entries and statuses), by why:
    reconnect (the connection ended before the answer), callerror, unanswered (the connection was
    given up after call_timeout + late_answer_wait), timeout, invalid-response.
  - `event_loop_lag_seconds` histogram: how late a 0.5 s sleep wakes up (`watch_event_loop`).
  - `build_info{version,python}`: 1, the running version (`ocpp-bridge --version`).
  - `process_*` (resident memory, CPU seconds, open and maximum descriptors, start time) and
    `python_info`: prometheus-client's own process and platform collectors, on the private registry.
  - `outbox_gave_up_total{message}`: messages toward the CSMS discarded after `message_attempts`
    (E13.FR.04; TransactionEvents are billing data): TransactionEvent, StatusNotification or other.
  - `csms_connect_failures_total{reason}`: failed connection attempts toward the CSMS, by
    `adapters.ocpp.north.FAILURE_KINDS`.
  - `stations_connected{side="south",protocol="iec104"}` counts the 104 links that are up (the same
    `LinkState` keeps both).
  - `connections_dropped_total{side,reason}`: connections the bridge dropped (1008) because the peer
    did not read what it was sent (`adapters.driver`): reason queue_full (`max_queued_frames` or
    `max_queued_bytes` reached) or write_timeout.
  - `send_queue_bytes{side}` gauge: memory of the frames waiting in the bridge for their peers to read
    them (beyond the sockets' buffers), all connections of that side together.
  - `store_write_seconds` histogram: from a batch's submission to the store until it is durable
    (`adapters.store.Store.on_written`): what an acknowledgement waited for the disk.
  - `added_latency_seconds{direction,protocol}` histogram: the time the bridge adds to a forwarded
    message (`adapters.driver`): from the moment a peer's frame is handed to the station's core (read
    complete and parsed; for 104, the moment the link hands over its ASDUs) until the first frame
    that input produces for the *other* peer is handed to that peer's transport (written, or taken
    from the connection's send queue by its writer; for 104, handed to the link), the wait for the
    store included when that frame waited for a batch to be durable. direction charger_to_csms or
    csms_to_charger; protocol the station's charger protocol (ocpp2.0.1, ocpp1.6, iec104). An input
    that produces several frames for the other peer counts once (its first); one that produces none
    (answered by the bridge itself, refused, or only stored) is not counted; frames the bridge sends
    of its own accord (timers, resends, periodic meter values) are not. Kept as plain counts on the
    event loop's thread, turned into the series at scrape time. Cost (two clock reads and one bucket
    per forwarded input): +1.1 µs per request/response pair in process, and under callgrind
    (`bench.run --only hop_ir`) 239.9 -> 248.3 kIr per 2.0.1 pass-through pair (+3.5%), 305.7 ->
    314.3 per 1.6J pair (+2.8%).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.resources
import platform
import re
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from adapters.ocpp.north import FAILURE_KINDS
from adapters.version import version
from bridge.effects import Side
from bridge.ocppj.errors import VALID_CODES

# The `*_created` timestamp series the client adds to every counter and histogram child double the series
# count and no dashboard here reads them. (A switch of the library, so it holds for the whole process.)
# prometheus_client (0.26) declares no return type for it: its annotation is missing, not this call wrong
disable_created_metrics()  # type: ignore[no-untyped-call]

__all__ = ["CONTENT_TYPE", "BridgeMetrics", "FrameLabel", "LinkState", "frame_label"]

# The classic text format, which every Prometheus version reads (what `generate_latest` writes for these
# names; newer clients label the same bytes version=1.0.0, which Prometheus 2 does not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

DIRECTIONS: dict[tuple[Side, bool], str] = {
    # (side, received by the bridge) -> direction label
    (Side.SOUTH, True): "charger_to_bridge",
    (Side.SOUTH, False): "bridge_to_charger",
    (Side.NORTH, True): "csms_to_bridge",
    (Side.NORTH, False): "bridge_to_csms",
}

# destination side of a forwarded frame -> `added_latency_seconds` direction label
LATENCY_DIRECTIONS: dict[Side, str] = {
    Side.NORTH: "charger_to_csms",
    Side.SOUTH: "csms_to_charger",
}
LATENCY_PROTOCOLS = ("ocpp2.0.1", "ocpp1.6", "iec104")
# seconds: a pass-through hop is tens of µs, one behind an fsync a few ms
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

OTHER = "other"
DROP_REASONS = ("queue_full", "write_timeout")
_RESEND_REASONS = frozenset({"reconnect", "callerror", "unanswered", "timeout", "invalid-response"})
INVALID = "invalid"
CALLRESULT = "CALLRESULT"
CALLERROR = "CALLERROR"

# How much of a frame's beginning is looked at, which also bounds the regular expression's work: the
# message type, the message id (at most 36 characters by the specification, each up to 12 when written as
# an escaped surrogate pair) and the action name or error code all fit within it.
_HEAD_CHARS = 640
_WS = r"[ \t\r\n]*"
_FRAME_HEAD = re.compile(
    rf"{_WS}\[{_WS}([234]){_WS},"
    rf'(?:{_WS}"[^"\\]*(?:\\.[^"\\]*)*"{_WS},{_WS}"([A-Za-z0-9_.\-]{{1,64}})")?'
)

# Every code either OCPP-J version defines, in its own spelling (1.6 keeps its published typos).
_KNOWN_CODES: frozenset[str] = frozenset().union(*VALID_CODES.values())


@functools.cache
def known_actions() -> frozenset[str]:
    """Every action of the official OCPP 1.6 (+ security) and 2.0.1 schemas the `ocpp` package ships."""
    package = importlib.resources.files("ocpp")
    actions: set[str] = set()
    for folder in ("v16/schemas", "v201/schemas"):
        for entry in package.joinpath(folder).iterdir():
            if entry.name.endswith("Response.json"):
                actions.add(entry.name.removesuffix("Response.json"))
    return frozenset(actions)


class FrameLabel(NamedTuple):
    action: str  # the CALL's action, CALLRESULT, CALLERROR, "other" or "invalid"
    error_code: str | None  # a CALLERROR's code ("other" when unknown); None otherwise


_CALLRESULT_LABEL = FrameLabel(CALLRESULT, None)


@functools.cache
def _call_labels(actions: frozenset[str]) -> dict[str, FrameLabel]:
    return {action: FrameLabel(action, None) for action in actions}


# The longest action name the expression below accepts, plus its closing quote.
_ACTION_SPAN = 65


def frame_label(frame: str | bytes, actions: frozenset[str] | None = None) -> FrameLabel:
    """Label an OCPP-J frame by its head, without parsing it. Never raises."""
    if isinstance(frame, bytes):
        frame = frame[:_HEAD_CHARS].decode("utf-8", "replace")
    # The usual heads, written without whitespace, by string search; the expression decides the rest
    # (it gives the same answer for these heads, only slower).
    if frame.startswith('[3,"'):
        return _CALLRESULT_LABEL
    if frame.startswith('[2,"'):
        id_end = frame.find('"', 4, _HEAD_CHARS)
        if id_end > 0 and frame.startswith(',"', id_end + 1) and "\\" not in frame[4:id_end]:
            name_start = id_end + 3
            name_end = frame.find('"', name_start, name_start + _ACTION_SPAN)
            if name_end > 0:
                label = _call_labels(actions or known_actions()).get(frame[name_start:name_end])
                if label is not None:
                    return label
    match = _FRAME_HEAD.match(frame, 0, _HEAD_CHARS)
    if match is None:
        return FrameLabel(INVALID, None)
    kind, name = match.group(1), match.group(2)
    if kind == "3":
        return FrameLabel(CALLRESULT, None)
    if kind == "4":
        code = name if name in _KNOWN_CODES else OTHER
        return FrameLabel(CALLERROR, code)
    if name is None:
        return FrameLabel(INVALID, None)
    return FrameLabel(name if name in (actions or known_actions()) else OTHER, None)


OutboxSource = Callable[[], tuple[int, float]]


class LinkState:
    """One IEC 104 link's place in `iec104_links{state}`: `set(state)` moves it, `close()` removes it.
    While it is "up" it is also one of `connected` (stations_connected{south,iec104})."""

    def __init__(
        self, gauge: Gauge, state: str | None = None, connected: Gauge | None = None
    ) -> None:
        self._gauge = gauge
        self._connected = connected
        self.state: str | None = None
        self.set(state)

    def set(self, state: str | None) -> None:
        if state == self.state:
            return
        if self.state is not None:
            self._gauge.labels(self.state).dec()
            if self.state == "up" and self._connected is not None:
                self._connected.dec()
        if state is not None:
            self._gauge.labels(state).inc()
            if state == "up" and self._connected is not None:
                self._connected.inc()
        self.state = state

    def close(self) -> None:
        self.set(None)

    def __enter__(self) -> LinkState:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _FrameCounts(Collector):
    """`messages_total` and `callerrors_total` from the plain counts `BridgeMetrics` keeps."""

    def __init__(
        self, messages: dict[tuple[str, str], int], callerrors: dict[tuple[str, str], int]
    ) -> None:
        self._messages = messages
        self._callerrors = callerrors

    def collect(self) -> Iterator[CounterMetricFamily]:
        messages = CounterMetricFamily(
            "ocpp_bridge_messages",
            "OCPP-J frames per action (CALLRESULT and CALLERROR by their type) and direction",
            labels=["action", "direction"],
        )
        for key, count in list(self._messages.items()):
            messages.add_metric(key, count)
        yield messages
        errors = CounterMetricFamily(
            "ocpp_bridge_callerrors",
            "CALLERROR frames per error code and side (either direction on that side's link)",
            labels=["code", "side"],
        )
        for key, count in list(self._callerrors.items()):
            errors.add_metric(key, count)
        yield errors

    def describe(self) -> Iterator[CounterMetricFamily]:
        # Without describe() the registry would call collect() at registration to learn the names.
        yield CounterMetricFamily("ocpp_bridge_messages", "", labels=["action", "direction"])
        yield CounterMetricFamily("ocpp_bridge_callerrors", "", labels=["code", "side"])


class _Iec104Points(Collector):
    def __init__(self, source: Callable[[], int]) -> None:
        self._source = source

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "ocpp_bridge_iec104_point_updates",
            "IEC 104 point updates the links handed to the station cores",
            value=self._source(),
        )

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("ocpp_bridge_iec104_point_updates", "", value=0)


class _Iec104Notices(Collector):
    def __init__(self, source: Callable[[], dict[str, int]]) -> None:
        self._source = source

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "ocpp_bridge_iec104_notices",
            "IEC 104 ASDUs not applied (foreign common address, unreadable, unmapped type)",
            labels=["kind"],
        )
        for kind, count in sorted(self._source().items()):
            family.add_metric([kind], count)
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("ocpp_bridge_iec104_notices", "", labels=["kind"])


LeaseFigures = tuple[int, int, int, int]  # held, takeovers, fencing refusals, lost


class _Leases(Collector):
    """Station leases (`[bridge] leases`, adapters/leases.py); all 0 without leases."""

    def __init__(self, source: Callable[[], LeaseFigures]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        held, takeovers, refusals, lost = self._source()
        yield GaugeMetricFamily(
            "ocpp_bridge_leases_held", "station leases this bridge holds", value=held
        )
        yield CounterMetricFamily(
            "ocpp_bridge_lease_takeovers",
            "station leases this bridge took over from another bridge",
            value=takeovers,
        )
        yield CounterMetricFamily(
            "ocpp_bridge_fencing_refusals",
            "writes of a station refused because another bridge holds its lease",
            value=refusals,
        )
        yield CounterMetricFamily(
            "ocpp_bridge_leases_lost",
            "station leases this bridge lost (taken over, or a write refused)",
            value=lost,
        )

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("ocpp_bridge_leases_held", "", value=0)
        yield CounterMetricFamily("ocpp_bridge_lease_takeovers", "", value=0)
        yield CounterMetricFamily("ocpp_bridge_fencing_refusals", "", value=0)
        yield CounterMetricFamily("ocpp_bridge_leases_lost", "", value=0)


class _AddedLatency(Collector):
    """`added_latency_seconds`: a histogram per (direction, protocol) kept as plain lists of counts
    (one per bucket, then +Inf) and a sum; a prometheus `Histogram` child takes a lock per sample."""

    NAME = "ocpp_bridge_added_latency_seconds"

    def __init__(self) -> None:
        # (direction, protocol) -> [count per bucket (not cumulative)..., count above the last, sum]
        self.series: dict[tuple[str, str], list[float]] = {}

    def counts(self, direction: str, protocol: str) -> list[float]:
        key = (direction, protocol)
        counts = self.series.get(key)
        if counts is None:
            counts = self.series[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        return counts

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            self.NAME,
            "Time the bridge adds to a forwarded message: a peer's frame handed to the core until the"
            " first frame it produces for the other peer is handed to that peer's transport",
            labels=["direction", "protocol"],
        )
        labels = [*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf"]
        for key, counts in sorted(self.series.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for label, count in zip(labels, counts[:-1], strict=True):
                cumulative += count
                buckets.append((label, cumulative))
            family.add_metric(list(key), buckets, counts[-1])
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.NAME, "", labels=["direction", "protocol"])


class BridgeMetrics:
    def __init__(self, protocols: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.stations_connected = Gauge(
            "ocpp_bridge_stations_connected",
            "Open OCPP connections, per side (south: chargers, north: CSMS) and protocol",
            ["side", "protocol"],
            registry=registry,
        )
        # (action, direction) -> frames; (code, side) -> CALLERROR frames
        self._messages: dict[tuple[str, str], int] = {}
        self._callerrors: dict[tuple[str, str], int] = {}
        self._counters: dict[tuple[Side, bool], Callable[[str | bytes], None]] = {}
        registry.register(_FrameCounts(self._messages, self._callerrors))
        self._iec104_points: Callable[[], int] = lambda: 0
        registry.register(_Iec104Points(lambda: self._iec104_points()))
        self._leases: Callable[[], LeaseFigures] = lambda: (0, 0, 0, 0)
        registry.register(_Leases(lambda: self._leases()))
        self.outbox_depth = Gauge(
            "ocpp_bridge_outbox_depth",
            "Messages queued toward the CSMS, all stations together",
            registry=registry,
        )
        self.outbox_oldest_age = Gauge(
            "ocpp_bridge_outbox_oldest_age_seconds",
            "Age of the oldest message queued toward the CSMS (0 when none)",
            registry=registry,
        )
        self.reconnects = Counter(
            "ocpp_bridge_reconnects",
            "Connections of a station that had been connected on that side before",
            ["side"],
            registry=registry,
        )
        self.iec104_links = Gauge(
            "ocpp_bridge_iec104_links",
            "IEC 104 links per state",
            ["state"],
            registry=registry,
        )
        self.iec104_drops = Counter(
            "ocpp_bridge_iec104_link_drops",
            "IEC 104 connections lost or connection attempts failed, by reason",
            ["reason"],
            registry=registry,
        )
        self._iec104_notices: Callable[[], dict[str, int]] = dict
        registry.register(_Iec104Notices(lambda: self._iec104_notices()))
        self.iec104_refused = Counter(
            "ocpp_bridge_iec104_refused",
            "IEC 104 connections dialling in that were refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.south_refused = Counter(
            "ocpp_bridge_south_refused",
            "OCPP-J charger connections refused or replacing another at the handshake, by reason",
            ["reason"],
            registry=registry,
        )
        self.late_answers = Counter(
            "ocpp_bridge_late_answers",
            "Answers after the call timeout taken as the call's answer (nothing resent), by side",
            ["side"],
            registry=registry,
        )
        self.resends = Counter(
            "ocpp_bridge_resends",
            "Messages toward the CSMS sent again, by reason",
            ["reason"],
            registry=registry,
        )
        self.event_loop_lag = Histogram(
            "ocpp_bridge_event_loop_lag_seconds",
            "How late a periodic 0.5 s sleep wakes up: time the event loop was busy elsewhere",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        # the newest sample (the status page shows it); None until the first
        self.event_loop_lag_last: float | None = None
        self.store_write = Histogram(
            "ocpp_bridge_store_write_seconds",
            "From a batch's submission to the store until it is durable (fsync included)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
            registry=registry,
        )
        self._added_latency = _AddedLatency()
        registry.register(self._added_latency)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        Info("ocpp_bridge_build", "The running ocpp-bridge", registry=registry).info(
            {"version": version(), "python": platform.python_version()}
        )
        self.outbox_gave_up = Counter(
            "ocpp_bridge_outbox_gave_up",
            "Messages toward the CSMS discarded after message_attempts (E13.FR.04), by message",
            ["message"],
            registry=registry,
        )
        for message in ("TransactionEvent", "StatusNotification", OTHER):
            self.outbox_gave_up.labels(message)
        self.csms_connect_failures = Counter(
            "ocpp_bridge_csms_connect_failures",
            "Failed connection attempts toward the CSMS, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in FAILURE_KINDS:
            self.csms_connect_failures.labels(reason)
        self.connections_dropped = Counter(
            "ocpp_bridge_connections_dropped",
            "Connections dropped (1008) because the peer did not read what it was sent, by side and"
            " reason (queue_full, write_timeout)",
            ["side", "reason"],
            registry=registry,
        )
        self.send_queue_bytes = Gauge(
            "ocpp_bridge_send_queue_bytes",
            "Memory of the frames waiting in the bridge for their peers to read them, per side",
            ["side"],
            registry=registry,
        )
        # side -> bytes queued: plain ints kept on the event loop's thread, read at scrape time
        self._send_queued: dict[Side, int] = {side: 0 for side in Side}
        for side in Side:
            self.send_queue_bytes.labels(side.value).set_function(self._queued_reader(side))
            for reason in DROP_REASONS:
                self.connections_dropped.labels(side.value, reason)
        self._outbox: OutboxSource = lambda: (0, 0.0)
        self.outbox_depth.set_function(lambda: float(self._outbox()[0]))
        self.outbox_oldest_age.set_function(lambda: float(self._outbox()[1]))
        self._actions = known_actions()
        self._seen: set[tuple[str, str]] = set()
        # Series that exist from the start, so dashboards and alerts see 0 rather than nothing.
        for side in Side:
            self.reconnects.labels(side.value)
        self.stations_connected.labels(Side.NORTH.value, "ocpp2.0.1")
        for protocol in protocols:
            self.stations_connected.labels(Side.SOUTH.value, protocol)
            if protocol in LATENCY_PROTOCOLS:
                for side in Side:
                    self.added_latency(side, protocol)

    # --- hooks --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def connected(self, side: Side, protocol: str, station_id: str | None = None) -> Iterator[None]:
        """One open connection for the duration of the `with` block; counts a reconnect when
        `station_id` was connected on this side before."""
        if station_id is not None:
            key = (side.value, station_id)
            if key in self._seen:
                self.reconnects.labels(side.value).inc()
            self._seen.add(key)
        gauge = self.stations_connected.labels(side.value, protocol)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def frame_counter(self, side: Side, *, received: bool) -> Callable[[str | bytes], None]:
        """Counts one frame received (or sent) on `side`; drivers keep one per connection, as this is
        on every frame's path (a CALLRESULT, half of all frames, is counted without labelling it)."""
        counter = self._counters.get((side, received))
        if counter is None:
            counter = self._counters[(side, received)] = self._make_counter(side, received)
        return counter

    def _make_counter(self, side: Side, received: bool) -> Callable[[str | bytes], None]:
        direction = DIRECTIONS[(side, received)]
        messages, callerrors, actions = self._messages, self._callerrors, self._actions
        result_key = (CALLRESULT, direction)
        keys: dict[str, tuple[str, str]] = {}  # action -> its (action, direction) key, made once

        def count(frame: str | bytes) -> None:
            if isinstance(frame, str) and frame.startswith('[3,"'):
                messages[result_key] = messages.get(result_key, 0) + 1
                return
            label = frame_label(frame, actions)
            key = keys.get(label.action)
            if key is None:
                key = keys[label.action] = (label.action, direction)
            messages[key] = messages.get(key, 0) + 1
            if label.error_code is not None:
                code_key = (label.error_code, side.value)
                callerrors[code_key] = callerrors.get(code_key, 0) + 1

        return count

    def added_latency(self, to: Side, protocol: str) -> list[float]:
        """The histogram of `added_latency_seconds` of frames forwarded to `to`'s peer by a station
        whose chargers speak `protocol` (one of LATENCY_PROTOCOLS, else "other"), as the plain list its
        owner updates on the event loop's thread (it is on every forwarded frame's path, so no call):
        a sample of `s` seconds adds 1 at `bisect_left(LATENCY_BUCKETS, s)` (the +Inf slot after the
        last bound) and `s` at -1 (the sum)."""
        if protocol not in LATENCY_PROTOCOLS:
            protocol = OTHER
        return self._added_latency.counts(LATENCY_DIRECTIONS[to], protocol)

    def set_outbox_source(self, source: OutboxSource) -> None:
        """`source()` → (messages queued toward the CSMS, age in seconds of the oldest; 0 when none).
        Called from the event loop's thread at every scrape."""
        self._outbox = source

    def set_leases_source(self, source: Callable[[], LeaseFigures]) -> None:
        """`source()` → (leases held, takeovers, fencing refusals, leases lost) at every scrape."""
        self._leases = source

    def set_iec104_points_source(self, source: Callable[[], int]) -> None:
        """`source()` → point updates received by every 104 link so far (at every scrape)."""
        self._iec104_points = source

    def iec104_link(self, state: str | None = None) -> LinkState:
        connected = self.stations_connected.labels(Side.SOUTH.value, "iec104")
        return LinkState(self.iec104_links, state, connected)

    def diagnostic(self, side: Side, kind: str, fields: dict[str, object]) -> None:
        """Count a core diagnostic that has a series (late answers, resends); others are only logged."""
        if kind == "late-answer":
            self.late_answers.labels(side.value).inc()
        elif kind == "outbox-gave-up":
            message = "TransactionEvent" if "transaction_id" in fields else OTHER
            self.outbox_gave_up.labels(message).inc()
        elif kind == "status-gave-up":
            self.outbox_gave_up.labels("StatusNotification").inc()
        elif kind == "resend":
            reason = fields.get("reason")
            self.resends.labels(reason if reason in _RESEND_REASONS else OTHER).inc()

    def csms_connect_failed(self, kind: str) -> None:
        self.csms_connect_failures.labels(kind if kind in FAILURE_KINDS else OTHER).inc()

    def _queued_reader(self, side: Side) -> Callable[[], float]:
        """What `send_queue_bytes{side}` reads at scrape time."""
        return lambda: float(self._send_queued[side])

    def send_queued(self, side: Side, delta: int) -> None:
        """Bytes of frames queued for a peer of `side` (negative: written or discarded)."""
        self._send_queued[side] += delta

    def send_queue_size(self, side: Side) -> int:
        return self._send_queued[side]

    def connection_dropped(self, side: Side, reason: str) -> None:
        self.connections_dropped.labels(
            side.value, reason if reason in DROP_REASONS else OTHER
        ).inc()

    def iec104_drop(self, reason: str) -> None:
        self.iec104_drops.labels(reason).inc()

    def set_iec104_notices_source(self, source: Callable[[], dict[str, int]]) -> None:
        """`source()` → notices by kind of every 104 link so far (at every scrape)."""
        self._iec104_notices = source

    def iec104_refusal(self, reason: str) -> None:
        self.iec104_refused.labels(reason).inc()

    def south_refusal(self, reason: str) -> None:
        self.south_refused.labels(reason).inc()

    async def watch_event_loop(self, interval: float = 0.5) -> None:
        """Sample the event loop's lag every `interval` seconds, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + interval
            await asyncio.sleep(interval)
            self.event_loop_lag_last = max(0.0, loop.time() - expected)
            self.event_loop_lag.observe(self.event_loop_lag_last)

    def exposition(self) -> bytes:
        """The Prometheus text format of every series (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
