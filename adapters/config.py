"""The configuration file (TOML) with `OCPP_BRIDGE_<SECTION>__<KEY>` environment overrides.

Rules
- `load_config(path, environ)` returns a validated `BridgeConfig` or raises `ConfigError`, whose lines each
  name the file (and line, where the key stands in the file) or the environment variable, the key and the
  reason: `bridge.toml:12: stations[0].port: Input should be a valid integer`.
- Every section and key is checked: an unknown key is an error, not silently ignored (typos in a config
  file are how outages start).
- Overrides: `OCPP_BRIDGE_CSMS__URL=...` sets `[csms] url`. Station keys are addressed by station id, upper
  case, every character outside A-Z and 0-9 written `_`: `OCPP_BRIDGE_STATIONS__CP16_1__CSMS_PASSWORD` sets
  `csms_password` of station "CP16-1". An override naming no known section, station or key is an error.
- Secrets (`password`, `csms_password` of a station; `[csms] password`, the default for every station) come
  from the environment only: one written in the file is refused. They are `SecretStr`, so they print as
  `**********` and are never logged.
- Types are strict (`strict=True`): `true` is no number of seconds, `"yes"` no boolean, `"2404"` no
  port. Environment overrides are text: they are converted to the key's type (`_env_value`), only there.
- Relative paths written in the file (`PATH_KEYS`) count from the file's folder; those of environment
  overrides, and the default store, from the working directory. A `mapping` without '/' or .yaml is a
  shipped table's name.
- A station key of another protocol's stations (`STATION_KEYS`: `host` on an OCPP station,
  `id_token_type` on a 2.0.1 one) is an error naming the protocols it applies to.
- `BridgeConfig.where(loc)` tells where a key was set (file and line, or the variable), for problems
  found after loading (tables, certificates, ports).
- Cross-checks run at start-up: profile and URL scheme agree (profiles 2 and 3 need wss://, 0 and 1 ws://),
  profiles 1 and 2 have a 16–40 character password for every station (OCPP 2.0.1 A00.FR.205), profile 3 has
  a client certificate and key, station ids are unique, TLS files come in pairs.
"""

from __future__ import annotations

import functools
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from adapters.ops.event_loop import uvloop_available
from adapters.store_api import is_postgresql, store_url_problem
from bridge.stations.v16.id_token import ID_TOKEN_TYPES

ENV_PREFIX = "OCPP_BRIDGE_"
SECRET_KEYS = frozenset({"password", "csms_password"})
PROTOCOLS = ("ocpp1.6", "ocpp2.0.1", "iec104")


