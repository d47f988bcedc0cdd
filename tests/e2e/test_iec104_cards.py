"""A vendor-modified 104 charger as a table (mappings/example-dialin-card.yaml), end to end on loopback.

The charger is `WireCharger` of tests/e2e/test_iec104_dial_in.py (every byte spelled out there and
here, independent of the bridge's codecs), dialling in to `[south] iec104_listen` with a registration
frame first, then private ASDUs: card authorization requests (type 130), settlement records (132);
it reads the bridge's answers (131, 133). The CSMS is the `ocpp` package (`tests.peers.Csms`), which
checks every frame against the official 2.0.1 schemas. Test names carry the OCPP 2.0.1 use cases
(C01 Authorize, E02/E03 transactions, E06 stop by idToken) or the rule they check.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ocpp.v201 import call as call201

from adapters.runtime import Runtime
from tests.e2e.conftest import bridge_config, running_bridge
from tests.e2e.test_iec104_dial_in import (
    CHARGING,
    ENERGY,
    HOLSTERED,
    PLUG,
    WORK_STATUS,
    WireCharger,
    dial_in_config,
    listen_port,
    payloads,
    statuses,
)
from tests.peers import Csms, running_csms

STATION = "CARD-1"
SERIAL = b"SN20260001"
ACCEPTED, REFUSED = bytes.fromhex("aa550100"), bytes.fromhex("aa550101")
CARD_REQUEST, CARD_ANSWER, SETTLEMENT, SETTLEMENT_ACK = 130, 131, 132, 133
CARD_IOA, SETTLEMENT_IOA = 0x7001, 0x7101
GOOD_CARD, BLOCKED_CARD = "1234567890123456", "1111222233334444"
# 2026-12-07 10:00:00.000 and 10:30:00.000 in Asia/Shanghai (Monday): ms, minute, hour, day | weekday
# << 5, month, year
START_CP56 = bytes.fromhex("0000000a270c1a")
END_CP56 = bytes.fromhex("00001e0a270c1a")


def registration(serial: bytes) -> bytes:
    """AA 55, the serial's length, the serial, the sum of its bytes mod 256."""
    return bytes.fromhex("aa55") + bytes([len(serial)]) + serial + bytes([sum(serial) % 256])


def private(type_id: int, address: int, data: bytes, cot: int = 3) -> bytes:
    """One information object: type, VSQ 1, COT, originator 0, CA 1, IOA (3 bytes), data."""
    return bytes([type_id, 1, cot, 0, 1, 0]) + address.to_bytes(3, "little") + data


def bcd(digits: str) -> bytes:
    return bytes.fromhex(digits)  # packed BCD: two digits a byte, the first in the high nibble


def settlement_record() -> bytes:
    # meter 100,000 → 100,150 counts of 0.01 kWh (as the charger's counter); 12.34 yuan; reason 0
    numbers = struct.pack("<IIIB", 100_000, 100_150, 1_234, 0)
    return private(SETTLEMENT, SETTLEMENT_IOA, bcd(GOOD_CARD) + START_CP56 + END_CP56 + numbers)


class CardCharger(WireCharger):
    async def register(self, port: int, serial: bytes = SERIAL) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(registration(serial))
        answer = await asyncio.wait_for(reader.readexactly(4), 5)
        if answer == ACCEPTED:
            self.serve(reader, writer)
        else:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                async with asyncio.timeout(5):
                    assert await reader.read() == b""  # closed by the bridge
            writer.close()
        return answer

    def answers(self, type_id: int) -> list[bytes]:
        """The data of each private ASDU of `type_id` the bridge sent (after the IOA)."""
        return [a[9:] for a in self.received if a[0] == type_id]

    def swipe(self, card: str) -> None:
        self.send(private(CARD_REQUEST, CARD_IOA, bcd(card)))


