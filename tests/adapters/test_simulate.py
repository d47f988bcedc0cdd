"""`ocpp-bridge simulate`: the simulated chargers against the real bridge (`Runtime`) and an `ocpp` CSMS.

The 104 simulator (`adapters.cli.outstation104.Outstation`) dials in to `[south] iec104_listen` with the
example vendor table's registration frame and card ASDUs, or listens for the bridge to dial it; the
scripted CLI runs a short session file and exits 0; `simulate ocpp1.6` and `ocpp2.0.1` run theirs
through the bridge's OCPP listener. Every server binds 127.0.0.1 port 0; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v201 import call as call201

from adapters.cli.outstation104 import Outstation
from adapters.cli.simulators import ScriptError, load_script
from adapters.config import Iec104Station
from adapters.iec104.station import load_table
from tests.e2e.conftest import bridge_config, running_bridge, south_url
from tests.e2e.test_iec104_dial_in import dial_in_config, listen_port, payloads, statuses
from tests.peers import Csms, running_csms

CARD_STATION, PLAIN_STATION = "SIM-CARD", "SIM-104"
SERIAL = "SIM0001"
CARD = "1234567890123456"


def card_station() -> dict[str, Any]:
    return {
        "id": CARD_STATION,
        "protocol": "iec104",
        "dial": "in",
        "registration_id": SERIAL,
        "connectors": 1,
        "mapping": "example-dialin-card",
    }


def table(mapping: str) -> Any:
    return load_table(
        Iec104Station.model_validate(
            {"id": "x", "protocol": "iec104", "dial": "in", "mapping": mapping}
        )
    )


@contextlib.asynccontextmanager
async def outstation(sim: Outstation) -> AsyncIterator[Outstation]:
    try:
        yield sim
    finally:
        await sim.stop()


def events(csms: Csms, station: str) -> list[dict[str, Any]]:
    return payloads(csms, "TransactionEvent", station)


async def wait_until(predicate: Any, within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_dial_in_registers_swipes_a_card_and_settles_one_session() -> None:
    async with running_csms() as csms, running_bridge(dial_in_config(csms, card_station())) as rt:
        sim = Outstation(table("example-dialin-card"), price=2.0)
        async with outstation(sim):
            await sim.dial_in("127.0.0.1", listen_port(rt))
            await sim.wait_ready()
            await csms.wait_for(lambda: "Available" in statuses(csms, CARD_STATION))
            await sim.plug_in(1)
            assert await sim.swipe(CARD) == "Accepted"
            await csms.wait_for(lambda: len(events(csms, CARD_STATION)) >= 1)
            await sim.deliver(1, 1_500, power_kw=60.0)
            assert await sim.swipe(CARD) == "Accepted"  # the same card stops the session
            await sim.wait_settled()
            await csms.wait_for(
                lambda: any(e["event_type"] == "Ended" for e in events(csms, CARD_STATION))
            )
            await sim.unplug(1)
            await csms.wait_for(lambda: statuses(csms, CARD_STATION)[-1] == "Available")
        kinds = [e["event_type"] for e in events(csms, CARD_STATION)]
        assert kinds.count("Started") == 1 and kinds.count("Ended") == 1
        started = next(e for e in events(csms, CARD_STATION) if e["event_type"] == "Started")
        ended = next(e for e in events(csms, CARD_STATION) if e["event_type"] == "Ended")
        token = {"id_token": CARD, "type": "Local"}
        assert started["id_token"] == token and ended["id_token"] == token
        assert ended["trigger_reason"] == "StopAuthorized"
        settlement = ended["custom_data"]["settlement"]
        assert settlement["meter_stop_wh"] - settlement["meter_start_wh"] == 1_500
        assert settlement["amount"] == 3.0  # 1.5 kWh at 2.0 a kWh
        assert [p["id_token"]["id_token"] for p in payloads(csms, "Authorize", CARD_STATION)] == [
            CARD,
            CARD,
        ]
        assert csms.problems() == []


async def test_listen_the_bridge_dials_it_and_the_csms_starts_and_stops_remotely() -> None:
    sim = Outstation(table("gb-dc-charger"), react_delay=0.05)
    async with outstation(sim), running_csms() as csms:
        host, port = await sim.listen("127.0.0.1", 0)
        station = {
            "id": PLAIN_STATION,
            "protocol": "iec104",
            "host": host,
            "port": port,
            "connectors": 1,
            "mapping": "gb-dc-charger",
        }
        async with running_bridge(bridge_config(csms.url, [station])):
            await sim.wait_ready()
            cp = (await csms.session(PLAIN_STATION)).charge_point
            await csms.wait_for(lambda: "Available" in statuses(csms, PLAIN_STATION))
            await sim.plug_in(1)
            await csms.wait_for(lambda: "Occupied" in statuses(csms, PLAIN_STATION))
            started = await cp.call(
                call201.RequestStartTransaction(
                    id_token={"id_token": "APP1", "type": "Central"}, remote_start_id=1, evse_id=1
                )
            )
            assert started.status == "Accepted"
            await csms.wait_for(lambda: len(events(csms, PLAIN_STATION)) >= 1)
            await wait_until(lambda: sim.connectors[1].charging)
            await sim.deliver(1, 2_000, power_kw=60.0)
            transaction = events(csms, PLAIN_STATION)[0]["transaction_info"]["transaction_id"]
            stopped = await cp.call(call201.RequestStopTransaction(transaction_id=transaction))
            assert stopped.status == "Accepted"
            await csms.wait_for(
                lambda: any(e["event_type"] == "Ended" for e in events(csms, PLAIN_STATION))
            )
            assert not sim.connectors[1].charging
        kinds = [e["event_type"] for e in events(csms, PLAIN_STATION)]
        assert kinds[0] == "Started" and kinds[-1] == "Ended" and kinds.count("Ended") == 1
        assert csms.problems() == []


# --- the command line ------------------------------------------------------------------------------

EXECUTABLE = str(Path(sys.executable).with_name("ocpp-bridge"))


async def run_cli(*args: str, within: float = 60.0) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        EXECUTABLE,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(within):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode()


CARD_SESSION = [
    {"plug": True},
    {"swipe": CARD},
    {"charge": 1},
    {"swipe": CARD},
    {"unplug": True},
]


async def test_simulate_iec104_scripted_dial_in_exits_0_after_a_card_session(
    tmp_path: Path,
) -> None:
    script = tmp_path / "session.jsonl"
    script.write_text("".join(json.dumps(step) + "\n" for step in CARD_SESSION))
    async with running_csms() as csms, running_bridge(dial_in_config(csms, card_station())) as rt:
        code, output = await run_cli(
            "simulate", "iec104", "--table", "example-dialin-card",
            "--dial-in", f"127.0.0.1:{listen_port(rt)}", "--serial", SERIAL,
            "--script", str(script), "--log-level", "debug",
        )  # fmt: skip
        assert code == 0, output
        assert "registered as SIM0001" in output
        assert "settlement acknowledged" in output
        assert "sim104.frame" in output  # every frame at debug
        await csms.wait_for(
            lambda: [e["event_type"] for e in events(csms, CARD_STATION)] == ["Started", "Ended"]
        )
        ended = events(csms, CARD_STATION)[1]
        assert ended["id_token"] == {"id_token": CARD, "type": "Local"}
        assert ended["custom_data"]["settlement"]["amount"] >= 0
        assert csms.problems() == []


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
async def test_simulate_ocpp_scripted_through_the_bridge(version: str, tmp_path: Path) -> None:
    script = tmp_path / "session.yaml"
    script.write_text(
        "# a card session\n- {plug: true}\n- {swipe: CARD7}\n- {charge: 1}\n"
        "- {swipe: CARD7}\n- {unplug: true}\n"
    )
    station = f"SIM-{version}"
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": station, "protocol": version}])
        async with running_bridge(config) as runtime:
            code, output = await run_cli(
                "simulate", version, "--url", south_url(runtime), "--id", station,
                "--script", str(script),
            )  # fmt: skip
            assert code == 0, output
            assert "script done" in output
            await csms.wait_for(
                lambda: [e["event_type"] for e in events(csms, station)][-1:] == ["Ended"]
            )
        kinds = [e["event_type"] for e in events(csms, station)]
        assert kinds[0] == "Started" and kinds.count("Ended") == 1
        ended = events(csms, station)[-1]
        register = next(
            s["value"]
            for m in ended["meter_value"]
            for s in m["sampled_value"]
            if s.get("measurand", "Energy.Active.Import.Register")
            == "Energy.Active.Import.Register"
        )
        assert register > 0  # a second at 22 kW
        assert events(csms, station)[0]["id_token"]["id_token"] == "CARD7"
        assert "BootNotification" in [a for s in csms.history for a in s.charge_point.actions()]
        assert csms.problems() == []


def test_scripts_are_json_lines_or_a_yaml_list_and_bad_steps_are_named(tmp_path: Path) -> None:
    lines = tmp_path / "a.jsonl"
    lines.write_text('{"plug": true}\n{"swipe": "12"}\n{"charge": 2, "connector": 2}\n')
    steps = load_script(lines)
    assert [(s.kind, s.value, s.connector) for s in steps] == [
        ("plug", True, 1),
        ("swipe", "12", 1),
        ("charge", 2, 2),
    ]
    listed = tmp_path / "b.yaml"
    listed.write_text("- {wait: 0.5}\n- {stop: true}\n- unplug: true\n")
    assert [s.kind for s in load_script(listed)] == ["wait", "stop", "unplug"]
    bad = tmp_path / "c.yaml"
    bad.write_text("- {plug: true}\n- {dance: 3}\n")
    with pytest.raises(ScriptError, match="step 2: one of plug, unplug"):
        load_script(bad)
    bad.write_text("- {charge: soon}\n")
    with pytest.raises(ScriptError, match="charge needs a number of seconds"):
        load_script(bad)


def test_python_m_iec104_sim_points_at_the_simulate_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "adapters.cli.c104_outstation"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "ocpp-bridge simulate iec104" in completed.stderr


def test_simulate_refuses_an_unknown_table_before_connecting() -> None:
    completed = subprocess.run(
        [EXECUTABLE, "simulate", "iec104", "--table", "no-such-table", "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "no shipped table of that name" in completed.stderr


def test_keys_on_a_terminal_plug_charge_stop_and_quit() -> None:
    """p, s, s, q on a pseudo-terminal: one help line, the live line tells each step, exit 0."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [EXECUTABLE, "simulate", "iec104", "--table", "gb-dc-charger", "--listen", "127.0.0.1:0"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    seen = b""

    def read_until(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while text not in seen:
            assert time.monotonic() < deadline, seen
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                seen += os.read(master, 4096)

    try:
        read_until(b"ready")
        assert b"keys: p plug/unplug  c swipe card  s start/stop charging  q quit" in seen
        for key, then in ((b"p", b"plugged in"), (b"s", b"1 charging"), (b"s", b"stopped")):
            os.write(master, key)
            read_until(then)
        os.write(master, b"q")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


async def test_an_unacknowledged_settlement_is_sent_again_after_the_reconnect() -> None:
    async with running_csms() as csms, running_bridge(dial_in_config(csms, card_station())) as rt:
        sim = Outstation(table("example-dialin-card"))
        async with outstation(sim):
            await sim.dial_in("127.0.0.1", listen_port(rt), retry=0.2)
            await sim.wait_ready()
            await csms.wait_for(lambda: "Available" in statuses(csms, CARD_STATION))
            await sim.plug_in(1)
            assert await sim.swipe(CARD) == "Accepted"
            await csms.wait_for(lambda: len(events(csms, CARD_STATION)) >= 1)
            await sim.deliver(1, 500, power_kw=60.0)
            assert sim._conn is not None
            connection = sim._conn
            await sim.set_charging(1, False)  # the record goes out ...
            connection.writer.close()  # ... and the link drops before its acknowledgement
            await sim.wait_settled()
            assert "settlement sent again (not acknowledged yet)" in sim.events
            await csms.wait_for(
                lambda: any(e["event_type"] == "Ended" for e in events(csms, CARD_STATION))
            )
            await asyncio.sleep(0.3)
        kinds = [e["event_type"] for e in events(csms, CARD_STATION)]
        assert kinds.count("Started") == 1 and kinds.count("Ended") == 1
        assert len(sim.acknowledged) == 1
        assert csms.problems() == []


async def test_a_listening_simulator_stops_without_a_traceback() -> None:
    """Found in the operator walk-through (issue 18): `simulate iec104 --listen` ending its script
    while the bridge was connected printed asyncio's "Exception in callback ... CancelledError"."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        sim = Outstation(table("gb-dc-charger"))
        host, port = await sim.listen("127.0.0.1", 0)
        _, writer = await asyncio.open_connection(host, port)
        await wait_until(lambda: sim._conn is not None)
        await sim.stop()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        await asyncio.sleep(0.1)  # the server's callbacks run
    finally:
        loop.set_exception_handler(None)
    assert reported == []
