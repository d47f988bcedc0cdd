"""Message traces: one JSON-lines file per station linking each frame the bridge receives to the frames it caused.

Rules
- Off unless `[bridge] trace_dir` is set. Then every frame a station's `CoreDriver` reads or queues for
  sending is one line of `<trace_dir>/<station id>.jsonl`:
  `{"t": "2024-05-01T12:00:00.123Z", "station": "CP16-1", "side": "south", "dir": "in", "corr": "3fa9-17",
  "frame": [2, "19", "StartTransaction", {...}]}`, and on a CALLRESULT or CALLERROR also `"re"`: the `corr`
  of the traced CALL it answers. `t` is when the driver read the frame or queued it (not when the socket
  wrote it).
- Correlation (`StationTrace.input`): the driver opens a fresh correlation id for every input it feeds
  the core: a received frame, a timer, a connection made or lost. Every frame the core sends while
  handling that input carries the same id, so a charger's StartTransaction shares its `corr` with the
  TransactionEvent it became, and a CSMS request with the 1.6 call it became. A frame sent later carries
  the id of the input that released it: a queued TransactionEvent drained after the CSMS reconnects is
  linked to that reconnection (or to the CSMS's answer to the previous queued message), a
  StartTransaction.conf held for the CSMS's idTokenInfo to the CSMS's CALLRESULT (whose `re` points back
  at the TransactionEvent, and so at the StartTransaction). Ids are a per-process random prefix and a
  per-station counter (`3fa9-17`), allocated only when a line needs one.
- IEC 104 stations: what the charger's link delivered and what the bridge sent it are traced too, on
  the south side, with `"iec104"` instead of `"frame"`: a point update
  `{"ioa": "0x0023", "type": "M_SP_NA_1", "value": true}` (plus `"quality"` and `"at"` when it has
  them), `{"link": "up"}` / `{"link": "down", "reason": ...}`, `{"confirmed": 3, "ioa": "0x6001",
  "positive": true}`, and out `{"command": 3, "ioa": "0x6001", "type": "C_SC_NA_1", "value": true,
  "purpose": "RequestStartTransaction"}` or `{"interrogation": "counters"}`. A batch of link events
  handed over at once is one input: its lines share the `corr` of the frames it caused.
- Masking (`mask_frame`): the value of every `idTag`, `parentIdTag`, `idToken`, `groupIdToken` and
  `additionalIdToken` key, at any depth, keeps its first and last 2 characters (`04****F7`; 7 characters
  or fewer become `****`); inside an IdTokenType object every string but its `type` is masked that way.
  Values of keys naming a password, ChangeConfiguration's `AuthorizationKey` and SetVariables'
  `BasicAuthPassword` become `********`. (The bridge's own passwords travel in HTTP headers, never in a
  frame; these are passwords a CSMS sets on a charger.) The frame is parsed afresh for the trace and
  masked in place; a frame whose text holds none of the key names (nor a `\\u` escape that could spell
  one) is not walked at all. A frame that is not JSON is traced as its text, `"raw": true`, with the same
  keys' values masked by a regular expression (and whatever follows a secret setting's name cut off).
  Subtrees nested deeper than `MAX_DEPTH` are replaced by a marker, so masking never raises: the walk
  is iterative (an explicit stack), never recursive, and a frame that was not walked (nothing to
  mask) but is nested deeper than the JSON writer goes is cut the same way when it is written.
- Size: a frame longer than `MAX_FRAME_CHARS` (64 Ki characters) is traced as the masked text of its
  first `MAX_FRAME_CHARS` characters, `"raw": true, "cut": <its length>` (its `re` link still
  found), so one line never holds more than that of a peer's frame.
- Writes never touch the disk on the event loop: a line is built there (parse, mask, serialise: 8–25 µs
  per line measured) and put on a queue; one daemon thread per process wakes every `FLUSH_INTERVAL`
  seconds (0.2), writes what is queued to each file in one call and flushes it (no fsync: a trace is a
  diagnostic, not a record). A thread rather than a flush on a loop timer: a slow or stalled disk then
  delays trace lines, never the stations. Up to `MAX_QUEUED_LINES` lines wait; beyond that lines are
  dropped, and the next line accepted logs a `trace.lines_dropped` warning saying how many. A file that
  cannot be written is logged once (`trace.write_failed`) and its lines are dropped until a write
  succeeds again. Pending lines are written at interpreter exit (`atexit`); a killed process loses at
  most the last 0.2 s.
- Rotation: before a line would take a file past `trace_max_bytes`, `<id>.jsonl` becomes `<id>.jsonl.1`
  (`.1` becomes `.2`, …) and only `trace_keep` rotated files are kept (0: the old file is deleted).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import queue
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from adapters.config import BridgeConfig, BridgeSection
from adapters.ops.logs import get_logger
from bridge.effects import Side

__all__ = [
    "FLUSH_INTERVAL",
    "MAX_DEPTH",
    "MAX_FRAME_CHARS",
    "MAX_QUEUED_LINES",
    "StationTrace",
    "TraceTarget",
    "flush_traces",
    "mask_frame",
    "mask_token",
    "open_trace",
    "trace_path",
]

FLUSH_INTERVAL = 0.2  # seconds between the writer thread's batches
MAX_QUEUED_LINES = 50_000  # lines waiting for the writer before new ones are dropped
MAX_DEPTH = 64  # JSON nesting traced; OCPP frames are about 8 deep
MAX_FRAME_CHARS = 64 << 10  # of a frame in a trace line; a longer one is traced as its cut text
MAX_OPEN_FILES = 64  # trace files the writer keeps open (least recently written closed first)
_PENDING_CALLS = 4096  # CALLs per station remembered to link their answers ("re")

TOKEN_KEYS = frozenset({"idTag", "parentIdTag", "idToken", "groupIdToken", "additionalIdToken"})
SECRET_SETTINGS = frozenset({"AuthorizationKey", "BasicAuthPassword"})
SECRET_MASK = "********"
_DEEP = "…(nested too deep)"
# Substrings without which a frame cannot hold anything to mask (a `\u` escape could spell a key name).
_MARKERS = re.compile(r"idT|IdT|assword|ASSWORD|AuthorizationKey|\\u")
# A key to mask, then its value: a string (its closing quote may be cut off) or a bare number.
_RAW_SECRET = re.compile(
    r'("(?:idTag|parentIdTag|idToken|groupIdToken|additionalIdToken|[^"\\]*(?:[Pp]assword|PASSWORD)[^"\\]*)"\s*:\s*)'
    r'(?:"((?:[^"\\]|\\.)*)"?|([^\s,\]}{"\[]+))'
)
_RAW_SETTING = re.compile(r'(AuthorizationKey|BasicAuthPassword)"(.*)', re.DOTALL)


def mask_token(value: str) -> str:
    """`04A2B3C4D5E6F7` → `04****F7`; 7 characters or fewer → `****` (so at most 4 of 8 survive)."""
    return f"{value[:2]}****{value[-2:]}" if len(value) >= 8 else "****"


def _is_secret_key(key: str) -> bool:
    return "assword" in key or "ASSWORD" in key  # password, Password, PASSWORD, vpnPassword, …


def _mask_token_value(value: Any, depth: int) -> Any:
    """A value under a token key: every string in it masked, except an IdTokenType's `type`."""
    if isinstance(value, str):
        return mask_token(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return mask_token(str(value))
    if depth >= MAX_DEPTH:
        return _DEEP
    if isinstance(value, list):
        return [_mask_token_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        masked: dict[str, Any] = {}
        for key, item in value.items():
            if key == "type" and isinstance(item, str):
                masked[key] = item
            elif _is_secret_key(key):
                masked[key] = None if item is None else SECRET_MASK
            else:
                masked[key] = _mask_token_value(item, depth + 1)
        return masked
    return value


def _mask(value: Any, depth: int, *, masking: bool = True) -> Any:
    """Mask `value` in place (it is freshly parsed: nothing else holds it); returns it, or what
    replaces it when it is nested too deep. Iterative (an explicit stack), so no nesting reaches
    Python's recursion limit; without `masking` it only cuts what is nested deeper than MAX_DEPTH."""
    if not isinstance(value, dict | list):
        return value
    if depth >= MAX_DEPTH:
        return _DEEP
    stack: list[tuple[Any, int]] = [(value, depth)]
    while stack:
        node, level = stack.pop()
        deeper = level + 1
        if isinstance(node, dict):
            setting = masking and _names_a_secret_setting(node)
            for key, item in node.items():  # replacing values of existing keys only
                if masking and key in TOKEN_KEYS:
                    node[key] = _mask_token_value(item, deeper)
                elif masking and (
                    _is_secret_key(key) or (setting and key in ("value", "attributeValue"))
                ):
                    node[key] = None if item is None else SECRET_MASK
                elif isinstance(item, dict | list):
                    if deeper >= MAX_DEPTH:
                        node[key] = _DEEP
                    else:
                        stack.append((item, deeper))
        else:
            for index, item in enumerate(node):
                if isinstance(item, dict | list):
                    if deeper >= MAX_DEPTH:
                        node[index] = _DEEP
                    else:
                        stack.append((item, deeper))
    return value


def _names_a_secret_setting(value: dict[str, Any]) -> bool:
    """ChangeConfiguration {"key": "AuthorizationKey", "value": ...}; GetConfiguration.conf's
    configurationKey items; SetVariableData {"variable": {"name": "BasicAuthPassword"}, ...}"""
    key_name = value.get("key")
    variable = value.get("variable")
    variable_name = variable.get("name") if isinstance(variable, dict) else None
    return (isinstance(key_name, str) and key_name in SECRET_SETTINGS) or (
        isinstance(variable_name, str) and variable_name in SECRET_SETTINGS
    )


def mask_frame(frame: Any) -> Any:
    """Mask a parsed frame's idTokens and passwords (see the module rules) in place, and return it (or
    the marker that replaces it when nested too deep). Never raises."""
    return _mask(frame, 0)


def _mask_raw(text: str) -> str:
    """A frame that is not JSON: the same keys masked in its text, as well as a regex can."""

    def token(match: re.Match[str]) -> str:
        key = match.group(1)
        value = match.group(2) if match.group(2) is not None else match.group(3)
        secret = SECRET_MASK if _is_secret_key(key) else mask_token(value)
        return f'{key}"{secret}"'

    text = _RAW_SECRET.sub(token, text)
    # Whatever follows a secret setting's name could be its value: cut it off.
    return _RAW_SETTING.sub(lambda m: f'{m.group(1)}" …(cut: may hold a secret)', text)


def _needs_masking(text: str) -> bool:
    return _MARKERS.search(text) is not None


# --- the per-station handle the driver calls -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TraceTarget:
    """One station's trace file and its rotation settings."""

    path: Path
    max_bytes: int
    keep: int


def trace_path(trace_dir: str | Path, station_id: str) -> Path:
    """`<trace_dir>/<station id>.jsonl` (station ids hold no '/', per the configuration's rules)."""
    return Path(trace_dir) / f"{station_id}.jsonl"


_PROCESS_PREFIX = secrets.token_hex(2)
_SIDE_NAMES = {side: side.value for side in Side}  # Enum.value is a slow descriptor
_counters: dict[str, Iterator[int]] = {}


class _UtcClock:
    """ISO 8601 UTC time with milliseconds; the part down to the second is formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


_utc_now = _UtcClock()


class StationTrace:
    """What a `CoreDriver` calls: `input` once per input it feeds the core, `sent` per `Send`.

    Used only from the event loop's thread.
    """

    def __init__(
        self,
        station_id: str,
        target: TraceTarget,
        *,
        writer: _Writer | None = None,
        clock: Callable[[], str] | None = None,
    ) -> None:
        self.station_id = station_id
        self.target = target
        self._writer = writer or _shared_writer()
        self._clock = clock or _utc_now
        self._counter = _counters.setdefault(station_id, itertools.count(1))
        self._corr: str | None = None
        # (side, direction of the CALL, message id) → corr of the CALL, until its answer is traced
        self._calls: dict[tuple[str, str, str], str] = {}

    def input(self, received: tuple[Side, str | bytes] | None = None) -> None:
        """A new input to the core (a frame read on a side, or None: a timer, a connection made or lost):
        a fresh correlation id from now on; the received frame is traced under it."""
        self._corr = None
        if received is not None:
            self._line(received[0], "in", received[1])

    def correlation(self) -> str:
        """The current input's correlation id (opened now if nothing was traced under it yet)."""
        return self._correlation()

    def resume(self, corr: str) -> None:
        """What an earlier input caused is carried out now (it waited for the store): trace it under
        that input's id."""
        self._corr = corr

    def sent(self, side: Side, frame: str) -> None:
        """A frame queued for `side` while handling the current input."""
        self._line(side, "out", frame)

    def link_events(self, events: Any) -> None:
        """IEC 104 link events fed to the core in the current input, one line each."""
        for event in events:
            self._record("in", _link_event(event))

    def south_effect(self, effect: Any) -> None:
        """An IEC 104 command or interrogation the core asked for while handling the current input."""
        self._record("out", _south_effect(effect))

    def _record(self, direction: str, what: dict[str, Any]) -> None:
        try:
            record = {
                "t": self._clock(),
                "station": self.station_id,
                "side": "south",
                "dir": direction,
                "corr": self._correlation(),
                "iec104": what,
            }
            line = orjson.dumps(record, default=repr) + b"\n"
        except Exception:  # noqa: BLE001 - a trace must never end a session
            get_logger().exception("trace.render_failed", station_id=self.station_id)
            return
        self._writer.put(self.target, line)

    def _correlation(self) -> str:
        if self._corr is None:
            self._corr = f"{_PROCESS_PREFIX}-{next(self._counter)}"
        return self._corr

    def _line(self, side: Side, direction: str, frame: str | bytes) -> None:
        try:
            line = self._render(side, direction, frame)
        except Exception:  # noqa: BLE001 - a trace must never end a session
            get_logger().exception("trace.render_failed", station_id=self.station_id)
            return
        self._writer.put(self.target, line)

    def _render(self, side: Side, direction: str, frame: str | bytes) -> bytes:
        corr = self._correlation()
        record: dict[str, Any] = {
            "t": self._clock(),
            "station": self.station_id,
            "side": _SIDE_NAMES[side],
            "dir": direction,
            "corr": corr,
        }
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        try:
            parsed = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return _raw_line(record, text)
        answered = self._link(_SIDE_NAMES[side], direction, parsed, corr)
        if answered is not None:
            record["re"] = answered
        if len(text) > MAX_FRAME_CHARS:
            return _raw_line(record, text)
        record["frame"] = mask_frame(parsed) if _needs_masking(text) else parsed
        try:
            return orjson.dumps(record) + b"\n"
        except orjson.JSONEncodeError:
            # nested deeper than orjson writes (unmasked frames are not walked), or a value it
            # cannot write (an integer past 64 bits): cut to MAX_DEPTH, else traced as its text
            record["frame"] = _mask(parsed, 0, masking=False)
            try:
                return orjson.dumps(record) + b"\n"
            except orjson.JSONEncodeError:
                return _raw_line(record, text)

    def _link(self, side: str, direction: str, frame: Any, corr: str) -> str | None:
        """Remember a CALL's corr; for an answer, the corr of the CALL it answers (if traced)."""
        if not (isinstance(frame, list) and len(frame) >= 2 and isinstance(frame[1], str)):
            return None
        kind = frame[0]
        if kind == 2:
            calls = self._calls
            if len(calls) >= _PENDING_CALLS:  # unanswered calls: forget the oldest
                del calls[next(iter(calls))]
            calls[(side, direction, frame[1])] = corr
            return None
        if kind in (3, 4):
            other = "out" if direction == "in" else "in"
            return self._calls.pop((side, other, frame[1]), None)
        return None


def _raw_line(record: dict[str, Any], text: str) -> bytes:
    """A frame traced as its text (masked by `_mask_raw`): one that is not JSON, or longer than
    MAX_FRAME_CHARS (then its first MAX_FRAME_CHARS characters and `"cut"`: its length)."""
    if len(text) > MAX_FRAME_CHARS:
        record["frame"] = _mask_raw(text[:MAX_FRAME_CHARS])
        record["cut"] = len(text)
    else:
        record["frame"] = _mask_raw(text)
    record["raw"] = True
    return orjson.dumps(record) + b"\n"


def _link_event(event: Any) -> dict[str, Any]:
    from bridge.stations.iec104.southbound import (
        CommandConfirmed,
        LinkDown,
        LinkUp,
        PointUpdate,
        RawAsdu,
    )

    if isinstance(event, PointUpdate):
        what: dict[str, Any] = {
            "ioa": f"0x{event.ioa:04X}",
            "type": event.type_id,
            "value": event.value,
        }
        if event.quality:
            what["quality"] = sorted(event.quality)
        if event.timestamp is not None:
            what["at"] = event.timestamp
        return what
    if isinstance(event, CommandConfirmed):
        what = {
            "confirmed": event.command_id,
            "ioa": f"0x{event.ioa:04X}",
            "positive": event.positive,
        }
        if event.detail:
            what["detail"] = event.detail
        return what
    if isinstance(event, LinkUp):
        return {"link": "up"}
    if isinstance(event, LinkDown):
        return {"link": "down", "reason": event.reason}
    if isinstance(event, RawAsdu):
        return {
            "asdu": event.type_id,
            "cot": event.cot,
            "ca": event.common_address,
            "objects": event.objects[:64].hex(),  # bounded: a trace line is not a dump
            "bytes": len(event.objects),
        }
    return {"event": repr(event)}


def _south_effect(effect: Any) -> dict[str, Any]:
    from bridge.stations.iec104.southbound import Interrogate104, Send104Command, Send104Private

    if isinstance(effect, Send104Command):
        return {
            "command": effect.command_id,
            "ioa": f"0x{effect.ioa:04X}",
            "type": str(effect.type_id),
            "value": effect.value,
            "purpose": effect.purpose,
        }
    if isinstance(effect, Interrogate104):
        return {"interrogation": "counters" if effect.counters else "general"}
    if isinstance(effect, Send104Private):
        return {
            "asdu": effect.type_id,
            "cot": effect.cot,
            "objects": effect.objects[:64].hex(),
            "purpose": effect.purpose,
        }
    return {"effect": repr(effect)}


def open_trace(config: BridgeConfig | BridgeSection, station_id: str) -> StationTrace | None:
    """The trace for `station_id` under a configuration's `[bridge]` settings, or None when tracing is
    off."""
    section = config.bridge if isinstance(config, BridgeConfig) else config
    if not section.trace_dir:
        return None
    target = TraceTarget(
        trace_path(section.trace_dir, station_id), section.trace_max_bytes, section.trace_keep
    )
    return StationTrace(station_id, target)


# --- the writer thread ------------------------------------------------------------------------------


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class _Writer:
    """One background thread writing every station's trace lines, in order, a batch per wake-up."""

    def __init__(
        self, *, interval: float = FLUSH_INTERVAL, max_queued: int = MAX_QUEUED_LINES
    ) -> None:
        self._interval = interval
        self._max_queued = max_queued
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._files: OrderedDict[Path, tuple[IO[bytes], int]] = OrderedDict()
        self._failing: set[Path] = set()
        self._dropped = 0

    # -- any thread (the event loop's) --

    def put(self, target: TraceTarget, line: bytes) -> None:
        if self._queue.qsize() >= self._max_queued:
            self._dropped += 1
            return
        if self._dropped:
            get_logger().warning("trace.lines_dropped", count=self._dropped)
            self._dropped = 0
        self._ensure_thread()
        self._queue.put((target, line))

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every line queued before this call is written (tests, shutdown)."""
        if self._thread is None:
            return True
        marker = _Flush()
        self._queue.put(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        self._wake.set()
        thread.join(timeout)
        self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="ocpp-bridge-trace", daemon=True)
                thread.start()
                self._thread = thread

    # -- the writer thread --

    def _run(self) -> None:
        while True:
            items = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(items) < 100_000:
                    items.append(self._queue.get_nowait())
            stop = self._write_batch(items)
            if stop:
                self._close_files()
                return
            self._wake.wait(self._interval)
            self._wake.clear()

    def _write_batch(self, items: list[Any]) -> bool:
        # Grouped by target object (cheaper to key than to hash the dataclass); the items hold them.
        groups: dict[int, tuple[TraceTarget, list[bytes]]] = {}
        stop = False
        for item in items:
            if type(item) is tuple:
                target, line = item
                group = groups.get(id(target))
                if group is None:
                    groups[id(target)] = (target, [line])
                else:
                    group[1].append(line)
                continue
            # A flush marker or the stop: everything before it is written first.
            self._write_groups(groups)
            groups = {}
            if isinstance(item, _Flush):
                item.done.set()
            else:
                stop = True
        self._write_groups(groups)
        return stop

    def _write_groups(self, groups: dict[int, tuple[TraceTarget, list[bytes]]]) -> None:
        for target, batch in groups.values():
            try:
                self._append(target, batch)
            except Exception as exc:  # noqa: BLE001 - OSError mostly; the thread must live on
                self._forget(target.path)
                if target.path not in self._failing:
                    self._failing.add(target.path)
                    get_logger().warning(
                        "trace.write_failed", path=str(target.path), error=str(exc)
                    )
            else:
                self._failing.discard(target.path)

    def _append(self, target: TraceTarget, batch: list[bytes]) -> None:
        handle, size = self._open(target.path)
        data = b"".join(batch)
        if size + len(data) <= target.max_bytes:
            handle.write(data)
            size += len(data)
        else:  # line by line: rotate before the line that would pass the limit
            chunk: list[bytes] = []
            for line in batch:
                if size > 0 and size + len(line) > target.max_bytes:
                    handle.write(b"".join(chunk))
                    chunk = []
                    self._forget(target.path)
                    _rotate(target.path, target.keep)
                    handle, size = self._open(target.path)
                chunk.append(line)
                size += len(line)
            handle.write(b"".join(chunk))
        handle.flush()
        self._files[target.path] = (handle, size)

    def _open(self, path: Path) -> tuple[IO[bytes], int]:
        entry = self._files.get(path)
        if entry is not None:
            self._files.move_to_end(path)
            return entry
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("ab")
        entry = (handle, handle.tell())
        self._files[path] = entry
        while len(self._files) > MAX_OPEN_FILES:
            _, (oldest, _) = self._files.popitem(last=False)
            oldest.close()
        return entry

    def _forget(self, path: Path) -> None:
        entry = self._files.pop(path, None)
        if entry is not None:
            with contextlib.suppress(OSError):
                entry[0].close()

    def _close_files(self) -> None:
        for path in list(self._files):
            self._forget(path)


def _rotate(path: Path, keep: int) -> None:
    """`<path>` → `<path>.1` → … → `<path>.<keep>`; what falls off the end is deleted."""
    rotated = [path.with_name(f"{path.name}.{n}") for n in range(1, keep + 1)]
    if keep == 0:
        path.unlink(missing_ok=True)
        return
    rotated[-1].unlink(missing_ok=True)
    for older, newer in zip(reversed(rotated[1:]), reversed(rotated[:-1]), strict=True):
        if newer.exists():
            os.replace(newer, older)
    os.replace(path, rotated[0])


_writer: _Writer | None = None
_writer_lock = threading.Lock()


def _shared_writer() -> _Writer:
    global _writer
    with _writer_lock:
        if _writer is None:
            _writer = _Writer()
            atexit.register(_writer.close)
        return _writer


def flush_traces(timeout: float = 5.0) -> bool:
    """Block until every trace line queued so far is on disk (page cache). True unless timed out."""
    return _writer.flush(timeout) if _writer is not None else True
