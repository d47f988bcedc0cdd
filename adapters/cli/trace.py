"""`ocpp-bridge trace STATION`: a station's message trace (`adapters.ops.trace`), readable, optionally live.

Rules
- The trace folder and the station list come from the same configuration (and environment overrides) as
  `run`; a configuration problem prints one line per problem and exits 2, and so do tracing being off
  (`[bridge] trace_dir` empty) and a station id the configuration does not list.
- One output line per trace line: time (UTC), side, direction, correlation id, what the frame is (the
  CALL's action, `CALLRESULT` or `CALLERROR <code>`, followed by the answered CALL's action and `re <corr>`
  when that CALL is in view), and an excerpt of the payload (`EXCERPT` characters).
- The last `--lines` lines come first, taken from the current file and, when it holds fewer, the rotated
  ones. `--follow` then polls every `POLL_INTERVAL` seconds: the lines written since, across rotations
  (the rest of the renamed file is read before the new one). Only whole lines are printed.
- A station with no trace file yet is not an error: without `--follow` a note goes to stderr and the
  exit status is 0; with `--follow` the file is waited for.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer

from adapters.config import ConfigError, load_config
from adapters.ops.trace import trace_path

POLL_INTERVAL = 0.25  # seconds between looks at a followed file
EXCERPT = 160  # characters of payload shown
_BLOCK = 64 * 1024
_ACTIONS_REMEMBERED = 4096


TRACE_HELP = (
    "Print a station's message trace, readable; with --follow (the default) keep printing it live."
    "\n\nOne line per frame: time (UTC), side (south: charger, north: CSMS), direction, correlation"
    " id, the CALL's action or CALLRESULT / CALLERROR (with the answered action and 're <corr>' of"
    " its CALL when that is in view), and the start of the payload, idTokens masked. Frames sharing"
    " a correlation id are one input and what the bridge sent because of it."
    "\n\nTracing must be on: \\[bridge] trace_dir in the configuration. The bridge writes lines"
    " within about 0.2 s of the frame. Exits 2 when tracing is off or the station is not configured."
)


def trace(
    station: Annotated[
        str,
        typer.Argument(
            metavar="STATION",
            help="The station id, as configured in \\[\\[stations]].",
            show_default=False,
        ),
    ],
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            "-c",
            help="The bridge's TOML configuration file, with its OCPP_BRIDGE_* environment"
            " overrides: the same as `run` reads.",
        ),
    ] = Path("bridge.toml"),
    follow: Annotated[
        bool,
        typer.Option(
            "--follow/--no-follow",
            help="Keep printing new lines as the bridge writes them, across rotations, until"
            " Ctrl-C; --no-follow prints the last lines and exits.",
        ),
    ] = True,
    lines: Annotated[
        int,
        typer.Option(
            "--lines",
            "-n",
            min=0,
            help="How many of the latest lines to print first (from rotated files too).",
        ),
    ] = 20,
) -> None:
    """Print a station's message trace (see TRACE_HELP)."""
    path = _station_trace(config, station)
    formatter = TraceFormatter()
    out = sys.stdout
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        if not follow:
            typer.echo(f"no trace yet for {station!r}: {path} does not exist", err=True)
            return
        handle = None
    try:
        # The same open file serves the last lines and the follow: nothing written between is lost.
        start = _whole_lines_end(handle) if handle is not None else 0
        for raw in last_lines(path, lines, current=(handle, start)):
            out.write(formatter.format(raw) + "\n")
        out.flush()
        if follow:
            for raw in follow_lines(path, opened=(handle, start)):
                out.write(formatter.format(raw) + "\n")
                out.flush()
        elif handle is not None:
            handle.close()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # e.g. piped into `head`
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())


def _station_trace(config: Path, station: str) -> Path:
    try:
        loaded = load_config(config, os.environ)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(2) from None
    if not loaded.bridge.trace_dir:
        typer.echo(
            f"{config}: tracing is off: set [bridge] trace_dir (or OCPP_BRIDGE_BRIDGE__TRACE_DIR)"
            " and restart the bridge",
            err=True,
        )
        raise typer.Exit(2)
    known = [s.id for s in loaded.stations]
    if station not in known:
        listed = ", ".join(repr(s) for s in known) or "none"
        typer.echo(f"{config}: no station {station!r} (configured: {listed})", err=True)
        raise typer.Exit(2)
    return trace_path(loaded.bridge.trace_dir, station)


# --- formatting ---------------------------------------------------------------------------------------


