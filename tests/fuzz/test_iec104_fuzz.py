"""The IEC 104 fuzz run: a running bridge process fed garbage while healthy stations keep transacting.

The bridge runs as its own process (`tests.faults.harness.BridgeProcess`: `ocpp-bridge run`, JSON log
lines in a file), configured with
- fuzz stations that dial in (`[south] iec104_listen`, told apart by common address): "wild" ones,
  whose clients start the link properly, identify with an end of initialisation and then send many
  well-framed fuzz frames (`tests.fuzz.frames.FrameGen.mid`) before a frame that breaks the link
  (`killer`), and "garbage" ones, whose clients only ever send frames before STARTDT that can never
  start the link (`garbage`), or connect and close at once;
- fuzz stations the bridge dials out to: servers of this test on 127.0.0.1 port 0, wild or garbage;
- one healthy 104 charger (a c104 `Server`, `tests.faults.charger104.FaultCharger104`) the bridge dials
  out to, running charging sessions (plug, remote start from the CSMS or charging by itself, counter
  growth, remote or local stop, unplug), and one healthy OCPP 1.6J charger
  (`tests.faults.harness.QueuedCharger`, the `ocpp` package) running transactions;
- a CSMS (`FaultCsms`, the `ocpp` package) that checks every frame against the official schemas.

Fuzz clients reconnect whenever the bridge drops them (the expected answer to garbage) until the
frame budget is sent. Asserted at the end: the bridge never died and /health answered every sample
within its timeout; it stops on SIGTERM with status 0; its log has no traceback, no exception and
no error; the healthy stations' transactions are exactly what their chargers did (`check`,
`check104`: one Started and one Ended per transaction, seqNo contiguous, registers right, every frame
schema-valid); the fuzz stations' CSMS connections carried nothing but BootNotification,
StatusNotification Unavailable and Heartbeat (the frames never let a correct receiver apply a point
the table maps); the bridge's RSS stayed bounded (the long run).

The short run (in every test session) sends `SHORT_FRAMES`; the long one (`--run-slow`) sends
`FUZZ_FRAMES` (1,000,000 by default). `FUZZ_SEED` replays a run's frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge.stations.iec104.apci import ApciLink, AsduReceived, LinkParameters
from bridge.stations.iec104.asdu import decode_asdu
from tests.faults.charger104 import MAPPING, TABLE, FaultCharger104, workload104
from tests.faults.harness import (
    BAD_EVENTS,
    BridgeProcess,
    FaultCsms,
    QueuedCharger,
    Taps,
    check,
    check104,
    free_port,
    workload,
)
from tests.fuzz.frames import (
    STARTDT_ACT,
    STARTDT_CON,
    TESTFR_ACT,
    TESTFR_CON,
    FrameGen,
    Incoming,
    accepted_asdus,
    applies_mapped,
    brings_link_up,
    u_frame,
)

SHORT_FRAMES = 50_000
SHORT_SECONDS = 15.0
LONG_FRAMES_ENV = "FUZZ_FRAMES"
SEED_ENV = "FUZZ_SEED"
RSS_GROWTH_LIMIT = 50 << 20
HEALTH_TIMEOUT = 5.0
HEALTH_EVERY = 0.5

MAPPED = frozenset(TABLE.monitoring) | frozenset(TABLE.controls)
PLUG, HOLSTERED, CHARGING, FAULTED = 0x0021, 0x0022, 0x0023, 0x0027
WORK_STATUS, ENERGY, EMERGENCY_STOP = 0x400F, 0x6401, 0x0001
# points whose update, applied, would change what the CSMS sees of the station
POISON = [
    (1, PLUG, b"\x01"),
    (1, CHARGING, b"\x01"),
    (1, HOLSTERED, b"\x00"),
    (1, FAULTED, b"\x01"),
    (1, EMERGENCY_STOP, b"\x01"),
    (30, CHARGING, b"\x01" + b"\x00" * 7),
    (15, ENERGY, struct.pack("<iB", 123_456, 0)),
    (13, WORK_STATUS, struct.pack("<fB", 3.0, 0)),
]
QUIET_ACTIONS = frozenset({"BootNotification", "StatusNotification", "Heartbeat"})


# --- the fuzz side ---------------------------------------------------------------------------------


@dataclass
class FuzzStation:
    station_id: str
    ca: int
    dial: str  # "in" | "out"
    wild: bool  # False: only garbage, its CSMS side must stay quiet
    port: int = 0  # dial out: this test's server


@dataclass
class Budget:
    frames: int
    deadline: float
    sent: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    connections: Counter[str] = field(default_factory=Counter)
    redrawn: int = 0
    rate: float | None = None  # frames/s at most (spreads a short run over the healthy traffic)
    began: float = 0.0

    async def pace(self) -> None:
        if self.rate:
            ahead = self.sent / self.rate - (time.monotonic() - self.began)
            if ahead > 0:
                await asyncio.sleep(min(ahead, 1.0))

    @property
    def done(self) -> bool:
        return self.sent >= self.frames or time.monotonic() >= self.deadline

    def count(self, kind: str, n: int = 1) -> None:
        self.sent += n
        self.kinds[kind] += n

    def note(self, kind: str) -> None:
        """Something a fuzz charger did that is no frame (a close)."""
        self.kinds[kind] += 1


def _gen(rng: random.Random, ca: int, stations: list[FuzzStation]) -> FrameGen:
    foreign = [1, 999, *(s.ca for s in stations)]
    return FrameGen(rng, ca=ca, mapped=MAPPED, foreign=foreign, poison=POISON)


async def _reader(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    incoming: Incoming,
    started: asyncio.Event,
    answer: bool,
) -> None:
    """Reads what the bridge sends; answers TESTFR act (a live charger does) when `answer`."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for code in incoming.feed(data):
                if code == STARTDT_ACT:
                    started.set()
                elif code == TESTFR_ACT and answer and not writer.is_closing():
                    writer.write(u_frame(TESTFR_CON))


