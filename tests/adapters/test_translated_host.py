"""`TranslatedHost` with a kind of station it has never heard of (adapters/translated.py): the open effect
type reaches the kind's `handle` only once the state written before it is durable, the kind's charger
connection is served on the south side, and a failed core is rebuilt from the store before the kind's
next input, the kind told (`rebuilt`). The 1.6 and 104 kinds are exercised end to end in tests/e2e."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from adapters.config import BridgeConfig
from adapters.connection import MemoryConnection
from adapters.ocpp.north import CsmsConnector, Pacer
from adapters.store import Store
from adapters.store_api import StoreError
from adapters.translated import StationKind, TranslatedHost
from bridge.effects import CLOSE_TRY_AGAIN_LATER, Effect, KindEffect, Persist, Send, Side
from bridge.north.backoff import BackoffPolicy
from tests.adapters.test_ready_stations import closed_port

STATION = "K-1"


@dataclass(frozen=True, slots=True)
class Beep(KindEffect):
    """An effect only this kind has."""

    loud: bool


class BeepCore:
    """A core whose south side says `beep`: it records the beep (Persist), then asks for one (Beep),
    and answers `ok` to any other message."""

    def __init__(self, state: dict[str, dict[str, Any]]) -> None:
        self.state = state
        self.north = SimpleNamespace(outbox=[], identity=None, online=False)
        self.owned = SimpleNamespace(backoff=BackoffPolicy, password=None)
        self._effects: list[Effect] = []

    def connection_made(self, side: Side, now: float, wall: float) -> None:
        pass

    def receive(self, side: Side, data: str | bytes, now: float, wall: float) -> None:
        if data == "beep":
            self._effects += [Persist("beeps", "last", wall), Beep(loud=True)]
        else:
            self._effects.append(Send(side, "ok"))

    def connection_lost(self, side: Side, now: float, wall: float) -> None:
        pass

    def handle_timer(self, now: float, wall: float) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def fail(self, now: float, wall: float) -> None:
        raise RuntimeError("a bug in the core")


class BeepKind(StationKind[Any]):
    protocol = "beep"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.handled: list[tuple[KindEffect, dict[str, Any]]] = []  # (effect, what was durable)
        self.rebuilds = 0

    def build(self, state: dict[str, dict[str, Any]], now: float, wall: float) -> Any:
        return BeepCore(state)

    def handle(self, effect: KindEffect) -> None:
        self.handled.append((effect, self.store.load(STATION).get("beeps", {})))

    def rebuilt(self) -> None:
        self.rebuilds += 1


class _Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def _record(self, event: str, **fields: Any) -> None:
        self.events.append(event)

    info = warning = error = _record


def _host(store: Store) -> tuple[TranslatedHost[Any], BeepKind, dict[Side, _Log]]:
    config = BridgeConfig.model_validate(
        {"csms": {"url": f"ws://127.0.0.1:{closed_port()}/ocpp"}, "stations": []}
    )
    kind = BeepKind(store)
    logs = {side: _Log() for side in Side}
    host = TranslatedHost(
        STATION,
        kind,
        store=store,
        # the CSMS is unreachable: its link keeps trying (from the charger's connection on) meanwhile
        connector=CsmsConnector(config.csms, config.csms_password_for, None, Pacer(100, 100)),
        policy=BackoffPolicy(0.05, 0.05, 0),
        logs=logs,
    )
    return host, kind, logs


async def test_a_kind_s_own_effect_is_handed_to_its_kind_after_the_write_before_it() -> None:
    store = Store(":memory:")
    host, kind, logs = _host(store)
    try:
        await host.start()
        charger = MemoryConnection("beep")
        serving = asyncio.create_task(host.serve_south(charger))
        charger.deliver("hello")
        charger.deliver("beep")
        async with asyncio.timeout(5):
            while not kind.handled:
                await asyncio.sleep(0.01)
        assert charger.sent == ["ok"]
        [(effect, durable)] = kind.handled
        assert effect == Beep(loud=True)
        assert "last" in durable  # written before the kind was asked to beep
        assert host.served_here and not host.elsewhere

        failed = host.core
        host.driver.feed(failed.fail)  # a bug: the session ends (1011), the core is never fed again
        assert host.driver.failed
        host.revive()  # as a kind does before its own input
        assert host.core is not failed and kind.rebuilds == 1
        assert "last" in host.core.state["beeps"]  # rebuilt from the store
        assert "core.rebuilt" in logs[Side.SOUTH].events
        charger.end(1000, "bye")
        await serving
    finally:
        await host.stop()
        store.close()


class AwayStore(Store):
    """A store whose reads fail while `away` (PostgreSQL restarting, a partition)."""

    away = False

    def load(self, station_id: str) -> dict[str, dict[str, Any]]:
        if self.away:
            raise StoreError("postgresql://bridge@127.0.0.1/db: connection refused")
        return super().load(station_id)


async def test_a_failed_core_whose_store_cannot_be_read_waits_with_one_warning_not_a_traceback_each() -> (
    None
):
    """Before, every input of a 104 link (every few hundred milliseconds) logged
    `iec104.consumer_failed` with a traceback while the store was away."""
    store = AwayStore(":memory:")
    host, kind, logs = _host(store)
    try:
        await host.start()
        failed = host.core
        host.driver.feed(failed.fail)
        store.away = True
        assert [host.revive() for _ in range(50)] == [False] * 50
        assert host.core is failed and kind.rebuilds == 0
        assert logs[Side.SOUTH].events.count("core.revive_failed") == 1  # then one per 30 s
        charger = MemoryConnection("beep")
        await host.serve_south(charger)  # not served by the failed core: closed, try again later
        assert charger.close_code == CLOSE_TRY_AGAIN_LATER
        store.away = False
        assert host.revive()
        assert host.core is not failed and kind.rebuilds == 1
        assert logs[Side.SOUTH].events.count("core.rebuilt") == 1
    finally:
        await host.stop()
        store.close()
