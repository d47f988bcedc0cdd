"""`ocpp-bridge demo`: simulated chargers and a small CSMS, wired through the real bridge on loopback.

Rules
- No configuration and no network beyond 127.0.0.1: every server binds port 0 (the c104 server a port
  found free on 127.0.0.1); the store lives in a temporary folder that is removed at the end; the 104
  charger's point table is the shipped default (package data, so any working directory works).
- The CSMS and the OCPP chargers are built on the `ocpp` package (PyPI), an implementation independent
  of the bridge; the 104 charger is a c104 `Server` (`adapters.cli.c104_outstation`). The bridge in the middle
  is the same `Runtime` that `ocpp-bridge run` uses.
- Four chargers, each running sessions until the demo ends (a session under way is completed first):
  DEMO-16 (OCPP 1.6J, translated) and DEMO-201 (OCPP 2.0.1, passed through) plug in, authorize a
  card, send meter values and stop by themselves; DEMO-104 (IEC 104, the bridge dials it) plugs in,
  the CSMS remote-starts it (the bridge sends the start command, the charger starts charging), its
  energy register and output measurements grow, the CSMS remote-stops it, it is unplugged;
  DEMO-CARD (IEC 104 on the vendor example table example-dialin-card, the simulator's outstation
  `adapters.cli.outstation104`) dials in to the bridge's iec104_listen and registers, plugs in, a card
  starts its session, the same card stops it, its settlement record makes the Ended, it is unplugged.
  Session timings are short (time-lapsed energy) so that one session of each fits in `--duration 5`.
- The live view (rich, only on a terminal; 80 columns are enough) shows what the CSMS sees: stations,
  the protocol each charger speaks, online, connector status, current transaction, energy delivered
  (sum over transactions of end minus begin register), transactions ended. With `--duration` the
  demo exits after that many seconds and prints a summary line per station; it succeeds (exit 0)
  when the CSMS saw every station boot and at least one complete transaction per station, and every
  DEMO-CARD transaction was Started and Ended once each with the card's idToken.
- Log lines: the bridge's, at `--log-level` (warning by default) and above, readable (not JSON), on
  stderr; while the live view shows they are printed above it (through rich's stderr proxy), never
  into it.
- The bridge's status page (`[bridge] status_page`) is on, on a free loopback port; its URL is printed
  with the others, so an operator can watch the stations in a browser while the demo runs.
- Every wait is bounded; every server, task and thread the demo starts is stopped before it returns.
- `--replicas N` (N ≥ 2): the same chargers and CSMS through N bridge processes on a local PostgreSQL,
  one killed mid-session: adapters.cli.demo_replicas (this module's sessions with longer waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as OcppChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as OcppChargePoint
from ocpp.v201 import call, call_result
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from adapters.cli.c104_outstation import HOST, Charger104
from adapters.cli.outstation104 import Outstation
from adapters.config import BridgeConfig
from adapters.mapping_files import compile_file, load_reference, shipped_table
from adapters.ops.logs import configure_logging
from adapters.runtime import Runtime

DEMO_201 = "DEMO-201"
DEMO_16 = "DEMO-16"
DEMO_104 = "DEMO-104"
DEMO_CARD = "DEMO-CARD"
CHARGERS = {DEMO_16: "ocpp1.6", DEMO_201: "ocpp2.0.1", DEMO_104: "iec104", DEMO_CARD: "iec104"}
TABLE_104 = "gb-dc-charger"
TABLE_CARD = "example-dialin-card"
CARD_SERIAL = "DEMO0001"  # its registration frame's id
DEMO_CARD_TOKEN = "1234567890123456"  # the card DEMO-CARD's driver swipes (the CSMS accepts it)
# The 104 charger at rest: gun in its holster, idle, contactor open, a register that has seen use
# (counts of 10 Wh: 1,234.56 kWh).
IDLE_104 = {0x0022: True, 0x400F: 2.0, 0x0025: 1, 0x6401: 123_456}
ENERGY = "Energy.Active.Import.Register"


class DemoFailed(Exception):
    """A simulated session could not go on (the summary reports it)."""


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
    started: int = 0
    ended: int = 0
    messages: int = 0
    variables: dict[str, str] = field(default_factory=dict)
    last_error: str = ""
    register_wh: float | None = None  # the last energy register seen
    begin_wh: float | None = None  # the register at the current transaction's start
    delivered_wh: float = 0.0  # over the transactions that ended
    # transaction id → the Started/Ended events that carried an idToken, with that token
    tokens: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # every TransactionEvent as the CSMS got it: (transaction id, seqNo, eventType, the whole request)
    events: list[tuple[str, int, str, str]] = field(default_factory=list)
    served_by: str = ""  # with replicas: the replica holding the station's lease ("" unknown)

    def card_sessions(self, card: str) -> int | None:
        """Transactions Started and Ended once each with `card`; None when one was not."""
        expected = [("Started", card), ("Ended", card)]
        if any(events != expected for events in self.tokens.values()):
            return None
        return len(self.tokens)

    @property
    def energy_wh(self) -> float:
        """Energy delivered in the demo: registers may start anywhere (a 104 charger's has seen use)."""
        begin, register = self.begin_wh, self.register_wh
        if self.transaction is None or begin is None or register is None:
            return self.delivered_wh
        return self.delivered_wh + register - begin

    def transaction_started(self, transaction_id: str, register_wh: float | None) -> None:
        self.started += 1
        self.transaction = transaction_id
        # without a Transaction.Begin sample, the register from before the session
        self.begin_wh = register_wh if register_wh is not None else self.register_wh

    def register(self, wh: float) -> None:
        if self.transaction is not None and self.begin_wh is None:
            self.begin_wh = wh
        self.register_wh = wh

    def transaction_ended(self) -> None:
        self.ended += 1
        if self.begin_wh is not None and self.register_wh is not None:
            self.delivered_wh += self.register_wh - self.begin_wh
        self.transaction = None
        self.begin_wh = None


class DemoCsms(OcppChargePoint):
    """The CSMS side of one station connection (the `ocpp` package's ChargePoint, acting as server)."""

    def __init__(self, station_id: str, connection: Any, view: StationView) -> None:
        # a station that answers nothing within 10 s is gone (with replicas: moving to another one)
        super().__init__(station_id, connection, response_timeout=10)
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
        self.view.events.append(
            (
                transaction_info["transaction_id"],
                int(kwargs.get("seq_no", -1)),
                event_type,
                json.dumps(
                    {"event_type": event_type, "transaction_info": transaction_info, **kwargs},
                    sort_keys=True,
                    default=str,
                ),
            )
        )
        register: float | None = None
        for meter_value in kwargs.get("meter_value") or []:
            for sample in meter_value.get("sampled_value", []):
                # the measurand's default is the energy register (2.0.1 SampledValueType)
                if sample.get("measurand", ENERGY) == ENERGY and "phase" not in sample:
                    register = float(sample["value"])
        id_token = kwargs.get("id_token")
        if event_type in ("Started", "Ended") and id_token:
            events = self.view.tokens.setdefault(transaction_info["transaction_id"], [])
            events.append((event_type, id_token["id_token"]))
        if event_type == "Started":
            self.view.transaction_started(transaction_info["transaction_id"], register)
        if register is not None:
            self.view.register(register)
        if event_type == "Ended":
            self.view.transaction_ended()
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
    """A simulated OCPP 2.0.1 charger (the `ocpp` package's ChargePoint); `ocpp-bridge simulate
    ocpp2.0.1` drives the same steps from a script."""

    model = "Demo AC 22"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.energy = 0.0  # Wh, the register
        self.transaction_id: str | None = None
        self.seq = 0
        self.sessions = 0

    @on("GetVariables")
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        values = {"HeartbeatInterval": "60", "Model": self.model}
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

    # --- the steps of a session --------------------------------------------------------------------

    async def boot(self) -> int:
        """BootNotification and the connector's status; the heartbeat interval the CSMS gave."""
        answer = await self.call(
            call.BootNotification(
                charging_station={"model": self.model, "vendor_name": "ocpp-bridge"},
                reason="PowerUp",
            )
        )
        await self._status("Available")
        return int(answer.interval)

    async def heartbeat(self) -> None:
        await self.call(call.Heartbeat())

    async def plug(self) -> None:
        await self._status("Occupied")

    async def authorize(self, id_token: str) -> str:
        token = {"id_token": id_token, "type": "ISO14443"}
        answer = await self.call(call.Authorize(id_token=token))
        return str(answer.id_token_info["status"])

    async def start_charging(self, id_token: str) -> None:
        self.sessions += 1
        self.transaction_id = f"demo-{self.sessions}"
        self.seq = 0
        await self.call(
            call.TransactionEvent(
                event_type="Started",
                timestamp=_now(),
                trigger_reason="Authorized",
                seq_no=self.seq,
                transaction_info={
                    "transaction_id": self.transaction_id,
                    "charging_state": "Charging",
                },
                evse={"id": 1, "connector_id": 1},
                id_token={"id_token": id_token, "type": "ISO14443"},
                meter_value=[_energy_sample(self.energy, "Transaction.Begin")],
            )
        )

    async def deliver(self, wh: float) -> None:
        self.energy += wh
        if self.transaction_id is None:
            return
        self.seq += 1
        await self.call(
            call.TransactionEvent(
                event_type="Updated",
                timestamp=_now(),
                trigger_reason="MeterValuePeriodic",
                seq_no=self.seq,
                transaction_info={"transaction_id": self.transaction_id},
                meter_value=[_energy_sample(self.energy, "Sample.Periodic")],
            )
        )

    async def stop_charging(self, reason: str = "Local") -> None:
        if self.transaction_id is None:
            return
        self.seq += 1
        await self.call(
            call.TransactionEvent(
                event_type="Ended",
                timestamp=_now(),
                trigger_reason="StopAuthorized" if reason == "Local" else "EVCommunicationLost",
                seq_no=self.seq,
                transaction_info={"transaction_id": self.transaction_id, "stopped_reason": reason},
                meter_value=[_energy_sample(self.energy, "Transaction.End")],
            )
        )
        self.transaction_id = None

    async def unplug(self) -> None:
        await self.stop_charging("EVDisconnected")
        await self._status("Available")

    async def drive(self, stop: asyncio.Event) -> None:
        # about 11 kW, time-lapsed
        await _drive(self, stop, lambda session: f"DEMO{session:04d}", 3050.0 / 3)

    async def _status(self, status: str) -> None:
        await self.call(
            call.StatusNotification(
                timestamp=_now(), connector_status=status, evse_id=1, connector_id=1
            )
        )


class DemoCharger16(OcppChargePoint16):
    """A simulated OCPP 1.6J charger (the `ocpp` package's ChargePoint): the bridge translates it;
    `ocpp-bridge simulate ocpp1.6` drives the same steps from a script."""

    configuration: dict[str, str] = {"HeartbeatInterval": "60", "MeterValueSampleInterval": "1"}
    model = "Demo DC 1.6"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.energy = 0.0  # Wh, the register
        self.transaction_id: int | None = None
        self.id_tag = ""

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

    # --- the steps of a session --------------------------------------------------------------------

    async def boot(self) -> int:
        """BootNotification and the connector's status; the heartbeat interval the CSMS gave."""
        answer = await self.call(
            call16.BootNotification(
                charge_point_vendor="ocpp-bridge", charge_point_model=self.model
            )
        )
        await self._status("Available")
        return int(answer.interval)

    async def heartbeat(self) -> None:
        await self.call(call16.Heartbeat())

    async def plug(self) -> None:
        await self._status("Preparing")

    async def authorize(self, id_tag: str) -> str:
        answer = await self.call(call16.Authorize(id_tag=id_tag))
        return str(answer.id_tag_info["status"])

    async def start_charging(self, id_tag: str) -> None:
        started = await self.call(
            call16.StartTransaction(
                connector_id=1, id_tag=id_tag, meter_start=round(self.energy), timestamp=_now()
            )
        )
        self.transaction_id = started.transaction_id
        self.id_tag = id_tag
        await self._status("Charging")

    async def deliver(self, wh: float) -> None:
        self.energy += wh
        if self.transaction_id is None:
            return
        await self.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=self.transaction_id,
                meter_value=[
                    {
                        "timestamp": _now(),
                        "sampledValue": [
                            {
                                "value": str(round(self.energy)),
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            }
                        ],
                    }
                ],
            )
        )

    async def stop_charging(self, reason: str = "Local") -> None:
        if self.transaction_id is None:
            return
        await self.call(
            call16.StopTransaction(
                transaction_id=self.transaction_id,
                meter_stop=round(self.energy),
                timestamp=_now(),
                id_tag=self.id_tag,
                reason=reason,
            )
        )
        self.transaction_id = None
        await self._status("Finishing")

    async def unplug(self) -> None:
        await self.stop_charging("EVDisconnected")
        await self._status("Available")

    async def drive(self, stop: asyncio.Event) -> None:
        # about 50 kW DC, time-lapsed
        await _drive(self, stop, lambda session: f"04A1B2C3D4{session:04d}", 5000.0)

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