async def _finish(writer: asyncio.StreamWriter, task: asyncio.Task[None], linger: float) -> None:
    """Let the bridge close first (up to `linger` s), then close; never waits longer."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), linger)
    task.cancel()
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2)
    await asyncio.gather(task, return_exceptions=True)


def _mid_count(rng: random.Random, budget: Budget) -> int:
    wanted = rng.choice((0, 5, 50, 300, 1000, 3000, 6000))
    return min(wanted, max(0, budget.frames - budget.sent))


async def play_wild(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    gen: FrameGen,
    budget: Budget,
    *,
    greet_ca: int | None,
) -> None:
    """One connection of a charger that starts the link, identifies (dial-in), sends fuzz frames the
    link survives, then one that breaks it."""
    rng = gen.rng
    incoming = Incoming()
    started = asyncio.Event()
    linger = 0.3
    task = asyncio.create_task(_reader(reader, writer, incoming, started, answer=True))
    try:
        if rng.random() < 0.05:  # a registration frame or an I-frame before STARTDT: the end
            kind, data = gen.garbage()
            writer.write(data)
            budget.count(kind)
            return
        try:
            await asyncio.wait_for(started.wait(), 5)
        except TimeoutError:
            budget.connections["no-startdt"] += 1
            return
        writer.write(u_frame(STARTDT_CON))
        budget.count("startdt-con")
        ns = 0
        if greet_ca is not None:
            writer.write(gen.greeting(ns, incoming.i_frames, greet_ca))
            budget.count("greeting")
            ns += 1
        left = _mid_count(rng, budget)
        while left > 0 and not task.done():
            await budget.pace()
            batch = []
            for _ in range(min(left, 100)):
                kind, frame, i_frames = gen.mid(ns, incoming.i_frames)
                ns += i_frames
                budget.count(kind)
                batch.append(frame)
            left -= len(batch)
            writer.write(b"".join(batch))
            await asyncio.wait_for(writer.drain(), 30)
        if task.done():
            budget.connections["dropped-before-killer"] += 1
            return
        kind, data = gen.killer(ns, incoming.i_frames)
        if data:
            writer.write(data)
            budget.count(kind)
        else:
            budget.note(kind)
            linger = 0.0
    except (OSError, ConnectionError):
        budget.connections["write-failed"] += 1
    finally:
        await _finish(writer, task, linger)


async def play_garbage(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gen: FrameGen, budget: Budget
) -> None:
    """One connection of a charger that never starts the link: garbage, or connect-and-close."""
    rng = gen.rng
    incoming = Incoming()
    started = asyncio.Event()
    task = asyncio.create_task(_reader(reader, writer, incoming, started, answer=False))
    try:
        mode = rng.random()
        if mode < 0.15:
            budget.note("connect-close")
            if rng.random() < 0.5:
                writer.transport.abort()
            else:
                writer.close()
            return
        if mode < 0.5:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(started.wait(), 2)
        frames = []
        for _ in range(rng.randint(1, 3)):
            kind, data = gen.garbage()
            if brings_link_up(b"".join(frames) + data):
                gen.redrawn += 1
                continue
            frames.append(data)
            budget.count(kind)
        writer.write(b"".join(frames))
    except (OSError, ConnectionError):
        budget.connections["write-failed"] += 1
    finally:
        await _finish(writer, task, 0.3)


async def dial_in_client(
    station: FuzzStation,
    stations: list[FuzzStation],
    port: int,
    rng: random.Random,
    budget: Budget,
) -> None:
    """Connects again and again until the budget is spent."""
    gen = _gen(rng, station.ca, stations)
    wild = [s.ca for s in stations if s.wild and s.dial == "in" and s is not station]
    try:
        while not budget.done:
            await budget.pace()
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 5
                )
            except (OSError, TimeoutError):
                budget.connections["connect-failed"] += 1
                await asyncio.sleep(0.05)
                continue
            budget.connections[f"dial-in-{'wild' if station.wild else 'garbage'}"] += 1
            if station.wild:
                # mostly itself; sometimes a common address nobody has (refused), the healthy
                # charger's (dials out: refused), or another wild station's (replaces its link)
                greet = rng.choices(
                    [station.ca, 999, 1, rng.choice(wild) if wild else station.ca], [90, 4, 3, 3]
                )[0]
                gen.ca = greet  # what a correct receiver applies is what the identity says
                await play_wild(reader, writer, gen, budget, greet_ca=greet)
            else:
                await play_garbage(reader, writer, gen, budget)
    finally:
        budget.redrawn += gen.redrawn


@contextlib.asynccontextmanager
async def dial_out_server(
    station: FuzzStation, stations: list[FuzzStation], rng: random.Random, budget: Budget
) -> Any:
    """The fuzz charger the bridge dials: each connection played until the budget is spent (then
    it accepts and stays silent)."""
    gen = _gen(rng, station.ca, stations)
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        budget.connections[f"dial-out-{'wild' if station.wild else 'garbage'}"] += 1
        try:
            if budget.done:
                writer.close()
            elif station.wild and rng.random() < 0.97:
                await play_wild(reader, writer, gen, budget, greet_ca=None)
            elif station.wild:
                budget.note("connect-close")
                writer.transport.abort()
            else:
                await play_garbage(reader, writer, gen, budget)
        finally:
            handlers.discard(asyncio.current_task())  # type: ignore[arg-type]

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    station.port = server.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        budget.redrawn += gen.redrawn


# --- the bridge ------------------------------------------------------------------------------------


def fuzz_toml(
    store: Path,
    csms_url: str,
    charger16: str,
    charger104: tuple[str, int],
    fuzz: list[FuzzStation],
) -> str:
    lines = [
        "[bridge]",
        f'store = "{store}"',
        'health = "127.0.0.1:0"',
        'log_format = "json"',
        'log_level = "info"',
        "shutdown_timeout = 5",
        "[csms]",
        f'url = "{csms_url}"',
        "connect_timeout = 3",
        "call_timeout = 10",
        "message_attempt_interval = 0.5",
        "retry_backoff_wait_minimum = 0.05",
        "retry_backoff_random_range = 0.1",
        "retry_backoff_repeat_times = 2",
        "[south]",
        'listen = "127.0.0.1:0"',
        'iec104_listen = "127.0.0.1:0"',
        "ping_interval = 5",
        "ping_timeout = 5",
        "[[stations]]",
        f'id = "{charger16}"',
        'protocol = "ocpp1.6"',
        "[[stations]]",
        f'id = "{charger104[0]}"',
        'protocol = "iec104"',
        'host = "127.0.0.1"',
        f"port = {charger104[1]}",
        "connectors = 1",
        f'mapping = "{MAPPING}"',
    ]
    for station in fuzz:
        lines += [
            "[[stations]]",
            f'id = "{station.station_id}"',
            'protocol = "iec104"',
            f'dial = "{station.dial}"',
            f"common_address = {station.ca}",
            "connectors = 1",
            f'mapping = "{MAPPING}"',
        ]
        if station.dial == "out":
            lines += ['host = "127.0.0.1"', f"port = {station.port}"]
    return "\n".join(lines) + "\n"


async def bound_port(bridge: BridgeProcess, event: str, timeout: float = 30.0) -> int:
    path = bridge.log_path(bridge.incarnation)
    async with asyncio.timeout(timeout):
        while True:
            for line in path.read_text(errors="replace").splitlines():
                if f'"{event}"' in line:
                    return int(json.loads(line)["port"])
            await asyncio.sleep(0.05)


async def http_get(port: int, path: str, timeout: float = HEALTH_TIMEOUT) -> tuple[int, str]:
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = await reader.read()
        finally:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def metric(text: str, name: str) -> dict[str, float]:
    """`name{reason="x"} 3.0` lines → {"x": 3.0}."""
    found: dict[str, float] = {}
    for match in re.finditer(rf'^{name}\{{\w+="([^"]*)"\}} (\S+)$', text, re.M):
        found[match.group(1)] = float(match.group(2))
    return found


@dataclass
class Watch:
    samples: int = 0
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    rss_peak: int = 0


async def watch(bridge: BridgeProcess, port: int, result: Watch, stop: asyncio.Event) -> None:
    """/health and the process, every HEALTH_EVERY s until `stop`."""
    assert bridge.process is not None
    pid = bridge.process.pid
    while not stop.is_set():
        if bridge.process.returncode is not None:
            result.failures.append(f"the bridge exited with {bridge.process.returncode}")
            return
        began = time.monotonic()
        try:
            status, _ = await http_get(port, "/health")
            if status != 200:
                result.failures.append(f"/health answered {status}")
        except (OSError, TimeoutError, ValueError, IndexError) as exc:
            result.failures.append(f"/health did not answer: {exc!r}")
        result.slowest = max(result.slowest, time.monotonic() - began)
        result.samples += 1
        with contextlib.suppress(OSError, RuntimeError):
            result.rss_peak = max(result.rss_peak, rss(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEALTH_EVERY)


def log_findings(bridge: BridgeProcess) -> tuple[list[str], Counter[str]]:
    """Tracebacks, exceptions, errors and the harness's bad events in the bridge's log."""
    problems: list[str] = []
    events: Counter[str] = Counter()
    for number in range(1, bridge.incarnation + 1):
        path = bridge.log_path(number)
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                problems.append(f"not a JSON log line: {line[:300]}")
                continue
            if not isinstance(record, dict):
                problems.append(f"not a JSON log object: {line[:300]}")
                continue
            event = str(record.get("event"))
            events[event] += 1
            if (
                "Traceback" in line
                or "exception" in record
                or "exc_info" in record
                or record.get("level") in ("error", "critical", "exception")
                or event in BAD_EVENTS
            ):
                problems.append(f"bridge log: {line[:1500]}")
    return problems, events


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class FuzzRun:
    seed: int
    frames: int
    budget: Budget
    problems: list[str]
    stats: Counter[str]
    drops: dict[str, float]
    refused: dict[str, float]
    notices: dict[str, float]
    rss_before: int
    rss_after: int
    rss_peak: int
    health: Watch
    seconds: float
    fuzz_seconds: float
    log_events: Counter[str]

    def describe(self) -> str:
        kinds = dict(sorted(self.budget.kinds.items(), key=lambda kv: -kv[1]))
        mib = 1 << 20
        lines = [
            f"fuzz run {SEED_ENV}={self.seed}: {self.budget.sent} frames sent (budget"
            f" {self.frames}) in {self.fuzz_seconds:.1f} s"
            f" ({self.budget.sent / max(self.fuzz_seconds, 1e-9):,.0f} frames/s); whole run"
            f" {self.seconds:.1f} s",
            f"  frames by kind {kinds}",
            f"  connections {dict(self.budget.connections)}; frames drawn again by the oracle"
            f" {self.budget.redrawn}",
            f"  link drops (ocpp_bridge_iec104_link_drops_total) {self.drops}",
            f"  dial-in refusals (ocpp_bridge_iec104_refused_total) {self.refused}",
            f"  notices (ocpp_bridge_iec104_notices_total) {self.notices}",
            f"  healthy transactions: 1.6 {self.stats['transactions']},"
            f" 104 {self.stats['104-sessions']}; stats {dict(self.stats)}",
            f"  bridge RSS before {self.rss_before / mib:.1f} MiB, after {self.rss_after / mib:.1f}"
            f" MiB, peak {self.rss_peak / mib:.1f} MiB (growth"
            f" {(self.rss_after - self.rss_before) / mib:+.1f} MiB)",
            f"  /health: {self.health.samples} samples, slowest {self.health.slowest * 1000:.0f} ms,"
            f" {len(self.health.failures)} failures",
            f"  bridge log events {dict(self.log_events.most_common(15))}",
        ]
        lines += [f"  PROBLEM {p}" for p in self.problems[:40]]
        if len(self.problems) > 40:
            lines.append(f"  ... {len(self.problems) - 40} more problems")
        return "\n".join(lines)


def fuzz_stations() -> list[FuzzStation]:
    return [
        FuzzStation("FZ-IN-W1", 201, "in", True),
        FuzzStation("FZ-IN-W2", 202, "in", True),
        FuzzStation("FZ-IN-W3", 203, "in", True),
        FuzzStation("FZ-IN-G1", 301, "in", False),
        FuzzStation("FZ-IN-G2", 302, "in", False),
        FuzzStation("FZ-OUT-W1", 401, "out", True),
        FuzzStation("FZ-OUT-W2", 402, "out", True),
        FuzzStation("FZ-OUT-G1", 501, "out", False),
    ]


def quiet_problems(csms: FaultCsms, station: FuzzStation) -> list[str]:
    """A fuzz station's CSMS side: BootNotification, StatusNotification Unavailable, Heartbeat."""
    problems = []
    for session in csms.history:
        if session.station_id != station.station_id:
            continue
        for action, payload in session.charge_point.calls:
            if action not in QUIET_ACTIONS:
                problems.append(f"{station.station_id}: {action} at the CSMS: {payload}")
            elif action == "StatusNotification" and payload["connector_status"] != "Unavailable":
                problems.append(f"{station.station_id}: status {payload} at the CSMS")
    return problems


