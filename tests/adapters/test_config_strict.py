"""Issue 18 items 4 and 6: relative paths count from the configuration file's folder; values have their
key's type (environment overrides, text by nature, are converted to it), and a key of another
protocol's stations is an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.config import ConfigError, Iec104Station, OcppStation, load_config
from adapters.mapping_files import shipped_table

runner = CliRunner()

HEAD = '[bridge]\nhealth = ""\n[csms]\nurl = "ws://127.0.0.1:9/ocpp"\n[south]\nlisten = "127.0.0.1:0"\n'


def _problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return caught.value.problems


def test_relative_paths_count_from_the_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    (etc / "tables").mkdir(parents=True)
    shutil.copy(str(shipped_table("gb-dc-charger")), etc / "tables" / "vendor.yaml")
    config = etc / "bridge.toml"
    config.write_text(
        HEAD.replace('health = ""', 'health = ""\nstore = "data/bridge.db"\ntrace_dir = "traces"')
        + '[[stations]]\nid = "GB1"\nprotocol = "iec104"\nhost = "127.0.0.1"\n'
        'mapping = "tables/vendor.yaml"\n'
        '[[stations]]\nid = "GB2"\nprotocol = "iec104"\nhost = "127.0.0.1"\nmapping = "gb-ac-charger"\n'
        '[[stations]]\nid = "CP16"\nprotocol = "ocpp1.6"\ndevice_model = "keys.yaml"\n'
    )
    work = tmp_path / "var"  # the container's working directory: the store volume
    work.mkdir()
    monkeypatch.chdir(work)
    loaded = load_config(
        config,
        {"OCPP_BRIDGE_SOUTH__CERT_FILE": "env.pem", "OCPP_BRIDGE_SOUTH__KEY_FILE": "key.pem"},
    )
    vendor, shipped, cp16 = loaded.stations
    assert isinstance(vendor, Iec104Station) and isinstance(shipped, Iec104Station)
    assert vendor.mapping == etc / "tables" / "vendor.yaml"
    assert shipped.mapping == Path("gb-ac-charger")  # a shipped table's name stays a name
    assert isinstance(cp16, OcppStation) and cp16.device_model == etc / "keys.yaml"
    assert loaded.bridge.store == str(etc / "data" / "bridge.db")
    assert loaded.bridge.trace_dir == str(etc / "traces")
    # an override is like a command's argument: from the working directory
    assert loaded.south.cert_file == Path("env.pem")


def test_a_missing_table_names_the_toml_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        HEAD + '[[stations]]\nid = "GB1"\nprotocol = "iec104"\nhost = "127.0.0.1"\n'
        'mapping = "tables/vendor.yaml"\n'
    )
    monkeypatch.chdir(tmp_path.parent)
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2
    assert result.output.startswith(f"{config}:11: stations: 'GB1': {tmp_path}/tables/vendor.yaml")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            "[bridge]\nshutdown_timeout = true",
            "bridge.shutdown_timeout: Input should be a valid number",
        ),
        ('[csms]\ncompression = "yes"', "csms.compression: Input should be a valid boolean"),
        (
            '[csms]\nsecurity_profile = "1"',
            "csms.security_profile: Input should be a valid integer",
        ),
        ("[south]\nlisten_backlog = 1.5", "south.listen_backlog: Input should be a valid integer"),
    ],
)
def test_loose_types_are_refused(tmp_path: Path, line: str, problem: str) -> None:
    section, key_line = line.split("\n")
    text = HEAD.replace(f"{section}\n", f"{section}\n{key_line}\n") if section in HEAD else line
    config = tmp_path / "bridge.toml"
    config.write_text(text + '[[stations]]\nid = "CP1"\nprotocol = "ocpp2.0.1"\n')
    found = _problems(config)
    assert len(found) == 1
    assert found[0].endswith(problem)
    assert found[0].startswith(f"{config}:")


def test_a_quoted_port_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        HEAD + '[[stations]]\nid = "GB1"\nprotocol = "iec104"\nhost = "10.0.0.1"\nport = "2404"\n'
        'mapping = "gb-dc-charger"\n'
    )
    assert _problems(config) == [f"{config}:11: stations[0].port: Input should be a valid integer"]


def test_environment_overrides_are_converted_to_the_keys_type(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        HEAD + '[[stations]]\nid = "GB-1"\nprotocol = "iec104"\nhost = "10.0.0.1"\n'
        'mapping = "gb-dc-charger"\n'
    )
    loaded = load_config(
        config,
        {
            "OCPP_BRIDGE_CSMS__COMPRESSION": "true",
            "OCPP_BRIDGE_CSMS__SECURITY_PROFILE": "0",
            "OCPP_BRIDGE_BRIDGE__SHUTDOWN_TIMEOUT": "2.5",
            "OCPP_BRIDGE_STATIONS__GB_1__PORT": "2405",
            "OCPP_BRIDGE_STATIONS__GB_1__TLS": "false",
        },
    )
    station = loaded.stations[0]
    assert isinstance(station, Iec104Station)
    assert (loaded.csms.compression, loaded.csms.security_profile) == (True, 0)
    assert loaded.bridge.shutdown_timeout == 2.5
    assert (station.port, station.tls) == (2405, False)
    assert _problems(config, {"OCPP_BRIDGE_CSMS__COMPRESSION": "yes"}) == [
        "environment OCPP_BRIDGE_CSMS__COMPRESSION: csms.compression: Input should be a valid boolean"
    ]


def test_a_key_of_another_protocols_stations_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        HEAD + '[[stations]]\nid = "CP1"\nprotocol = "ocpp2.0.1"\nid_token_type = "ISO14443"\n'
        '[[stations]]\nid = "CP2"\nprotocol = "ocpp1.6"\nhost = "10.0.0.1"\n'
    )
    assert _problems(config, {"OCPP_BRIDGE_STATIONS__CP1__OFFLINE_GRACE": "5"}) == [
        f"{config}:10: stations[0].id_token_type: applies to ocpp1.6 stations only (this one is"
        " ocpp2.0.1)",
        "environment OCPP_BRIDGE_STATIONS__CP1__OFFLINE_GRACE: stations[0].offline_grace: applies"
        " to ocpp1.6 stations only (this one is ocpp2.0.1)",
        f"{config}:14: stations[1].host: applies to iec104 stations only (this one is ocpp1.6)",
    ]
