"""Shared plumbing of the load benchmark: child processes, their control channel, process figures.

Rules
- Every benchmark process (bridge wrapper, relay, CSMS sink, charger swarm, c104 servers) is a separate
  `python -m bench.<name>` child. Its control channel is line-delimited JSON: commands on its stdin, one
  answer line per command on its original stdout. Anything else the child prints goes to stderr, which
  the parent sends to a log file. The first line a child writes is its `ready` report (ports, pid).
- Each child raises its soft `RLIMIT_NOFILE` to the hard limit at start (`raise_nofile_limit`).
- The parent never leaves a child behind: `Child.close()` asks it to stop, then terminates, then kills,
  each step bounded in time; `ChildGroup` closes every child it started, in reverse order.
- Process figures come from outside the process: CPU seconds (user + system) and RSS of a pid, read with
  psutil when it is installed, else from /proc (Linux).
- Everything binds 127.0.0.1 with ephemeral ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

HOST = "127.0.0.1"
# Descriptors a process keeps besides its sockets: stdio, the listener, the store, the loop's own.
FD_MARGIN = 100
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = resource.getpagesize()


# --- limits -----------------------------------------------------------------------------------------


def raise_nofile_limit() -> int:
    """Raise this process's soft descriptor limit to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def nofile_hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 20 if hard == resource.RLIM_INFINITY else int(hard)


