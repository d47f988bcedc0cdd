"""Regressions for the bugs the fault-injection harness (tests/faults) found, without sockets.

- A diagnostic whose fields repeat one of the log line's own keys (`action`: every Problem of a 1.6
  conversion, e.g. a charger clock still in 1970) made `log_diagnostic` raise; the driver took that for a
  core failure, closed both links with 1011, and the persistent station stayed failed: every reconnect
  was dropped at once (found by: a StartTransaction with an unsynchronised clock, any fault after it).
- A `Report` between two `Persist` effects split one charger message's changes into two commits; a crash
  between them left a transaction in the ledger without its Started event (the resent StartTransaction
  was then "already handled") or burnt a seqNo of a StopTransaction (found by: the same log crash, which
  stopped the driver after the first commit, then the charger's resend).
- A failed core went on being fed (connection losses, timers) and never recovered; now it is never fed
  again and the translated station rebuilds it from the store for the next connection.
- A MeterValues resent after its .conf was lost became a second Updated event with the same sample
  (found by: charger link drops and bridge SIGKILLs between the commit and the .conf).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any, cast

from adapters.config import BridgeConfig, OcppStation
from adapters.device_model_file import load_config_table
from adapters.driver import CoreDriver
from adapters.ocpp.v16_station import ocpp16_host
from adapters.ops.logs import log_diagnostic
from adapters.schemas import OfficialSchemas
from adapters.store import Store
from bridge.effects import Effect, Persist, Report, Send, Side
from bridge.ocppj.rpc import Diagnostic
from bridge.stations.v16.core import Station16, Station16Settings

TABLE = load_config_table()
WALL = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class _Log:
    """A logger with structlog's calling convention (event first, keyword fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    info = error = warning

    def exception(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


class _Store:
    """Records every commit (a batch of Persist effects) and keeps the rows like adapters.store."""

    def __init__(self) -> None:
        self.batches: list[list[Persist]] = []
        self.tables: dict[str, dict[str, Any]] = {}

    def apply(self, station: str, changes: list[Persist]) -> None:
        self.batches.append(list(changes))
        for change in changes:
            rows = self.tables.setdefault(change.table, {})
            if change.value is None:
                rows.pop(change.key, None)
            else:
                rows[change.key] = json.loads(json.dumps(change.value))

    def submit(self, station: str, changes: list[Persist], done: Any) -> None:
        self.apply(station, changes)
        done(None)  # at once: the driver must also take an answer from within `submit`

    def load(self) -> dict[str, dict[str, Any]]:
        return {t: {k: rows[k] for k in sorted(rows)} for t, rows in self.tables.items() if rows}


class _Core:
    """A core that returns prepared effects, or raises."""

    def __init__(self) -> None:
        self.pending: list[Effect] = []
        self.inputs = 0

    def connection_made(self, side: Side, now: float, wall: float) -> None:
        self.inputs += 1

    def connection_lost(self, side: Side, now: float, wall: float) -> None:
        self.inputs += 1

    def receive(self, side: Side, data: str | bytes, now: float, wall: float) -> None:
        self.inputs += 1

    def handle_timer(self, now: float, wall: float) -> None:
        self.inputs += 1

    def next_deadline(self) -> float | None:
        return None

    def effects(self) -> list[Effect]:
        effects, self.pending = self.pending, []
        return effects


def test_a_diagnostic_whose_fields_repeat_the_lines_keys_is_still_logged() -> None:
    log = _Log()
    diagnostic = Diagnostic(
        "unsynchronised-clock",
        "'1970-01-01T00:00:00Z' is before 2010",
        action="StartTransaction",
        fields={
            "action": "StartTransaction",
            "message_id": "x",
            "detail": "d",
            "path": "timestamp",
        },
    )
    log_diagnostic(log, diagnostic)
    event, fields = log.lines[0]
    assert event == "unsynchronised-clock"
    assert fields["action"] == "StartTransaction"
    assert fields["field_message_id"] == "x" and fields["path"] == "timestamp"


async def test_reports_do_not_split_the_persist_batch_of_one_input() -> None:
    core, store = _Core(), _Store()
    logs = {side: _Log() for side in Side}
    driver = CoreDriver(core, logs, station_id="CP", store=store, persistent=True)  # type: ignore[arg-type]
    report = Report(Side.SOUTH, Diagnostic("unsynchronised-clock", "1970"))
    core.pending = [Persist("tx", "a", 1), report, Persist("outbox", "1", 2), report]
    driver.feed(lambda now, wall: None)
    assert [[p.key for p in batch] for batch in store.batches] == [["a", "1"]]
    assert len(logs[Side.SOUTH].lines) == 2


async def test_a_failed_core_is_never_fed_again() -> None:
    core, store = _Core(), _Store()
    logs = {side: _Log() for side in Side}
    driver = CoreDriver(core, logs, station_id="CP", store=store, persistent=True)  # type: ignore[arg-type]

    def boom(now: float, wall: float) -> None:
        raise RuntimeError("a core bug")

    driver.feed(boom)
    assert driver.failed
    assert [event for event, _ in logs[Side.SOUTH].lines] == ["core.failed"]
    driver.feed(lambda now, wall: core.receive(Side.SOUTH, "[]", now, wall))
    assert core.inputs == 0  # nothing reaches the failed core any more


# --- the 1.6 core ------------------------------------------------------------------------------------


def _station(schemas: OfficialSchemas, state: dict[str, dict[str, Any]]) -> Station16:
    counter = itertools.count(1)
    transactions = itertools.count(1)
    return Station16(
        "CP16",
        schemas,
        lambda: f"m{next(counter)}",
        lambda: f"tx-{next(transactions)}",
        state,
        now=0.0,
        wall=WALL,
        settings=Station16Settings(config_table=TABLE),
    )


def _call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, message_id, action, payload])