class TraceFormatter:
    """Trace lines → readable lines; remembers CALLs so an answer can name the action it answers."""

    def __init__(self, excerpt: int = EXCERPT) -> None:
        self._excerpt = excerpt
        self._actions: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    def format(self, raw: bytes) -> str:
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return "? " + self._cut(raw.decode("utf-8", "replace").strip())
        if not isinstance(record, dict):
            return "? " + self._cut(raw.decode("utf-8", "replace").strip())
        side = str(record.get("side", "?"))
        direction = str(record.get("dir", "?"))
        head = f"{record.get('t', '?')}  {side:<5} {direction:<3}  {record.get('corr', '?'):<10}"
        iec104 = record.get("iec104")
        if isinstance(iec104, dict):
            return f"{head}  IEC 104  {self._cut(_compact(iec104))}"
        frame = record.get("frame")
        if record.get("raw") or not isinstance(frame, list):
            return f"{head}  (not OCPP-J)  {self._cut(_compact(frame))}"
        what, payload = self._describe(side, direction, frame)
        answered = record.get("re")
        if answered:
            what += f" (re {answered})"
        return f"{head}  {what}  {self._cut(_compact(payload))}"

    def _describe(self, side: str, direction: str, frame: list[Any]) -> tuple[str, Any]:
        kind = frame[0] if frame else None
        message_id = str(frame[1]) if len(frame) > 1 else "?"
        if kind == 2 and len(frame) >= 3:
            action = str(frame[2])
            self._actions[(side, direction, message_id)] = action
            while len(self._actions) > _ACTIONS_REMEMBERED:
                self._actions.popitem(last=False)
            return action, frame[3] if len(frame) > 3 else None
        other = "out" if direction == "in" else "in"
        action = self._actions.pop((side, other, message_id), "")
        suffix = f" {action}" if action else ""
        if kind == 3:
            return "CALLRESULT" + suffix, frame[2] if len(frame) > 2 else None
        if kind == 4:
            code = frame[2] if len(frame) > 2 else "?"
            rest = frame[3:]
            return f"CALLERROR {code}" + suffix, rest
        return "(unknown frame type)", frame

    def _cut(self, text: str) -> str:
        return text if len(text) <= self._excerpt else text[: self._excerpt - 1] + "…"


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


# --- reading ------------------------------------------------------------------------------------------


def _rotated(path: Path) -> Iterator[Path]:
    n = 1
    while True:
        candidate = path.with_name(f"{path.name}.{n}")
        if not candidate.exists():
            return
        yield candidate
        n += 1


def _tail(handle: IO[bytes], end: int, count: int) -> list[bytes]:
    """The last `count` whole lines before offset `end` (which is a line boundary)."""
    if count <= 0 or end <= 0:
        return []
    data = b""
    position = end
    while position > 0 and data.count(b"\n") <= count:
        step = min(_BLOCK, position)
        position -= step
        handle.seek(position)
        data = handle.read(step) + data
    found = data.split(b"\n")
    if found and found[-1] == b"":
        found.pop()
    if position > 0:  # the first piece may be a partial line
        found = found[1:]
    return found[-count:]


def last_lines(
    path: Path, count: int, *, current: tuple[IO[bytes] | None, int] | None = None
) -> list[bytes]:
    """The last `count` whole lines of the trace, from the current file and then the rotated ones.

    `current`: the current file already open (None: it does not exist) and where its whole lines end.
    """
    if count <= 0:
        return []
    collected: list[bytes] = []
    if current is not None:
        handle, end = current
        if handle is not None:
            collected = _tail(handle, end, count)
        files = list(_rotated(path))
    else:
        files = [path, *_rotated(path)]
    for candidate in files:
        if len(collected) >= count:
            break
        try:
            with candidate.open("rb") as older:
                end = _whole_lines_end(older)
                collected = _tail(older, end, count - len(collected)) + collected
        except FileNotFoundError:
            continue
    return collected[-count:]


def _whole_lines_end(handle: IO[bytes]) -> int:
    """Offset just after the last newline (a line being written is not shown yet)."""
    size = handle.seek(0, os.SEEK_END)
    position = size
    while position > 0:
        step = min(_BLOCK, position)
        handle.seek(position - step)
        chunk = handle.read(step)
        index = chunk.rfind(b"\n")
        if index >= 0:
            return position - step + index + 1
        position -= step
    return 0


def follow_lines(
    path: Path,
    *,
    opened: tuple[IO[bytes] | None, int] | None = None,
    interval: float = POLL_INTERVAL,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[bytes]:
    """Whole lines appended to `path` from now on (or, with `opened`, from that open file's offset; None:
    from the start of the file once it appears), across rotations (rename, or deletion with keep 0) and
    truncation, until `stop()` is true."""
    handle: IO[bytes] | None = None
    pending = b""
    try:
        if opened is not None:
            handle, start = opened
            if handle is not None:
                handle.seek(start)
        elif path.exists():
            handle = path.open("rb")
            handle.seek(_whole_lines_end(handle))
        while not stop():
            if handle is None:
                try:
                    handle = path.open("rb")
                except FileNotFoundError:
                    sleep(interval)
                    continue
            chunk = handle.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                yield from complete
                continue
            if _replaced(path, handle):
                # Rotated: finish the old file (the writer may have appended before renaming).
                rest = pending + handle.read()
                pending = b""
                handle.close()
                handle = None
                yield from (line for line in rest.split(b"\n") if line)
                continue
            sleep(interval)
    finally:
        if handle is not None:
            handle.close()


def _replaced(path: Path, handle: IO[bytes]) -> bool:
    try:
        current = path.stat()
    except FileNotFoundError:
        return True
    mine = os.fstat(handle.fileno())
    if (current.st_ino, current.st_dev) != (mine.st_ino, mine.st_dev):
        return True
    if current.st_size < handle.tell():  # truncated in place: start over
        handle.seek(0)
    return False