async def run_fuzz(
    tmp_path: Path, *, frames: int, seed: int, max_seconds: float, min_seconds: float = 0.0
) -> FuzzRun:
    """`frames` fuzz frames, spread over at least `min_seconds` and at most `max_seconds`."""
    began = time.monotonic()
    rng = random.Random(seed)
    taps = Taps()
    csms = FaultCsms(taps)
    await csms.start()
    stations = fuzz_stations()
    charger104 = FaultCharger104(1, free_port(), random.Random(rng.random()), csms, taps)
    charger16: QueuedCharger | None = None
    budget = Budget(frames, time.monotonic() + 10**9)
    bridge = BridgeProcess(tmp_path / "bridge.toml", tmp_path)
    problems: list[str] = []
    stats: Counter[str] = Counter()
    health = Watch()
    stop_watch = asyncio.Event()
    done = asyncio.Event()
    loads: list[asyncio.Task[None]] = []
    fuzzers: list[asyncio.Task[None]] = []
    watcher: asyncio.Task[None] | None = None
    rss_before = rss_after = 0
    fuzz_seconds = 0.0
    metrics_text = ""
    async with contextlib.AsyncExitStack() as stack:
        try:
            for station in stations:
                if station.dial == "out":
                    await stack.enter_async_context(
                        dial_out_server(station, stations, random.Random(rng.random()), budget)
                    )
            await charger104.start()
            (tmp_path / "bridge.toml").write_text(
                fuzz_toml(
                    tmp_path / "bridge.db",
                    csms.url,
                    "FI-1",
                    (charger104.station_id, charger104.port),
                    stations,
                )
            )
            await bridge.start()
            south = await bound_port(bridge, "south.listening")
            listen104 = await bound_port(bridge, "iec104.listening")
            health_port = await bound_port(bridge, "health.listening")
            assert bridge.process is not None
            watcher = asyncio.create_task(watch(bridge, health_port, health, stop_watch))
            charger16 = QueuedCharger(
                1, f"ws://127.0.0.1:{south}/ocpp", random.Random(rng.random()), taps
            )
            charger16.start()
            # the healthy stations are up and registered before the fuzz begins
            async with asyncio.timeout(30):
                while (
                    not all(s in csms.sessions for s in ("FI-1", charger104.station_id))
                    or not charger16.booted
                ):
                    await asyncio.sleep(0.05)
            loads = [
                asyncio.create_task(
                    workload(charger16, random.Random(rng.random()), transactions=None, done=done)
                ),
                asyncio.create_task(
                    workload104(
                        charger104, random.Random(rng.random()), transactions=None, done=done
                    )
                ),
            ]
            await asyncio.sleep(1.0)
            rss_before = rss(bridge.process.pid)
            fuzz_began = time.monotonic()
            budget.deadline = fuzz_began + max_seconds
            budget.began = fuzz_began
            budget.rate = frames / min_seconds if min_seconds > 0 else None
            fuzzers = [
                asyncio.create_task(
                    dial_in_client(s, stations, listen104, random.Random(rng.random()), budget)
                )
                for s in stations
                if s.dial == "in"
            ]
            await asyncio.gather(*fuzzers)
            fuzz_seconds = time.monotonic() - fuzz_began
            if budget.sent < frames:
                problems.append(f"only {budget.sent} of {frames} frames sent in {max_seconds:g} s")
            await asyncio.sleep(2.0)  # the last drops are counted, the links settle
            rss_after = rss(bridge.process.pid)
            done.set()
            async with asyncio.timeout(60):
                await asyncio.gather(*loads)
                while not charger16.idle:
                    await asyncio.sleep(0.05)
            async with asyncio.timeout(30):
                while not all(
                    float(t.meter_stop) in csms.ended.get("FI-1", set())
                    for t in charger16.txns
                    if t.meter_stop is not None
                ):
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            _, metrics_text = await http_get(health_port, "/metrics")
            stop_watch.set()
            await watcher
            code = await bridge.stop()
            if code != 0:
                problems.append(f"the bridge exited with {code} on SIGTERM")
        except TimeoutError as exc:
            problems.append(f"the run did not settle in time: {exc!r}")
        finally:
            done.set()
            stop_watch.set()
            budget.deadline = 0
            for task in [*loads, *fuzzers, *([watcher] if watcher else [])]:
                task.cancel()
            await asyncio.gather(*loads, *fuzzers, return_exceptions=True)
            if watcher is not None:
                await asyncio.gather(watcher, return_exceptions=True)
            if charger16 is not None:
                await charger16.close()
            await bridge.stop()
            await csms.stop()
            await charger104.close()
    problems += health.failures
    if charger16 is not None:
        found, oracle_stats = check(csms, [charger16])
        problems += found
        stats.update(oracle_stats)
    problems += check104(csms, charger104, stats)
    for station in stations:
        # no frame let a correct receiver apply a mapped point: nothing to report but the link
        problems += quiet_problems(csms, station)
        problems += [
            f"{station.station_id}: TransactionEvent at the CSMS: {p}"
            for s in csms.history
            if s.station_id == station.station_id
            for p in s.charge_point.payloads("TransactionEvent")
        ]
        problems += [
            f"{station.station_id}: status {p['connector_status']} at the CSMS"
            for s in csms.history
            if s.station_id == station.station_id
            for p in s.charge_point.payloads("StatusNotification")
            if p["connector_status"] not in ("Unavailable", "Available")
        ]
    log_problems, log_events = log_findings(bridge)
    problems += log_problems
    return FuzzRun(
        seed=seed,
        frames=frames,
        budget=budget,
        problems=problems,
        stats=stats,
        drops=metric(metrics_text, "ocpp_bridge_iec104_link_drops_total"),
        refused=metric(metrics_text, "ocpp_bridge_iec104_refused_total"),
        notices=metric(metrics_text, "ocpp_bridge_iec104_notices_total"),
        rss_before=rss_before,
        rss_after=rss_after,
        rss_peak=health.rss_peak,
        health=health,
        seconds=time.monotonic() - began,
        fuzz_seconds=fuzz_seconds,
        log_events=log_events,
    )


