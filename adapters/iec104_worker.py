"""The IEC 104 link worker: a child process that runs c104 links for the bridge, and the wire between them.

Run by `adapters.iec104_remote` as `python -m adapters.iec104_worker --log-format F --log-level L`.

Why a process of its own (measured with `make bench`, 20 chargers in the bridge process): c104 guards
each of its Python callbacks with a mutex and aborts the whole process when a thread waits for one over
100 ms ("Potential Deadlock: mutex Callback::callback_mutex waiting for lock > 100ms"). Its threads
compete for the GIL with the bridge's event loop, and the bridge process was aborted within a minute,
every CSMS connection with it. Here an abort ends the worker only: the bridge sees the links go down,
starts a new worker and opens them again, and the OCPP side never notices more than a link drop.

Rules
- One JSON object per line in both directions (orjson never writes a raw newline); stdin carries the
  bridge's requests, stdout the worker's news, stderr the worker's own log lines (JSON, bound with
  station id, side south and protocol iec104, like the bridge's).
- Requests: `{"op": "open", "l": LINK, "station": {...}, "settings": {...}}` (the station's
  configuration as JSON and `LinkSettings` fields; the worker compiles the station's table itself),
  `{"op": "cmd", "l": LINK, "c": [...]}` (`encode_command`), `{"op": "gi", "l": LINK, "counters": B}`,
  `{"op": "close", "l": LINK}`.
- News: `{"ready": true, "pid": N}` once, then `{"l": LINK, "e": [...]}`, one line per batch an
  `Iec104Link` delivered, its events encoded by `encode_events` (a point update is
  `["p", ioa, type, value, quality-or-0, timestamp-or-null]`, a confirmation
  `["c", command_id, ioa, positive, detail]`, link up `["u"]`, link down `["d", reason]`), and
  `{"l": LINK, "f": N}` when the link's callback-failure count changes.
- A command's deadline travels as the seconds left (the two processes' loop clocks need not agree).
- The worker ends when its stdin closes (the bridge is gone): every link is stopped first, then the
  process leaves with `os._exit` (no interpreter teardown while c104's threads wind down).
"""

import argparse
import asyncio
import contextlib
import os
import sys
from typing import Any

import orjson

from bridge.iec104.southbound import (
    CommandConfirmed,
    LinkDown,
    LinkEvent,
    LinkUp,
    PointUpdate,
    Send104Command,
)
from bridge.iec104.vocabulary import TypeId

# --- the wire -------------------------------------------------------------------------------------


def encode_events(events: list[LinkEvent]) -> list[Any]:
    out: list[Any] = []
    for event in events:
        if isinstance(event, PointUpdate):
            quality = sorted(event.quality) if event.quality else 0
            out.append(["p", event.ioa, event.type_id, event.value, quality, event.timestamp])
        elif isinstance(event, CommandConfirmed):
            out.append(["c", event.command_id, event.ioa, event.positive, event.detail])
        elif isinstance(event, LinkUp):
            out.append(["u"])
        else:
            out.append(["d", event.reason])
    return out


def decode_events(items: list[Any]) -> list[LinkEvent]:
    out: list[LinkEvent] = []
    for item in items:
        kind = item[0]
        if kind == "p":
            quality = frozenset(item[4]) if item[4] else frozenset()
            out.append(PointUpdate(item[1], item[2], item[3], quality, item[5]))
        elif kind == "c":
            out.append(CommandConfirmed(item[1], item[2], item[3], item[4]))
        elif kind == "u":
            out.append(LinkUp())
        elif kind == "d":
            out.append(LinkDown(item[1]))
    return out


def encode_command(command: Send104Command, now: float) -> list[Any]:
    left = None if command.deadline is None else command.deadline - now
    return [
        command.command_id,
        command.ioa,
        str(command.type_id),
        command.value,
        command.select,
        command.qualifier,
        command.purpose,
        left,
    ]


