"""Reliability costs: the durable store per event, and how fast the outbox drains after a CSMS outage.

Run: `.venv/bin/python -m bench.reliability [--events 10000] [--rounds 200] [--batches 2000]`
(prints one line per figure and, last, one JSON line with all of them).

Figures
1. `store`: `adapters.store.Store.apply` on this disk (WAL, synchronous=FULL: one fsync per commit), in
   the batch shapes the 1.6 core commits: a MeterValues (its transaction row + one outbox entry), a
   delivery (one outbox row deleted); the same batches in ":memory:" give the cost without the disk.
2. `conf`: request → .conf latency through the real bridge process (`ocpp-bridge run`), a 1.6 charger
   doing StartTransaction, MeterValues, StopTransaction in turn, `--rounds` times, with the store on
   disk and again with ":memory:". The difference is the store's share of each .conf (fsync included).
   StartTransaction.conf waits for the CSMS's answer to the Started event when the CSMS is connected
   (E05, idTokenInfo), so its latency also holds one CSMS round trip.
3. `drain`: with the CSMS down the charger sends `--events` MeterValues of one transaction (each .conf
   comes only after its Updated event is on disk); then the CSMS comes back and the time until it has
   every event is measured, from its restart and from the bridge's reconnection.

The CSMS is a minimal OCPP 2.0.1 responder on raw websockets (answers at once, counts), so the figures
are the bridge's, not a CSMS library's. Everything runs on 127.0.0.1; the bridge is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from adapters.store import Store
from bridge.effects import Persist

EXECUTABLE = str(Path(sys.executable).with_name("ocpp-bridge"))
STATION = "REL-1"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


# --- 1. the store alone -----------------------------------------------------------------------------


def bench_store(path: str, batches: int) -> dict[str, Any]:
    store = Store(path)
    row = {
        "transaction_id": "b7f3c2a1-0000-4000-8000-000000000001",
        "evse_id": 1,
        "next_seq_no": 0,
        "start_key": "1|TAG|2026-01-01T00:00:00Z|1000",
    }
    event = {
        "action": "TransactionEvent",
        "payload": {
            "eventType": "Updated",
            "timestamp": "2026-11-22T10:00:00.000Z",
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 1,
            "transactionInfo": {"transactionId": row["transaction_id"]},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [
                {
                    "timestamp": "2026-11-22T10:00:00.000Z",
                    "sampledValue": [
                        {"value": 12345.6, "measurand": "Energy.Active.Import.Register"}
                    ],
                }
            ],
        },
    }
    enqueue: list[float] = []
    deliver: list[float] = []
    try:
        for n in range(batches):
            key = f"{n:016d}"
            started = time.perf_counter()
            store.apply(
                STATION,
                [Persist("tx", "t", {**row, "next_seq_no": n}), Persist("outbox", key, event)],
            )
            enqueue.append(time.perf_counter() - started)
        for n in range(batches):
            started = time.perf_counter()
            store.apply(STATION, [Persist("outbox", f"{n:016d}", None)])
            deliver.append(time.perf_counter() - started)
    finally:
        store.close()
    return {
        "enqueue": summary(enqueue),
        "deliver": summary(deliver),
        "enqueue_per_s": round(len(enqueue) / sum(enqueue)),
        "deliver_per_s": round(len(deliver) / sum(deliver)),
    }


# --- a minimal CSMS ---------------------------------------------------------------------------------


class Sink:
    """Answers every CALL at once with a valid (minimal) CALLRESULT; counts TransactionEvents."""

    RESPONSES: dict[str, Callable[[], dict[str, Any]]] = {
        "BootNotification": lambda: {
            "currentTime": now_iso(),
            "interval": 300,
            "status": "Accepted",
        },
        "Heartbeat": lambda: {"currentTime": now_iso()},
        "TransactionEvent": lambda: {"idTokenInfo": {"status": "Accepted"}},
    }

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: Any = None
        self.events: dict[str, int] = {}
        self.connected_at: float | None = None
        self.changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def start(self) -> None:
        self.connected_at = None
        self.server = await serve(
            self._handler,
            "127.0.0.1",
            self.port,
            subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _handler(self, connection: ServerConnection) -> None:
        if self.connected_at is None:
            self.connected_at = time.perf_counter()
        with contextlib.suppress(Exception):
            async for raw in connection:
                frame = json.loads(raw)
                if frame[0] != 2:
                    continue
                action = frame[2]
                if action == "TransactionEvent":
                    kind = frame[3]["eventType"]
                    self.events[kind] = self.events.get(kind, 0) + 1
                    self.changed.set()
                answer = self.RESPONSES.get(action, dict)()
                await connection.send(json.dumps([3, frame[1], answer]))

    async def wait_for(self, predicate: Callable[[], bool], seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


# --- the bridge process and a raw 1.6 charger ----------------------------------------------------------


class Bridge:
    def __init__(self, workdir: Path, store: str, csms_url: str) -> None:
        self.port = free_port()
        self.config = workdir / "bridge.toml"
        self.log = workdir / "bridge.log"
        self.config.write_text(
            "[bridge]\n"
            f'store = "{store}"\nhealth = ""\nlog_level = "warning"\n'
            f"outbox_max_bytes = {1 << 30}\n"
            "[csms]\n"
            f'url = "{csms_url}"\n'
            "retry_backoff_wait_minimum = 0.05\nretry_backoff_random_range = 0.05\n"
            "retry_backoff_repeat_times = 0\n"
            "[south]\n"
            f'listen = "127.0.0.1:{self.port}"\n'
            "[[stations]]\n"
            f'id = "{STATION}"\nprotocol = "ocpp1.6"\n'
        )
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Bridge:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                EXECUTABLE,
                "run",
                "--config",
                str(self.config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        async with asyncio.timeout(30):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    return self
                except OSError:
                    if self.process.returncode is not None:
                        raise RuntimeError(self.log.read_text()[-2000:]) from None
                    await asyncio.sleep(0.05)

    async def __aexit__(self, *_: object) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


class Charger:
    """A raw OCPP 1.6J client: one CALL at a time, each timed until its answer."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.ids = itertools.count(1)

    async def call(self, action: str, payload: dict[str, Any]) -> tuple[float, Any]:
        message_id = f"c{next(self.ids)}"
        started = time.perf_counter()
        await self.connection.send(json.dumps([2, message_id, action, payload]))
        async with asyncio.timeout(30):
            while True:
                frame = json.loads(await self.connection.recv())
                if frame[0] == 2:  # the bridge asks something (TriggerMessage): accept
                    await self.connection.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                    continue
                if frame[1] == message_id:
                    if frame[0] != 3:
                        raise RuntimeError(f"{action} refused: {frame}")
                    return time.perf_counter() - started, frame[2]


