"""Independent peers for loopback tests: an OCPP 2.0.1 CSMS and chargers built on the `ocpp` package.

- `FrameOracle` checks every frame a peer receives against the official JSON schemas with the pure-Python
  `jsonschema` package and its date-time format checker: a path independent of the bridge's own
  (jsonschema-rs) validation, so a frame the bridge wrongly lets through is caught here.
- `Recording` wraps a websockets connection for an `ocpp` ChargePoint and feeds the oracle.
- `Csms` is a 2.0.1 CSMS on 127.0.0.1, port 0, whose handlers record what it saw.
- Every server binds 127.0.0.1 only; every wait is bounded by `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonschema
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint, call_result
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from bridge.ocppj.errors import VALID_CODES, OcppVersion

_FOLDERS = {"2.0.1": "v201/schemas", "1.6": "v16/schemas"}
_VALIDATORS: dict[tuple[str, str], Any] = {}


def _validator(version: str, file_name: str) -> Any:
    key = (version, file_name)
    if key not in _VALIDATORS:
        path = importlib.resources.files("ocpp").joinpath(_FOLDERS[version], file_name)
        schema = json.loads(path.read_bytes().decode("utf-8-sig"))
        checker = jsonschema.FormatChecker()
        assert "date-time" in checker.checkers, "install rfc3339-validator: date-times unchecked"
        cls = jsonschema.validators.validator_for(schema)
        _VALIDATORS[key] = cls(schema, format_checker=checker)
    return _VALIDATORS[key]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FrameOracle:
    """Every frame one peer receives, checked against the official schemas."""

    def __init__(self, version: str = "2.0.1") -> None:
        self.version = version
        self._our_calls: dict[str, str] = {}  # message id -> action, for CALLs this peer sent
        self.received: list[list[Any]] = []
        self.problems: list[str] = []

    def _request_file(self, action: str) -> str:
        return f"{action}Request.json" if self.version == "2.0.1" else f"{action}.json"

    def sent(self, raw: str | bytes) -> None:
        frame = json.loads(raw)
        if frame[0] == 2:
            self._our_calls[frame[1]] = frame[2]

    def receive(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            self.problems.append(f"not JSON: {raw!r}")
            return
        self.received.append(frame)
        kind = frame[0]
        if kind == 2:
            self._check(frame, self._request_file(frame[2]), frame[3])
        elif kind == 3:
            action = self._our_calls.get(frame[1])
            if action is None:
                self.problems.append(f"CALLRESULT for an id this peer never sent: {frame}")
            else:
                self._check(frame, f"{action}Response.json", frame[2])
        elif kind == 4:
            version = OcppVersion.V201 if self.version == "2.0.1" else OcppVersion.V16
            if len(frame) != 5 or frame[2] not in VALID_CODES[version]:
                self.problems.append(f"bad CALLERROR: {frame}")
        else:
            self.problems.append(f"unknown message type: {frame}")

    def _check(self, frame: list[Any], file_name: str, payload: Any) -> None:
        try:
            errors = list(_validator(self.version, file_name).iter_errors(payload))
        except FileNotFoundError:
            self.problems.append(f"no schema {file_name} for {frame}")
            return
        for error in errors:
            self.problems.append(f"{file_name}: {error.message} in {frame}")


class Recording:
    """A websockets connection as the `ocpp` package sees it, with every frame shown to an oracle."""

    def __init__(self, connection: Any, oracle: FrameOracle) -> None:
        self.connection = connection
        self.oracle = oracle

    async def recv(self) -> str | bytes:
        raw = await self.connection.recv()
        self.oracle.receive(raw)
        return raw  # type: ignore[no-any-return]

    async def send(self, raw: str) -> None:
        self.oracle.sent(raw)
        await self.connection.send(raw)


# --- the CSMS ------------------------------------------------------------------------------------


class CsmsChargePoint(ChargePoint):
    """The CSMS's view of one station, recording every CALL it handled."""

    def __init__(self, station_id: str, connection: Any, csms: Csms) -> None:
        super().__init__(station_id, connection, response_timeout=10)
        self.csms = csms
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _record(self, action: str, **payload: Any) -> None:
        self.calls.append((action, payload))
        self.csms.changed.set()

    @on("BootNotification")
    async def on_boot(self, **payload: Any) -> Any:
        self._record("BootNotification", **payload)
        return call_result.BootNotification(current_time=now_iso(), interval=300, status="Accepted")

    @on("Heartbeat")
    async def on_heartbeat(self, **payload: Any) -> Any:
        self._record("Heartbeat", **payload)
        return call_result.Heartbeat(current_time=now_iso())

    @on("StatusNotification")
    async def on_status(self, **payload: Any) -> Any:
        self._record("StatusNotification", **payload)
        return call_result.StatusNotification()

    @on("Authorize")
    async def on_authorize(self, **payload: Any) -> Any:
        self._record("Authorize", **payload)
        status = self.csms.token_status.get(payload["id_token"]["id_token"], "Accepted")
        return call_result.Authorize(id_token_info={"status": status})

    @on("TransactionEvent")
    async def on_transaction_event(self, **payload: Any) -> Any:
        self._record("TransactionEvent", **payload)
        token = (payload.get("id_token") or {}).get("id_token", "")
        status = self.csms.token_status.get(token, "Accepted")
        return call_result.TransactionEvent(id_token_info={"status": status})

    @on("MeterValues")
    async def on_meter_values(self, **payload: Any) -> Any:
        self._record("MeterValues", **payload)
        return call_result.MeterValues()

    @on("NotifyEvent")
    async def on_notify_event(self, **payload: Any) -> Any:
        self._record("NotifyEvent", **payload)
        return call_result.NotifyEvent()

    @on("NotifyReport")
    async def on_notify_report(self, **payload: Any) -> Any:
        self._record("NotifyReport", **payload)
        return call_result.NotifyReport()

    @on("FirmwareStatusNotification")
    async def on_firmware_status(self, **payload: Any) -> Any:
        self._record("FirmwareStatusNotification", **payload)
        return call_result.FirmwareStatusNotification()

    @on("SecurityEventNotification")
    async def on_security_event(self, **payload: Any) -> Any:
        self._record("SecurityEventNotification", **payload)
        return call_result.SecurityEventNotification()

    def actions(self) -> list[str]:
        return [action for action, _ in self.calls]

    def payloads(self, action: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.calls if name == action]


