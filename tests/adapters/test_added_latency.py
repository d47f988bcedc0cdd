"""`ocpp_bridge_added_latency_seconds` (issue 21): the driver times each input from a peer until the first
frame it produces for the other peer is handed over, with the wait for the store included, once per
input, and never for what the bridge answers itself or sends of its own accord."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from adapters.connection import MemoryConnection
from adapters.driver import CoreDriver
from adapters.ops.metrics import LATENCY_BUCKETS, BridgeMetrics
from bridge.effects import Effect, Persist, Send, Side


class _HeldStore:
    def __init__(self) -> None:
        self.answers: list[Any] = []

    def submit(self, station: str, changes: list[Persist], done: Any) -> None:
        self.answers.append(done)


class _Core:
    """Answers each frame with what `script` gives for it."""

    def __init__(self, script: Callable[[Side, str], list[Effect]]) -> None:
        self.script = script
        self.pending: list[Effect] = []

    def connection_made(self, side: Side, now: float, wall: float) -> None: ...

    def connection_lost(self, side: Side, now: float, wall: float) -> None: ...

    def receive(self, side: Side, data: str | bytes, now: float, wall: float) -> None:
        assert isinstance(data, str)
        self.pending.extend(self.script(side, data))

    def handle_timer(self, now: float, wall: float) -> None: ...

    def next_deadline(self) -> float | None:
        return None

    def effects(self) -> list[Effect]:
        effects, self.pending = self.pending, []
        return effects


class _Log:
    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: None


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _count(metrics: BridgeMetrics, direction: str, protocol: str = "ocpp2.0.1") -> float:
    value = metrics.registry.get_sample_value(
        "ocpp_bridge_added_latency_seconds_count", {"direction": direction, "protocol": protocol}
    )
    return 0.0 if value is None else value


def _sum(metrics: BridgeMetrics, direction: str, protocol: str = "ocpp2.0.1") -> float:
    value = metrics.registry.get_sample_value(
        "ocpp_bridge_added_latency_seconds_sum", {"direction": direction, "protocol": protocol}
    )
    return 0.0 if value is None else value


class _Rig:
    def __init__(
        self,
        script: Callable[[Side, str], list[Effect]],
        protocol: str = "ocpp2.0.1",
        on_effect: Callable[[Any], None] | None = None,
        write_high_water: int = 64 << 10,
    ) -> None:
        self.metrics = BridgeMetrics(protocols=[protocol])
        self.core = _Core(script)
        self.store = _HeldStore()
        # -1: nothing is written at once, every frame goes through the driver's queue and writer
        self.connections = {
            side: MemoryConnection(write_high_water=write_high_water) for side in Side
        }
        self.driver = CoreDriver(
            self.core,  # type: ignore[arg-type]
            {side: _Log() for side in Side},
            station_id="CP",
            store=self.store,  # type: ignore[arg-type]
            metrics=self.metrics,
            persistent=True,
            on_effect=on_effect,
            protocol=protocol,
        )
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> _Rig:
        for side, connection in self.connections.items():
            self.driver.attach(side, connection)  # type: ignore[arg-type]
        self.tasks = [asyncio.create_task(self.driver.serve(side)) for side in Side]
        await _settle()
        return self

    async def __aexit__(self, *_: object) -> None:
        for connection in self.connections.values():
            connection.end()
        await asyncio.gather(*self.tasks)
        self.driver.stop()

    def frame(self, side: Side, frame: str) -> None:
        self.connections[side].deliver(frame)


@pytest.mark.parametrize("write_high_water", [64 << 10, -1], ids=["written_at_once", "queued"])
async def test_a_forwarded_frame_is_timed_once_per_direction_and_the_buckets_add_up(
    write_high_water: int,
) -> None:
    def script(side: Side, frame: str) -> list[Effect]:
        other = Side.NORTH if side is Side.SOUTH else Side.SOUTH
        return [Send(other, frame)]

    async with _Rig(script, write_high_water=write_high_water) as rig:
        for n in range(3):
            rig.frame(Side.SOUTH, f"call{n}")
        rig.frame(Side.NORTH, "answer")
        await _settle()
        assert rig.connections[Side.NORTH].sent == ["call0", "call1", "call2"]
        assert rig.connections[Side.SOUTH].sent == ["answer"]
    assert _count(rig.metrics, "charger_to_csms") == 3
    assert _count(rig.metrics, "csms_to_charger") == 1
    labels = {"direction": "charger_to_csms", "protocol": "ocpp2.0.1"}
    inf = rig.metrics.registry.get_sample_value(
        "ocpp_bridge_added_latency_seconds_bucket", {**labels, "le": "+Inf"}
    )
    assert inf == 3
    cumulative = [
        rig.metrics.registry.get_sample_value(
            "ocpp_bridge_added_latency_seconds_bucket", {**labels, "le": repr(bound)}
        )
        for bound in LATENCY_BUCKETS
    ]
    assert cumulative == sorted(cumulative)  # type: ignore[type-var]
    assert 0 < _sum(rig.metrics, "charger_to_csms") < 1.0


async def test_one_frame_that_becomes_several_counts_once_and_one_answered_by_the_bridge_not() -> (
    None
):
    def script(side: Side, frame: str) -> list[Effect]:
        if frame == "split":  # a translated charger message that becomes two for the CSMS
            return [Send(Side.SOUTH, "ack"), Send(Side.NORTH, "first"), Send(Side.NORTH, "second")]
        return [Send(Side.SOUTH, "answered by the bridge")]  # nothing for the other peer

    async with _Rig(script, protocol="ocpp1.6") as rig:
        rig.frame(Side.SOUTH, "split")
        rig.frame(Side.SOUTH, "heartbeat")
        await _settle()
        assert rig.connections[Side.NORTH].sent == ["first", "second"]
    assert _count(rig.metrics, "charger_to_csms", "ocpp1.6") == 1
    assert _count(rig.metrics, "csms_to_charger", "ocpp1.6") == 0


async def test_the_wait_for_the_store_is_in_the_added_latency() -> None:
    def script(side: Side, frame: str) -> list[Effect]:
        return [Persist("tx", frame, {}), Send(Side.NORTH, frame)]

    async with _Rig(script, protocol="ocpp1.6", write_high_water=-1) as rig:
        rig.frame(Side.SOUTH, "started")
        rig.frame(Side.SOUTH, "updated")  # behind the first batch
        await asyncio.sleep(0.05)  # the disk is slow
        assert rig.connections[Side.NORTH].sent == []
        assert _count(rig.metrics, "charger_to_csms", "ocpp1.6") == 0
        rig.store.answers.pop(0)(None)
        await _settle()
        rig.store.answers.pop(0)(None)
        await _settle()
        assert rig.connections[Side.NORTH].sent == ["started", "updated"]
    assert _count(rig.metrics, "charger_to_csms", "ocpp1.6") == 2
    assert _sum(rig.metrics, "charger_to_csms", "ocpp1.6") >= 2 * 0.05


async def test_frames_the_bridge_sends_of_its_own_accord_are_not_timed() -> None:
    async with _Rig(lambda side, frame: []) as rig:
        rig.core.pending = [Send(Side.NORTH, "resend"), Send(Side.SOUTH, "heartbeat")]
        rig.driver.feed(lambda now, wall: None)  # a timer's input, not a peer's
        await _settle()
        assert rig.connections[Side.NORTH].sent == ["resend"]
    assert _count(rig.metrics, "charger_to_csms") == 0
    assert _count(rig.metrics, "csms_to_charger") == 0


async def test_iec104_link_events_and_commands_are_timed() -> None:
    commands: list[Any] = []

    def script(side: Side, frame: str) -> list[Effect]:
        return [Send(Side.NORTH, "result"), "command"]  # type: ignore[list-item]

    async with _Rig(script, protocol="iec104", on_effect=commands.append) as rig:
        rig.core.pending = [Send(Side.NORTH, "status")]
        rig.driver.feed(lambda now, wall: None, link_events=["point update"])
        rig.frame(Side.NORTH, "RequestStartTransaction")
        await _settle()
        assert rig.connections[Side.NORTH].sent == ["status", "result"]
    assert commands == ["command"]
    assert _count(rig.metrics, "charger_to_csms", "iec104") == 1
    assert _count(rig.metrics, "csms_to_charger", "iec104") == 1


async def test_the_series_exist_before_any_traffic() -> None:
    metrics = BridgeMetrics(protocols=["ocpp2.0.1", "iec104"])
    text = metrics.exposition().decode()
    for direction in ("charger_to_csms", "csms_to_charger"):
        for protocol in ("ocpp2.0.1", "iec104"):
            assert (
                f'ocpp_bridge_added_latency_seconds_count{{direction="{direction}",'
                f'protocol="{protocol}"}} 0.0' in text
            )
    assert 'protocol="ocpp1.6"' not in text