class ConfigError(Exception):
    """The configuration cannot be used. `problems` has one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Section(BaseModel):
    # strict: `true` is no number of seconds, "yes" no boolean, "2404" no port (TOML has types);
    # environment overrides are text and converted to the key's type first (`_env_value`)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class BridgeSection(_Section):
    store: str = Field(
        "bridge.db",
        description="where transaction ids and queued messages of translated stations are kept"
        " (OCPP 2.0.1 pass-through keeps no state): a SQLite file, the default, bridge.db, in the"
        ' working directory (in the container: the store volume); ":memory:" in memory only; or a'
        " PostgreSQL database, postgresql://USER@HOST:PORT/DATABASE (several bridges may share"
        " it), its password in PGPASSWORD or a PGPASSFILE, TLS in libpq's URL parameters"
        " (?sslmode=verify-full&sslrootcert=...); docs/operating.md, PostgreSQL store",
    )
    leases: bool = Field(
        False,
        description="replicas: serve a station only while this bridge holds its lease in the"
        " PostgreSQL store, taken when its charger connects here (several bridges with the same"
        " stations behind one load balancer); dial-out IEC 104 stations are spread over the live"
        " bridges; docs/operating.md, Replicas: station leases",
    )
    lease_seconds: float = Field(
        15.0,
        gt=0,
        description="a lease not renewed for this long may be taken by another bridge; each bridge"
        " renews its leases every third of it",
    )
    health: str = Field(
        "127.0.0.1:8409",
        description='host:port for GET /health, /ready and /metrics (Prometheus); "" turns it'
        " off. No authentication: keep it on loopback unless a scraper outside must reach it",
    )
    status_page: bool = Field(
        False,
        description="serve a read-only status page of every station on the health address (GET /"
        " or /status, HTML; /status.json). Same exposure as /metrics: no authentication, idTokens"
        " masked, but station ids, states and transaction ids are shown; keep it on loopback",
    )
    log_format: Literal["json", "console"] = Field(
        "json", description="json (production) or console (humans)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="the least severe level logged"
    )
    outbox_max_bytes: int = Field(
        16 << 20,
        ge=1024,
        description="per station: bytes of queued messages kept for the CSMS before intermediate"
        " meter values are dropped (never Started or Ended)",
    )
    shutdown_timeout: float = Field(
        10.0, gt=0, description="seconds granted to close connections on SIGTERM"
    )
    trace_dir: str = Field(
        "",
        description="folder of per-station message traces, `<trace_dir>/<station id>.jsonl`, idTokens"
        ' masked (read one with `ocpp-bridge trace STATION`); "" turns tracing off',
    )
    trace_max_bytes: int = Field(
        10 << 20,
        ge=4096,
        description="a station's trace file is rotated (.1, .2, …) before it grows past this size",
    )
    trace_keep: int = Field(
        5, ge=0, description="rotated trace files kept per station besides the current one"
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto",
        description="the event loop: uvloop (less CPU per frame; a TLS connection costs about 35 KiB"
        " instead of about 290 KiB), asyncio (the standard library's, its TLS read buffer bounded to"
        " 32 KiB per connection), or auto: uvloop when it is installed",
    )

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "iec104_links_per_process" in data:
            raise ValueError(
                "iec104_links_per_process was removed: IEC 104 links run on the bridge's event"
                " loop now (no worker processes, no c104 in the bridge); delete the key"
            )
        return data

    @field_validator("store")
    @classmethod
    def _store_url(cls, store: str) -> str:
        problem = store_url_problem(store)
        if problem is not None:
            raise ValueError(problem)
        return store

    @field_validator("health")
    @classmethod
    def _health_address(cls, health: str) -> str:
        if health.strip():
            split_host_port(health)
        return health.strip()

    @field_validator("event_loop")
    @classmethod
    def _event_loop_installed(cls, choice: str) -> str:
        if choice == "uvloop" and not uvloop_available():
            raise ValueError("uvloop is not installed (pip install uvloop, or choose auto)")
        return choice


class CsmsSection(_Section):
    url: str = Field(description="each station connects to <url>/<station id>")
    security_profile: int = Field(
        0,
        ge=0,
        le=3,
        description="0 none (tests only), 1 basic auth, 2 TLS + basic auth, 3 mutual TLS",
    )
    password: SecretStr | None = Field(
        None, description="default basic-auth password for every station"
    )
    ca_file: Path | None = Field(
        None, strict=False, description="CA bundle that signs the CSMS certificate"
    )
    cert_file: Path | None = Field(
        None, strict=False, description="the bridge's client certificate (profile 3)"
    )
    key_file: Path | None = Field(
        None, strict=False, description="the client certificate's private key"
    )
    call_timeout: float = Field(
        30.0,
        gt=0,
        description="seconds to wait for the CSMS's answer before the call counts as late (a"
        " charger waiting for it is answered from what the bridge knows)",
    )
    late_answer_wait: float = Field(
        90.0,
        ge=0,
        description="seconds a late call stays outstanding after call_timeout: its late answer is"
        " its answer and nothing is resent on a live connection; then the connection is closed and"
        " what the CSMS did not confirm goes again on the next one. Pass-through: also how long a"
        " charger's late answer to the CSMS is waited for after [south] call_timeout (then the"
        " CSMS gets InternalError)",
    )
    strict_timestamps: bool = Field(
        False,
        description="refuse date-times without a UTC offset from the CSMS (as the schemas do); by"
        " default they are read as UTC, forwarded with Z and warned about once per connection",
    )
    connect_timeout: float = Field(10.0, gt=0, description="seconds for one connection attempt")
    ping_interval: float = Field(
        20.0, gt=0, description="seconds without a message or pong from the CSMS before a ping"
    )
    ping_timeout: float = Field(
        20.0,
        gt=0,
        description="seconds after that ping without a message or pong before the link counts as dead",
    )
    compression: bool = Field(
        False,
        description="offer permessage-deflate (RFC 7692) to the CSMS: less traffic on a metered link,"
        " more memory and CPU per station",
    )
    max_queued_frames: int = Field(
        1000,
        ge=1,
        description="per station: frames waiting for the CSMS to read them (beyond the socket's"
        " buffers) before its connection is dropped (1008) as not reading",
    )
    max_queued_bytes: int = Field(
        1 << 20,
        ge=4096,
        description="per station: memory those frames may take, bytes (one frame alone always fits)",
    )
    write_timeout: float = Field(
        60.0,
        gt=0,
        description="seconds one write may wait for the CSMS to read before its connection is"
        " dropped (1008) as not reading",
    )
    message_attempts: int = Field(
        3, ge=1, description="MessageAttemptsTransactionEvent: tries per queued message (E13)"
    )
    message_attempt_interval: float = Field(
        60.0,
        ge=0,
        description="MessageAttemptIntervalTransactionEvent: seconds × attempts between tries",
    )
    retry_backoff_wait_minimum: float = Field(3.0, ge=0, description="RetryBackOffWaitMinimum")
    retry_backoff_random_range: float = Field(10.0, ge=0, description="RetryBackOffRandomRange")
    retry_backoff_repeat_times: int = Field(5, ge=0, description="RetryBackOffRepeatTimes")
    connect_rate: float = Field(
        400.0,
        gt=0,
        description="connection attempts per second, all stations together (10,000 stations are"
        " back in 25 s after a restart; lower it for a CSMS that cannot take that many handshakes)",
    )
    connect_burst: int = Field(
        100, ge=1, description="attempts allowed at once after a quiet spell"
    )

    @field_validator("url")
    @classmethod
    def _ws_url(cls, url: str) -> str:
        if not re.match(r"^wss?://[^/\s]+", url):
            raise ValueError("must be a ws:// or wss:// URL")
        return url.rstrip("/")


class SouthSection(_Section):
    listen: str = Field("127.0.0.1:9100", description="host:port where chargers connect")
    cert_file: Path | None = Field(None, strict=False, description="server certificate for wss://")
    key_file: Path | None = Field(None, strict=False, description="its private key")
    ca_file: Path | None = Field(
        None, strict=False, description="CA that signs charger client certificates"
    )
    require_client_cert: bool = Field(
        False, description="refuse chargers without a valid certificate"
    )
    call_timeout: float = Field(30.0, gt=0, description="seconds to wait for a charger's answer")
    ping_interval: float = Field(
        20.0, gt=0, description="seconds without a message or pong from a charger before a ping"
    )
    ping_timeout: float = Field(
        20.0,
        gt=0,
        description="seconds after that ping without a message or pong before the link counts as dead",
    )
    compression: bool = Field(
        False,
        description="accept permessage-deflate (RFC 7692) from chargers: more memory and CPU per"
        " station",
    )
    max_message_size: int = Field(1 << 20, ge=1024, description="largest frame accepted, bytes")
    max_queued_frames: int = Field(
        1000,
        ge=1,
        description="per charger: frames waiting for it to read them (beyond the socket's buffers)"
        " before it is disconnected (1008) as not reading",
    )
    max_queued_bytes: int = Field(
        1 << 20,
        ge=4096,
        description="per charger: memory those frames may take, bytes (one frame alone always fits)",
    )
    write_timeout: float = Field(
        60.0,
        gt=0,
        description="seconds one write may wait for a charger to read before it is disconnected"
        " (1008) as not reading",
    )
    duplicate_connection: Literal["replace", "reject"] = Field(
        "replace",
        description="a second connection for a connected id: replace the old one, or reject (409)",
    )
    handshake_timeout: float = Field(
        15.0, gt=0, description="seconds a charger's handshake may wait for the CSMS connection"
    )
    listen_backlog: int = Field(
        4096,
        ge=1,
        description="connections the kernel queues before the bridge accepts them (capped by"
        " net.core.somaxconn): when the queue is full, a charger's connection attempt is dropped and"
        " retried by its TCP only after 1, 3, 7, 15 s..., which stretches a reconnect storm",
    )

    iec104_listen: str = Field(
        "",
        description="host:port where IEC 104 chargers that dial in connect (stations with dial ="
        ' "in"); "" turns it off',
    )
    iec104_cert_file: Path | None = Field(
        None,
        strict=False,
        description="server certificate: IEC 104 over TLS (IEC 62351-3 style) on iec104_listen",
    )
    iec104_key_file: Path | None = Field(None, strict=False, description="its private key")
    iec104_ca_file: Path | None = Field(
        None, strict=False, description="CA that signs the certificates of 104 chargers dialling in"
    )
    iec104_require_client_cert: bool = Field(
        False, description="refuse 104 chargers dialling in without a valid certificate"
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        split_host_port(listen)
        return listen

    @field_validator("iec104_listen")
    @classmethod
    def _iec104_host_port(cls, listen: str) -> str:
        if listen.strip():
            split_host_port(listen)
        return listen.strip()


class _StationBase(_Section):
    id: str = Field(description="identity toward the charger and toward the CSMS")
    csms_password: SecretStr | None = Field(
        None, description="bridge → CSMS basic-auth password (profiles 1 and 2)"
    )

    @field_validator("id")
    @classmethod
    def _station_id(cls, value: str) -> str:
        printable = all(c.isprintable() and c not in "/:" for c in value)
        if not (1 <= len(value) <= 48 and printable and value == value.strip()):
            raise ValueError(
                "must be 1 to 48 printable characters without '/', ':' or surrounding spaces"
            )
        return value


class OcppStation(_StationBase):
    protocol: Literal["ocpp1.6", "ocpp2.0.1"]
    password: SecretStr | None = Field(
        None, description="charger → bridge basic-auth password; none means no authentication"
    )
    id_token_type: str | None = Field(
        None,
        description="ocpp1.6: the 2.0.1 idToken type of every idTag (e.g. ISO14443); unset infers"
        " it per idTag (hex UIDs → ISO14443/ISO15693, eMAIDs → eMAID, else Central)",
    )
    timestamp_offset_minutes: int = Field(
        0,
        ge=-720,
        le=840,
        description="ocpp1.6: UTC offset assumed for charger timestamps that carry none",
    )
    offline_authorize: bool = Field(
        False,
        description="ocpp1.6: while the CSMS is unreachable, accept idTags the CSMS never"
        " answered for (known ones are answered from the bridge's cache)",
    )
    offline_grace: float = Field(
        30.0,
        ge=0,
        description="ocpp1.6: seconds a charger may be disconnected before its connectors are"
        " reported Unavailable",
    )
    device_model: Path | None = Field(
        None,
        strict=False,
        description="ocpp1.6: the 1.6 key ⇄ 2.0.1 variable table; unset uses the shipped"
        " mappings/ocpp16-config.yaml",
    )

    @field_validator("id_token_type")
    @classmethod
    def _token_type(cls, value: str | None) -> str | None:
        if value is not None and value not in ID_TOKEN_TYPES:
            raise ValueError(f"must be one of {', '.join(sorted(ID_TOKEN_TYPES))}")
        return value


class Iec104Station(_StationBase):
    protocol: Literal["iec104"]
    dial: Literal["out", "in"] = Field(
        "out",
        description='"out": the bridge dials host:port (the charger\'s 104 server); "in": the charger'
        " dials [south] iec104_listen and is recognised by its common address. The bridge is the"
        " controlling station either way",
    )
    host: str | None = Field(
        None, description="dial out: the charger's 104 server (name or address)"
    )
    port: int = Field(2404, ge=1, le=65535, description="dial out: its port")
    tls: bool = Field(False, description="dial out: IEC 104 over TLS (TLS 1.2 or later)")
    ca_file: Path | None = Field(
        None,
        strict=False,
        description="dial out with tls: CA that signs the charger's certificate (unset: system)",
    )
    cert_file: Path | None = Field(
        None,
        strict=False,
        description="dial out with tls: the bridge's client certificate, if the charger asks",
    )
    key_file: Path | None = Field(None, strict=False, description="its private key")
    common_address: int = Field(1, ge=1, le=65534)
    registration_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="the id the charger sends in its registration frame, where its table declares"
        " one: a dial-in charger is recognised by it; a dial-out charger must send it",
    )
    connectors: int = Field(1, ge=1, le=64)
    mapping: Path = Field(
        strict=False,
        description="the point table: a shipped table's name (gb-dc-charger, gb-ac-charger), found"
        " from any working directory, or a table file's path (a vendor table that extends one);"
        " mappings/<name>.yaml where no such file is means the shipped one",
    )

    @model_validator(mode="after")
    def _dial(self) -> Iec104Station:
        if self.dial == "out" and not self.host:
            raise ValueError('a station with dial = "out" needs host (the charger\'s 104 server)')
        if self.dial == "in" and self.host:
            raise ValueError('a station with dial = "in" has no host (the charger dials in)')
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError("ca_file and cert_file need tls = true")
        return self


StationConfig = Annotated[OcppStation | Iec104Station, Field(discriminator="protocol")]

# The keys of each protocol's stations: the OCPP 1.6 translation's own do nothing for a 2.0.1 station
# (passed through as it is), so they are refused there.
OCPP16_ONLY = frozenset(
    {
        "id_token_type",
        "timestamp_offset_minutes",
        "offline_authorize",
        "offline_grace",
        "device_model",
    }
)
STATION_KEYS: dict[str, frozenset[str]] = {
    "ocpp1.6": frozenset(OcppStation.model_fields),
    "ocpp2.0.1": frozenset(OcppStation.model_fields) - OCPP16_ONLY,
    "iec104": frozenset(Iec104Station.model_fields),
}
_STATION_MODELS: dict[str, type[BaseModel]] = {
    "ocpp1.6": OcppStation,
    "ocpp2.0.1": OcppStation,
    "iec104": Iec104Station,
}


class BridgeConfig(_Section):
    bridge: BridgeSection = BridgeSection()
    csms: CsmsSection
    south: SouthSection = SouthSection()
    stations: list[StationConfig] = Field(default_factory=list)
    # where each key came from (set by `load_config`), for problems found after loading
    _provenance: _Provenance | None = PrivateAttr(None)

    def where(self, loc: tuple[str | int, ...]) -> str:
        """Where the key at `loc` was set: `bridge.toml:12`, `environment OCPP_BRIDGE_…`, or the file
        (the nearest enclosing table's line) when it was not set at all."""
        if self._provenance is None:
            return "configuration"
        return self._provenance.where(loc)

    @model_validator(mode="after")
    def _consistent(self) -> BridgeConfig:
        problems: list[str] = []
        csms = self.csms
        secure_scheme = csms.url.startswith("wss://")
        if csms.security_profile >= 2 and not secure_scheme:
            problems.append(f"csms.url: security profile {csms.security_profile} needs wss://")
        if csms.security_profile <= 1 and secure_scheme:
            problems.append(
                f"csms.url: wss:// with security profile {csms.security_profile} (use profile 2 or 3)"
            )
        if csms.security_profile == 3 and (csms.cert_file is None or csms.key_file is None):
            problems.append("csms: security profile 3 needs cert_file and key_file")
        if (csms.cert_file is None) != (csms.key_file is None):
            problems.append("csms: cert_file and key_file go together")
        south = self.south
        if (south.cert_file is None) != (south.key_file is None):
            problems.append("south: cert_file and key_file go together")
        if south.require_client_cert and (south.ca_file is None or south.cert_file is None):
            problems.append("south: require_client_cert needs ca_file, cert_file and key_file")
        if (south.iec104_cert_file is None) != (south.iec104_key_file is None):
            problems.append("south: iec104_cert_file and iec104_key_file go together")
        if south.iec104_require_client_cert and south.iec104_ca_file is None:
            problems.append("south: iec104_require_client_cert needs iec104_ca_file")
        for station in self.stations:
            dials_in = isinstance(station, Iec104Station) and station.dial == "in"
            if dials_in and not south.iec104_listen:
                problems.append(
                    f'stations: {station.id!r} dials in (dial = "in"): set [south] iec104_listen'
                )
        if self.bridge.leases and not is_postgresql(self.bridge.store):
            problems.append(
                'bridge.leases: needs a PostgreSQL store (bridge.store = "postgresql://...")'
            )
        seen: set[str] = set()
        for station in self.stations:
            if station.id in seen:
                problems.append(f"stations: id {station.id!r} is used twice")
            seen.add(station.id)
            if csms.security_profile in (1, 2):
                password = station.csms_password or csms.password
                if password is None:
                    problems.append(
                        f"stations: {station.id!r} needs a CSMS password for security profile "
                        f"{csms.security_profile}: set {station_env_var(station.id, 'csms_password')}"
                        f" or {ENV_PREFIX}CSMS__PASSWORD"
                    )
                elif not 16 <= len(password.get_secret_value()) <= 40:
                    problems.append(
                        f"stations: {station.id!r} CSMS password must be 16 to 40 characters"
                        " (OCPP 2.0.1 A00.FR.205)"
                    )
        env_names: dict[str, str] = {}
        for station in self.stations:
            name = env_station_key(station.id)
            if name in env_names and env_names[name] != station.id:
                problems.append(
                    f"stations: ids {env_names[name]!r} and {station.id!r} share the environment"
                    f" name {name}"
                )
            env_names[name] = station.id
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def csms_password_for(self, station_id: str) -> SecretStr | None:
        """The station's CSMS password (its own, else the bridge-wide one). Raises KeyError."""
        return self._csms_passwords[station_id]

    @functools.cached_property
    def _csms_passwords(self) -> dict[str, SecretStr | None]:
        # by id, once: every CSMS connection asks, and a scan of the list per connection made a
        # 10k-station reconnect storm quadratic (a tenth of the bridge's CPU, bench/ storm_tls)
        return {
            station.id: station.csms_password or self.csms.password for station in self.stations
        }


_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "bridge": BridgeSection,
    "csms": CsmsSection,
    "south": SouthSection,
}