@contextlib.asynccontextmanager
async def charger(bridge: Bridge) -> Any:
    async with connect(
        f"ws://127.0.0.1:{bridge.port}/ocpp/{STATION}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        open_timeout=10,
    ) as connection:
        yield Charger(connection)


def meter_values(transaction_id: int, wh: int) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [
            {
                "timestamp": now_iso(),
                "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register"}],
            }
        ],
    }


async def boot(cp: Charger, sink: Sink) -> None:
    _, answer = await cp.call(
        "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "R"}
    )
    if answer["status"] != "Accepted":
        raise RuntimeError(f"boot: {answer}")
    await cp.call(
        "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}
    )


# --- 2. request → .conf latency -------------------------------------------------------------------


async def bench_conf(workdir: Path, store: str, rounds: int) -> dict[str, Any]:
    sink = Sink(free_port())
    await sink.start()
    latencies: dict[str, list[float]] = {
        "StartTransaction": [],
        "MeterValues": [],
        "StopTransaction": [],
    }
    try:
        async with Bridge(workdir, store, sink.url) as bridge, charger(bridge) as cp:
            await boot(cp, sink)
            wh = 1000
            for n in range(rounds):
                start = {
                    "connectorId": 1,
                    "idTag": f"T{n}",
                    "meterStart": wh,
                    "timestamp": now_iso(),
                }
                took, answer = await cp.call("StartTransaction", start)
                latencies["StartTransaction"].append(took)
                wh += 10
                took, _ = await cp.call("MeterValues", meter_values(answer["transactionId"], wh))
                latencies["MeterValues"].append(took)
                wh += 10
                stop = {
                    "transactionId": answer["transactionId"],
                    "meterStop": wh,
                    "timestamp": now_iso(),
                }
                took, _ = await cp.call("StopTransaction", stop)
                latencies["StopTransaction"].append(took)
            await sink.wait_for(lambda: sink.events.get("Ended", 0) == rounds, 60)
    finally:
        await sink.stop()
    return {action: summary(samples) for action, samples in latencies.items()}


# --- 3. the outbox drain after an outage ------------------------------------------------------------


async def bench_drain(workdir: Path, store: str, events: int) -> dict[str, Any]:
    sink = Sink(free_port())
    await sink.start()
    try:
        async with Bridge(workdir, store, sink.url) as bridge, charger(bridge) as cp:
            await boot(cp, sink)
            start = {"connectorId": 1, "idTag": "DRAIN", "meterStart": 0, "timestamp": now_iso()}
            _, answer = await cp.call("StartTransaction", start)
            await sink.wait_for(lambda: sink.events.get("Started", 0) == 1, 30)
            await sink.stop()  # the outage
            await asyncio.sleep(0.5)  # the bridge notices it (connection closed)
            queued_at = time.perf_counter()
            for n in range(events):
                await cp.call("MeterValues", meter_values(answer["transactionId"], n + 1))
            queue_seconds = time.perf_counter() - queued_at
            restarted = time.perf_counter()
            await sink.start()
            await sink.wait_for(lambda: sink.events.get("Updated", 0) >= events, 1800)
            done = time.perf_counter()
            assert sink.connected_at is not None
            return {
                "events": events,
                "queue_s": round(queue_seconds, 2),
                "queue_per_s": round(events / queue_seconds),
                "drain_s_from_csms_restart": round(done - restarted, 2),
                "drain_s_from_reconnect": round(done - sink.connected_at, 2),
                "drain_per_s": round(events / (done - sink.connected_at)),
                "updated_received": sink.events.get("Updated", 0),
            }
    finally:
        await sink.stop()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        results["store_disk"] = bench_store(str(work / "store.db"), args.batches)
        print(f"store on disk ({work}): {results['store_disk']}", flush=True)
        results["store_memory"] = bench_store(":memory:", args.batches)
        print(f"store in memory: {results['store_memory']}", flush=True)
        for name, store in (("disk", str(work / "conf.db")), ("memory", ":memory:")):
            results[f"conf_{name}"] = await bench_conf(work, store, args.rounds)
            print(f".conf latency, store {name}: {results[f'conf_{name}']}", flush=True)
        results["drain"] = await bench_drain(work, str(work / "drain.db"), args.events)
        print(f"outbox drain: {results['drain']}", flush=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=10_000, help="MeterValues queued during the outage"
    )
    parser.add_argument(
        "--rounds", type=int, default=200, help="transactions for the .conf latencies"
    )
    parser.add_argument("--batches", type=int, default=2000, help="Store.apply batches per shape")
    parser.add_argument(
        "--dir",
        default=os.environ.get("TMPDIR"),
        help="where the store files go (the disk measured)",
    )
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
