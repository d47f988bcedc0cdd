"""IEC 104 chargers for the benchmark: raw asyncio controlled stations, thousands of links per process.

Run as a child of the benchmark:
    python -m bench.iec104_outstation --listen --count N [--port-start P] [--common-address 1]
    python -m bench.iec104_outstation --dial 127.0.0.1:PORT --count N --common-address 7
(`--uvloop` runs it on uvloop when installed.)

The frames are written by hand with `struct` (APCI and ASDU of IEC 60870-5-104, 2-octet cause of
transmission, 2-octet common address, 3-octet IOA): nothing of the product's codec or of c104 is used, so
the generator measures the bridge's link, not a shared bug.

Rules
- Each charger is a controlled station with every monitoring point of connector 1 of the shipped
  default table (`mappings/gb-dc-charger.yaml`, compiled by `adapters.mapping_files.compile_file`, as the
  bridge compiles it): no alarm, gun holstered, work status idle (so: Available).
- `--listen`: one TCP server on 127.0.0.1 per charger (ephemeral ports, or `--port-start P` for
  P..P+N-1); the bridge dials out. With `--hold` the ports are bound but not listening (the bridge's
  dials are refused) until the `listen` command: the bridge's memory with its stations configured
  and connected to the CSMS but no 104 link up, then with every link up. A new connection to a charger replaces its previous one. Every
  charger has common address `--common-address` (the bridge's station configuration says which).
- `--dial HOST:PORT`: each charger connects to the bridge's `[south] iec104_listen` (dial-in) and is
  still the controlled station; charger i has common address `--common-address` + i, so the bridge can
  tell them apart by the first ASDU it receives. A dropped link dials again after 0.5-1.5 s, for as long
  as `--redial-for` seconds after start-up.
- Protocol: STARTDT act → con, STOPDT act → con, TESTFR act → con. Received I-frames are acknowledged
  by an S-frame every w=8 frames and, when fewer are pending, within 0.5 s (or by the next own I-frame);
  own I-frames respect k=12 (the peer's N(R) is tracked). C_IC_NA_1 → ACT_CON, every monitoring point
  but the counters (COT 20), ACT_TERM; C_CI_NA_1 → ACT_CON, the M_IT_NA_1 counters (COT 37), ACT_TERM;
  C_CS_NA_1 and commands (C_SC_NA_1, C_DC_NA_1, C_SE_*, ...) → mirrored with COT 7 (ACT_CON);
  deactivation → COT 9; any other type → COT 44 (unknown type), negative. Interrogation answers carry the
  charger's own common address (also when the bridge asked the global address 0xFFFF).
- Answers and state changes (`charge`) go through a per-link queue sent as the window allows; load
  frames (`send`) are never queued: when a link's window is full (k=12 unacknowledged) or its queue is
  not empty, the ASDU is not sent and its points count as `refused` (the bridge did not acknowledge in
  time: back-pressure, not loss).
- `send rate duration per_asdu`: spontaneous (COT 3) M_ME_NC_1 ASDUs, `per_asdu` 22 (SQ=0, the 22
  measurement IOAs of the table) or 1 (IOAs in turn), links in turn, paced to `rate` points per second
  for `duration` seconds (ticks of 2 ms); every update a new value (x.5, never one of the work status
  enum's codes). Answers the points and ASDUs sent and refused, and the wall time.
- `charge`: plug_connected and charging on, gun out of its holster, on every link (spontaneous), so the
  bridge opens a transaction on each.
- Counters: `points_total` counts every monitoring point sent in an I-frame since start (interrogation
  answers and state changes included): the bridge's `ocpp_bridge_iec104_point_updates_total` must reach
  the sum over every generator process.
- `links`: chargers with a TCP connection, with STARTDT done, interrogated (a general interrogation
  answered). `mark` forgets which were interrogated; `back` counts chargers interrogated since the
  mark and, with `times`, when (time.monotonic of this machine).
- Every loop is bounded: the pacing loop by its duration, redialling by `--redial-for`, the ack timer
  runs while the process runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import deque
from typing import Any

from bench.common import HOST, Control, install_stop_signals, raise_nofile_limit, use_uvloop

K = 12  # the most unacknowledged own I-frames
W = 8  # acknowledge after this many received I-frames
MOD = 32768
ACK_DELAY = 0.5  # s: received I-frames are acknowledged within this time at the latest
TICK = 0.002  # s: the pacing loop's step

STARTDT_ACT, STARTDT_CON = 0x07, 0x0B
STOPDT_ACT, STOPDT_CON = 0x13, 0x23
TESTFR_ACT, TESTFR_CON = 0x43, 0x83

COT_SPONTANEOUS, COT_ACT, COT_ACT_CON, COT_DEACT, COT_DEACT_CON, COT_ACT_TERM = 3, 6, 7, 8, 9, 10
COT_INROGEN, COT_REQCOGEN, COT_UNKNOWN_TYPE = 20, 37, 44
NEGATIVE = 0x40
GLOBAL_CA = 0xFFFF

C_IC_NA_1, C_CI_NA_1, C_CS_NA_1 = 100, 101, 103
COMMANDS = frozenset({45, 46, 47, 48, 49, 50, 51, 58, 59, 60, 61, 62, 63, 64, 103, 105, 107})
TYPE_IDS = {"M_SP_NA_1": 1, "M_DP_NA_1": 3, "M_ME_NA_1": 9, "M_ME_NB_1": 11, "M_ME_NC_1": 13}
M_IT_NA_1 = 15
M_ME_NC_1 = 13
MAX_ASDU = 249

APCI = struct.Struct("<BBHH")  # start, length, N(S) << 1, N(R) << 1
ASDU_HEAD = struct.Struct("<BBBBH")  # type, VSQ, COT, originator, common address
FLOAT = struct.Struct("<f")

# connector 1 of gb-dc-charger.yaml
PLUG_CONNECTED, HOLSTERED, CHARGING = 0x0021, 0x0022, 0x0023
# starting values: gun holstered, work status idle (2); every other point 0 (no alarm)
INITIAL = {HOLSTERED: 1, 0x4001 + 14: 2}


def u_frame(code: int) -> bytes:
    return bytes((0x68, 4, code, 0, 0, 0))


def s_frame(received: int) -> bytes:
    return APCI.pack(0x68, 4, 1, received << 1)


def element(type_id: int, value: float) -> bytes:
    """The information element of one point (quality descriptor: good)."""
    if type_id == 1:
        return bytes((1 if value else 0,))
    if type_id == 3:
        return bytes((2 if value else 1,))
    if type_id == 13:
        return struct.pack("<fB", float(value), 0)
    if type_id in (9, 11):
        return struct.pack("<hB", int(value), 0)
    if type_id == M_IT_NA_1:
        return struct.pack("<iB", int(value), 0)
    raise ValueError(f"type {type_id} not supported by the generator")


def asdu(type_id: int, cot: int, ca: int, objects: list[tuple[int, bytes]]) -> bytes:
    head = ASDU_HEAD.pack(type_id, len(objects), cot, 0, ca)
    return head + b"".join(ioa.to_bytes(3, "little") + data for ioa, data in objects)


def asdus(type_id: int, cot: int, ca: int, objects: list[tuple[int, bytes]]) -> list[bytes]:
    """`objects` of one type in as few ASDUs (SQ=0) as the 249-octet limit allows."""
    if not objects:
        return []
    per = max(1, min(127, (MAX_ASDU - ASDU_HEAD.size) // (3 + len(objects[0][1]))))
    return [asdu(type_id, cot, ca, objects[i : i + per]) for i in range(0, len(objects), per)]


class Layout:
    """The points of connector 1 of the shipped default table: IOA → type id, and values."""

    def __init__(self) -> None:
        from adapters.mapping_files import compile_file
        from bench.load import default_mapping

        table = compile_file(default_mapping(), connectors=1)
        self.types: dict[int, int] = {}
        for rule in table.monitoring.values():
            name = str(getattr(rule.type_id, "value", rule.type_id))
            self.types[rule.ioa] = M_IT_NA_1 if name == "M_IT_NA_1" else TYPE_IDS[name]
        self.values: dict[int, float] = {ioa: float(INITIAL.get(ioa, 0)) for ioa in self.types}
        self.measurements = sorted(i for i, t in self.types.items() if t == M_ME_NC_1)
        self.counters = sorted(i for i, t in self.types.items() if t == M_IT_NA_1)

    def interrogation(self, ca: int, counters: bool) -> list[bytes]:
        by_type: dict[int, list[tuple[int, bytes]]] = {}
        for ioa in sorted(self.types):
            type_id = self.types[ioa]
            if (type_id == M_IT_NA_1) == counters:
                by_type.setdefault(type_id, []).append((ioa, element(type_id, self.values[ioa])))
        cot = COT_REQCOGEN if counters else COT_INROGEN
        return [frame for t, objs in by_type.items() for frame in asdus(t, cot, ca, objs)]


class Stats:
    def __init__(self) -> None:
        self.points_total = 0  # monitoring points in every I-frame sent
        self.asdus_total = 0
        self.interrogations = 0
        self.commands = 0
        self.connections = 0
        self.closed = 0
        self.bad_frames = 0


class Charger:
    """One charger: its common address, its current link (at most one) and its load values."""

    def __init__(self, index: int, ca: int) -> None:
        self.index = index
        self.ca = ca
        self.link: Link | None = None
        self.value = 10.5
        self.next_ioa = 0
        self.interrogated_at: float | None = None


class Link(asyncio.Protocol):
    def __init__(self, charger: Charger, gen: Generator) -> None:
        self.charger = charger
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.sent = 0  # V(S)
        self.received = 0  # V(R)
        self.acked = 0  # the peer's last N(R)
        self.pending_acks = 0  # received I-frames not acknowledged yet
        self.started = False
        self.queue: deque[tuple[bytes, int]] = deque()

    # --- connection -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        old = self.charger.link
        if old is not None and old is not self and old.transport is not None:
            old.transport.close()
        self.charger.link = self
        self.gen.stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.started = False
        self.gen.stats.closed += 1
        self.gen.unacked.discard(self)
        if self.charger.link is self:
            self.charger.link = None
            self.gen.link_lost(self.charger)
        self.transport = None

    # --- receiving ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        at = 0
        size = len(buffer)
        while size - at >= 6:
            if buffer[at] != 0x68:
                self.gen.stats.bad_frames += 1
                self.close()
                return
            end = at + 2 + buffer[at + 1]
            if end > size:
                break
            self.frame(bytes(buffer[at + 2 : end]))
            at = end
        if at:
            del buffer[:at]

    def frame(self, frame: bytes) -> None:
        first = frame[0]
        if not first & 1:  # I-frame
            self.ack_up_to(((frame[2] | frame[3] << 8) >> 1) % MOD)
            self.received = (self.received + 1) % MOD
            self.pending_acks += 1
            self.asdu(frame[4:])
            if self.pending_acks >= W:
                self.send_ack()
            elif self.pending_acks:
                self.gen.unacked.add(self)
        elif first & 3 == 1:  # S-frame
            self.ack_up_to(((frame[2] | frame[3] << 8) >> 1) % MOD)
        elif first == STARTDT_ACT:
            self.write(u_frame(STARTDT_CON))
            self.started = True
            self.flush()
        elif first == TESTFR_ACT:
            self.write(u_frame(TESTFR_CON))
        elif first == STOPDT_ACT:
            self.started = False
            self.write(u_frame(STOPDT_CON))

    def ack_up_to(self, number: int) -> None:
        self.acked = number
        if self.queue:
            self.flush()

    def asdu(self, data: bytes) -> None:
        if len(data) < 6:
            return
        type_id, cot = data[0], data[2] & 0x3F
        ca = data[4] | data[5] << 8
        charger = self.charger
        own = ca in (charger.ca, GLOBAL_CA)
        if type_id in (C_IC_NA_1, C_CI_NA_1) and own:
            answer = bytearray(data)
            answer[4:6] = charger.ca.to_bytes(2, "little")
            if cot == COT_DEACT:
                answer[2] = COT_DEACT_CON
                self.send_control(bytes(answer))
                return
            answer[2] = COT_ACT_CON
            self.send_control(bytes(answer))
            counters = type_id == C_CI_NA_1
            for frame in self.gen.layout.interrogation(charger.ca, counters):
                self.send_control(frame, frame[1] & 0x7F)
            answer[2] = COT_ACT_TERM
            self.send_control(bytes(answer))
            self.gen.stats.interrogations += 1
            if not counters:
                charger.interrogated_at = time.monotonic()
            return
        answer = bytearray(data)
        if type_id in COMMANDS or type_id in (C_IC_NA_1, C_CI_NA_1):
            self.gen.stats.commands += 1
            if not own:
                answer[2] = 46 | NEGATIVE  # unknown common address
            else:
                answer[2] = COT_DEACT_CON if cot == COT_DEACT else COT_ACT_CON
        else:
            answer[2] = COT_UNKNOWN_TYPE | NEGATIVE
        self.send_control(bytes(answer))

    # --- sending --------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send_ack(self) -> None:
        self.pending_acks = 0
        self.write(s_frame(self.received))

    def window_open(self) -> bool:
        return (self.sent - self.acked) % MOD < K

    def send_i(self, body: bytes, points: int) -> None:
        self.write(APCI.pack(0x68, 4 + len(body), self.sent << 1, self.received << 1) + body)
        self.sent = (self.sent + 1) % MOD
        self.pending_acks = 0
        stats = self.gen.stats
        stats.points_total += points
        stats.asdus_total += 1

    def send_control(self, body: bytes, points: int = 0) -> None:
        self.queue.append((body, points))
        self.flush()

    def flush(self) -> None:
        queue = self.queue
        while queue and self.started and self.window_open():
            body, points = queue.popleft()
            self.send_i(body, points)

    def try_load(self, body: bytes, points: int) -> bool:
        """A load frame: sent now, or not at all (window full, answers waiting, link not started)."""
        if not self.started or self.queue or not self.window_open():
            return False
        self.send_i(body, points)
        return True


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.layout = Layout()
        self.stats = Stats()
        self.chargers = [
            Charger(i, args.common_address + (i if args.dial else 0)) for i in range(args.count)
        ]
        self.unacked: set[Link] = set()
        self.servers: list[asyncio.Server] = []
        self.bound: list[socket.socket] = []
        self.ports: list[int] = []
        self.stopping = False
        self.redial_until = time.monotonic() + args.redial_for
        self.tasks: set[asyncio.Task[Any]] = set()
        measurements = self.layout.measurements
        # the load frames' templates: 22 measurements in one ASDU (value offsets), and one each
        self.batch = bytearray(asdu(M_ME_NC_1, COT_SPONTANEOUS, 0, []))
        self.batch[1] = len(measurements)
        self.batch_offsets = []
        for ioa in measurements:
            self.batch_offsets.append(len(self.batch) + 3)
            self.batch += ioa.to_bytes(3, "little") + element(M_ME_NC_1, 0.0)
        self.singles = [
            bytearray(asdu(M_ME_NC_1, COT_SPONTANEOUS, 0, [(ioa, element(13, 0.0))]))
            for ioa in measurements
        ]

    # --- links ----------------------------------------------------------------------------------

    def bind(self) -> None:
        """One bound socket per charger (not listening yet: a bridge dialling it is refused)."""
        for charger in self.chargers:
            port = self.args.port_start + charger.index if self.args.port_start else 0
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, port))
            self.bound.append(sock)
            self.ports.append(int(sock.getsockname()[1]))

    async def listen(self, _: dict[str, Any] | None = None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        bound, self.bound = self.bound, []
        for charger, sock in zip(self.chargers, bound, strict=False):
            server = await loop.create_server(lambda c=charger: Link(c, self), sock=sock, backlog=8)
            self.servers.append(server)
        return {"listening": len(self.servers)}

    async def dial_all(self) -> None:
        limit = asyncio.Semaphore(self.args.concurrency)

        async def one(charger: Charger) -> None:
            async with limit:
                await self.dial(charger)

        await asyncio.gather(*(one(c) for c in self.chargers))

    async def dial(self, charger: Charger) -> None:
        loop = asyncio.get_running_loop()
        host, port = self.args.dial.rsplit(":", 1)
        while not self.stopping and time.monotonic() < self.redial_until:
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: Link(charger, self), host, int(port)), 10
                )
                return
            except (OSError, TimeoutError):
                await asyncio.sleep(0.5 + random.random())

    def link_lost(self, charger: Charger) -> None:
        if not self.args.dial or self.stopping or time.monotonic() >= self.redial_until:
            return

        async def later() -> None:
            await asyncio.sleep(0.5 + random.random())
            if charger.link is None:
                await self.dial(charger)

        task = asyncio.get_running_loop().create_task(later())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def ack_timer(self) -> None:
        while not self.stopping:
            await asyncio.sleep(ACK_DELAY / 2)
            links, self.unacked = self.unacked, set()
            for link in links:
                if link.pending_acks and link.transport is not None:
                    link.send_ack()

    def live(self) -> list[Link]:
        return [c.link for c in self.chargers if c.link is not None and c.link.started]

    # --- commands -------------------------------------------------------------------------------

    async def links(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "connected": sum(1 for c in self.chargers if c.link is not None),
            "started": len(self.live()),
            "interrogated": sum(1 for c in self.chargers if c.interrogated_at is not None),
            "points_total": self.stats.points_total,
        }

    async def stats_command(self, _: dict[str, Any]) -> dict[str, Any]:
        return dict(vars(self.stats))

    async def mark(self, _: dict[str, Any]) -> dict[str, Any]:
        for charger in self.chargers:
            charger.interrogated_at = None
        return {"marked": time.monotonic()}

    async def back(self, command: dict[str, Any]) -> dict[str, Any]:
        times = [c.interrogated_at for c in self.chargers if c.interrogated_at is not None]
        answer: dict[str, Any] = {"count": len(times)}
        if command.get("times"):
            answer["times"] = times
        return answer

    async def charge(self, _: dict[str, Any]) -> dict[str, Any]:
        changes = {HOLSTERED: 0.0, PLUG_CONNECTED: 1.0, CHARGING: 1.0}
        self.layout.values.update(changes)
        charged = 0
        for link in self.live():
            objects = [(ioa, element(1, value)) for ioa, value in changes.items()]
            link.send_control(asdu(1, COT_SPONTANEOUS, link.charger.ca, objects), len(objects))
            charged += 1
        return {"charging": charged}

    async def send(self, command: dict[str, Any]) -> dict[str, Any]:
        rate = float(command["rate"])
        duration = float(command["duration"])
        per_asdu = int(command.get("per_asdu", 22))
        links = self.live()
        if not links or rate <= 0:
            return {"sent": 0, "refused": 0, "asdus": 0, "seconds": 0.0, "links": len(links)}
        batch, offsets, singles = self.batch, self.batch_offsets, self.singles
        width = len(offsets)
        pack_into = FLOAT.pack_into
        sent = refused = asdus_sent = turn = 0
        before = self.stats.points_total
        start = time.monotonic()
        end = start + duration
        count = len(links)
        while True:
            now = time.monotonic()
            if now >= end:
                break
            due = int((now - start) * rate) - sent - refused
            while due > 0:
                link = links[turn % count]
                turn += 1
                charger = link.charger
                if per_asdu == 1:
                    frame = singles[charger.next_ioa]
                    charger.next_ioa = (charger.next_ioa + 1) % width
                    points = 1
                    frame[4:6] = charger.ca.to_bytes(2, "little")
                    pack_into(frame, 9, charger.value)
                else:
                    frame = batch
                    points = width
                    frame[4:6] = charger.ca.to_bytes(2, "little")
                    value = charger.value
                    for offset in offsets:
                        pack_into(frame, offset, value)
                if link.try_load(bytes(frame), points):
                    sent += points
                    asdus_sent += 1
                    if per_asdu == 1:
                        if charger.next_ioa == 0:
                            charger.value += 1.0
                    else:
                        charger.value += 1.0
                else:
                    refused += points
                due -= points
            await asyncio.sleep(TICK)
        return {
            "sent": sent,
            "refused": refused,
            "asdus": asdus_sent,
            "seconds": round(time.monotonic() - start, 4),
            "links": count,
            "points_total": self.stats.points_total,
            "points_in_step": self.stats.points_total - before,
        }

    async def close(self) -> None:
        self.stopping = True
        for task in list(self.tasks):
            task.cancel()
        for server in self.servers:
            server.close()
        for sock in self.bound:
            sock.close()
        for charger in self.chargers:
            if charger.link is not None:
                charger.link.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)


async def main(args: argparse.Namespace, control: Control) -> None:
    raise_nofile_limit()
    gen = Generator(args)
    install_stop_signals(control.stop)
    timer = asyncio.create_task(gen.ack_timer())
    dialling: asyncio.Task[None] | None = None
    try:
        if args.dial:
            dialling = asyncio.create_task(gen.dial_all())
        else:
            gen.bind()
            if not args.hold:
                await gen.listen()
        control.send(
            {
                "ready": True,
                "ports": gen.ports,
                "common_addresses": [c.ca for c in gen.chargers],
                "measurements": len(gen.layout.measurements),
            }
        )
        await control.serve(
            {
                "links": gen.links,
                "stats": gen.stats_command,
                "mark": gen.mark,
                "back": gen.back,
                "charge": gen.charge,
                "send": gen.send,
                "listen": gen.listen,
            }
        )
    finally:
        await gen.close()
        timer.cancel()
        if dialling is not None:
            dialling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--listen", action="store_true", help="one server port per charger")
    mode.add_argument("--dial", metavar="HOST:PORT", help="connect to the bridge's iec104_listen")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument(
        "--port-start", type=int, default=0, help="listen on P..P+N-1 (default: ephemeral)"
    )
    parser.add_argument(
        "--common-address", type=int, default=1, help="(dial: of the first charger)"
    )
    parser.add_argument("--concurrency", type=int, default=200, help="dial: connections at once")
    parser.add_argument("--redial-for", type=float, default=3600.0, help="dial: s of redialling")
    parser.add_argument(
        "--hold", action="store_true", help="listen: bind the ports, listen on `listen` only"
    )
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    control = Control()  # first: it moves stdout aside for the control channel
    if args.dial and not args.dial.startswith(HOST + ":"):
        parser.error(f"--dial: the benchmark connects to {HOST} only")
    use_uvloop(args.uvloop)
    asyncio.run(main(args, control))


if __name__ == "__main__":
    cli()
