"""The configuration contract (docs/configuration.md): TOML, env overrides, errors with file:line: key."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.config import (
    BridgeSection,
    ConfigError,
    Iec104Station,
    OcppStation,
    SouthSection,
    load_config,
    split_host_port,
    station_env_var,
)

CONTRACT_EXAMPLE = """\
[bridge]
store = "bridge.db"                 # SQLite file
health = "127.0.0.1:8409"

[csms]
url = "ws://127.0.0.1:9000/ocpp"
security_profile = 0

[south]
listen = "127.0.0.1:9100"

[[stations]]
id = "CP16-1"
protocol = "ocpp1.6"

[[stations]]
id = "GB104-1"
protocol = "iec104"
host = "127.0.0.1"
port = 2404
common_address = 1
connectors = 2
mapping = "mappings/gb-dc-charger.yaml"
"""

PASSWORD = "0123456789abcdefXYZ"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return caught.value.problems


def test_the_contracts_example_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, CONTRACT_EXAMPLE), {})
    assert config.csms.url == "ws://127.0.0.1:9000/ocpp"
    assert config.south.listen == "127.0.0.1:9100"
    first, second = config.stations
    assert isinstance(first, OcppStation)
    assert first.protocol == "ocpp1.6"
    assert isinstance(second, Iec104Station)
    assert (second.port, second.connectors, second.mapping) == (
        2404,
        2,
        tmp_path / "mappings/gb-dc-charger.yaml",  # relative paths count from the file's folder
    )


def test_environment_overrides_sections_and_stations(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, CONTRACT_EXAMPLE),
        {
            "OCPP_BRIDGE_CSMS__URL": "ws://10.0.0.1:9000/x/",
            "OCPP_BRIDGE_CSMS__CALL_TIMEOUT": "12.5",
            "OCPP_BRIDGE_SOUTH__COMPRESSION": "true",
            "OCPP_BRIDGE_STATIONS__GB104_1__PORT": "2405",
            "OCPP_BRIDGE_STATIONS__CP16_1__PASSWORD": PASSWORD,
            "UNRELATED": "x",
        },
    )
    assert config.csms.url == "ws://10.0.0.1:9000/x"  # trailing slash dropped
    assert config.csms.call_timeout == 12.5
    assert config.south.compression is True  # the default is off
    assert config.stations[1].port == 2405  # type: ignore[union-attr]
    station = config.stations[0]
    assert isinstance(station, OcppStation)
    assert station.password is not None
    assert station.password.get_secret_value() == PASSWORD


def test_secrets_never_print(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, CONTRACT_EXAMPLE), {"OCPP_BRIDGE_STATIONS__CP16_1__PASSWORD": PASSWORD}
    )
    assert PASSWORD not in repr(config)
    assert PASSWORD not in str(config.model_dump())
    assert PASSWORD not in config.model_dump_json()


def test_secrets_in_the_file_are_refused_with_line_and_hint(tmp_path: Path) -> None:
    text = CONTRACT_EXAMPLE.replace('protocol = "ocpp1.6"', 'protocol = "ocpp1.6"\npassword = "p"')
    text = text.replace("security_profile = 0", 'security_profile = 0\npassword = "q"')
    found = problems(write(tmp_path, text))
    assert any(
        p.endswith(
            "bridge.toml:8: csms.password: secrets come from the environment only;"
            " set OCPP_BRIDGE_CSMS__PASSWORD"
        )
        for p in found
    ), found
    assert any(
        ":16: stations[0].password: secrets come from the environment only;"
        " set OCPP_BRIDGE_STATIONS__CP16_1__PASSWORD" in p
        for p in found
    ), found
    assert "p" not in [p.split()[-1] for p in found]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'url = "ws://127.0.0.1:9000/ocpp"',
            'url = "http://x"',
            ":6: csms.url: must be a ws:// or wss:// URL",
        ),
        (
            "security_profile = 0",
            "security_profile = 7",
            ":7: csms.security_profile: Input should be less than or equal to 3",
        ),
        (
            'listen = "127.0.0.1:9100"',
            'listen = "nowhere"',
            ":10: south.listen: 'nowhere' is not host:port",
        ),
        ("port = 2404", 'port = "abc"', ":20: stations[1].port: Input should be a valid integer"),
        ('host = "127.0.0.1"\n', "", ':16: stations[1]: a station with dial = "out" needs host'),
        (
            'protocol = "ocpp1.6"',
            'protocol = "ocpp9"',
            ":14: stations[0].protocol: must be one of 'ocpp1.6', 'ocpp2.0.1', 'iec104'",
        ),
        ("[south]", "[south]\nlisten_typo = 1", ":10: south.listen_typo: unknown key"),
        (
            'id = "CP16-1"',
            'id = "CP/16"',
            ":13: stations[0].id: must be 1 to 48 printable characters",
        ),
        ('id = "GB104-1"', 'id = "CP16-1"', "stations: id 'CP16-1' is used twice"),
    ],
)
def test_each_problem_names_file_line_key_and_reason(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in CONTRACT_EXAMPLE
    found = problems(write(tmp_path, CONTRACT_EXAMPLE.replace(old, new, 1)))
    assert any(expected in p and p.startswith(str(tmp_path)) for p in found), found


def test_environment_problems_name_the_variable(tmp_path: Path) -> None:
    found = problems(
        write(tmp_path, CONTRACT_EXAMPLE),
        {
            "OCPP_BRIDGE_CSMS__CALL_TIMEOUT": "soon",
            "OCPP_BRIDGE_STATIONS__NOPE__PORT": "1",
            "OCPP_BRIDGE_WHATEVER": "1",
        },
    )
    assert (
        "environment OCPP_BRIDGE_CSMS__CALL_TIMEOUT: csms.call_timeout: Input should be a valid number"
        in found
    )
    assert "environment OCPP_BRIDGE_STATIONS__NOPE__PORT: no station's id matches 'NOPE'" in found
    assert any(p.startswith("environment OCPP_BRIDGE_WHATEVER: not of the form") for p in found)


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "[csms\nurl = 1\n"))
    assert found.startswith(f"{tmp_path / 'bridge.toml'}: not valid TOML: ")
    assert "line 1" in found


def test_missing_file(tmp_path: Path) -> None:
    (found,) = problems(tmp_path / "absent.toml")
    assert found.startswith(f"{tmp_path / 'absent.toml'}: cannot read")


SECURE = """\
[csms]
url = "{url}"
security_profile = {profile}

