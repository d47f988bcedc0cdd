"""Identity and security (OCPP 2.0.1 A00, part 4 §3): 404, 401, subprotocols, duplicates, TLS profiles.

Certificates are made by the test with trustme: a throw-away CA, a server certificate for 127.0.0.1 and
client certificates. Every server binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import pytest
import trustme
from ocpp.v201 import call
from structlog.testing import capture_logs
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.http11 import Request

from adapters.ops.logs import DIAGNOSTIC_BURST
from tests.adapters.test_health import parse_metrics, value
from tests.e2e.conftest import bridge_config, raw_upgrade, running_bridge, south_url
from tests.peers import connected_charger, running_csms

STATION = "CS-SEC"
PASSWORD = "correct-horse-battery-42"
BOOT = call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_unknown_station_gets_404() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with running_bridge(config) as bridge:
            with pytest.raises(InvalidStatus) as caught:
                await connect(f"{south_url(bridge)}/NOT-CONFIGURED", subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
            assert caught.value.response.status_code == 404
            assert csms.history == []


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no Authorization header"),
        (basic(STATION, "wrong-password-123456"), "wrong password"),
        (basic("SOMEONE-ELSE", PASSWORD), "user name is not the station id"),
        ({"Authorization": "Bearer x"}, "Authorization header is not readable Basic credentials"),
        ({"Authorization": "Basic !!!"}, "Authorization header is not readable Basic credentials"),
    ],
    ids=["missing", "wrong-password", "wrong-username", "not-basic", "bad-base64"],
)
async def test_bad_credentials_get_401_with_a_challenge(
    headers: dict[str, str], reason: str
) -> None:
    async with running_csms() as csms:
        config = bridge_config(
            csms.url, [{"id": STATION, "protocol": "ocpp2.0.1", "password": PASSWORD}]
        )
        async with running_bridge(config) as bridge:
            with capture_logs() as logs, pytest.raises(InvalidStatus) as caught:
                await connect(
                    f"{south_url(bridge)}/{STATION}",
                    subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                    additional_headers=headers,
                )
            assert caught.value.response.status_code == 401
            assert caught.value.response.headers["WWW-Authenticate"].startswith("Basic ")
            assert csms.history == []
    # the log line says which check failed (issue 18 item 11), never the password
    [line] = [e for e in logs if e["event"] == "south.unauthorized"]
    assert (line["reason"], line["station_id"]) == (reason, STATION)
    assert PASSWORD not in repr(line) and "wrong-password-123456" not in repr(line)


async def test_right_credentials_are_let_in() -> None:
    async with running_csms() as csms:
        config = bridge_config(
            csms.url, [{"id": STATION, "protocol": "ocpp2.0.1", "password": PASSWORD}]
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(
                south_url(bridge), STATION, additional_headers=basic(STATION, PASSWORD)
            ) as (charger, _, _),
        ):
            assert (await charger.call(BOOT)).status == "Accepted"


async def test_a_charger_offering_the_wrong_subprotocol_is_refused_at_the_handshake() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with (
            running_bridge(config) as bridge,
            connect(
                f"{south_url(bridge)}/{STATION}",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            ) as charger,
        ):
            # part 4 §3.2: the handshake completes without a subprotocol, then the server closes
            assert charger.subprotocol is None
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(5):
                    await charger.recv()
            assert charger.close_code == 1002
            assert csms.history == []


async def test_a_second_connection_replaces_the_first_by_default() -> None:
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (first, first_ws, _),
        ):
            await first.call(BOOT)
            async with connected_charger(south_url(bridge), STATION) as (second, _, _):
                await asyncio.wait_for(first_ws.wait_closed(), 10)
                assert first_ws.close_code == 1000
                assert (await second.call(call.Heartbeat())).current_time
                # the CSMS saw the old station connection end before the new one began
                assert len(csms.history) == 2
                assert csms.history[0].closed.is_set()


async def test_a_connection_overtaken_before_its_session_began_is_logged_with_its_reason() -> None:
    # The first charger never reads (raw socket): replacing it waits for its closing handshake. A
    # second connection waits for that; a third arrives meanwhile and wins. The second one ends
    # without a session, and its end is logged with the bridge's reason like any other.
    async with running_csms() as csms:
        config = bridge_config(csms.url, [{"id": STATION, "protocol": "ocpp2.0.1"}])
        with capture_logs() as logs:
            async with running_bridge(config) as bridge:
                _reader, writer = await raw_upgrade(bridge, STATION)
                async with asyncio.timeout(10):
                    while not [e for e in logs if e["event"] == "south.connected"]:
                        await asyncio.sleep(0.01)
                url = f"{south_url(bridge)}/{STATION}"
                async with connect(url, subprotocols=["ocpp2.0.1"]) as second:  # type: ignore[list-item]
                    async with asyncio.timeout(10):
                        while (
                            len([e for e in logs if e["event"] == "south.duplicate_connection"]) < 1
                        ):
                            await asyncio.sleep(0.01)
                    async with connected_charger(south_url(bridge), STATION) as (third, _, _):
                        await asyncio.wait_for(second.wait_closed(), 15)
                        assert second.close_code == 1000
                        assert (await third.call(call.Heartbeat())).current_time
                writer.close()
    ended = [e for e in logs if e["event"] == "south.disconnected"]
    overtaken = [e for e in ended if e.get("before_session")]
    assert [(e["code"], e["reason"]) for e in overtaken] == [(1000, "replaced by a new connection")]


async def test_a_second_connection_is_rejected_under_the_reject_policy() -> None:
    async with running_csms() as csms:
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp2.0.1"}],
            south={"duplicate_connection": "reject"},
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (first, _, _),
        ):
            await first.call(BOOT)
            with pytest.raises(InvalidStatus) as caught:
                await connect(f"{south_url(bridge)}/{STATION}", subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
            assert caught.value.response.status_code == 409
            assert (await first.call(call.Heartbeat())).current_time


# --- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, and a client certificate, written to files."""
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(organization_name="ocpp-bridge tests")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert(
        "bridge-client", common_name="bridge-client", organization_name="CPO test"
    )
    files = {
        "ca": folder / "ca.pem",
        "server_cert": folder / "server.pem",
        "server_key": folder / "server.key",
        "client_cert": folder / "client.pem",
        "client_key": folder / "client.key",
        "other_ca": folder / "other-ca.pem",
    }
    ca.cert_pem.write_to_path(files["ca"])
    server.cert_chain_pems[0].write_to_path(files["server_cert"])
    server.private_key_pem.write_to_path(files["server_key"])
    client.cert_chain_pems[0].write_to_path(files["client_cert"])
    client.private_key_pem.write_to_path(files["client_key"])
    trustme.CA().cert_pem.write_to_path(files["other_ca"])
    return files