@contextlib.asynccontextmanager
async def registered(runtime: Runtime) -> AsyncIterator[CardCharger]:
    charger = CardCharger()
    assert await charger.register(listen_port(runtime)) == ACCEPTED
    try:
        yield charger
    finally:
        await charger.close()


def card_config(csms: Csms) -> Any:
    station = {
        "id": STATION,
        "protocol": "iec104",
        "dial": "in",
        "registration_id": SERIAL.decode(),
        "connectors": 1,
        "mapping": "example-dialin-card",
    }
    return dial_in_config(csms, station)


def events(csms: Csms) -> list[dict[str, Any]]:
    return payloads(csms, "TransactionEvent", STATION)


async def test_c01_e02_e06_card_session_registration_authorize_stop_card_and_one_settled_ended() -> (
    None
):
    async with running_csms() as csms, running_bridge(card_config(csms)) as runtime:
        csms.token_status[BLOCKED_CARD] = "Blocked"
        async with registered(runtime) as charger:
            await csms.wait_for(lambda: "Available" in statuses(csms, STATION))

            # C01: a card the CSMS blocks, then one it accepts; answers 131 with result and balance 0
            charger.swipe(BLOCKED_CARD)
            await charger.wait_for(lambda: len(charger.answers(CARD_ANSWER)) == 1)
            assert charger.answers(CARD_ANSWER)[0] == bytes([2]) + struct.pack("<f", 0.0)
            charger.swipe(GOOD_CARD)
            await charger.wait_for(lambda: len(charger.answers(CARD_ANSWER)) == 2)
            assert charger.answers(CARD_ANSWER)[1] == bytes([0]) + struct.pack("<f", 0.0)
            authorized = [p["id_token"] for p in payloads(csms, "Authorize", STATION)]
            assert authorized == [
                {"id_token": BLOCKED_CARD, "type": "Local"},
                {"id_token": GOOD_CARD, "type": "Local"},
            ]

            # E02: the session the accepted card started carries its idToken
            charger.update(HOLSTERED, False)
            charger.update(PLUG, True)
            charger.update(CHARGING, True)
            charger.update(WORK_STATUS, 3.0)
            await csms.wait_for(lambda: len(events(csms)) >= 1)
            started = events(csms)[0]
            assert started["event_type"] == "Started"
            assert started["trigger_reason"] == "Authorized"
            assert started["id_token"] == {"id_token": GOOD_CARD, "type": "Local"}

            # E06: the same card again stops it; charging falls; the settlement record follows
            charger.swipe(GOOD_CARD)
            await charger.wait_for(lambda: len(charger.answers(CARD_ANSWER)) == 3)
            charger.counters[ENERGY] = 100_150  # what the bridge's counter interrogation reads
            charger.update(CHARGING, False)
            charger.update(WORK_STATUS, 4.0)
            await asyncio.sleep(0.3)
            assert [e["event_type"] for e in events(csms)] == ["Started"]  # Ended waits for it
            charger.send(settlement_record())
            # the link drops before the charger reads the acknowledgement
            await asyncio.sleep(0.05)
        async with registered(runtime) as again:
            await again.wait_for(lambda: again.of_type(100) != [])  # STARTDT con, then its GI
            again.send(settlement_record())  # sent again: acknowledged, never a second Ended
            await again.wait_for(lambda: again.answers(SETTLEMENT_ACK) == [b"\x00"])
            await csms.wait_for(lambda: len(events(csms)) >= 2)
            await asyncio.sleep(0.3)
        kinds = [e["event_type"] for e in events(csms)]
        assert kinds == ["Started", "Ended"]
        ended = events(csms)[1]
        assert ended["trigger_reason"] == "StopAuthorized"
        assert ended["id_token"] == {"id_token": GOOD_CARD, "type": "Local"}
        assert ended["transaction_info"]["stopped_reason"] == "Local"
        assert ended["timestamp"].startswith("2026-12-07T02:30:00")  # 10:30 Beijing time
        register = ended["meter_value"][0]["sampled_value"][0]
        assert (register["value"], register["context"]) == (1_001_500, "Transaction.End")
        settlement = ended["custom_data"]["settlement"]
        assert ended["custom_data"]["vendor_id"] == "ocpp-bridge"
        assert (settlement["amount"], settlement["meter_stop_wh"]) == (
            12.34,
            1_001_500,
        )  # snake: ocpp
        assert GOOD_CARD not in str(ended["custom_data"])  # the card is the idToken, not data
        assert (
            ended["transaction_info"]["transaction_id"]
            == started["transaction_info"]["transaction_id"]
        )
        assert csms.problems() == []