# --- helpers --------------------------------------------------------------------------------------


def split_host_port(value: str) -> tuple[str, int]:
    """'127.0.0.1:9100' or '[::1]:9100' → (host, port)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
    if not match:
        raise ValueError(f"{value!r} is not host:port")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def env_station_key(station_id: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", station_id.upper())


def station_env_var(station_id: str, key: str) -> str:
    return f"{ENV_PREFIX}STATIONS__{env_station_key(station_id)}__{key.upper()}"


@dataclass(frozen=True)
class _Origin:
    """Where a value came from, for error messages."""

    env_var: str | None = None


def load_config(path: Path, environ: Mapping[str, str]) -> BridgeConfig:
    """Read, override from the environment, and validate. Raises ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    locator = _KeyLocator(text)
    problems: list[str] = []
    problems.extend(_secrets_in_file(path, data, locator))
    _resolve_paths(data, path.absolute().parent)
    origins = _apply_environment(data, environ, problems)
    problems.extend(_foreign_keys(path, data, locator, origins))
    try:
        config = BridgeConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(path, exc, locator, origins))
    if problems:
        raise ConfigError(problems)
    config._provenance = _Provenance(path, locator, origins)
    return config


@dataclass(frozen=True)
class _Provenance:
    path: Path
    locator: _KeyLocator
    origins: dict[tuple[str | int, ...], _Origin]

    def where(self, loc: tuple[str | int, ...]) -> str:
        origin = self.origins.get(loc)
        if origin is not None and origin.env_var is not None:
            return f"environment {origin.env_var}"
        return _where(self.path, self.locator.line(loc))