def decode_command(item: list[Any], now: float) -> Send104Command:
    left = item[7]
    return Send104Command(
        command_id=item[0],
        ioa=item[1],
        type_id=TypeId(item[2]),
        value=item[3],
        select=item[4],
        qualifier=item[5],
        purpose=item[6],
        deadline=None if left is None else now + left,
    )


# --- the worker -------------------------------------------------------------------------------------


class Worker:
    def __init__(self, out: asyncio.WriteTransport) -> None:
        self._out = out
        self._links: dict[int, Any] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._failures: dict[int, int] = {}
        self._tables: dict[tuple[str, int], Any] = {}

    def send(self, message: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(message) + b"\n")

    def handle(self, request: dict[str, Any]) -> None:
        op = request.get("op")
        link_id = int(request["l"])
        if op == "open":
            self._open(link_id, request["station"], request.get("settings") or {})
            return
        link = self._links.get(link_id)
        if link is None:
            if op == "cmd":  # the link is gone: the command is still answered, once
                command = decode_command(request["c"], asyncio.get_running_loop().time())
                events = [CommandConfirmed(command.command_id, command.ioa, False, "link closed")]
                self.send({"l": link_id, "e": encode_events(events)})
            return
        if op == "cmd":
            link.command(decode_command(request["c"], asyncio.get_running_loop().time()))
        elif op == "gi":
            link.interrogate(bool(request["counters"]))
        elif op == "close":
            self._close(link_id)

    def _open(self, link_id: int, station_data: dict[str, Any], settings: dict[str, Any]) -> None:
        from adapters.config import Iec104Station
        from adapters.iec104_link import Iec104Link, LinkSettings
        from adapters.iec104_station import common_address_of, load_table
        from adapters.logs import station_logger

        if link_id in self._links:
            return
        station = Iec104Station.model_validate(station_data)
        key = (str(station.mapping), station.connectors)
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = load_table(station)

        def deliver(events: list[LinkEvent]) -> None:
            self.send({"l": link_id, "e": encode_events(events)})
            failures = link.callback_failures
            if failures != self._failures.get(link_id, 0):
                self._failures[link_id] = failures
                self.send({"l": link_id, "f": failures})

        link = Iec104Link(
            host=station.host,
            port=station.port,
            common_address=common_address_of(station, table),
            table=table,
            consumer=deliver,
            log=station_logger(station.id, "south", "iec104"),
            settings=LinkSettings(**settings),
        )
        self._links[link_id] = link
        self._tasks[link_id] = asyncio.get_running_loop().create_task(link.run())

    def _close(self, link_id: int) -> None:
        self._links.pop(link_id, None)
        self._failures.pop(link_id, None)
        task = self._tasks.pop(link_id, None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for link_id in list(self._links):
            self._close(link_id)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out_transport, _ = await loop.connect_write_pipe(
        asyncio.Protocol, os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    )
    # Nothing else may write to the channel: stray prints go to stderr.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    worker = Worker(out_transport)  # type: ignore[arg-type]
    worker.send({"ready": True, "pid": os.getpid()})
    try:
        while True:
            line = await reader.readline()
            if not line:
                break  # the bridge is gone
            try:
                request = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            try:
                worker.handle(request)
            except Exception as exc:  # noqa: BLE001 - a bad request must not end the other links
                from adapters.logs import get_logger

                get_logger().error("iec104.worker_request_failed", error=repr(exc))
    finally:
        await worker.stop()
        out_transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="IEC 104 link worker (started by the bridge)")
    parser.add_argument("--log-format", default="json", choices=["json", "console"])
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    from adapters.logs import configure_logging

    configure_logging(args.log_format, args.log_level)
    from adapters.iec104_link import guard_c104_callbacks

    guard_c104_callbacks()
    asyncio.run(serve())
    # Out without the interpreter's teardown: c104's threads may still be winding down, and C++
    # destroying a running thread's object aborts ("terminate called without an active exception",
    # seen when the bridge was killed while its worker was starting links).
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
