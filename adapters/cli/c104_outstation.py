"""A simulated IEC 104 charger: a c104 `Server` (the outstation) laid out per a compiled mapping table.

Used by `ocpp-bridge demo` (so it ships in the package) and by the tests (tests/e2e/iec104_charger.py).

```python
charger = Charger104(table, {0x0022: True, 0x6401: 100_000}, react=True)
await charger.start()                      # listens on 127.0.0.1:charger.port
await charger.plug_in(1)                   # plug_connected on, gun_holstered off, spontaneously
await charger.deliver(1, 2_000, power_kw=60.0)   # the energy register grows by 2 kWh
await charger.stop()
```

Rules
- Every monitoring point of the table (for its connectors) exists with a starting value (`initial`, else
  0); `update` changes one and reports it spontaneously, `set` changes it silently (the next
  interrogation reports it). Points are addressed by IOA, or by name with `ioa(key, connector)`.
- Every command and setpoint point of the table records what the bridge sent (`commands`, `sent_to`)
  and answers positively, or negatively for the IOAs in `refuse`.
- With `react=True` the charger also acts on a positive start/stop command (the table's command for
  RequestStartTransaction / RequestStopTransaction): `react_delay` seconds later it raises or drops
  `charging`, as a real charger does after its own checks. The delay also lets the bridge take the
  command's confirmation before the charging edge arrives.
- `confirm_delay` seconds pass in the command callback before the confirmation (ACT_CON) goes out, as
  on a real charger. The demo uses a few milliseconds: c104 2.2.1's client can miss a confirmation
  that arrives before it starts waiting (a lost wake-up); the bridge's link sees it anyway, but holds
  the IOA until c104 gives up after the command timeout, so the next command to that IOA (the stop
  after a start) would wait for it. Tests keep 0, the harshest timing.
- c104 servers cannot listen on port 0: the port is found by binding a socket first (127.0.0.1 only).
- Threads (c104 calls back on its own threads): the command callback runs on c104's receive thread.
  Its whole body is in try/except (an exception escaping it would make c104 drop the callback for good);
  it only records and hands reactions to the loop with `call_soon_threadsafe`, never transmits (that
  deadlocks the connection). Blocking c104 calls (start, stop, transmit) run in threads
  (`asyncio.to_thread`). No `from __future__ import annotations` here: c104 checks callback signatures
  by their annotation text.
- `stop()` cancels pending reactions and stops the server; `start()` may follow again (a charger that
  comes back).
"""

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any

import c104

from bridge.stations.iec104 import CompiledTable
from bridge.stations.iec104.rules import CounterRule

HOST = "127.0.0.1"
# The work status enum of the shipped tables (gb-dc-charger, gb-ac-charger).
WORK_IDLE, WORK_CHARGING, WORK_FINISHED = 2.0, 3.0, 4.0
# M_DP_NA_1 positions as `point_info` takes them: 1 OFF, 2 ON.
DOUBLE_OFF, DOUBLE_ON = 1, 2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def point_info(type_name: str, value: Any) -> Any:
    """A c104 Information object of monitoring type `type_name` holding `value`."""
    if type_name.startswith("M_SP"):
        return c104.SingleInfo(on=bool(value))
    if type_name.startswith("M_DP"):
        return c104.DoubleInfo(state=c104.Double.ON if value == DOUBLE_ON else c104.Double.OFF)
    if type_name.startswith("M_IT"):
        # c104 2.2.1 needs the quality passed explicitly
        return c104.BinaryCounterInfo(
            counter=int(value), sequence=c104.UInt5(0), quality=c104.BinaryCounterQuality()
        )
    if type_name in ("M_ME_NB_1", "M_ME_TE_1"):
        return c104.ScaledInfo(actual=c104.Int16(int(value)))
    if type_name in ("M_ME_NA_1", "M_ME_TD_1"):
        return c104.NormalizedInfo(actual=c104.NormalizedFloat(float(value)))
    return c104.ShortInfo(actual=float(value))