# Keys holding a file or folder path, per section ("stations": every station's).
PATH_KEYS: dict[str, frozenset[str]] = {
    "bridge": frozenset({"store", "trace_dir"}),
    "csms": frozenset({"ca_file", "cert_file", "key_file"}),
    "south": frozenset(
        {
            "cert_file",
            "key_file",
            "ca_file",
            "iec104_cert_file",
            "iec104_key_file",
            "iec104_ca_file",
        }
    ),
    "stations": frozenset({"device_model", "mapping", "ca_file", "cert_file", "key_file"}),
}
_NOT_PATHS = frozenset({"", ":memory:"})


def _resolve_paths(data: dict[str, Any], folder: Path) -> None:
    """Relative paths written in the file count from the file's folder (the working directory of a
    container is the store volume, the tables sit beside bridge.toml). A `mapping` that is a shipped
    table's name (no '/', no .yaml) stays a name. Environment overrides are left as given: like a
    command's argument, they count from the working directory."""

    def resolve(table: Any, keys: frozenset[str]) -> None:
        if not isinstance(table, dict):
            return
        for key in keys & table.keys():
            value = table[key]
            if not isinstance(value, str) or value in _NOT_PATHS or Path(value).is_absolute():
                continue
            if is_postgresql(value):  # a URL, not a path
                continue
            if key == "mapping" and "/" not in value and not value.endswith((".yaml", ".yml")):
                continue
            table[key] = str(folder / value)

    for section in ("bridge", "csms", "south"):
        resolve(data.get(section), PATH_KEYS[section])
    stations = data.get("stations")
    if isinstance(stations, list):
        for station in stations:
            resolve(station, PATH_KEYS["stations"])


