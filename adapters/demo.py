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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class StationView:
    """What the CSMS knows about one station."""

    station_id: str
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
    views = {DEMO_201: StationView(DEMO_201)}
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
                "stations": [{"id": DEMO_201, "protocol": "ocpp2.0.1"}],
            }
        )
        runtime = Runtime(config)
        await runtime.start()
        assert runtime.south_address is not None
        bridge_url = f"ws://127.0.0.1:{runtime.south_address[1]}"
        console.print(
            f"CSMS on ws://127.0.0.1:{csms_port}/ocpp, bridge listening on {bridge_url}; "
            f"charger {DEMO_201} (OCPP 2.0.1) connects through the bridge."
        )
        async with connect(f"{bridge_url}/{DEMO_201}", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            charger = DemoCharger201(DEMO_201, ws)
            reader = asyncio.create_task(charger.start())
            driver = asyncio.create_task(charger.drive(stop))
            loop = asyncio.get_running_loop()
            deadline = None if duration is None else loop.time() + duration
            with Live(_table(views), console=console, refresh_per_second=4) as live:
                try:
                    while deadline is None or loop.time() < deadline:
                        await asyncio.sleep(0.25)
                        live.update(_table(views))
                        if driver.done():
                            break
                except asyncio.CancelledError:
                    pass
            stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(driver), 10)
            reader.cancel()
        await runtime.stop()
        csms_server.close()
        await csms_server.wait_closed()
        for task in csms_sessions:
            task.cancel()
    driver_error = driver.exception() if driver.done() and not driver.cancelled() else None
    ok = driver_error is None and all(v.booted and v.ended >= 1 for v in views.values())
    console.print(_table(views))
    for view in views.values():
        console.print(
            f"summary {view.station_id}: booted={view.booted} transactions started={view.started}"
            f" ended={view.ended} energy={view.energy_wh:.1f} Wh messages={view.messages}"
            f" HeartbeatInterval={view.variables.get('HeartbeatInterval', '-')}",
            soft_wrap=True,
        )
    if driver_error is not None:
        console.print(f"charger failed: {driver_error!r}")
    console.print("demo result: " + ("OK" if ok else "FAILED"), soft_wrap=True)
    return ok
