"""The abuse suite (issue 17 item 7): each attack against the real bridge process while a healthy
control charger's transactions go on (heartbeat round trips within 1 s, every TransactionEvent at the
CSMS). Short versions run in `make test`; the long ones (≥ 1,000,000 frames per attack where the
attack is frames, with the bridge's RSS before and after in the printed report) with --run-slow.

`tests/abuse/rig.py` is the rig, `tests/abuse/attack.py` the attacker process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.abuse.rig import ATTACK, MAX_MESSAGE_SIZE, check_control, running_rig, under_attack


async def run(tmp_path: Path, kind: str, *args: str, timeout: float = 60.0) -> dict:
    async with running_rig(tmp_path) as rig:
        report, control, rss = await under_attack(rig, kind, *args, timeout=timeout)
        figures = {
            "heartbeats": control.heartbeats,
            "on_time": control.on_time,
            "events_sent": control.events_sent,
            "events_answered": control.events_answered,
        }
        print(json.dumps({"attack": kind, "args": args, **report, "rss": rss, "control": figures}))
        check_control(rig, control)
        assert report["health_after"] == 200
        assert rig.bridge.running
        if kind != "storm":  # the storm's handshakes to ATTACK carry nothing
            attack_session = rig.csms.sessions.get(ATTACK)
            assert attack_session is None or attack_session.charge_point.calls == []
        return {**report, "rss": rss}


def _flood(report: dict, count: int) -> None:
    assert report["answers"] == count
    assert report["codes"] == {"TypeConstraintViolation": count}


def _ping(report: dict, count: int) -> None:
    assert report["pongs"] == count


def _storm(report: dict, count: int) -> None:
    statuses = report["statuses"]
    assert statuses.get("404") == len(range(0, count, 3))
    assert statuses.get("tcp") == len(range(1, count, 3))
    assert statuses.get("101") == len(range(2, count, 3))


def _oversized(report: dict, count: int) -> None:
    assert report["close_codes"] == {"1009": count}


def _idle(report: dict, count: int) -> None:
    assert report["opened_at_probe"] == count
    assert report["probes"] == [200] * 20


SHORT = [
    ("flood", 5_000, _flood),
    ("ping", 20_000, _ping),
    ("storm", 300, _storm),
    ("oversized", 30, _oversized),
    ("idle", 300, _idle),
]


@pytest.mark.parametrize(("kind", "count", "check"), SHORT, ids=[s[0] for s in SHORT])
async def test_short(tmp_path: Path, kind: str, count: int, check) -> None:  # type: ignore[no-untyped-def]
    # The flood runs at full speed: a 256 KiB read holds ~1,700 frames, which the connection hands
    # over in turns of at most adapters.ocpp.ws_direct.FRAME_BUDGET, between other connections' callbacks.
    report = await run(tmp_path, kind, "--count", str(count), "--size", str(MAX_MESSAGE_SIZE))
    check(report, count)


async def test_short_a_charger_that_does_not_read_is_closed(tmp_path: Path) -> None:
    # paced like the short flood (5,000 frames a second); the long one runs at full speed
    report = await run(tmp_path, "nonreader", "--count", "100000", "--wait", "15", "--rate", "5000")
    assert report["closed"]


async def test_short_a_slow_reader_costs_bounded_memory(tmp_path: Path) -> None:
    report = await run(tmp_path, "slowreader", "--count", "25000", "--wait", "5", "--rate", "5000")
    assert report["rss"]["after_kib"] - report["rss"]["before_kib"] < 64 * 1024


# storm and oversized: a connection per attempt, 1,000,000 connections (on the shared 2-CPU machine:
# the storm ~1,300 a second, 12.5 minutes; oversized, each a pass-through session with its CSMS
# connection, ~240 a second: about 70 minutes)
LONG = [
    ("flood", 1_000_000, _flood),
    ("ping", 1_000_000, _ping),
    ("storm", 1_000_000, _storm),
    ("oversized", 1_000_000, _oversized),
    ("idle", 1_000, _idle),
]


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize(("kind", "count", "check"), LONG, ids=[s[0] for s in LONG])
async def test_long(tmp_path: Path, kind: str, count: int, check) -> None:  # type: ignore[no-untyped-def]
    report = await run(
        tmp_path, kind, "--count", str(count), "--size", str(MAX_MESSAGE_SIZE), "--wait", "600",
        "--hold", "5", timeout=7000,
    )  # fmt: skip
    check(report, count)
    assert report["rss"]["after_kib"] - report["rss"]["before_kib"] < 64 * 1024


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_long_a_charger_that_does_not_read_is_closed(tmp_path: Path) -> None:
    # full speed (--rate 0); the bridge closes the connection at its bound (~28,000 frames), the
    # charger comes back at once, until 1,000,000 frames were sent
    report = await run(
        tmp_path, "nonreader", "--count", "1000000", "--wait", "1200", "--rate", "0",
        "--reconnect", timeout=1500,
    )  # fmt: skip
    assert report["sent"] >= 1_000_000
    assert report["connections"] >= 2  # one connection is never sent all of them
    assert report["closes"] >= report["connections"] - 1  # each closed by the bridge (the last too
    # unless it had sent the rest before its bound)
    assert report["rss"]["after_kib"] - report["rss"]["before_kib"] < 64 * 1024


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_long_slow_reader(tmp_path: Path) -> None:
    # full speed; a reader of 4 KiB every 50 ms falls behind, is closed at the bound, comes back
    report = await run(
        tmp_path, "slowreader", "--count", "1000000", "--wait", "1200", "--rate", "0",
        "--reconnect", timeout=1500,
    )  # fmt: skip
    assert report["sent"] >= 1_000_000
    assert report["closes"] >= 1
    assert report["rss"]["after_kib"] - report["rss"]["before_kib"] < 64 * 1024
