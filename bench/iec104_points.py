"""IEC 104 point translation: updates/s through the real link and station core, and the cost of 100 links.

Run: `.venv/bin/python -m bench.iec104_points` (add `--updates N`, `--chargers N`; prints a table and,
last, one JSON line).

What runs where
- A child process (`--serve`) holds the simulated chargers: c104 `Server`s on 127.0.0.1 laid out per
  connector 1 of mappings/gb-dc-charger.yaml. Asked to, it sends every measurement point of the table
  (22 per connector) with a new value each time, either 22 per ASDU (`transmit_batch`) or one per
  ASDU, and reports what it handed to c104.
- This process runs what the bridge runs per charger: an `Iec104Link` (c104 client, callbacks handed to
  the loop), a `Station104` core and a `CoreDriver` with an in-memory store (no CSMS connection: point
  translation is what is measured). Every update the core processed is counted; an update is lost when
  the counts differ, and the last value of every point is checked against the last one sent.
- Figures: updates/s from the first to the last update processed; threads and RSS of this process read
  from /proc after 100 links are up (each link has its own c104 client).
"""

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import c104  # callbacks are checked by their annotations: no postponed ones in this module

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


# --- the child: simulated chargers ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def serve(count: int, tick_ms: int) -> None:
    from adapters.mapping_files import compile_file

    table = compile_file(ROOT / "mappings" / "gb-dc-charger.yaml", 1)
    servers = []
    measurements: list[list[Any]] = []
    for _ in range(count):
        server = c104.Server(ip=HOST, port=_free_port(), tick_rate_ms=tick_ms)
        station = server.add_station(common_address=1)
        points = []
        for rule in table.monitoring.values():
            point = station.add_point(io_address=rule.ioa, type=getattr(c104.Type, rule.type_id))
            if rule.type_id == "M_ME_NC_1":
                points.append(point)
        server.start()
        servers.append(server)
        measurements.append(points)
    print(json.dumps({"ports": [s.port for s in servers]}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["do"] == "quit":
            break
        if command["do"] == "connected":
            answer: dict[str, Any] = {"connected": sum(s.has_active_connections for s in servers)}
        else:
            index = command.get("charger", 0)
            answer = _send(
                servers[index],
                measurements[index],
                command["updates"],
                command["batch"],
                command["rate"],
            )
        print(json.dumps(answer), flush=True)
    for server in servers:
        server.stop()


def _send(server: Any, points: list[Any], updates: int, batch: bool, rate: float) -> dict[str, Any]:
    """`updates` new values, paced to `rate` per second, 22 per ASDU or one per ASDU."""
    sent = refused = 0
    value = 0.0
    started = time.monotonic()
    index = 0
    while sent + refused < updates:
        due = (time.monotonic() - started) * rate
        if sent + refused >= due:
            time.sleep(0.0005)
            continue
        if batch:
            group = points[: min(len(points), updates - sent - refused)]
            for point in group:
                value += 1.0
                point.value = value
            ok = server.transmit_batch(c104.Batch(cause=c104.Cot.SPONTANEOUS, points=group))
            sent, refused = (sent + len(group), refused) if ok else (sent, refused + len(group))
        else:
            point = points[index % len(points)]
            index += 1
            value += 1.0
            point.value = value
            if point.transmit(cause=c104.Cot.SPONTANEOUS):
                sent += 1
            else:
                refused += 1
    last = {point.io_address: point.value for point in points}
    return {
        "sent": sent,
        "refused": refused,
        "seconds": round(time.monotonic() - started, 3),
        "last": {str(k): v for k, v in last.items()},
    }


# --- the parent: the bridge's side -------------------------------------------------------------------


def _proc_status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


class _Child:
    def __init__(self, count: int, tick: int) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.iec104_points",
                "--serve",
                str(count),
                "--tick",
                str(tick),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ports: list[int] = self._read()["ports"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the charger process ended")
        return json.loads(line)  # type: ignore[no-any-return]

    async def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return await asyncio.to_thread(self._read)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None
            self.process.stdin.write('{"do": "quit"}\n')
            self.process.stdin.flush()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class _Station:
    """The bridge's per-charger stack without a CSMS: link → driver → core."""

    def __init__(self, port: int, schemas: Any, store: Any, log: Any) -> None:
        from adapters.driver import CoreDriver
        from adapters.iec104_link import Iec104Link
        from adapters.mapping_files import compile_file
        from bridge.effects import Side
        from bridge.iec104.southbound import PointUpdate
        from bridge.iec104.station import Station104

        table = compile_file(ROOT / "mappings" / "gb-dc-charger.yaml", 1)
        loop = asyncio.get_running_loop()
        self.core = Station104(
            f"B{port}",
            table,
            schemas,
            lambda: "m",
            lambda: f"T{port}",
            time.time,
            {},
            now=loop.time(),
        )
        self.driver = CoreDriver(
            self.core,  # type: ignore[arg-type]
            {Side.NORTH: log, Side.SOUTH: log},
            station_id=f"B{port}",
            store=store,
            persistent=True,
            on_effect=lambda effect: None,
        )
        self.processed = 0
        self.first = self.last = 0.0
        self.values: dict[int, Any] = {}
        point_update = PointUpdate

        def consume(events: list[Any]) -> None:
            def feed(now: float) -> None:
                for event in events:
                    self.core.handle_link_event(event, now)
                    if type(event) is point_update and event.type_id == "M_ME_NC_1":
                        self.processed += 1
                        self.values[event.ioa] = event.value

            self.driver.feed(feed)
            stamp = time.monotonic()
            self.first = self.first or stamp
            self.last = stamp

        self.link = Iec104Link(
            host=HOST, port=port, common_address=1, table=table, consumer=consume, log=log
        )


class _Bare:
    """The transport ceiling: a c104 client whose callback only counts (no hand-off, no core)."""

    def __init__(self, port: int) -> None:
        from adapters.mapping_files import compile_file

        table = compile_file(ROOT / "mappings" / "gb-dc-charger.yaml", 1)
        self.processed = 0
        self.first = self.last = 0.0
        self.values: dict[int, Any] = {}
        self.client = c104.Client()
        connection = self.client.add_connection(ip=HOST, port=port, init=c104.Init.ALL)
        station = connection.add_station(common_address=1)
        for rule in table.monitoring.values():
            if rule.type_id == "M_ME_NC_1":
                point = station.add_point(io_address=rule.ioa, type=c104.Type.M_ME_NC_1)
                point.on_receive(callable=self.on_receive)
        self.connection = connection
        self.client.start()

    def on_receive(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        self.processed += 1
        self.values[point.io_address] = point.value
        stamp = time.monotonic()
        self.first = self.first or stamp
        self.last = stamp
        return c104.ResponseState.SUCCESS


SCENARIOS = (
    (True, 5_000),
    (True, 10_000),
    (True, 20_000),
    (True, 30_000),
    (False, 2_000),
    (False, 5_000),
    (False, 8_000),
)


def _core_only(schemas: Any, store: Any, log: Any, updates: int = 200_000) -> dict[str, Any]:
    """The station core and driver alone, fed in batches of 100 as the link hands them over."""
    from bridge.iec104.southbound import PointUpdate

    station = _Station(0, schemas, store, log)
    ioas = sorted(rule.ioa for rule in station.core.table.monitoring.values())
    measurements = [i for i in ioas if 0x4001 <= i <= 0x4016]
    batches = []
    value = 0.0
    for _ in range(updates // 100):
        batch = []
        for k in range(100):
            value += 1.0
            batch.append(PointUpdate(measurements[k % len(measurements)], "M_ME_NC_1", value))
        batches.append(batch)
    started = time.perf_counter()
    for batch in batches:
        station.link._consumer(batch)
    seconds = time.perf_counter() - started
    return {"updates": updates, "per_second": round(updates / seconds)}


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    import structlog

    from adapters.schemas import OfficialSchemas
    from adapters.store import Store

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    log = structlog.get_logger().bind(bench="iec104")
    schemas = OfficialSchemas()
    store = Store(":memory:")
    results: dict[str, Any] = {}
    child = _Child(args.chargers + 1, args.tick)  # the last one for the bare client
    tasks: list[asyncio.Task[None]] = []
    try:
        threads_before, rss_before = _proc_status("Threads:"), _proc_status("VmRSS:")
        stations = [_Station(port, schemas, store, log) for port in child.ports[:-1]]
        tasks = [asyncio.create_task(station.link.run()) for station in stations]
        started = time.monotonic()
        while sum(station.link.is_up for station in stations) < len(stations):
            if time.monotonic() - started > 30:
                raise RuntimeError("links did not come up")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # interrogations done
        results["links"] = {
            "chargers": len(stations),
            "up_in_seconds": round(time.monotonic() - started, 2),
            "threads": _proc_status("Threads:"),
            "threads_before": threads_before,
            "rss_mb": round(_proc_status("VmRSS:") / 1024, 1),
            "rss_mb_before": round(rss_before / 1024, 1),
        }
        results["runs"] = []
        bare = len(child.ports) - 1
        receivers: list[tuple[str, int, Any]] = [
            ("bridge", 0, stations[0]),
            ("bare c104", bare, _Bare(child.ports[bare])),
        ]
        await asyncio.sleep(1.0)
        for batch, rate in SCENARIOS:
            for name, index, receiver in receivers:
                receiver.processed, receiver.first, receiver.last = 0, 0.0, 0.0
                cpu = time.process_time()
                command = {"do": "send", "updates": int(rate * args.seconds), "batch": batch}
                sent = await child.ask({**command, "rate": rate, "charger": index})
                for _ in range(200):  # up to 10 s for the stragglers
                    if receiver.processed >= sent["sent"]:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)
                seconds = max(receiver.last - receiver.first, 1e-9)
                wrong = [i for i, v in sent["last"].items() if receiver.values.get(int(i)) != v]
                results["runs"].append(
                    {
                        "receiver": name,
                        "asdu": "22 points" if batch else "1 point",
                        "offered_per_second": rate,
                        "sent": sent["sent"],
                        "refused_by_server": sent["refused"],
                        "processed": receiver.processed,
                        "lost": sent["sent"] - receiver.processed,
                        "last_values_wrong": len(wrong),
                        "processed_per_second": round(receiver.processed / seconds),
                        "bridge_cpu_share": round((time.process_time() - cpu) / seconds, 2),
                    }
                )
        for name, _, receiver in receivers:
            if name != "bridge":
                receiver.client.stop()
        results["core_only"] = _core_only(schemas, store, log)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        child.close()
        store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=5.0, help="per scenario")
    parser.add_argument(
        "--tick", type=int, default=100, help="the simulated chargers' c104 tick, ms"
    )
    parser.add_argument("--chargers", type=int, default=100)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.tick)
        return
    results = asyncio.run(_run(args))
    links = results["links"]
    print(f"{links['chargers']} chargers up in {links['up_in_seconds']} s:")
    print(f"  threads {links['threads_before']} → {links['threads']}")
    print(f"  RSS     {links['rss_mb_before']} MB → {links['rss_mb']} MB")
    for run in results["runs"]:
        print(
            f"{run['receiver']:>9}: {run['asdu']:>9} per ASDU, offered {run['offered_per_second']:>6}/s:"
            f" processed {run['processed_per_second']:>6}/s, sent {run['sent']},"
            f" lost {run['lost']}, wrong last values {run['last_values_wrong']},"
            f" bridge CPU {run['bridge_cpu_share']:.0%}"
        )
    core = results["core_only"]
    print(f"core + driver alone: {core['per_second']} updates/s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