class Charger104:
    def __init__(
        self,
        table: CompiledTable,
        initial: dict[int, Any],
        port: int | None = None,
        *,
        react: bool = False,
        react_delay: float = 0.3,
        confirm_delay: float = 0.0,
    ):
        self.table = table
        self.port = port or free_port()
        self.server = c104.Server(ip=HOST, port=self.port)
        station = self.server.add_station(common_address=table.station.common_address)
        if station is None:  # c104 answers None for a common address already taken
            raise ValueError(f"common address {table.station.common_address} is taken")
        self.station = station
        self.points: dict[int, Any] = {}
        self.types: dict[int, str] = {}
        self.values: dict[int, Any] = {}
        self.commands: list[tuple[int, Any]] = []
        self.refuse: set[int] = set()
        self.react = react
        self.react_delay = react_delay
        self.confirm_delay = confirm_delay
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reactions: set[asyncio.Task[None]] = set()
        self._react_lock = asyncio.Lock()  # reactions one after the other, in arrival order
        # IOA of a start/stop command → the connector it starts or stops
        self._start_stop: dict[int, int] = {}
        for action in ("RequestStartTransaction", "RequestStopTransaction"):
            for connector in range(1, table.connectors + 1):
                target = table.command(action, connector)
                if target is not None:
                    self._start_stop[target.ioa] = connector
        for rule in table.monitoring.values():
            type_name = str(rule.type_id)
            point = self.station.add_point(io_address=rule.ioa, type=getattr(c104.Type, type_name))
            if point is None:  # c104 answers None for an address already taken
                raise ValueError(f"IOA {rule.ioa} is taken")
            self.points[rule.ioa] = point
            self.types[rule.ioa] = type_name
            self.set(rule.ioa, initial.get(rule.ioa, 0))
        for control in table.controls.values():
            if str(control.type_id) == "C_RP_NA_1":
                continue  # c104 2.2.1 cannot send it, so the bridge never does
            select = control.mode == "select-execute"
            command = self.station.add_point(
                io_address=control.ioa,
                type=getattr(c104.Type, str(control.type_id)),
                command_mode=c104.CommandMode.SELECT_AND_EXECUTE
                if select
                else c104.CommandMode.DIRECT,
            )
            if command is None:  # c104 answers None for an address already taken
                raise ValueError(f"IOA {control.ioa} is taken")
            command.on_receive(callable=self._on_command)

    # --- c104's receive thread ----------------------------------------------------------------

    def _on_command(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        try:
            value = point.value
            if isinstance(value, c104.Double):
                value = value.value
            ioa = point.io_address
            with self._lock:
                self.commands.append((ioa, value))
                refused = ioa in self.refuse
            loop = self._loop
            connector = self._start_stop.get(ioa)
            react = self.react and not refused and not message.is_select_command
            if loop is not None and connector is not None and react:
                loop.call_soon_threadsafe(self._react, connector, bool(value))
            if self.confirm_delay > 0:
                time.sleep(self.confirm_delay)  # releases the GIL; delays only this connection
            return c104.ResponseState.FAILURE if refused else c104.ResponseState.SUCCESS
        except Exception:  # noqa: BLE001 - an escaping exception would make c104 drop the callback
            return c104.ResponseState.FAILURE

    # --- the event loop -------------------------------------------------------------------------

    def _react(self, connector: int, on: bool) -> None:
        task = asyncio.get_running_loop().create_task(self._charge_after_delay(connector, on))
        self._reactions.add(task)
        task.add_done_callback(self._reactions.discard)

    async def _charge_after_delay(self, connector: int, on: bool) -> None:
        async with self._react_lock:
            await asyncio.sleep(self.react_delay)
            await self.set_charging(connector, on)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.server.start)

    async def stop(self) -> None:
        for task in list(self._reactions):
            task.cancel()
        for task in list(self._reactions):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.to_thread(self.server.stop)

    def ioa(self, key: str, connector: int | None = None) -> int | None:
        """The IOA of the table's point `key` (of `connector`, or of the charger), if it has one."""
        for rule in self.table.monitoring.values():
            if rule.key == key and rule.connector == connector:
                return rule.ioa
        return None

    def set(self, ioa: int, value: Any) -> None:
        self.values[ioa] = value
        self.points[ioa].info = point_info(self.types[ioa], value)

    async def update(self, ioa: int, value: Any) -> None:
        self.set(ioa, value)
        await asyncio.to_thread(self.points[ioa].transmit, cause=c104.Cot.SPONTANEOUS)

    async def update_named(self, connector: int, **values: Any) -> None:
        """Update the connector's points by name, in the order given; names the table lacks are
        skipped (a vendor table may have fewer points)."""
        for key, value in values.items():
            ioa = self.ioa(key, connector)
            if ioa is not None:
                await self.update(ioa, value)

    # --- a session, as the charger lives it -------------------------------------------------------

    async def plug_in(self, connector: int = 1) -> None:
        """The gun leaves its holster and is plugged into a vehicle."""
        await self.update_named(connector, gun_holstered=False, plug_connected=True)

    async def unplug(self, connector: int = 1) -> None:
        """The gun is pulled out of the vehicle and put back in its holster."""
        await self.update_named(
            connector, plug_connected=False, gun_holstered=True, work_status=WORK_IDLE
        )

    async def set_charging(self, connector: int, on: bool) -> None:
        """Power flows (contactor closed, lock engaged) or stops."""
        if on:
            await self.update_named(
                connector,
                lock_engaged=True,
                output_contactor=DOUBLE_ON,
                work_status=WORK_CHARGING,
                charging=True,
            )
        else:
            await self.update_named(
                connector,
                output_current=0.0,
                output_power=0.0,
                charging=False,
                output_contactor=DOUBLE_OFF,
                lock_engaged=False,
                work_status=WORK_FINISHED,
            )

    async def deliver(
        self, connector: int, wh: float, *, power_kw: float, voltage: float = 400.0
    ) -> None:
        """`wh` more on the connector's energy register, with the output measurements of `power_kw`."""
        await self.update_named(
            connector,
            output_voltage=voltage,
            output_current=round(power_kw * 1000 / voltage, 1),
            output_power=power_kw,
        )
        ioa = self.ioa("energy_total", connector)
        if ioa is None:
            return
        rule = self.table.monitoring[ioa]
        scale = rule.scale if isinstance(rule, CounterRule) else 1.0
        await self.update(ioa, int(self.values.get(ioa, 0)) + round(wh / scale))

    # --- for tests --------------------------------------------------------------------------------

    def sent_to(self, ioa: int) -> list[Any]:
        with self._lock:
            return [value for address, value in self.commands if address == ioa]

    @property
    def connected(self) -> bool:
        return bool(self.server.has_active_connections)


if __name__ == "__main__":  # `python -m adapters.cli.c104_outstation` used to exit 0 doing nothing
    import sys

    sys.stderr.write(
        "adapters.cli.c104_outstation is the demo's and the tests' c104 charger, not a command: run a"
        " simulated charger with `ocpp-bridge simulate iec104 --table NAME_OR_PATH`"
        " (see `ocpp-bridge simulate --help`)\n"
    )
    sys.exit(2)