def max_stations(sockets_per_station: int) -> int:
    """How many stations one process holding `sockets_per_station` sockets each can serve."""
    return max(1, (nofile_hard_limit() - FD_MARGIN) // sockets_per_station)


# --- process figures --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    try:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    except ImportError:
        pass
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (3rd field of the file); utime and stime are the 14th and 15th
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_bytes(pid: int) -> int:
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        pass
    with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * _PAGE


def self_rss_bytes() -> int:
    return rss_bytes(os.getpid())


# --- statistics -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def summary_ms(values_s: Sequence[float]) -> dict[str, Any]:
    """count and p50/p99/p99.9/max of latencies given in seconds, in milliseconds."""
    out: dict[str, Any] = {"count": len(values_s)}
    for name, q in (("p50", 50.0), ("p99", 99.0), ("p999", 99.9), ("max", 100.0)):
        value = percentile(values_s, q)
        out[name] = None if value is None else round(value * 1000.0, 4)
    return out


def finite_or_none(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


# --- the child side of the control channel ---------------------------------------------------------

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class Control:
    """A child's control channel: JSON commands in on stdin, JSON answers out on the original stdout.

    Construct it first thing in `main()`: it moves fd 1 aside for answers and points stdout at stderr,
    so that no library print can corrupt the channel.
    """

    def __init__(self) -> None:
        self._out: TextIO = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self.stop = asyncio.Event()

    def send(self, message: dict[str, Any]) -> None:
        self._out.write(json.dumps(message, separators=(",", ":")) + "\n")
        self._out.flush()

    async def serve(self, handlers: dict[str, Handler]) -> None:
        """Answer commands until stdin closes or a handler sets `stop`. Every child also answers
        `cpu`: its own CPU seconds (`time.process_time`, nanosecond clock, all threads), and
        `freeze` (`gc.freeze()` of what is alive)."""
        handlers = {"cpu": _own_cpu, "freeze": _freeze, **handlers}
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 26)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(0), "rb")
        )
        while not self.stop.is_set():
            line_task = asyncio.ensure_future(reader.readline())
            stop_task = asyncio.ensure_future(self.stop.wait())
            done, _ = await asyncio.wait(
                {line_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if line_task not in done:
                line_task.cancel()
                break
            stop_task.cancel()
            line = line_task.result()
            if not line:
                break
            try:
                command = json.loads(line)
                handler = handlers[command["cmd"]]
                answer = await handler(command)
            except Exception as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            self.send(answer)


async def _own_cpu(_: dict[str, Any]) -> dict[str, Any]:
    return {"cpu": time.process_time()}


async def _freeze(_: dict[str, Any]) -> dict[str, Any]:
    """For load generators only (the swarm, the sink; never a process under test): what is alive now
    leaves the collector's generations, and automatic collection stops. After connecting, their full
    collections (a second at 10k connections) stalled the measurement; with freezing alone, the
    collections of what a 40 s run allocates still stalled the swarm for 100-150 ms at the same
    moments of every run (bench/README.md, scale step), inflating every latency in flight."""
    gc.collect()
    gc.freeze()
    gc.disable()
    return {"frozen": gc.get_freeze_count()}


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)


class LagSampler:
    """Event-loop lag: how late a short periodic sleep wakes up, every sample kept (bounded)."""

    def __init__(self, interval: float = 0.05, keep: int = 200_000) -> None:
        self.interval = interval
        self.keep = keep
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            if len(self.samples) < self.keep:
                self.samples.append(max(0.0, loop.time() - expected))

    def take(self) -> dict[str, Any]:
        samples, self.samples = self.samples, []
        return summary_ms(samples)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class StallWatch:
    """Where the loop's thread was when the loop stopped turning: a watcher thread looks every
    `threshold / 4` seconds at a beat the loop renews as often; when the beat is older than
    `threshold`, it notes the loop thread's innermost frames once per stall, and whether the process
    spent the stall on the CPU (its own work) or off it (waiting for a core, or blocked in a call)."""

    def __init__(self, threshold: float = 0.01, depth: int = 6) -> None:
        self.threshold = threshold
        self.depth = depth
        self._beat = time.monotonic()
        self._beat_cpu = time.process_time()
        self._loop_thread = threading.get_ident()
        self._stacks: Counter[str] = Counter()
        self._stalls: list[tuple[float, float]] = []  # (wall s, process CPU s) of each stall seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._renew()
        self._thread.start()

    def _renew(self) -> None:
        self._beat, self._beat_cpu = time.monotonic(), time.process_time()
        self._handle = self._loop.call_later(self.threshold / 4, self._renew)

    def _watch(self) -> None:
        noted: float | None = None
        while not self._stop.wait(self.threshold / 4):
            beat = self._beat
            wall = time.monotonic() - beat
            if wall < self.threshold or noted == beat:
                continue
            noted = beat
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)[-self.depth :]
            self._stacks[
                " < ".join(f"{f.name}@{Path(f.filename).name}:{f.lineno}" for f in reversed(stack))
            ] += 1
            self._stalls.append((wall, time.process_time() - self._beat_cpu))

    def take(self, top: int = 12) -> dict[str, Any]:
        stacks, self._stacks = self._stacks, Counter()
        stalls, self._stalls = self._stalls, []
        return {
            "threshold_ms": self.threshold * 1e3,
            "stalls": len(stalls),
            # process CPU over wall time while stalled: near 1, the loop's own work; near 0, waiting
            "cpu_over_wall": round(sum(c for _, c in stalls) / sum(w for w, _ in stalls), 3)
            if stalls
            else None,
            "top": stacks.most_common(top),
        }

    def close(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()


def use_uvloop(wanted: bool) -> bool:
    """Install uvloop's policy when `wanted` and installed; returns whether it is in use."""
    if not wanted:
        return False
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


# --- the parent side ---------------------------------------------------------------------------------


class ChildFailed(Exception):
    """A child could not start or did not answer."""


class Child:
    """One `python -m bench.<module>` child process and its control channel; `prefix` runs it under
    another program (`valgrind --tool=callgrind ...`)."""

    def __init__(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        log_dir: Path,
        prefix: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.module = module
        self.args = list(args)
        self.prefix = list(prefix)
        self.log_path = log_dir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}
        self._log: Any = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, wait_s: float, env: dict[str, str] | None = None) -> dict[str, Any]:
        """Start the child and wait for its ready line; raise ChildFailed with its reason."""
        self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *self.prefix,
            sys.executable,
            "-m",
            self.module,
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            limit=1 << 26,
            env={**os.environ, **(env or {})},
        )
        try:
            self.ready = await self._read(wait_s)
        except ChildFailed:
            await self.close()
            raise
        if "error" in self.ready:
            reason = self.ready["error"]
            await self.close()
            raise ChildFailed(f"{self.name}: {reason}")
        return self.ready

    async def _read(self, wait_s: float) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), wait_s)
        except TimeoutError:
            raise ChildFailed(f"{self.name}: no answer within {wait_s:.0f} s") from None
        if not line:
            raise ChildFailed(f"{self.name}: exited ({self.tail_log()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def call(self, cmd: str, wait_s: float = 60.0, **args: Any) -> dict[str, Any]:
        """Send one command and wait for its answer; a child error raises ChildFailed."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.process.stdin.drain()
        answer = await self._read(wait_s)
        if "error" in answer:
            raise ChildFailed(f"{self.name} {cmd}: {answer['error']}")
        return answer

    def tail_log(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "no log"
        return " | ".join(text.strip().splitlines()[-lines:]) or "no output"

    async def cpu(self) -> float:
        """The child's own CPU seconds, precise (the kernel's /proc figures count 10 ms ticks)."""
        answer = await self.call("cpu", wait_s=30)
        return float(answer["cpu"])

    def rss(self) -> int:
        return rss_bytes(self.pid)

    async def close(self, wait_s: float = 15.0) -> int | None:
        """Ask to stop (stdin closed, SIGTERM), then kill; returns the exit status."""
        process = self.process
        if process is None:
            return None
        if process.returncode is None:
            if process.stdin is not None:
                with contextlib.suppress(Exception):
                    process.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), wait_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 5.0)
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode


class ChildGroup:
    """Children started in one measurement; `aclose()` stops them all, last started first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    async def start(
        self,
        name: str,
        module: str,
        args: Sequence[str] = (),
        *,
        wait_s: float = 60.0,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> Child:
        child = Child(name, module, args, self.log_dir, prefix)
        self.children.append(child)
        await child.start(wait_s, env)
        return child

    async def aclose(self) -> None:
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                await child.close()
        self.children.clear()

    async def __aenter__(self) -> ChildGroup:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
