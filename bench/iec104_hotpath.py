"""The IEC 104 read path in one process: CPU (or instructions) per point, 1 or 22 points per ASDU.

    python -m bench.iec104_hotpath [--links 100] [--frames 20000] [--per-asdu 1] [--repeat 5]
    python -m bench.iec104_hotpath --links 100 --frames 0 --idle 5 --profile --sort cumtime
    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next \
        --callgrind-out-file=/dev/null python -m bench.iec104_hotpath --links 10 --frames 4000 --repeat 1

The bench step (`bench/iec104_load.py`) measures the bridge's whole process on loopback, with the
load generators sharing the machine's two cores: its figures move by tens of per cent from run to
run. This harness repeats its read path in one process, to compare code changes by.

Rules
- One process: the bench's CSMS sink (`bench.sink.Sink`, served on loopback), one generator of
  `bench.iec104_outstation` with `--links` chargers (listening on loopback) and the bridge's
  `Runtime` with one dialled-out 104 station per charger, the bench's table (the shipped default,
  `meter_interval` 1 s), configured by `bench.load.bridge_toml` as the bench configures it (logging
  at `warning`, health and metrics on), with the garbage collection and allocator policies of
  `ocpp-bridge run`. Every link comes up, is interrogated, and every charger starts charging (a
  transaction is open), as in the bench's throughput step.
- `--idle S` first: the CPU over S seconds with no load (the periodic TransactionEvents and the
  loop's turns; the in-process sink's share included), per TransactionEvent.
- Then rounds of `--frames` I-frames of M_ME_NC_1 (spontaneous, `--per-asdu` 1: the 22 measurement
  IOAs in turn; 22: all of them in one ASDU, as the bench sends), every update a new value, links in
  turn, are handed to the bridge's connection protocol (`adapters.iec104.link._Protocol.
  data_received`) one frame per read, as the bench's paced load arrives (a read holds one frame at
  these rates). Their N(S)/N(R) are the charger's, so the bridge's S-frames go back over the real
  socket to the charger, which reads them between batches of 64 frames (loop turns: the bridge's
  writes, timers and CSMS traffic run then, uncounted).
- The figure is CPU seconds (user + system of this process, `time.process_time`) inside the
  frames' delivery ÷ points: the best of `--repeat` rounds, after a warm-up round of up to 2,000
  frames. The delivery goes through `itertools.starmap`, so callgrind with
  `--toggle-collect=starmap_next` counts exactly it: its total ÷ (warm-up + rounds' frames) is the
  instructions per frame, which the machine's load does not move.
- `--profile` prints the top functions (cProfile, `--sort` order) of the idle window and of one more
  round; `--no-core` (experiment) hands the link's events to nobody: the link's and the session's
  share alone.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import struct
import tempfile
import time
from itertools import starmap
from pathlib import Path
from typing import Any

APCI = struct.Struct("<BBHH")


def _deliver(protocol: Any, wire: bytes) -> None:
    protocol.data_received(wire)


BATCH = 64  # frames between loop turns


async def _wait(what: str, check: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"iec104_hotpath: {what} not within {within:g} s")
        await asyncio.sleep(0.05)


async def main(args: argparse.Namespace) -> None:
    from websockets.asyncio.server import serve

    from adapters.config import load_config
    from adapters.ops.gc_policy import GcPolicy, freeze_startup_objects
    from adapters.ops.logs import configure_logging
    from adapters.ops.malloc_policy import fix_mmap_threshold
    from adapters.runtime import Runtime
    from bench.common import HOST, raise_nofile_limit
    from bench.iec104_load import station_104
    from bench.iec104_outstation import FLOAT, Generator
    from bench.load import bridge_toml
    from bench.sink import Sink

    raise_nofile_limit()  # 4 sockets per link: charger, bridge's 104 side, CSMS both sides
    sink = Sink()
    server = await serve(
        sink.handler,
        HOST,
        0,
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        ping_interval=None,
        max_size=1 << 20,
    )
    port = next(iter(server.sockets)).getsockname()[1]
    gen = Generator(
        argparse.Namespace(
            count=args.links,
            common_address=1,
            dial=None,
            port_start=0,
            redial_for=0.0,
            concurrency=1,
            hold=False,
        )
    )
    gen.bind()
    await gen.listen()
    acks = asyncio.create_task(gen.ack_timer())
    workdir = Path(tempfile.mkdtemp(prefix="iec104-hotpath-"))
    table = workdir / "bench-104.yaml"  # as the bench's 104 step: a TransactionEvent a second
    table.write_text("extends: gb-dc-charger\nstation: {meter_interval: 1}\n", encoding="utf-8")
    ids = [f"H104-{i:05d}" for i in range(args.links)]
    toml = bridge_toml(
        port,
        [],
        workdir / "bridge.db",
        extra_stations="".join(
            station_104(station_id, str(table), port=port_)
            for station_id, port_ in zip(ids, gen.ports, strict=True)
        ),
    )
    (workdir / "bridge.toml").write_text(toml, encoding="utf-8")
    config = load_config(workdir / "bridge.toml", os.environ)
    configure_logging(config.bridge.log_format, config.bridge.log_level)
    fix_mmap_threshold()
    runtime = Runtime(config)
    await runtime.start()
    freeze_startup_objects()  # the garbage collection policy of `ocpp-bridge run`
    collector = asyncio.create_task(GcPolicy().run())
    try:
        hosts = [runtime.iec104_links[station_id] for station_id in ids]
        chargers = gen.chargers
        await _wait(
            "104 links up and interrogated",
            lambda: all(c.interrogated_at is not None for c in chargers),
        )
        await _wait("CSMS connected", lambda: all(sink.open.get(i, 0) > 0 for i in ids))
        await gen.charge({})
        await _wait(
            "transactions started",
            lambda: sink.calls.get("TransactionEvent", 0) >= len(ids),
        )
        await asyncio.sleep(1.0)
        pairs = []
        for host, charger in zip(hosts, chargers, strict=True):
            protocol = host.link._protocol  # the bridge's side of the connection
            assert protocol is not None and charger.link is not None
            pairs.append((host, charger, charger.link, protocol))
        if args.no_core:
            for host, *_ in pairs:
                host.link._consumer = lambda events: None  # the link's and the session's share
        measurements = gen.layout.measurements
        per_asdu = args.per_asdu
        width = len(measurements)

        def received() -> int:
            return sum(host.link.received for host in hosts)

        def frames(count: int) -> list[bytes]:
            """`count` ASDUs (APCI added at send time: N(S)/N(R) are the charger's then)."""
            made = []
            for n in range(count):
                charger = chargers[n % len(chargers)]
                if per_asdu == 1:
                    body = bytearray(gen.singles[charger.next_ioa])
                    body[4:6] = charger.ca.to_bytes(2, "little")
                    FLOAT.pack_into(body, 9, charger.value)
                    charger.next_ioa = (charger.next_ioa + 1) % width
                    if charger.next_ioa == 0:
                        charger.value += 1.0
                else:
                    body = bytearray(gen.batch)
                    body[4:6] = charger.ca.to_bytes(2, "little")
                    for offset in gen.batch_offsets:
                        FLOAT.pack_into(body, offset, charger.value)
                    charger.value += 1.0
                made.append(bytes(body))
            return made

        async def round_(count: int) -> tuple[float, int]:
            bodies = frames(count)
            before = received()
            spent = 0.0
            turn = 0
            for start in range(0, count, BATCH):
                chunk = bodies[start : start + BATCH]
                # window: the bridge acknowledges every w=8 frames by itself
                wires = []
                for body in chunk:
                    _, _, link, protocol = pairs[turn % len(pairs)]
                    turn += 1
                    wires.append(
                        (
                            protocol,
                            APCI.pack(0x68, 4 + len(body), link.sent << 1, link.received << 1)
                            + body,
                        )
                    )
                    link.sent = (link.sent + 1) % 32768
                    link.pending_acks = 0
                t0 = time.process_time()
                # through itertools.starmap: what callgrind counts (--toggle-collect=starmap_next)
                for _ in starmap(_deliver, wires):
                    pass
                spent += time.process_time() - t0
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            points = received() - before
            for host, *_ in pairs:
                if host.session.failure is not None or not host.link.is_up:
                    raise SystemExit(f"iec104_hotpath: a link failed: {host.session.failure}")
            return spent, points

        if args.idle:
            # no load: the periodic TransactionEvents (meter_interval 1 s) and the loop's turns
            profiler = cProfile.Profile() if args.profile else None
            events = sink.calls.get("TransactionEvent", 0)
            t0, w0 = time.process_time(), time.monotonic()
            if profiler is not None:
                profiler.enable()
            await asyncio.sleep(args.idle)
            if profiler is not None:
                profiler.disable()
            cpu, wall = time.process_time() - t0, time.monotonic() - w0
            events = sink.calls.get("TransactionEvent", 0) - events
            print(
                f"idle: {cpu / wall:.3f} of a core, {events} TransactionEvents,"
                f" {cpu / max(1, events) * 1e6:.0f} µs CPU per TransactionEvent (sink included)"
            )
            if profiler is not None:
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(
                    args.profile_lines
                )
                print(out.getvalue())
        if not args.frames:
            return
        await round_(min(args.frames, 2000))  # warm-up
        best: float | None = None
        for _ in range(args.repeat):
            spent, points = await round_(args.frames)
            per_point = spent / points * 1e6
            best = per_point if best is None else min(best, per_point)
            print(f"round: {points} points, {per_point:.2f} µs CPU per point (data_received)")
        print(
            f"best: {best:.2f} µs CPU per point, {per_asdu} per ASDU, {args.frames} frames a round"
        )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await round_(args.frames)
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats(args.sort).print_stats(args.profile_lines)
            print(out.getvalue())
        print(f"points received: {received()}")
    finally:
        collector.cancel()
        await runtime.stop()
        acks.cancel()
        await gen.close()
        server.close()
        await server.wait_closed()


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=20_000, help="I-frames per round")
    parser.add_argument("--links", type=int, default=1, help="chargers (frames in turn)")
    parser.add_argument("--per-asdu", type=int, choices=(1, 22), default=1)
    parser.add_argument("--repeat", type=int, default=5, help="rounds (the best is reported)")
    parser.add_argument("--idle", type=float, default=0.0, help="s of idle CPU first")
    parser.add_argument("--profile", action="store_true", help="cProfile one more round")
    parser.add_argument(
        "--no-core",
        action="store_true",
        help="experiment: the link's events are not handed to the core (the link's share alone)",
    )
    parser.add_argument("--sort", default="tottime", help="cProfile order (tottime, cumtime)")
    parser.add_argument("--profile-lines", type=int, default=40)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    from adapters.ops import event_loop

    with asyncio.Runner(loop_factory=event_loop.loop_factory(args.loop)) as runner:
        runner.run(main(args))


if __name__ == "__main__":
    cli()