[[stations]]
id = "CS-1"
protocol = "ocpp2.0.1"
"""


@pytest.mark.parametrize(
    ("url", "profile", "environ", "expected"),
    [
        ("ws://h/ocpp", 2, {}, "csms.url: security profile 2 needs wss://"),
        ("wss://h/ocpp", 1, {}, "csms.url: wss:// with security profile 1 (use profile 2 or 3)"),
        ("wss://h/ocpp", 3, {}, "csms: security profile 3 needs cert_file and key_file"),
        (
            "ws://h/ocpp",
            1,
            {},
            "stations: 'CS-1' needs a CSMS password for security profile 1: set"
            " OCPP_BRIDGE_STATIONS__CS_1__CSMS_PASSWORD or OCPP_BRIDGE_CSMS__PASSWORD",
        ),
        (
            "ws://h/ocpp",
            1,
            {"OCPP_BRIDGE_CSMS__PASSWORD": "short"},
            "stations: 'CS-1' CSMS password must be 16 to 40 characters (OCPP 2.0.1 A00.FR.205)",
        ),
    ],
)
def test_security_profile_cross_checks(
    tmp_path: Path, url: str, profile: int, environ: dict[str, str], expected: str
) -> None:
    found = problems(write(tmp_path, SECURE.format(url=url, profile=profile)), environ)
    assert any(p.endswith(expected) for p in found), found


def test_profile_1_with_a_shared_password(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, SECURE.format(url="ws://h/ocpp", profile=1)),
        {"OCPP_BRIDGE_CSMS__PASSWORD": PASSWORD},
    )
    password = config.csms_password_for("CS-1")
    assert password is not None and password.get_secret_value() == PASSWORD


def test_station_password_overrides_the_shared_one(tmp_path: Path) -> None:
    own = "s" * 20
    config = load_config(
        write(tmp_path, SECURE.format(url="ws://h/ocpp", profile=1)),
        {"OCPP_BRIDGE_CSMS__PASSWORD": PASSWORD, station_env_var("CS-1", "csms_password"): own},
    )
    password = config.csms_password_for("CS-1")
    assert password is not None and password.get_secret_value() == own


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_host_port(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["9100", "host:", ":9100", "h:70000", "a:b:1"])
def test_bad_host_port(text: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(text)


def test_an_unknown_station_has_no_password_entry(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, SECURE.format(url="ws://h/ocpp", profile=1)),
        {"OCPP_BRIDGE_CSMS__PASSWORD": PASSWORD},
    )
    with pytest.raises(KeyError):
        config.csms_password_for("CS-unknown")


# Default ports of what commonly runs beside a bridge: CSMSs' charger and API ports (CitrineOS
# 8080-8082 and 8443-8444, SteVe 8180 and 8443, the OCPP examples' 9000), Prometheus and its exporters
# (9090-9999, OpenTelemetry's exporter 9464), Grafana 3000, the bridge's own charger port 9100.
COMMON_PORTS = {80, 443, 3000, 8000, 8080, 8081, 8082, 8180, 8443, 8444, 8887, 9000, 9464}


def test_issue_16_the_default_health_port_collides_with_no_common_csms_or_monitoring_port() -> None:
    """Item 12: the bridge refused to start beside a CSMS whose charger port is 8081."""
    default = BridgeSection()
    port = int(default.health.rsplit(":", 1)[1])
    assert port not in COMMON_PORTS and not 9090 <= port <= 9999
    assert port != int(SouthSection.model_fields["listen"].default.rsplit(":", 1)[1])
