"""A simulated IEC 104 charger for loopback tests: a c104 `Server` laid out per a mapping table.

- Every monitoring point of the table (for `connectors` connectors) exists with a starting value;
  `update` changes one and reports it spontaneously, `set` changes it silently (the next interrogation
  reports it).
- Every command and setpoint point of the table records what the bridge sent (`commands`) and answers
  positively, or negatively for the IOAs in `refuse`.
- c104 servers cannot listen on port 0: the port is found by binding a socket first.
- Blocking c104 calls run in threads (`asyncio.to_thread`); callbacks only record and never raise.
"""

import asyncio
import socket
import threading
from typing import Any

import c104

from bridge.iec104 import CompiledTable

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _info(type_name: str, value: Any) -> Any:
    if type_name.startswith("M_SP"):
        return c104.SingleInfo(on=bool(value))
    if type_name.startswith("M_DP"):
        return c104.DoubleInfo(state=c104.Double.ON if value == 2 else c104.Double.OFF)
    if type_name.startswith("M_IT"):
        return c104.BinaryCounterInfo(
            counter=int(value), sequence=c104.UInt5(0), quality=c104.BinaryCounterQuality()
        )
    if type_name in ("M_ME_NB_1", "M_ME_TE_1"):
        return c104.ScaledInfo(actual=c104.Int16(int(value)))
    if type_name in ("M_ME_NA_1", "M_ME_TD_1"):
        return c104.NormalizedInfo(actual=c104.NormalizedFloat(float(value)))
    return c104.ShortInfo(actual=float(value))


class Charger104:
    def __init__(self, table: CompiledTable, initial: dict[int, Any], port: int | None = None):
        self.table = table
        self.port = port or free_port()
        self.server = c104.Server(ip=HOST, port=self.port)
        self.station = self.server.add_station(common_address=table.station.common_address)
        self.points: dict[int, Any] = {}
        self.types: dict[int, str] = {}
        self.commands: list[tuple[int, Any]] = []
        self.refuse: set[int] = set()
        self._lock = threading.Lock()
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        for rule in table.monitoring.values():
            type_name = str(rule.type_id)
            point = self.station.add_point(io_address=rule.ioa, type=getattr(c104.Type, type_name))
            point.info = _info(type_name, initial.get(rule.ioa, 0))
            self.points[rule.ioa] = point
            self.types[rule.ioa] = type_name
        for control in table.controls.values():
            if str(control.type_id) == "C_RP_NA_1":
                continue
            select = control.mode == "select-execute"
            point = self.station.add_point(
                io_address=control.ioa,
                type=getattr(c104.Type, str(control.type_id)),
                command_mode=c104.CommandMode.SELECT_AND_EXECUTE
                if select
                else c104.CommandMode.DIRECT,
            )
            point.on_receive(callable=self._on_command)

    def _on_command(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        try:
            value = point.value
            if isinstance(value, c104.Double):
                value = value.value
            with self._lock:
                self.commands.append((point.io_address, value))
                refused = point.io_address in self.refuse
            if self._loop is not None and self._changed is not None:
                self._loop.call_soon_threadsafe(self._changed.set)
            return c104.ResponseState.FAILURE if refused else c104.ResponseState.SUCCESS
        except Exception:  # a callback must never raise
            return c104.ResponseState.FAILURE

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        await asyncio.to_thread(self.server.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    def set(self, ioa: int, value: Any) -> None:
        self.points[ioa].info = _info(self.types[ioa], value)

    async def update(self, ioa: int, value: Any) -> None:
        self.set(ioa, value)
        await asyncio.to_thread(self.points[ioa].transmit, cause=c104.Cot.SPONTANEOUS)

    def sent_to(self, ioa: int) -> list[Any]:
        with self._lock:
            return [value for address, value in self.commands if address == ioa]

    async def wait_command(self, ioa: int, count: int = 1, timeout: float = 10.0) -> Any:
        assert self._changed is not None
        async with asyncio.timeout(timeout):
            while len(self.sent_to(ioa)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.sent_to(ioa)[count - 1]

    @property
    def connected(self) -> bool:
        return bool(self.server.has_active_connections)