@dataclass
class CsmsSession:
    station_id: str
    connection: ServerConnection
    charge_point: CsmsChargePoint
    oracle: FrameOracle
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    headers: dict[str, str] = field(default_factory=dict)


class Csms:
    """An OCPP 2.0.1 CSMS on 127.0.0.1 (port 0), built on the `ocpp` package."""

    def __init__(
        self,
        *,
        ssl: Any = None,
        check_request: Callable[[Request], int | None] | None = None,
        subprotocols: tuple[str, ...] = ("ocpp2.0.1",),
        keep_closed: int | None = None,
    ) -> None:
        """`keep_closed`: at most this many ended sessions stay in `history` (their frames' problems
        are kept); None keeps every one. A run of a million connections (tests/abuse) needs a bound."""
        self._keep_closed = keep_closed
        self._problems_of_forgotten: list[str] = []
        self._ssl = ssl
        self._check_request = check_request
        self._subprotocols = subprotocols
        self.sessions: dict[str, CsmsSession] = {}
        self.token_status: dict[
            str, str
        ] = {}  # idToken → the status this CSMS answers (else Accepted)
        self.history: list[CsmsSession] = []
        self.changed = asyncio.Event()
        self.server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "wss" if self._ssl is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}/ocpp"

    async def start(self, port: int = 0) -> None:
        self.server = await serve(
            self._handler,
            "127.0.0.1",
            port,
            subprotocols=list(self._subprotocols),  # type: ignore[arg-type]
            process_request=self._process_request if self._check_request else None,
            ssl=self._ssl,
        )
        self.port = next(iter(self.server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        assert self._check_request is not None
        status = self._check_request(request)
        return connection.respond(status, "refused\n") if status else None

    async def _handler(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = connection.request.path.rsplit("/", 1)[-1]
        oracle = FrameOracle()
        charge_point = CsmsChargePoint(station_id, Recording(connection, oracle), self)
        session = CsmsSession(
            station_id,
            connection,
            charge_point,
            oracle,
            headers=dict(connection.request.headers.raw_items()),
        )
        self.sessions[station_id] = session
        self.history.append(session)
        self.changed.set()
        try:
            await charge_point.start()
        except Exception:  # the connection ended, which is what tests observe
            pass
        finally:
            session.closed.set()
            self.changed.set()
            self._forget_closed()

    def _forget_closed(self) -> None:
        # pruned when twice the bound is reached: each session's end costs O(1) on average
        if self._keep_closed is None or len(self.history) < 2 * self._keep_closed + 1:
            return
        closed = [s for s in self.history if s.closed.is_set()]
        for session in closed[: max(0, len(closed) - self._keep_closed)]:
            self.history.remove(session)
            self._problems_of_forgotten += session.oracle.problems

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def session(self, station_id: str, timeout: float = 10.0) -> CsmsSession:
        await self.wait_for(lambda: station_id in self.sessions, timeout)
        return self.sessions[station_id]

    def problems(self) -> list[str]:
        return self._problems_of_forgotten + [p for s in self.history for p in s.oracle.problems]


@contextlib.asynccontextmanager
async def running_csms(**kwargs: Any) -> AsyncIterator[Csms]:
    csms = Csms(**kwargs)
    await csms.start()
    try:
        yield csms
    finally:
        await csms.stop()


# --- chargers ------------------------------------------------------------------------------------


class Charger201(ChargePoint):
    """An OCPP 2.0.1 charger (the `ocpp` package), answering the CSMS requests tests use."""

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection, response_timeout=10)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.answer_delay = 0.0  # seconds before answering GetVariables: a slow firmware

    @on("GetVariables")
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        self.requests.append(("GetVariables", {"get_variable_data": get_variable_data}))
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return call_result.GetVariables(
            get_variable_result=[
                {
                    "attribute_status": "Accepted",
                    "attribute_value": "300",
                    "component": item["component"],
                    "variable": item["variable"],
                }
                for item in get_variable_data
            ]
        )


@contextlib.asynccontextmanager
async def connected_charger(
    url: str, station_id: str, *, subprotocol: str = "ocpp2.0.1", **connect_kwargs: Any
) -> AsyncIterator[tuple[Charger201, ClientConnection, FrameOracle]]:
    """A 2.0.1 charger connected to `url/station_id`, its receive loop running."""
    oracle = FrameOracle()
    async with connect(
        f"{url}/{station_id}",
        subprotocols=[subprotocol],  # type: ignore[list-item]
        open_timeout=10,
        **connect_kwargs,
    ) as connection:
        charger = Charger201(station_id, Recording(connection, oracle))
        reader = asyncio.create_task(charger.start())
        try:
            yield charger, connection, oracle
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


class Charger16(ChargePoint16):
    """An OCPP 1.6J charger (the `ocpp` package): answers what the bridge asks, records every request.

    `answers` overrides the status of an action's answer (e.g. {"RemoteStartTransaction": "Rejected"}).
    """

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection, response_timeout=10)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, str] = {}
        self.configuration: dict[str, str] = {
            "HeartbeatInterval": "300",
            "MeterValueSampleInterval": "60",
            "NumberOfConnectors": "2",
            "AuthorizeRemoteTxRequests": "true",
        }
        self.changed = asyncio.Event()

    def _got(self, action: str, payload: dict[str, Any]) -> None:
        self.requests.append((action, payload))
        self.changed.set()

    def requested(self, action: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.requests if name == action]

    async def wait_for(self, action: str, count: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while len(self.requested(action)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.requested(action)[count - 1]

    @on("RemoteStartTransaction")
    async def on_remote_start(self, **payload: Any) -> Any:
        self._got("RemoteStartTransaction", payload)
        return result16.RemoteStartTransaction(
            status=self.answers.get("RemoteStartTransaction", "Accepted")
        )

    @on("RemoteStopTransaction")
    async def on_remote_stop(self, **payload: Any) -> Any:
        self._got("RemoteStopTransaction", payload)
        return result16.RemoteStopTransaction(
            status=self.answers.get("RemoteStopTransaction", "Accepted")
        )

    @on("Reset")
    async def on_reset(self, **payload: Any) -> Any:
        self._got("Reset", payload)
        return result16.Reset(status=self.answers.get("Reset", "Accepted"))

    @on("GetConfiguration")
    async def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        self._got("GetConfiguration", {"key": key})
        names = key or list(self.configuration)
        known = [
            {"key": name, "readonly": False, "value": self.configuration[name]}
            for name in names
            if name in self.configuration
        ]
        unknown = [name for name in names if name not in self.configuration]
        return result16.GetConfiguration(
            configuration_key=known or None, unknown_key=unknown or None
        )

    @on("ChangeConfiguration")
    async def on_change_configuration(self, key: str, value: str) -> Any:
        self._got("ChangeConfiguration", {"key": key, "value": value})
        if key not in self.configuration:
            return result16.ChangeConfiguration(status="NotSupported")
        self.configuration[key] = value
        return result16.ChangeConfiguration(status="Accepted")

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, **payload: Any) -> Any:
        self._got("SetChargingProfile", payload)
        return result16.SetChargingProfile(
            status=self.answers.get("SetChargingProfile", "Accepted")
        )

    @on("TriggerMessage")
    async def on_trigger(self, **payload: Any) -> Any:
        self._got("TriggerMessage", payload)
        return result16.TriggerMessage(status=self.answers.get("TriggerMessage", "Accepted"))

    @on("ChangeAvailability")
    async def on_change_availability(self, **payload: Any) -> Any:
        self._got("ChangeAvailability", payload)
        return result16.ChangeAvailability(status="Accepted")

    @on("UnlockConnector")
    async def on_unlock(self, **payload: Any) -> Any:
        self._got("UnlockConnector", payload)
        return result16.UnlockConnector(status="Unlocked")


@contextlib.asynccontextmanager
async def connected_charger16(
    url: str, station_id: str, **connect_kwargs: Any
) -> AsyncIterator[tuple[Charger16, ClientConnection, FrameOracle]]:
    """A 1.6J charger connected to `url/station_id`, its receive loop running; every frame it
    receives checked against the 1.6 schemas."""
    oracle = FrameOracle("1.6")
    async with connect(
        f"{url}/{station_id}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        open_timeout=10,
        **connect_kwargs,
    ) as connection:
        charger = Charger16(station_id, Recording(connection, oracle))
        reader = asyncio.create_task(charger.start())
        try:
            yield charger, connection, oracle
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