async def _drive(
    charger: DemoCharger201 | DemoCharger16,
    stop: asyncio.Event,
    token_of: Callable[[int], str],
    wh_per_second: float,
) -> None:
    """An OCPP demo charger's sessions until `stop`: boot once, then plug in, authorize and start
    with the session's token, deliver for 3 s, stop, unplug, rest 1 s."""
    await charger.boot()
    session = 0
    while not stop.is_set():
        session += 1
        await charger.plug()
        token = token_of(session)
        await charger.authorize(token)
        await charger.start_charging(token)
        for _ in range(3):
            await _sleep_or_stop(stop, 1.0)
            await charger.deliver(wh_per_second)
        await charger.stop_charging()
        await charger.unplug()
        await _sleep_or_stop(stop, 1.0)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_until(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    """The condition's value once it is truthy; DemoFailed after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not (value := condition()):
        if loop.time() >= deadline:
            raise DemoFailed(f"{what}: not within {seconds:g} s")
        await asyncio.sleep(0.05)
    return value


class Demo104Session:
    """DEMO-104's sessions: the c104 charger plugs in and out, the CSMS starts and stops remotely.

    The charger (`Charger104` with `react=True`) starts and stops charging by itself when the bridge
    sends it the start/stop command; this driver only plays the driver of the car (plug, unplug), the
    meter (energy and output measurements) and the CSMS operator (RequestStart/StopTransaction).
    """

    def __init__(
        self,
        charger: Charger104,
        sessions: dict[str, DemoCsms],
        view: StationView,
        patience: float = 1.0,
    ) -> None:
        self.charger = charger
        self.sessions = sessions
        self.view = view
        # > 1 with replicas: every wait that long times more, and a CSMS request that finds the
        # station moving to another replica is sent again once it is back (bounded)
        self.patience = patience

    async def _csms_call(self, request: Any) -> Any:
        """`request` from the CSMS to the station, on its current connection."""
        view, loop = self.view, asyncio.get_running_loop()
        deadline = loop.time() + 10 * self.patience
        while True:
            csms = self.sessions.get(view.station_id)
            if csms is not None:
                try:
                    return await csms.call(request)
                except (ConnectionClosed, TimeoutError):
                    if self.patience <= 1:
                        raise
            if loop.time() >= deadline:
                raise DemoFailed(f"{view.station_id} unreachable from the CSMS")
            await asyncio.sleep(0.25)

    async def drive(self, stop: asyncio.Event) -> None:
        view, patience = self.view, self.patience
        await _wait_until(
            lambda: view.booted and view.variables and self.sessions.get(view.station_id),
            15 * patience,
            f"{view.station_id} registered with the CSMS",
        )
        await _wait_until(
            lambda: view.connectors.get(1) == "Available",
            10 * patience,
            f"{view.station_id} Available",
        )
        session = 0
        while not stop.is_set():
            session += 1
            await self.charger.plug_in(1)
            await _wait_until(
                lambda: view.connectors.get(1) == "Occupied", 5 * patience, "plugged in"
            )
            started = await self._csms_call(
                call.RequestStartTransaction(
                    id_token={"id_token": f"APP{session:05d}", "type": "Central"},
                    remote_start_id=session,
                    evse_id=1,
                )
            )
            # sent again after a failover: the first may have started it
            if started.status != "Accepted" and not view.transaction:
                raise DemoFailed(f"RequestStartTransaction: {started.status}")
            transaction_id = await _wait_until(
                lambda: view.transaction, 8 * patience, "transaction started"
            )
            for _ in range(4):
                await _sleep_or_stop(stop, 0.5)
                await self.charger.deliver(1, 1_250.0, power_kw=90.0)  # 2.5 kWh/s, time-lapsed
            stopped = await self._csms_call(
                call.RequestStopTransaction(transaction_id=transaction_id)
            )
            if stopped.status != "Accepted" and view.transaction == transaction_id:
                raise DemoFailed(f"RequestStopTransaction: {stopped.status}")
            # Ended waits for the counter interrogation that reads the final register
            await _wait_until(lambda: view.transaction is None, 8 * patience, "transaction ended")
            await asyncio.sleep(0.2)
            await self.charger.unplug(1)
            await _wait_until(
                lambda: view.connectors.get(1) == "Available", 5 * patience, "unplugged"
            )
            await _sleep_or_stop(stop, 1.0)


class DemoCardSession:
    """DEMO-CARD's sessions: the outstation dialled in and registered; a card starts and stops.

    The outstation starts charging when the bridge accepts the card on a plugged-in connector and
    stops when the same card is accepted again, then sends its settlement record; this driver plays
    the driver of the car (plug, card, unplug) and the meter."""

    def __init__(self, outstation: Outstation, view: StationView, patience: float = 1.0) -> None:
        self.outstation = outstation
        self.view = view
        self.patience = patience  # as Demo104Session's

    async def _swipe(self, charging: bool, what: str) -> None:
        """The card, until the connector is `charging`. With replicas a swipe may find the outstation
        between two replicas (no answer), or a replica that took the station over and is not yet
        registered with the CSMS (the table's offline answer, Unknown): the driver presents the
        card again a second later, as a driver at a real charger would, for at most 20 s."""
        sim = self.outstation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (20.0 if self.patience > 1 else 0.0)
        while True:
            status = await sim.swipe(DEMO_CARD_TOKEN, within=15.0 if self.patience <= 1 else 5.0)
            if status == "Accepted" or sim.connectors[1].charging == charging:
                return
            if loop.time() + 1.0 > deadline:
                raise DemoFailed(f"card to {what}: {status}")
            await asyncio.sleep(1.0)

    async def drive(self, stop: asyncio.Event) -> None:
        view, sim, patience = self.view, self.outstation, self.patience
        await _wait_until(
            lambda: view.booted and view.variables, 15 * patience, f"{DEMO_CARD} registered"
        )
        await sim.wait_ready(10 * patience)
        await _wait_until(
            lambda: view.connectors.get(1) == "Available", 10 * patience, f"{DEMO_CARD} Available"
        )
        while not stop.is_set():
            await sim.plug_in(1)
            await _wait_until(
                lambda: view.connectors.get(1) == "Occupied", 5 * patience, "plugged in"
            )
            await self._swipe(True, "start")
            await _wait_until(lambda: view.transaction, 8 * patience, "transaction started")
            for _ in range(4):
                await _sleep_or_stop(stop, 0.5)
                await sim.deliver(1, 1_000.0, power_kw=72.0)  # 2 kWh/s, time-lapsed
            await self._swipe(False, "stop")
            await sim.wait_settled(10 * patience)
            await _wait_until(lambda: view.transaction is None, 8 * patience, "transaction ended")
            await sim.unplug(1)
            await _wait_until(
                lambda: view.connectors.get(1) == "Available", 5 * patience, "unplugged"
            )
            await _sleep_or_stop(stop, 1.0)


def _short(transaction_id: str | None) -> str:
    """Transaction ids are often UUIDs: the first 8 characters tell them apart on screen."""
    if transaction_id is None:
        return "-"
    return transaction_id if len(transaction_id) <= 9 else transaction_id[:8] + "…"


def _table(views: dict[str, StationView]) -> Table:
    """Fits 80 columns: no vertical rules, short headers, ids never wrapped."""
    table = Table(
        title="What the CSMS sees (through ocpp-bridge)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),  # with the box's blank divider: two spaces between columns
        show_edge=False,
    )
    # ids are what the reader looks for: never truncated; the other columns give way first
    table.add_column(
        "station", no_wrap=True, min_width=max(len(v.station_id) for v in views.values())
    )
    table.add_column("speaks", no_wrap=True, min_width=max(len(v.protocol) for v in views.values()))
    table.add_column("online", no_wrap=True)
    table.add_column("connector", no_wrap=True)
    table.add_column("transaction", no_wrap=True)
    table.add_column("kWh", justify="right", no_wrap=True)
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("msgs", justify="right", no_wrap=True)
    replicas = any(view.served_by for view in views.values())
    if replicas:
        table.add_column("by", no_wrap=True)
    for view in views.values():
        connectors = sorted(view.connectors.items())
        if len(connectors) == 1:
            status = connectors[0][1]
        else:
            status = ", ".join(f"{evse}:{status}" for evse, status in connectors) or "-"
        table.add_row(
            view.station_id,
            view.protocol,
            "yes" if view.online else "no",
            status,
            _short(view.transaction),
            f"{view.energy_wh / 1000:.2f}",
            str(view.ended),
            str(view.messages),
            *([view.served_by or "-"] if replicas else []),
        )
    return table


async def _read_variables(csms: DemoCsms, view: StationView) -> None:
    """What the CSMS asks each station once it registered."""
    await _wait_until(lambda: view.booted, 15, f"{view.station_id} booted")
    await asyncio.sleep(0.2)  # the BootNotification response goes out first
    if view.protocol == "iec104":
        # The 104 table's default meter interval is 60 s, too slow to watch: the CSMS asks for 1 s
        # (the OCPP chargers sample every second by their own configuration).
        read = {
            "component": {"name": "SampledDataCtrlr"},
            "variable": {"name": "TxUpdatedInterval"},
        }
        await csms.call(call.SetVariables(set_variable_data=[{**read, "attribute_value": "1"}]))
    else:
        read = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    response = await csms.call(call.GetVariables(get_variable_data=[read]))
    for result in response.get_variable_result:
        value = result.get("attribute_value") if result["attribute_status"] == "Accepted" else None
        view.variables[result["variable"]["name"]] = value or f"({result['attribute_status']})"


class _StderrNow(io.TextIOBase):
    """sys.stderr as it is when a line is written: during the live view rich's proxy, which prints
    the line above the table instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_demo_logging(level: str) -> None:
    """The bridge's log lines at `level` and above, readable, on stderr as it is when each is written
    (above the live table while it shows)."""
    configure_logging("console", level)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(_StderrNow())
    # the simulated chargers' and CSMS's `ocpp` package logs every frame at info: only from debug
    numeric = logging.getLevelName(level.upper())
    logging.getLogger("ocpp").setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)


async def run_demo(duration: float | None, log_level: str = "warning") -> bool:
    configure_demo_logging(log_level)
    console = Console()
    views = {sid: StationView(sid, protocol) for sid, protocol in CHARGERS.items()}
    sessions: dict[str, DemoCsms] = {}
    csms_sessions: list[asyncio.Task[Any]] = []

    csms_handler = demo_csms_handler(views, sessions, csms_sessions)

    stop = asyncio.Event()
    drivers: dict[str, asyncio.Task[Any]] = {}
    unfinished: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ocpp-bridge-demo-"))
        # a real file even if the package were zipped (the configuration takes a path)
        mapping = stack.enter_context(resources.as_file(shipped_table(TABLE_104)))
        csms_server = await serve(
            csms_handler, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp2.0.1")]
        )
        stack.push_async_callback(_close_csms, csms_server, csms_sessions)
        csms_port = next(iter(csms_server.sockets)).getsockname()[1]

        # confirm_delay: see adapters.cli.c104_outstation (a charger answers in milliseconds, not microseconds)
        charger104 = Charger104(compile_file(mapping, 1), IDLE_104, react=True, confirm_delay=0.005)
        station104 = {
            "id": DEMO_104,
            "protocol": "iec104",
            "host": HOST,
            "port": charger104.port,
            "connectors": 1,
            "mapping": str(mapping),
        }
        station_card = {
            "id": DEMO_CARD,
            "protocol": "iec104",
            "dial": "in",
            "registration_id": CARD_SERIAL,
            "connectors": 1,
            "mapping": TABLE_CARD,  # a shipped table's name: found from any working directory
        }
        # started before the bridge, so its first connection attempt succeeds
        await charger104.start()
        stack.push_async_callback(charger104.stop)  # after the bridge stopped (last in, first out)

        # the simulator's outstation, stopped after the bridge (as the c104 one)
        card_charger = Outstation(load_reference(TABLE_CARD).compile(1), serial=CARD_SERIAL)
        stack.push_async_callback(card_charger.stop)

        config = BridgeConfig.model_validate(
            {
                # the status page on a free loopback port, its URL printed below
                "bridge": {
                    "store": str(Path(workdir) / "bridge.db"),
                    "health": "127.0.0.1:0",
                    "status_page": True,
                },
                "csms": {"url": f"ws://127.0.0.1:{csms_port}/ocpp"},
                "south": {"listen": "127.0.0.1:0", "iec104_listen": "127.0.0.1:0"},
                "stations": [
                    {"id": sid, "protocol": protocol}
                    for sid, protocol in CHARGERS.items()
                    if protocol != "iec104"
                ]
                + [station104, station_card],
            }
        )
        runtime = Runtime(config)
        await runtime.start()
        stack.push_async_callback(runtime.stop)
        assert runtime.south_address is not None
        assert runtime.iec104_address is not None
        await card_charger.dial_in(*runtime.iec104_address)
        bridge_url = f"ws://127.0.0.1:{runtime.south_address[1]}"
        console.print(f"CSMS      ws://127.0.0.1:{csms_port}/ocpp (the `ocpp` package)")
        console.print(f"bridge    {bridge_url} (the OCPP chargers connect to it)")
        if runtime.health_address is not None:
            health = f"http://127.0.0.1:{runtime.health_address[1]}"
            console.print(f"status    {health}/status (open it in a browser; {health}/metrics)")
        console.print(f"{DEMO_16:<9} OCPP 1.6J charger → bridge (translated) → CSMS")
        console.print(f"{DEMO_201:<9} OCPP 2.0.1 charger → bridge (passed through) → CSMS")
        console.print(
            f"{DEMO_104:<9} IEC 104 charger, c104 server {HOST}:{charger104.port}"
            f" ({TABLE_104}) ← bridge dials it → CSMS",
            soft_wrap=True,
        )
        console.print(
            f"{DEMO_CARD:<9} IEC 104 card charger ({TABLE_CARD}) dials in → bridge → CSMS",
            soft_wrap=True,
        )

        readers: list[asyncio.Task[Any]] = []
        for sid, protocol in CHARGERS.items():
            if sid == DEMO_CARD:
                drive = DemoCardSession(card_charger, views[sid]).drive
            elif protocol == "iec104":
                drive = Demo104Session(charger104, sessions, views[sid]).drive
            else:
                ws = await stack.enter_async_context(
                    connect(f"{bridge_url}/{sid}", subprotocols=[Subprotocol(protocol)])
                )
                charger_class = DemoCharger16 if protocol == "ocpp1.6" else DemoCharger201
                charger = charger_class(sid, ws)
                readers.append(asyncio.create_task(charger.start()))
                drive = charger.drive
            drivers[sid] = asyncio.create_task(drive(stop))
        try:
            await _watch(console, views, drivers, duration)
        finally:
            stop.set()
            # each charger completes the session under way (bounded), then everything stops
            await asyncio.wait(drivers.values(), timeout=15)  # neither raises nor cancels
            unfinished = [sid for sid, task in drivers.items() if not task.done()]
            for task in [*drivers.values(), *readers]:
                task.cancel()
            await asyncio.gather(*drivers.values(), *readers, return_exceptions=True)
    errors = {
        sid: task.exception()
        for sid, task in drivers.items()
        if task.done() and not task.cancelled() and task.exception() is not None
    }
    card_sessions = views[DEMO_CARD].card_sessions(DEMO_CARD_TOKEN)
    ok = (
        not errors
        and all(v.booted and v.ended >= 1 for v in views.values())
        and card_sessions is not None
    )
    console.print(_table(views))
    for view in views.values():
        variables = " ".join(f"{name}={value}" for name, value in view.variables.items())
        console.print(
            f"summary {view.station_id} ({view.protocol}): booted={view.booted} transactions started={view.started}"
            f" ended={view.ended} energy={view.energy_wh:.1f} Wh messages={view.messages}"
            + (
                f" card sessions={card_sessions if card_sessions is not None else 'WRONG'}"
                if view.station_id == DEMO_CARD
                else ""
            )
            + f" {variables or 'variables=-'}",
            soft_wrap=True,
        )
    for sid, error in errors.items():
        console.print(f"charger {sid} failed: {error!r}", soft_wrap=True)
    for sid in unfinished:
        console.print(f"charger {sid} did not finish its session in time")
    console.print("demo result: " + ("OK" if ok else "FAILED"), soft_wrap=True)
    return ok


async def _watch(
    console: Console,
    views: dict[str, StationView],
    drivers: dict[str, asyncio.Task[Any]],
    duration: float | None,
) -> None:
    """Until `duration` is over (or Ctrl-C, or a charger gave up). The live table only on a terminal:
    piped, rich would print just its last frame, which the summary prints anyway."""
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    live = (
        # transient: the summary's table, printed after the shutdown, replaces the last frame
        Live(_table(views), console=console, refresh_per_second=4, transient=True)
        if console.is_terminal
        else contextlib.nullcontext()
    )
    with live:
        try:
            while deadline is None or loop.time() < deadline:
                await asyncio.sleep(0.25)
                if isinstance(live, Live):
                    live.update(_table(views))
                if any(d.done() for d in drivers.values()):
                    break
        except asyncio.CancelledError:
            pass


def demo_csms_handler(
    views: dict[str, StationView],
    sessions: dict[str, DemoCsms],
    tasks: list[asyncio.Task[Any]],
) -> Callable[[ServerConnection], Awaitable[None]]:
    """The demo CSMS's connection handler (this demo's and the replica demo's): one `DemoCsms` per
    station connection, in `sessions` while it is the station's newest, its task in `tasks`; the
    station's view is online while its newest session lasts."""

    async def csms_handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1]
        view = views.setdefault(station_id, StationView(station_id))
        view.online = True
        csms = DemoCsms(station_id, connection, view)
        sessions[station_id] = csms
        task = asyncio.create_task(csms.start())
        tasks.append(task)
        try:
            await _read_variables(csms, view)
            await task
        except Exception as exc:  # noqa: BLE001 - the connection ended; the view shows it
            view.last_error = repr(exc)
        finally:
            if sessions.get(station_id) is csms:
                del sessions[station_id]
                view.online = False

    return csms_handler


async def _close_csms(server: Any, sessions: list[asyncio.Task[Any]]) -> None:
    server.close()
    await server.wait_closed()
    for task in sessions:
        task.cancel()
    await asyncio.gather(*sessions, return_exceptions=True)