def _queued(store: _Store) -> list[dict[str, Any]]:
    return [row["payload"] for row in store.load().get("outbox", {}).values()]


START: dict[str, Any] = {
    "connectorId": 1,
    "idTag": "TAG1",
    "meterStart": 1000,
    "timestamp": "1970-01-01T00:00:07Z",  # a clock that never synchronised: reported, not forwarded
}
METER: dict[str, Any] = {
    "connectorId": 1,
    "transactionId": 1,
    "meterValue": [
        {
            "timestamp": "2026-01-01T00:00:10Z",
            "sampledValue": [{"value": "1500", "measurand": "Energy.Active.Import.Register"}],
        }
    ],
}


async def test_a_start_with_an_unsynchronised_clock_is_one_commit_with_its_started(
    schemas: OfficialSchemas,
) -> None:
    store = _Store()
    core = _station(schemas, {})
    logs = {side: _Log() for side in Side}
    driver = CoreDriver(core, logs, station_id="CP16", store=store, persistent=True)  # type: ignore[arg-type]
    driver.feed(lambda now, wall: core.connection_made(Side.SOUTH, now, wall))
    before = len(store.batches)
    driver.feed(
        lambda now, wall: core.receive(
            Side.SOUTH, _call("s1", "StartTransaction", START), now, wall
        )
    )
    assert not driver.failed
    batches = store.batches[before:]
    assert len(batches) == 1  # the ledger row and the Started event: one atomic commit
    assert {p.table for p in batches[0]} >= {"tx", "outbox"}
    assert [p["eventType"] for p in _queued(store)] == ["Started"]
    assert any(event == "unsynchronised-clock" for event, _ in logs[Side.SOUTH].lines)
    driver.stop()


def test_a_resent_meter_values_is_not_a_second_updated_event(schemas: OfficialSchemas) -> None:
    store = _Store()
    core = _station(schemas, {})
    core.connection_made(Side.SOUTH, 0.0, WALL)
    core.receive(Side.SOUTH, _call("s1", "StartTransaction", START), 1.0, WALL)
    core.receive(Side.SOUTH, _call("v1", "MeterValues", METER), 2.0, WALL)
    for effect in core.effects():
        if isinstance(effect, Persist):
            store.apply("CP16", [effect])
    # The .conf of v1 is lost (link drop, or the bridge is killed after the commit): the charger
    # resends it unchanged, to this core and to one rebuilt from the store.
    core.receive(Side.SOUTH, _call("v2", "MeterValues", METER), 3.0, WALL)
    effects = core.effects()
    assert not any(isinstance(e, Persist) and e.table == "outbox" for e in effects)
    assert [json.loads(e.frame)[:2] for e in effects if isinstance(e, Send)] == [[3, "v2"]]
    rebuilt = _station(schemas, store.load())
    rebuilt.connection_made(Side.SOUTH, 4.0, WALL)
    rebuilt.receive(Side.SOUTH, _call("v3", "MeterValues", METER), 5.0, WALL)
    assert not any(isinstance(e, Persist) and e.table == "outbox" for e in rebuilt.effects())
    assert [p["eventType"] for p in _queued(store)] == ["Started", "Updated"]
    # a new sample is still a new event
    newer = {
        **METER,
        "meterValue": [{**METER["meterValue"][0], "timestamp": "2026-01-01T00:01:10Z"}],
    }
    rebuilt.receive(Side.SOUTH, _call("v4", "MeterValues", newer), 6.0, WALL)
    queued = [e for e in rebuilt.effects() if isinstance(e, Persist) and e.table == "outbox"]
    assert [cast(dict[str, Any], e.value)["payload"]["seqNo"] for e in queued] == [2]


async def test_a_translated_station_rebuilds_a_failed_core_from_the_store(
    schemas: OfficialSchemas,
) -> None:
    config = BridgeConfig.model_validate(
        {
            "bridge": {"store": ":memory:", "health": ""},
            "csms": {"url": "ws://127.0.0.1:9/ocpp"},
            "stations": [{"id": "CP16", "protocol": "ocpp1.6"}],
        }
    )
    station = config.stations[0]
    assert isinstance(station, OcppStation)
    store = Store(":memory:")
    host = ocpp16_host(
        config,
        station,
        schemas=schemas,
        store=store,
        connector=None,  # type: ignore[arg-type]  # never connects in this test
        new_message_id=lambda: "m1",
        logs={side: _Log() for side in Side},
        table=TABLE,
    )
    store.apply("CP16", [Persist("meta", "boot16", {"chargePointVendor": "A"})])
    failed_core = host.core
    host.driver.failed = True
    host.revive()
    assert host.core is not failed_core and not host.driver.failed
    assert host.core._meta["boot16"] == {"chargePointVendor": "A"}  # loaded from the store
    host.revive()  # nothing to do for a healthy core
    await asyncio.sleep(0)
    host.driver.stop()
    store.close()