def _secrets_in_file(path: Path, data: dict[str, Any], locator: _KeyLocator) -> list[str]:
    """Refuse secrets written in the file, and drop them so the rest can still be checked."""
    problems = []
    csms = data.get("csms")
    if isinstance(csms, dict) and "password" in csms:
        del csms["password"]
        line = locator.line(("csms", "password"))
        problems.append(
            f"{_where(path, line)}: csms.password: secrets come from the environment only;"
            f" set {ENV_PREFIX}CSMS__PASSWORD"
        )
    stations = data.get("stations")
    if isinstance(stations, list):
        for index, station in enumerate(stations):
            if not isinstance(station, dict):
                continue
            for key in sorted(SECRET_KEYS & station.keys()):
                del station[key]
                line = locator.line(("stations", index, key))
                hint = (
                    station_env_var(str(station["id"]), key)
                    if isinstance(station.get("id"), str)
                    else f"{ENV_PREFIX}STATIONS__<ID>__{key.upper()}"
                )
                problems.append(
                    f"{_where(path, line)}: stations[{index}].{key}: secrets come from the"
                    f" environment only; set {hint}"
                )
    return problems


def _apply_environment(
    data: dict[str, Any], environ: Mapping[str, str], problems: list[str]
) -> dict[tuple[str | int, ...], _Origin]:
    origins: dict[tuple[str | int, ...], _Origin] = {}
    stations = data.get("stations")
    by_env_name: dict[str, int] = {}
    if isinstance(stations, list):
        for index, station in enumerate(stations):
            if isinstance(station, dict) and isinstance(station.get("id"), str):
                by_env_name[env_station_key(station["id"])] = index
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        value = environ[name]
        if len(parts) == 2 and parts[0] in ("BRIDGE", "CSMS", "SOUTH"):
            section, key = parts[0].lower(), parts[1].lower()
            target = data.setdefault(section, {})
            if not isinstance(target, dict):
                problems.append(f"environment {name}: [{section}] is not a table in the file")
                continue
            target[key] = _env_value(_SECTION_MODELS[section], key, value)
            origins[(section, key)] = _Origin(name)
        elif len(parts) == 3 and parts[0] == "STATIONS":
            found = by_env_name.get(parts[1])
            if found is None:
                problems.append(f"environment {name}: no station's id matches {parts[1]!r}")
                continue
            key = parts[2].lower()
            assert isinstance(stations, list)
            model = _STATION_MODELS.get(str(stations[found].get("protocol")))
            stations[found][key] = _env_value(model, key, value)
            origins[("stations", found, key)] = _Origin(name)
        else:
            problems.append(
                f"environment {name}: not of the form {ENV_PREFIX}<SECTION>__<KEY> or"
                f" {ENV_PREFIX}STATIONS__<ID>__<KEY>"
            )
    return origins