async def test_an_unknown_registration_is_refused_and_closed() -> None:
    async with running_csms() as csms, running_bridge(card_config(csms)) as runtime:
        charger = CardCharger()
        assert await charger.register(listen_port(runtime), b"SN99999999") == REFUSED
        assert runtime.metrics  # the refusal is counted
        text = runtime.metrics.exposition().decode()
        assert 'ocpp_bridge_iec104_refused_total{reason="unknown_registration"} 1.0' in text


async def test_a_malformed_private_asdu_is_dropped_with_a_reason_and_the_link_stays_up() -> None:
    async with running_csms() as csms, running_bridge(card_config(csms)) as runtime:
        async with registered(runtime) as charger:
            await csms.wait_for(lambda: "Available" in statuses(csms, STATION))
            charger.send(private(CARD_REQUEST, CARD_IOA, b"\x12\x34\x56"))  # 3 of 8 BCD bytes
            charger.send(private(CARD_REQUEST, CARD_IOA, bytes.fromhex("1234567890abcdef")))
            charger.send(private(CARD_REQUEST, 0x7FFF, bcd(GOOD_CARD)))  # no such IOA
            charger.swipe(GOOD_CARD)
            await charger.wait_for(lambda: len(charger.answers(CARD_ANSWER)) == 1)
            assert [p["id_token"]["id_token"] for p in payloads(csms, "Authorize", STATION)] == [
                GOOD_CARD
            ]
            assert not charger.closed.is_set()
        assert csms.problems() == []


async def test_c01_offline_policy_refuses_while_the_csms_is_unreachable() -> None:
    async with running_csms() as csms:
        config = card_config(csms)
    # the CSMS is gone: the table's `offline: refuse` answers (Unknown → 1)
    async with running_bridge(config) as runtime, registered(runtime) as charger:
        await charger.wait_for(lambda: charger.of_type(101) != [])  # its start-up is done
        charger.swipe(GOOD_CARD)
        await charger.wait_for(lambda: len(charger.answers(CARD_ANSWER)) == 1)
        assert charger.answers(CARD_ANSWER)[0][0] == 1


TARIFF_TABLE = """\
extends: example-dialin-card
private_asdus:
  tariff:
    type: 140
    direction: out
    cot: 6
    ioa: 0x7200
    fields:
      - {name: price, type: uint32, scale: 0.0001}
      - {name: service_fee, type: uint32, scale: 0.0001}
    meaning:
      kind: tariff
      component: TariffCtrlr
      variables: {EnergyPrice: price, ServiceFee: service_fee}
      confirmation: act_con
"""


