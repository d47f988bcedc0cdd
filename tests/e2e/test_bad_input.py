"""Bad input through the real bridge: the right CALLERROR, nothing forwarded, the connection stays usable.

The charger side is a raw WebSocket client (so it can send what no OCPP library would); the CSMS is the
`ocpp` package and must never see any of the broken frames.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from tests.e2e.conftest import bridge_config, raw_upgrade, running_bridge, south_url
from tests.peers import connected_charger, running_csms

STATION = "CS-BAD"

CASES = [
    # (frame as sent, expected [message id, errorCode])
    ('[2, "m1", "Heartbeat", {', ["m1", "FormatViolation"]),
    ("}{", ["-1", "RpcFrameworkError"]),  # issue 16 item 11: the id cannot be read
    ('[2, "m9", "BootNotification", null]', ["m9", "FormatViolation"]),  # as a string payload
    ('[2, "m10", "BootNotification", "boot"]', ["m10", "FormatViolation"]),
    ('[2, "m2", "MakeCoffee", {}]', ["m2", "NotImplemented"]),
    ('[2, "m3", "Heartbeat", {"surprise": true}]', ["m3", "ProtocolError"]),
    (
        '[2, "m4", "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": 5, "vendorName": "V"}}]',
        ["m4", "TypeConstraintViolation"],
    ),
    (
        '[2, "m5", "BootNotification", {"reason": "PowerUp"}]',
        ["m5", "OccurrenceConstraintViolation"],
    ),
    (
        '[2, "m6", "StatusNotification", {"timestamp": "noon", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}]',
        ["m6", "TypeConstraintViolation"],
    ),
    (
        '[2, "m7", "StatusNotification", {"timestamp": "2026-11-22T10:00:00Z", "connectorStatus": "Sleepy", "evseId": 1, "connectorId": 1}]',
        ["m7", "PropertyConstraintViolation"],
    ),
    ('[7, "m8", {}]', ["m8", "MessageTypeNotSupported"]),
    # issue 17: values keep their meaning. An integer field holds a 32-bit integer written as one;
    # identifiers hold no control character; a CALL only the CSMS sends is not the charger's
    *(
        (
            f'[2, "int{n}", "StatusNotification", {{"timestamp": "2026-11-22T10:00:00Z", '
            f'"connectorStatus": "Available", "evseId": {value}, "connectorId": 1}}]',
            [f"int{n}", "TypeConstraintViolation"],
        )
        for n, value in enumerate(
            ["1.0", "-0.0", "1e308", "1e2", "18446744073709551617", "2147483648", "-2147483649"]
        )
    ),
    (
        '[2, "nul", "Authorize", {"idToken": {"idToken": "AB\\u0000CD", "type": "ISO14443"}}]',
        ["nul", "TypeConstraintViolation"],
    ),
    (
        '[2, "esc", "BootNotification", {"reason": "PowerUp", "chargingStation": '
        '{"model": "M\\u001b[2J", "vendorName": "V"}}]',
        ["esc", "TypeConstraintViolation"],
    ),
    (
        '[2, "dir", "RequestStartTransaction", {"idToken": {"idToken": "T", "type": "Central"}, '
        '"remoteStartId": 1}]',
        ["dir", "NotSupported"],
    ),
    ('[2, 42, "Heartbeat", {}]', ["-1", "RpcFrameworkError"]),
    ('{"not": "an array"}', ["-1", "RpcFrameworkError"]),
]


async def test_each_bad_frame_gets_its_callerror_and_the_link_stays_up() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with (
            running_bridge(config) as bridge,
            connect(
                f"{south_url(bridge)}/{STATION}",
                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            ) as charger,
        ):
            session = await csms.session(STATION)
            for frame, (message_id, code) in CASES:
                await charger.send(frame)
                async with asyncio.timeout(5):
                    answer = json.loads(await charger.recv())
                assert answer[:3] == [4, message_id, code], frame
                assert len(answer) == 5
                assert isinstance(answer[3], str)
                assert isinstance(answer[4], dict)
            # still usable: a valid call goes through and is answered by the CSMS
            await charger.send('[2, "ok", "Heartbeat", {}]')
            async with asyncio.timeout(5):
                answer = json.loads(await charger.recv())
            assert answer[0:2] == [3, "ok"]
            assert session.charge_point.actions() == ["Heartbeat"]
        assert csms.problems() == []


async def test_bad_frames_from_the_csms_are_answered_and_never_reach_the_charger() -> None:
    """A raw CSMS sends broken CALLs to the station; the bridge answers them itself."""
    answers: list[list[object]] = []
    done = asyncio.Event()

    async def raw_csms(connection: ServerConnection) -> None:
        for frame in [
            '[2, "x1", "Reset", {"type": "Hard"}]',
            "[2, broken",
            '[2, "x3", "Nope", {}]',
            '[2, "x4", "Heartbeat", {}]',  # a charger's CALL (issue 17): never reaches the charger
            '[2, "x5", "Reset", {"type": "Immediate", "evseId": 1.0}]',
            '[2, "x6", "GetVariables", {"getVariableData": [{"component": {"name": "C\\u0007"}, '
            '"variable": {"name": "V"}}]}]',
        ]:
            await connection.send(frame)
            answers.append(json.loads(await connection.recv()))
        done.set()
        await connection.wait_closed()

    async with serve(raw_csms, "127.0.0.1", 0, subprotocols=["ocpp2.0.1"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        config = bridge_config(
            f"ws://127.0.0.1:{port}/ocpp", [{"id": STATION, "protocol": "ocpp2.0.1"}]
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (_, _, charger_oracle),
        ):
            async with asyncio.timeout(10):
                await done.wait()
    assert [a[:3] for a in answers] == [
        [4, "x1", "PropertyConstraintViolation"],
        [4, "-1", "RpcFrameworkError"],
        [4, "x3", "NotImplemented"],
        [4, "x4", "NotSupported"],
        [4, "x5", "TypeConstraintViolation"],
        [4, "x6", "TypeConstraintViolation"],
    ]
    assert charger_oracle.received == []


@pytest.mark.parametrize("size", [2 << 20])
async def test_an_oversized_frame_closes_only_that_charger(size: int) -> None:
    async with running_csms() as csms:
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp2.0.1"}, {"id": "CS-OTHER", "protocol": "ocpp2.0.1"}],
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), "CS-OTHER") as (other, _, _),
        ):
            async with connect(
                f"{south_url(bridge)}/{STATION}",
                subprotocols=["ocpp2.0.1"],
                max_size=None,  # type: ignore[list-item]
            ) as charger:
                await charger.send('[2, "big", "DataTransfer", {"vendorId": "' + "x" * size + '"}]')
                async with asyncio.timeout(10):
                    await charger.wait_closed()
                assert charger.close_code == 1009  # message too big
            from ocpp.v201 import call

            assert (await other.call(call.Heartbeat())).current_time


async def test_the_log_says_why_the_bridge_closed_a_charger_that_did_not_answer_the_close() -> None:
    # The charger (raw bytes, RFC 6455 §5.2, masked with a zero key) sends the head of a frame over
    # the size limit, reads the bridge's close frame and goes away without answering it. websockets
    # counts that as 1006 (abnormal closure); the log must say 1009, the bridge's own reason.
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        with capture_logs() as logs:
            async with running_bridge(config) as bridge:
                reader, writer = await raw_upgrade(bridge, STATION)
                async with asyncio.timeout(10):
                    writer.write(b"\x81\xff" + (1 << 62).to_bytes(8, "big") + b"\0\0\0\0")
                    first, second = await reader.readexactly(2)
                    assert first == 0x88  # a close frame, unmasked, FIN
                    body = await reader.readexactly(second & 0x7F)
                    assert int.from_bytes(body[:2], "big") == 1009
                    writer.close()  # no close frame back
                    while not [e for e in logs if e["event"] == "south.disconnected"]:
                        await asyncio.sleep(0.01)
    (ended,) = [e for e in logs if e["event"] == "south.disconnected"]
    assert ended["code"] == 1009
    assert ended[
        "reason"
    ]  # websockets' words for it, e.g. "frame with 4611686018427387904 bytes ..."


CASES_16 = [
    ('[2, "a1", "Authorize", {"idTag": "TAG\\u00e9"}]', ["a1", "TypeConstraintViolation"]),
    ('[2, "a2", "Authorize", {"idTag": "TAG\\u0000"}]', ["a2", "TypeConstraintViolation"]),
    ('[2, "a3", "RemoteStartTransaction", {"idTag": "TAG"}]', ["a3", "NotSupported"]),
    (
        '[2, "a4", "SecurityEventNotification", {"type": "T", "timestamp": "2026-11-22T10:00:00Z", '
        '"techInfo": "x", "seqNo": 1}]',
        ["a4", "FormationViolation"],  # not in the schema: additionalProperties
    ),
    (
        '[2, "a5", "StartTransaction", {"connectorId": 1.0, "idTag": "T", "meterStart": 0, '
        '"timestamp": "2026-11-22T10:00:00Z"}]',
        ["a5", "TypeConstraintViolation"],
    ),
]


async def test_a_16_charger_gets_the_16_callerrors_for_values_and_directions() -> None:
    station = "CP16-BAD"
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": station, "protocol": "ocpp1.6"}])
        async with (
            running_bridge(config) as bridge,
            connect(
                f"{south_url(bridge)}/{station}",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            ) as charger,
        ):
            for frame, (message_id, code) in CASES_16:
                await charger.send(frame)
                async with asyncio.timeout(5):
                    answer = json.loads(await charger.recv())
                assert answer[:3] == [4, message_id, code], frame
            await charger.send('[2, "ok", "Authorize", {"idTag": "TAG ~1"}]')  # printable ASCII
            async with asyncio.timeout(5):
                answer = json.loads(await charger.recv())
            assert answer[:2] == [3, "ok"]
        assert csms.problems() == []


async def test_a_binary_frame_is_refused_with_1003_and_not_answered() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with (
            running_bridge(config) as bridge,
            connect(
                f"{south_url(bridge)}/{STATION}",
                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            ) as charger,
        ):
            session = await csms.session(STATION)
            await charger.send(b'[2, "b1", "Heartbeat", {}]')
            async with asyncio.timeout(10):
                await charger.wait_closed()
            assert charger.close_code == 1003
            assert session.charge_point.actions() == []


@pytest.mark.parametrize(
    "request_line",
    [
        "GET /ocpp/CS-B\u00e4D HTTP/1.1".encode(),
        b"GET /ocpp/\xff\xfe HTTP/1.1",
        b"GET /ocpp/CS BAD HTTP/1.1",
    ],
)
async def test_a_request_path_websockets_cannot_read_gets_400(request_line: bytes) -> None:
    config = bridge_config("ws://127.0.0.1:9/ocpp", [{"id": STATION, "protocol": "ocpp2.0.1"}])
    async with running_bridge(config) as bridge:
        assert bridge.south_address is not None
        host, port = bridge.south_address
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                request_line + b"\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            async with asyncio.timeout(10):
                answer = await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