def _env_value(model: type[BaseModel] | None, key: str, value: str) -> Any:
    """An environment override's text as the key's type: true/false (or 1/0) for a boolean, a
    number's digits for a number. Text that does not convert stays text, for the key's own error."""
    field = model.model_fields.get(key) if model is not None else None
    if field is None:
        return value
    kinds = set(typing.get_args(field.annotation)) | {field.annotation}
    text = value.strip()
    if bool in kinds:
        return {"true": True, "false": False, "1": True, "0": False}.get(text.lower(), value)
    if int in kinds and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if float in kinds:
        try:
            return float(text)
        except ValueError:
            return value
    return value


def _foreign_keys(
    path: Path,
    data: dict[str, Any],
    locator: _KeyLocator,
    origins: dict[tuple[str | int, ...], _Origin],
) -> list[str]:
    """A station key that belongs to another protocol's stations is an error (it would do nothing);
    the key is dropped so the rest can still be checked."""
    problems: list[str] = []
    stations = data.get("stations")
    if not isinstance(stations, list):
        return problems
    for index, station in enumerate(stations):
        if not isinstance(station, dict) or station.get("protocol") not in PROTOCOLS:
            continue
        protocol = station["protocol"]
        own = STATION_KEYS[protocol]
        for key in sorted(set(station) - own):
            others = [p for p in PROTOCOLS if key in STATION_KEYS[p]]
            if not others:
                continue  # unknown to every kind: pydantic's "unknown key"
            del station[key]
            loc = ("stations", index, key)
            origin = origins.get(loc)
            where = (
                f"environment {origin.env_var}"
                if origin is not None and origin.env_var is not None
                else _where(path, locator.line(loc))
            )
            problems.append(
                f"{where}: stations[{index}].{key}: applies to {' and '.join(others)} stations"
                f" only (this one is {protocol})"
            )
    return problems