async def test_b06_set_variables_on_the_tables_tariff_component_sends_its_asdu(
    tmp_path: Any,
) -> None:
    table = tmp_path / "tariff.yaml"
    table.write_text(TARIFF_TABLE)
    async with running_csms() as csms:
        config = card_config(csms)
        station = config.stations[0].model_copy(update={"mapping": table})
        config = config.model_copy(update={"stations": [station]})
        async with running_bridge(config) as runtime, registered(runtime) as charger:
            cp = (await csms.session(STATION)).charge_point
            await csms.wait_for(lambda: "Available" in statuses(csms, STATION))
            request = call201.SetVariables(
                set_variable_data=[
                    {
                        "component": {"name": "TariffCtrlr"},
                        "variable": {"name": "EnergyPrice"},
                        "attribute_value": "1.2345",
                    }
                ]
            )
            answer = asyncio.create_task(cp.call(request))
            await charger.wait_for(lambda: charger.of_type(140) != [])
            sent = charger.of_type(140)[0]
            # type 140, VSQ 1, COT 6, CA 1, IOA 0x7200, price 12,345 (0.0001 units), fee 0
            assert sent == bytes.fromhex("8c01060001") + bytes.fromhex("00007200") + struct.pack(
                "<II", 12_345, 0
            )
            charger.send(bytes([140, 1, 7, 0]) + sent[4:])  # its ACT_CON
            result = (await answer).set_variable_result[0]
            assert result["attribute_status"] == "Accepted"
            got = await cp.call(
                call201.GetVariables(
                    get_variable_data=[
                        {"component": {"name": "TariffCtrlr"}, "variable": {"name": "EnergyPrice"}}
                    ]
                )
            )
            assert got.get_variable_result[0]["attribute_value"] == "1.2345"
        assert csms.problems() == []


async def test_e02_a_restart_while_the_ended_waits_for_its_record_starts_the_next_session(
    tmp_path: Path,
) -> None:
    """The bridge saw charging fall, and stops while the Ended waits for the settlement record;
    when it is back, the charger's next session is charging (the general interrogation says so).
    That is a new transaction, and the record the charger sends then settles the first one."""
    station = {
        "id": STATION,
        "protocol": "iec104",
        "dial": "in",
        "registration_id": SERIAL.decode(),
        "connectors": 1,
        "mapping": "example-dialin-card",
    }
    async with running_csms() as csms:
        config = bridge_config(
            csms.url,
            [station],
            south={"iec104_listen": "127.0.0.1:0"},
            bridge={"health": "127.0.0.1:0", "store": str(tmp_path / "bridge.db")},
        )
        async with running_bridge(config) as runtime, registered(runtime) as charger:
            await csms.wait_for(lambda: "Available" in statuses(csms, STATION))
            charger.swipe(GOOD_CARD)
            await charger.wait_for(lambda: len(charger.answers(CARD_ANSWER)) == 1)
            charger.update(HOLSTERED, False)
            charger.update(PLUG, True)
            charger.update(CHARGING, True)
            charger.update(WORK_STATUS, 3.0)
            await csms.wait_for(lambda: len(events(csms)) >= 1)
            charger.counters[ENERGY] = 100_150
            charger.update(CHARGING, False)
            charger.update(WORK_STATUS, 4.0)
            await asyncio.sleep(0.5)  # the Ended waits for the record; the bridge stops
            assert [e["event_type"] for e in events(csms)] == ["Started"]
        async with running_bridge(config) as runtime:
            again = CardCharger()
            for address, value in ((HOLSTERED, False), (PLUG, True), (CHARGING, True)):
                again.points[address] = (again.points[address][0], value)
            again.points[WORK_STATUS] = (again.points[WORK_STATUS][0], 3.0)
            again.counters[ENERGY] = 100_160  # the next session charges already
            assert await again.register(listen_port(runtime)) == ACCEPTED
            try:
                await again.wait_for(lambda: again.of_type(100) != [])  # its GI
                await asyncio.sleep(0.3)
                again.send(settlement_record())  # the first session's record, late
                await again.wait_for(lambda: again.answers(SETTLEMENT_ACK) == [b"\x00"])
                await csms.wait_for(lambda: len(events(csms)) >= 3)
                await asyncio.sleep(0.3)
            finally:
                await again.close()
        found = [(e["event_type"], e["transaction_info"]["transaction_id"]) for e in events(csms)]
        first = found[0][1]
        assert found[:2] == [("Started", first), ("Ended", first)]
        assert found[2][0] == "Started" and found[2][1] != first
        assert len(found) == 3
        assert events(csms)[1]["custom_data"]["settlement"]["meter_stop_wh"] == 1_001_500
        assert csms.problems() == []