def csms_tls(pki: dict[str, Path], *, require_client_cert: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server_cert"], pki["server_key"])
    if require_client_cert:
        context.load_verify_locations(pki["ca"])
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def expect_basic(password: str, seen: list[str]):
    def check(request: Request) -> int | None:
        header = request.headers.get("Authorization", "")
        seen.append(header)
        station = request.path.rsplit("/", 1)[-1]
        return None if header == basic(station, password)["Authorization"] else 401

    return check


async def test_security_profile_1_sends_basic_auth_to_the_csms() -> None:
    seen: list[str] = []
    async with running_csms(check_request=expect_basic(PASSWORD, seen)) as csms:
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp2.0.1", "csms_password": PASSWORD}],
            csms={"security_profile": 1},
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (charger, _, _),
        ):
            assert (await charger.call(BOOT)).status == "Accepted"
    assert seen == [basic(STATION, PASSWORD)["Authorization"]]


async def test_a_csms_refusing_the_password_turns_the_charger_away() -> None:
    seen: list[str] = []
    async with running_csms(check_request=expect_basic("another-password-0000", seen)) as csms:
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp2.0.1", "csms_password": PASSWORD}],
            csms={"security_profile": 1},
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (_, connection, _),
        ):
            async with asyncio.timeout(10):
                await connection.wait_closed()
            assert connection.close_code == 1013
            assert csms.history == []


async def test_security_profile_2_tls_and_basic_auth(pki: dict[str, Path]) -> None:
    seen: list[str] = []
    async with running_csms(
        ssl=csms_tls(pki, require_client_cert=False), check_request=expect_basic(PASSWORD, seen)
    ) as csms:
        assert csms.url.startswith("wss://")
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp2.0.1", "csms_password": PASSWORD}],
            csms={"security_profile": 2, "ca_file": str(pki["ca"])},
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (charger, _, _),
        ):
            assert (await charger.call(BOOT)).status == "Accepted"
            session = await csms.session(STATION)
            tls = session.connection.transport.get_extra_info("ssl_object")
            assert tls is not None
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert seen == [basic(STATION, PASSWORD)["Authorization"]]