def _seed() -> int:
    text = os.environ.get(SEED_ENV)
    return int(text) if text else random.SystemRandom().randrange(2**32)


@pytest.mark.timeout(240)
async def test_short_fuzz_run_the_bridge_survives_and_the_healthy_stations_are_untouched(
    tmp_path: Path,
) -> None:
    seed = _seed()
    print(f"fuzz seed {seed}")
    run = await run_fuzz(
        tmp_path, frames=SHORT_FRAMES, seed=seed, max_seconds=40, min_seconds=SHORT_SECONDS
    )
    print(run.describe())
    assert run.problems == [], run.describe()
    assert run.budget.sent >= SHORT_FRAMES, run.describe()
    assert run.stats["transactions"] >= 1 and run.stats["104-sessions"] >= 1, run.describe()


@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_long_fuzz_run_a_million_frames(tmp_path: Path) -> None:
    seed = _seed()
    frames = int(os.environ.get(LONG_FRAMES_ENV, "1000000"))
    print(f"fuzz seed {seed}, {frames} frames", flush=True)
    run = await run_fuzz(tmp_path, frames=frames, seed=seed, max_seconds=3000)
    print(run.describe())
    assert run.problems == [], run.describe()
    assert run.budget.sent >= frames, run.describe()
    assert run.rss_after - run.rss_before < RSS_GROWTH_LIMIT, run.describe()
    assert run.stats["transactions"] >= 1 and run.stats["104-sessions"] >= 1, run.describe()