def _describe(
    path: Path,
    exc: ValidationError,
    locator: _KeyLocator,
    origins: dict[tuple[str | int, ...], _Origin],
) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        # Drop the discriminated union's tag from the location: stations.0.ocpp1.6.host → stations.0.host
        loc = tuple(part for part in error["loc"] if part not in PROTOCOLS)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "union_tag_invalid":
            loc = (*loc, "protocol")
            message = "must be one of " + ", ".join(repr(p) for p in PROTOCOLS)
        key = _dotted(loc)
        origin = origins.get(loc)
        if origin is not None and origin.env_var is not None:
            where = f"environment {origin.env_var}"
        else:
            where = _where(path, locator.line(loc))
        if key:
            problems.append(f"{where}: {key}: {message}")
            continue
        # Cross-checks of the whole file, one per line ("csms.url: needs wss://"),
        # located by the key each part names.
        for part in message.split("\n"):
            named, _, _ = part.partition(": ")
            named_loc = tuple(named.split("."))
            problems.append(f"{_where(path, locator.line(named_loc))}: {part.strip()}")
    return problems


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


class _KeyLocator:
    """Best-effort line numbers for keys of a TOML file (tomllib reports none)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str | int, ...], int] = {}
        table: tuple[str | int, ...] = ()
        counts: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                name = header.group(2)
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    table = (*name.split("."), counts[name])
                else:
                    table = tuple(name.split("."))
                self._lines.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                self._lines.setdefault((*table, key.group(1)), number)

    def line(self, loc: tuple[str | int, ...]) -> int | None:
        while loc:
            if loc in self._lines:
                return self._lines[loc]
            loc = loc[:-1]
        return None
