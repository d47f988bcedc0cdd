"""Simulated IEC 104 chargers for the benchmark: c104 `Server`s (controlled stations) in one process.

Run as a child of the benchmark: `python -m bench.iec104_server --count M`.

Rules
- Each charger is one c104 `Server` on 127.0.0.1 and its own port, common address 1, with every
  monitoring point of the shipped default table (`mappings/gb-dc-charger.yaml`) for one connector,
  compiled by the project's own loader: no alarm, gun holstered, work status idle (so: Available).
- `send` reports updates spontaneously, round robin over chargers, paced to `rate` updates per second for
  `duration` seconds; every update carries a new value. Kind `status` toggles plug_connected (each
  toggle is one connector status change, so one StatusNotification at the CSMS); kind `measurement`
  sends new measurement values (which the bridge folds into its state and samples into transaction
  events, so they do not map one to one onto CSMS frames). It runs in a worker thread (c104's `transmit` is a blocking call); the answer counts
  the updates handed to c104 and those c104 refused.
- Kind `batch` sends every measurement point of a charger in one ASDU (`transmit_batch`), the shape
  of a charger's cyclic measurement report; `rate` still counts points, not ASDUs.
- `charge` plugs every charger in and raises charging (spontaneous), so the bridge opens a
  transaction on each and samples the measurements into its periodic TransactionEvents.
- `connected` tells how many servers have an active connection (the bridge dialled in).
- The sending loop gives the GIL up after every ASDU (`time.sleep(0)`). c104 guards each callback with
  a mutex that aborts the whole process when another thread waits for it over 100 ms ("Potential
  Deadlock: mutex Callback::callback_mutex waiting for lock > 100ms"), and the holder may be waiting
  for the GIL: seen with 20 servers in this process and the loop sending back to back (full preset).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import c104

from adapters.iec104_sim import free_port, point_info
from bench.common import HOST, Control, install_stop_signals, raise_nofile_limit

PLUG_CONNECTED = 0x0021  # connector 1's plug_connected in gb-dc-charger.yaml
HOLSTERED = 0x0022
CHARGING = 0x0023
# starting values: gun holstered, work status idle (2); every other point 0 (no alarm)
INITIAL = {0x0022: 1, 0x4001 + 14: 2}


def monitoring_points() -> dict[int, str]:
    """IOA → type name of every monitoring point of the shipped default table, one connector."""
    from adapters.mapping_files import compile_file
    from bench.load import default_mapping

    table = compile_file(default_mapping(), connectors=1)
    return {rule.ioa: str(rule.type_id) for rule in table.monitoring.values()}


class Charger:
    def __init__(self, layout: dict[int, str]) -> None:
        self.port = free_port()
        self.server = c104.Server(ip=HOST, port=self.port)
        station = self.server.add_station(common_address=1)
        assert station is not None
        self.points: dict[int, Any] = {}
        for ioa, type_name in layout.items():
            point = station.add_point(io_address=ioa, type=getattr(c104.Type, type_name))
            assert point is not None
            point.info = point_info(type_name, INITIAL.get(ioa, 0))
            self.points[ioa] = point
        self.status = {"plug_connected": self.points[PLUG_CONNECTED]}
        self.measurements = [
            point for ioa, point in self.points.items() if layout[ioa].startswith("M_ME_NC")
        ]
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


def charge(chargers: list[Charger]) -> dict[str, Any]:
    for charger in chargers:
        for ioa, on in ((HOLSTERED, False), (PLUG_CONNECTED, True), (CHARGING, True)):
            point = charger.points[ioa]
            point.value = on
            point.transmit(cause=c104.Cot.SPONTANEOUS)
    return {"charging": len(chargers)}


def paced(rate: float, duration: float, step: Callable[[], tuple[int, bool]]) -> dict[str, Any]:
    """Call `step` (→ points it sent, whether c104 took them) so that `rate` points per second go
    for `duration` seconds; the GIL is given up after every ASDU (see the module rules)."""
    sent = refused = 0
    start = time.monotonic()
    end = start + duration
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if sent + refused >= int((now - start) * rate) + 1:
            time.sleep(min(0.001, end - now))
            continue
        count, taken = step()
        if taken:
            sent += count
        else:
            refused += count
        time.sleep(0)
    return {"sent": sent, "refused": refused, "seconds": round(time.monotonic() - start, 4)}


def send(chargers: list[Charger], rate: float, duration: float, kind: str) -> dict[str, Any]:
    """`kind` "status": toggle each charger's plug_connected in turn (each toggle flips the connector
    between Available and Occupied: one StatusNotification); "measurement": new measurement values,
    one per ASDU; "batch": a charger's every measurement in one ASDU, chargers in turn."""
    turn = itertools.count()
    value = itertools.count(1)
    if kind == "batch":

        def batch() -> tuple[int, bool]:
            charger = chargers[next(turn) % len(chargers)]
            number = next(value) * 0.5
            asdu = c104.Batch(cause=c104.Cot.SPONTANEOUS)
            for point in charger.measurements:
                point.value = number
                asdu.add_point(point)
            return len(charger.measurements), charger.server.transmit_batch(asdu)

        return paced(rate, duration, batch)
    if kind == "status":
        points = [c.status["plug_connected"] for c in chargers]
    else:
        points = [p for c in chargers for p in c.measurements]
    state = [False] * len(points)

    def one() -> tuple[int, bool]:
        index = next(turn) % len(points)
        point = points[index]
        if kind == "status":
            state[index] = not state[index]
            point.value = state[index]
        else:
            point.value = next(value) * 0.5
        return 1, point.transmit(cause=c104.Cot.SPONTANEOUS)

    return paced(rate, duration, one)


async def main(args: argparse.Namespace) -> None:
    control = Control()
    raise_nofile_limit()
    layout = monitoring_points()
    chargers = [Charger(layout) for _ in range(args.count)]
    install_stop_signals(control.stop)

    async def connected(_: dict[str, Any]) -> dict[str, Any]:
        return {"connected": sum(1 for c in chargers if c.server.has_active_connections)}

    async def send_command(command: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(
            send,
            chargers,
            float(command["rate"]),
            float(command["duration"]),
            str(command.get("kind", "status")),
        )

    async def charge_command(_: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(charge, chargers)

    control.send({"ready": True, "ports": [c.port for c in chargers]})
    try:
        await control.serve(
            {"connected": connected, "send": send_command, "charge": charge_command}
        )
    finally:
        for charger in chargers:
            charger.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
