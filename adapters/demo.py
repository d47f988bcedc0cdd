"""`ocpp-bridge demo`: simulated chargers and a small CSMS, wired through the real bridge on loopback.

Rules
- No configuration and no network beyond 127.0.0.1: every server binds port 0; the store lives in a
  temporary folder that is removed at the end.
- The CSMS and the 2.0.1 charger are built on the `ocpp` package (PyPI), an implementation independent of
  the bridge; the bridge in the middle is the same `Runtime` that `ocpp-bridge run` uses.
- The live view shows what the CSMS sees: stations, connector status, transactions, energy. With
  `--duration` the demo exits after that many seconds and prints a summary; it succeeds (exit 0) when the
  CSMS saw every station boot and at least one complete transaction per station.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as OcppChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as OcppChargePoint
from ocpp.v201 import call, call_result
from rich.console import Console
from rich.live import Live
from rich.table import Table
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from adapters.config import BridgeConfig
from adapters.logs import configure_logging
from adapters.runtime import Runtime

DEMO_201 = "DEMO-201"
DEMO_16 = "DEMO-16"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class StationView:
    """What the CSMS knows about one station."""

    station_id: str
    protocol: str = ""
    online: bool = False
    booted: bool = False
    model: str = ""
    connectors: dict[int, str] = field(default_factory=dict)
    transaction: str | None = None
    energy_wh: float = 0.0
    started: int = 0
    ended: int = 0
    messages: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    last_error: str = ""


class DemoCsms(OcppChargePoint):
    """The CSMS side of one station connection (the `ocpp` package's ChargePoint, acting as server)."""

    def __init__(self, station_id: str, connection: Any, view: StationView) -> None:
        super().__init__(station_id, connection)
        self.view = view

    @on("BootNotification")
    async def on_boot(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        self.view.messages += 1
        self.view.booted = True
        self.view.model = (
            f"{charging_station.get('vendor_name', '')} {charging_station.get('model', '')}"
        )
        return call_result.BootNotification(current_time=_now(), interval=60, status="Accepted")

    @on("Heartbeat")
    async def on_heartbeat(self, **_: Any) -> Any:
        self.view.messages += 1
        return call_result.Heartbeat(current_time=_now())

    @on("StatusNotification")
    async def on_status(self, connector_status: str, evse_id: int, **_: Any) -> Any:
        self.view.messages += 1
        self.view.connectors[evse_id] = connector_status
        return call_result.StatusNotification()

    @on("Authorize")
    async def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        self.view.messages += 1
        return call_result.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")
    async def on_transaction_event(
        self, event_type: str, transaction_info: dict[str, Any], **kwargs: Any
    ) -> Any:
        self.view.messages += 1
        for meter_value in kwargs.get("meter_value") or []:
            for sample in meter_value.get("sampled_value", []):
                if sample.get("measurand", "Energy.Active.Import.Register") == (
                    "Energy.Active.Import.Register"
                ):
                    self.view.energy_wh = float(sample["value"])
        if event_type == "Started":
            self.view.started += 1
            self.view.transaction = transaction_info["transaction_id"]
        elif event_type == "Ended":
            self.view.ended += 1
            self.view.transaction = None
        return call_result.TransactionEvent()

    @on("MeterValues")
    async def on_meter_values(self, **_: Any) -> Any:
        self.view.messages += 1
        return call_result.MeterValues()

    @on("NotifyEvent")
    async def on_notify_event(self, **_: Any) -> Any:
        self.view.messages += 1
        return call_result.NotifyEvent()


class DemoCharger201(OcppChargePoint):
    """A simulated OCPP 2.0.1 charger (the `ocpp` package's ChargePoint)."""

    @on("GetVariables")
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        values = {"HeartbeatInterval": "60", "Model": "Demo AC 22"}
        results = []
        for item in get_variable_data:
            name = item["variable"]["name"]
            known = name in values
            results.append(
                {
                    "attribute_status": "Accepted" if known else "UnknownVariable",
                    "component": item["component"],
                    "variable": item["variable"],
                    **({"attribute_value": values[name]} if known else {}),
                }
            )
        return call_result.GetVariables(get_variable_result=results)

    async def drive(self, stop: asyncio.Event) -> None:
        await self.call(
            call.BootNotification(
                charging_station={"model": "Demo AC 22", "vendor_name": "ocpp-bridge"},
                reason="PowerUp",
            )
        )
        await self._status("Available")
        session = 0
        energy = 0.0
        while not stop.is_set():
            session += 1
            await self._status("Occupied")
            token = {"id_token": f"DEMO{session:04d}", "type": "ISO14443"}
            await self.call(call.Authorize(id_token=token))
            transaction_id = f"demo-{session}"
            seq = 0
            await self.call(
                call.TransactionEvent(
                    event_type="Started",
                    timestamp=_now(),
                    trigger_reason="Authorized",
                    seq_no=seq,
                    transaction_info={
                        "transaction_id": transaction_id,
                        "charging_state": "Charging",
                    },
                    evse={"id": 1, "connector_id": 1},
                    id_token=token,
                    meter_value=[_energy_sample(energy, "Transaction.Begin")],
                )
            )
            for _ in range(3):
                await _sleep_or_stop(stop, 1.0)
                energy += 3050.0 / 3  # about 11 kW, time-lapsed
                seq += 1
                await self.call(
                    call.TransactionEvent(
                        event_type="Updated",
                        timestamp=_now(),
                        trigger_reason="MeterValuePeriodic",
                        seq_no=seq,
                        transaction_info={"transaction_id": transaction_id},
                        meter_value=[_energy_sample(energy, "Sample.Periodic")],
                    )
                )
            seq += 1
            await self.call(
                call.TransactionEvent(
                    event_type="Ended",
                    timestamp=_now(),
                    trigger_reason="StopAuthorized",
                    seq_no=seq,
                    transaction_info={"transaction_id": transaction_id, "stopped_reason": "Local"},
                    meter_value=[_energy_sample(energy, "Transaction.End")],
                )
            )
            await self._status("Available")
            await _sleep_or_stop(stop, 1.0)

    async def _status(self, status: str) -> None:
        await self.call(
            call.StatusNotification(
                timestamp=_now(), connector_status=status, evse_id=1, connector_id=1
            )
        )


class DemoCharger16(OcppChargePoint16):
    """A simulated OCPP 1.6J charger (the `ocpp` package's ChargePoint): the bridge translates it."""

    configuration: dict[str, str] = {"HeartbeatInterval": "60", "MeterValueSampleInterval": "1"}

    @on("GetConfiguration")
    async def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        names = key or list(self.configuration)
        return result16.GetConfiguration(
            configuration_key=[
                {"key": name, "readonly": False, "value": self.configuration[name]}
                for name in names
                if name in self.configuration
            ]
            or None,
            unknown_key=[name for name in names if name not in self.configuration] or None,
        )

    @on("TriggerMessage")
    async def on_trigger(self, **_: Any) -> Any:
        return result16.TriggerMessage(status="Accepted")

    async def drive(self, stop: asyncio.Event) -> None:
        await self.call(
            call16.BootNotification(
                charge_point_vendor="ocpp-bridge", charge_point_model="Demo DC 1.6"
            )
        )
        await self._status("Available")
        session = 0
        meter = 0
        while not stop.is_set():
            session += 1
            await self._status("Preparing")
            tag = f"04A1B2C3D4{session:04d}"
            await self.call(call16.Authorize(id_tag=tag))
            started = await self.call(
                call16.StartTransaction(
                    connector_id=1, id_tag=tag, meter_start=meter, timestamp=_now()
                )
            )
            await self._status("Charging")
            for _ in range(3):
                await _sleep_or_stop(stop, 1.0)
                meter += 5000  # about 50 kW DC, time-lapsed
                await self.call(
                    call16.MeterValues(
                        connector_id=1,
                        transaction_id=started.transaction_id,
                        meter_value=[
                            {
                                "timestamp": _now(),
                                "sampledValue": [
                                    {
                                        "value": str(meter),
                                        "measurand": "Energy.Active.Import.Register",
                                        "unit": "Wh",
                                    }
                                ],
                            }
                        ],
                    )
                )
            await self.call(
                call16.StopTransaction(
                    transaction_id=started.transaction_id,
                    meter_stop=meter,
                    timestamp=_now(),
                    id_tag=tag,
                    reason="Local",
                )
            )
            await self._status("Finishing")
            await self._status("Available")
            await _sleep_or_stop(stop, 1.0)

    async def _status(self, status: str) -> None:
        await self.call(
            call16.StatusNotification(
                connector_id=1, error_code="NoError", status=status, timestamp=_now()
            )
        )


def _energy_sample(wh: float, context: str) -> dict[str, Any]:
    return {
        "timestamp": _now(),
        "sampled_value": [
            {
                "value": round(wh, 1),
                "context": context,
                "measurand": "Energy.Active.Import.Register",
                "unit_of_measure": {"unit": "Wh"},
            }
        ],
    }


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _table(views: dict[str, StationView]) -> Table:
    table = Table(title="What the CSMS sees (through ocpp-bridge)")
    for column in (
        "station",
        "charger speaks",
        "link",
        "model",
        "connectors",
        "transaction",
        "energy",
        "tx done",
        "msgs",
    ):
        table.add_column(column)
    for view in views.values():
        table.add_row(
            view.station_id,
            view.protocol,
            "online" if view.online else "offline",
            view.model.strip() or "-",
            ", ".join(f"{evse}: {status}" for evse, status in sorted(view.connectors.items()))
            or "-",
            view.transaction or "-",
            f"{view.energy_wh / 1000:.2f} kWh",
            f"{view.ended}/{view.started}",
            str(view.messages),
        )
    return table


async def run_demo(duration: float | None) -> bool:
    configure_logging("console", "warning")
    console = Console()
    chargers: dict[str, tuple[str, type[Any]]] = {
        DEMO_16: ("ocpp1.6", DemoCharger16),
        DEMO_201: ("ocpp2.0.1", DemoCharger201),
    }
    views = {sid: StationView(sid, protocol) for sid, (protocol, _) in chargers.items()}
    csms_sessions: list[asyncio.Task[Any]] = []

    async def csms_handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1]
        view = views.setdefault(station_id, StationView(station_id))
        view.online = True
        csms = DemoCsms(station_id, connection, view)
        task = asyncio.create_task(csms.start())
        csms_sessions.append(task)
        try:
            await asyncio.sleep(0.5)
            response = await csms.call(
                call.GetVariables(
                    get_variable_data=[
                        {
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                        }
                    ]
                )
            )
            for result in response.get_variable_result:
                view.variables[result["variable"]["name"]] = result.get("attribute_value", "?")
            await task
        except Exception as exc:  # noqa: BLE001 - the connection ended; the view shows it
            view.last_error = repr(exc)
        finally:
            view.online = False

    stop = asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="ocpp-bridge-demo-") as workdir:
        csms_server = await serve(csms_handler, "127.0.0.1", 0, subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
        csms_port = next(iter(csms_server.sockets)).getsockname()[1]
        config = BridgeConfig.model_validate(
            {
                "bridge": {"store": str(Path(workdir) / "bridge.db"), "health": ""},
                "csms": {"url": f"ws://127.0.0.1:{csms_port}/ocpp"},
                "south": {"listen": "127.0.0.1:0"},
                "stations": [
                    {"id": sid, "protocol": protocol} for sid, (protocol, _) in chargers.items()
                ],
            }
        )
        runtime = Runtime(config)
        await runtime.start()
        assert runtime.south_address is not None
        bridge_url = f"ws://127.0.0.1:{runtime.south_address[1]}"
        console.print(
            f"CSMS on ws://127.0.0.1:{csms_port}/ocpp, bridge listening on {bridge_url}; chargers "
            + ", ".join(f"{sid} ({protocol})" for sid, (protocol, _) in chargers.items())
            + " connect through the bridge."
        )
        async with contextlib.AsyncExitStack() as stack:
            readers: list[asyncio.Task[Any]] = []
            drivers: dict[str, asyncio.Task[Any]] = {}
            for sid, (protocol, charger_class) in chargers.items():
                ws = await stack.enter_async_context(
                    connect(f"{bridge_url}/{sid}", subprotocols=[protocol])  # type: ignore[list-item]
                )
                charger = charger_class(sid, ws)
                readers.append(asyncio.create_task(charger.start()))
                drivers[sid] = asyncio.create_task(charger.drive(stop))
            loop = asyncio.get_running_loop()
            deadline = None if duration is None else loop.time() + duration
            with Live(_table(views), console=console, refresh_per_second=4) as live:
                try:
                    while deadline is None or loop.time() < deadline:
                        await asyncio.sleep(0.25)
                        live.update(_table(views))
                        if any(d.done() for d in drivers.values()):
                            break
                except asyncio.CancelledError:
                    pass
            stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*map(asyncio.shield, drivers.values())), 15)
            for reader in readers:
                reader.cancel()
        await runtime.stop()
        csms_server.close()
        await csms_server.wait_closed()
        for task in csms_sessions:
            task.cancel()
    errors = {
        sid: task.exception()
        for sid, task in drivers.items()
        if task.done() and not task.cancelled() and task.exception() is not None
    }
    unfinished = [sid for sid, task in drivers.items() if not task.done()]
    ok = not errors and all(v.booted and v.ended >= 1 for v in views.values())
    console.print(_table(views))
    for view in views.values():
        console.print(
            f"summary {view.station_id} ({view.protocol}): booted={view.booted} transactions started={view.started}"
            f" ended={view.ended} energy={view.energy_wh:.1f} Wh messages={view.messages}"
            f" HeartbeatInterval={view.variables.get('HeartbeatInterval', '-')}",
            soft_wrap=True,
        )
    for sid, error in errors.items():
        console.print(f"charger {sid} failed: {error!r}")
    for sid in unfinished:
        console.print(f"charger {sid} did not finish its session in time")
    console.print("demo result: " + ("OK" if ok else "FAILED"), soft_wrap=True)
    return ok