async def test_security_profile_2_refuses_an_untrusted_csms_certificate(
    pki: dict[str, Path],
) -> None:
    async with running_csms(ssl=csms_tls(pki, require_client_cert=False)) as csms:
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp2.0.1", "csms_password": PASSWORD}],
            csms={"security_profile": 2, "ca_file": str(pki["other_ca"])},
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (_, connection, _),
        ):
            async with asyncio.timeout(10):
                await connection.wait_closed()
            assert connection.close_code == 1013
            assert csms.history == []


async def test_security_profile_3_mutual_tls(pki: dict[str, Path]) -> None:
    async with running_csms(ssl=csms_tls(pki, require_client_cert=True)) as csms:
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp2.0.1"}],
            csms={
                "security_profile": 3,
                "ca_file": str(pki["ca"]),
                "cert_file": str(pki["client_cert"]),
                "key_file": str(pki["client_key"]),
            },
        )
        async with (
            running_bridge(config) as bridge,
            connected_charger(south_url(bridge), STATION) as (charger, _, _),
        ):
            assert (await charger.call(BOOT)).status == "Accepted"
            session = await csms.session(STATION)
            peer = session.connection.transport.get_extra_info("peercert")
            subject = dict(item[0] for item in peer["subject"])
            assert subject["commonName"] == "bridge-client"
            assert "Authorization" not in session.headers


async def test_chargers_over_wss_with_required_client_certificates(pki: dict[str, Path]) -> None:
    async with running_csms() as csms:
        config = bridge_config(
            csms.url,
            [{"id": STATION, "protocol": "ocpp2.0.1"}],
            south={
                "cert_file": str(pki["server_cert"]),
                "key_file": str(pki["server_key"]),
                "ca_file": str(pki["ca"]),
                "require_client_cert": True,
            },
        )
        async with running_bridge(config) as bridge:
            url = south_url(bridge, "wss")
            with_cert = ssl.create_default_context(cafile=pki["ca"])
            with_cert.load_cert_chain(pki["client_cert"], pki["client_key"])
            async with connected_charger(url, STATION, ssl=with_cert) as (charger, _, _):
                assert (await charger.call(BOOT)).status == "Accepted"
            without_cert = ssl.create_default_context(cafile=pki["ca"])
            # TLS 1.3 reports a missing client certificate after the handshake: the server drops the
            # connection before any HTTP answer.
            with pytest.raises((ssl.SSLError, OSError, InvalidMessage)):
                async with connect(
                    f"{url}/{STATION}",
                    subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                    ssl=without_cert,
                    open_timeout=5,
                ) as anonymous:
                    await anonymous.recv()
            assert len(csms.history) == 1  # only the charger with a certificate got through


async def test_a_storm_of_refused_handshakes_is_counted_in_full_and_logged_within_bounds() -> None:
    """40 wrong passwords for one station and 40 made-up station ids: 401/404 every time, counted
    40 + 40 in ocpp_bridge_south_refused_total, but at most DIAGNOSTIC_BURST lines of each in the log
    (before, one line per attempt: a connection storm wrote the log full)."""
    async with running_csms() as csms:
        config = bridge_config(
            csms.url, [{"id": STATION, "protocol": "ocpp2.0.1", "password": PASSWORD}]
        )
        async with running_bridge(config) as bridge:
            with capture_logs() as logs:
                for n in range(40):
                    for path, headers, status in (
                        (STATION, basic(STATION, f"guess-{n}"), 401),
                        (f"MADE-UP-{n}", {}, 404),
                    ):
                        with pytest.raises(InvalidStatus) as caught:
                            await connect(
                                f"{south_url(bridge)}/{path}",
                                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                additional_headers=headers,
                            )
                        assert caught.value.response.status_code == status
            exposition = bridge.metrics.exposition().decode()
            assert csms.history == []
    samples = parse_metrics(exposition)
    assert value(samples, "ocpp_bridge_south_refused_total", reason="unauthorized") == 40
    assert value(samples, "ocpp_bridge_south_refused_total", reason="unknown_station") == 40
    unauthorized = [e for e in logs if e["event"] == "south.unauthorized"]
    unknown = [e for e in logs if e["event"] == "south.unknown_station"]
    assert len(unauthorized) == DIAGNOSTIC_BURST and len(unknown) == DIAGNOSTIC_BURST
    assert [e["path"] for e in unknown] == [f"/ocpp/MADE-UP-{n}" for n in range(DIAGNOSTIC_BURST)]