# --- the generator keeps its promises (checked against the product's own codec and link) ----------


def _fed(link: ApciLink, data: bytes) -> list[bytes]:
    return [e.asdu for e in link.receive_data(data, 0.0) if isinstance(e, AsduReceived)]


def test_the_generators_frames_never_apply_a_mapped_point_or_start_the_link() -> None:
    rng = random.Random(7)
    gen = FrameGen(rng, ca=201, mapped=MAPPED, foreign=[1, 202], poison=POISON)
    ns = 0
    link = ApciLink(LinkParameters(), 0.0)
    link.start(0.0)
    link.data_to_send()
    link.receive_data(u_frame(STARTDT_CON), 0.0)
    for _ in range(5000):
        kind, frame, i_frames = gen.mid(ns, 0)
        ns += i_frames
        for data in _fed(link, frame):
            assert not applies_mapped(data, 201, MAPPED), (kind, frame.hex())
            asdu = decode_asdu(data)
            if hasattr(asdu, "objects") and asdu.common_address == 201 and asdu.type_id < 45:
                assert not MAPPED & {o.ioa for o in asdu.objects}, (kind, frame.hex())
        assert link.failed is None, (kind, frame.hex(), link.failed)
    for _ in range(2000):
        kind, data = gen.killer(ns, 0)
        assert not any(applies_mapped(a, 201, MAPPED) for a in accepted_asdus(data, ns)), kind
        kind, data = gen.garbage()
        assert not brings_link_up(data), (kind, data.hex())
        fresh = ApciLink(LinkParameters(), 0.0)
        fresh.start(0.0)
        events = fresh.receive_data(data, 0.0)
        assert not any(isinstance(e, AsduReceived) for e in events), (kind, data.hex())
        assert not fresh.started, (kind, data.hex())


def test_the_frame_that_crashed_c104_is_among_the_sq_lies() -> None:
    gen = FrameGen(random.Random(3), ca=201, mapped=MAPPED, foreign=[1], poison=POISON)
    seen = set()
    for _ in range(400):
        kind, frame, _ = gen.mid(0, 0)
        if kind == "sq-lie" and frame[6] == 13:
            seen.add(frame[7])
    assert 0x80 | 20 in seen  # M_ME_NC_1, SQ=1, 20 declared (and 2 carried)


# --- regressions: what the fuzz run found ------------------------------------------------------------


def test_regression_104_links_accept_uvloop_transports() -> None:
    """Found by the first fuzz run: under uvloop (the bridge process's default loop) the transports
    are no `asyncio.Transport` subclasses, and both `connection_made`s asserted they were: every dial-in
    connection raised (`Exception in callback UVTransport._call_connection_made`) and was never
    identified, and every dial-out one kept no transport, never sent STARTDT act and failed on t1.
    Now the bridge sends STARTDT act (`68 04 07 00 00 00`) first on both kinds of connection."""
    import datetime

    import uvloop

    from adapters.iec104.link import DialOut, Iec104Link
    from adapters.iec104.listener import Iec104Listener
    from bridge.stations.iec104.session import Session104, SessionSettings

    class Log:
        def __getattr__(self, name: str) -> Callable[..., None]:
            return lambda *args, **kwargs: None

    async def first_bytes(reader: asyncio.StreamReader) -> bytes:
        return await asyncio.wait_for(reader.readexactly(6), 5)

    async def scenario() -> tuple[bytes, bytes]:
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        listener = Iec104Listener("127.0.0.1:0", {}, log=Log())
        _, port = await listener.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            dial_in = await first_bytes(reader)
            writer.close()
        finally:
            await listener.close()
        accepted: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                accepted.set_result(await first_bytes(reader))
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        settings = SessionSettings(common_address=1, time_zone=datetime.UTC)
        session = Session104(settings, now=asyncio.get_running_loop().time())
        link = Iec104Link(
            "UV-1",
            session,
            consumer=lambda events: None,
            log=Log(),
            dial_out=DialOut("127.0.0.1", server.sockets[0].getsockname()[1]),
        )
        task = asyncio.create_task(link.run())
        try:
            dial_out = await asyncio.wait_for(accepted, 5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            server.close()
        return dial_in, dial_out

    loop = uvloop.new_event_loop()
    try:
        dial_in, dial_out = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert dial_in == dial_out == bytes.fromhex("680407000000")


def test_regression_random_information_object_addresses_do_not_grow_the_station() -> None:
    """Found by the first fuzz run: every distinct unmapped IOA was remembered and reported once, so
    a charger sending valid ASDUs at random addresses grew the bridge by ~180 bytes and a log line
    per address (123,045 `unknown-ioa` lines and +21.6 MiB after 30,000 frames). Now at most
    MAX_POINT_PROBLEMS are, the last one saying so."""
    import datetime

    from bridge.stations.iec104.core import MAX_POINT_PROBLEMS
    from bridge.stations.iec104.session import Session104, SessionSettings
    from bridge.stations.iec104.southbound import PointUpdate
    from tests.core.iec104_bench import Bench, idle

    session = Session104(SessionSettings(common_address=1, time_zone=datetime.UTC), now=0.0)
    session.connection_made(0.0, 1.8e9)
    session.data_to_send()
    session.receive_data(bytes.fromhex("68040b000000"), 0.0, 1.8e9)  # STARTDT con
    bench = Bench()
    bench.link_up(*idle())
    reported = len(bench.reports)
    for n in range(5000):
        # M_SP_NA_1, SQ=0, 1 object, COT 3, CA 1, IOA 0x800000 + n, SIQ 1
        frame = struct.pack("<BBHH", 0x68, 14, n << 1, 0) + bytes.fromhex("01010300 0100")
        frame += (0x800000 + n).to_bytes(3, "little") + b"\x01"
        updates = [e for e in session.receive_data(frame, 0.0, 1.8e9) if isinstance(e, PointUpdate)]
        assert len(updates) == 1
        bench.points(*updates)
    assert session.failure is None
    new = bench.reports[reported:]
    assert len(new) == MAX_POINT_PROBLEMS
    assert "later ones are not" in new[-1].diagnostic.message
    assert len(bench.core._reported_problems) <= MAX_POINT_PROBLEMS
