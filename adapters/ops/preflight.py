"""Every start-up check `run` makes before it binds a port; `check` runs the same ones (issue 18 item 7).

Rules
- `preflight(config)` returns the stations' tables (loaded once, for `Runtime` to share) or raises
  `ConfigError` with one line per problem, each naming where (`bridge.toml:12`, the environment variable,
  or the section) and why. Nothing is bound, created or written: a store file that is not there yet is
  not created, only its folder is looked at.
- The checks: what this version can run and every station's table (`runtime.check_supported`); at least
  one station; every certificate, key and CA file loads (the TLS contexts `run` builds); the store's
  folder exists and is writable when a station keeps state (a PostgreSQL store: the server accepts a
  session and its schema is not newer than this bridge's; read only); every listening address's host resolves; the
  charger, IEC 104 and health addresses do not share a port; a proxy the environment names for the CSMS
  is an HTTP one (`adapters.ocpp.ws_direct` tunnels through HTTP proxies only, not SOCKS).
- What only binding can tell (a port in use, an address not on this machine) is left to `run`, which
  refuses it with one line and exit status 2 as well.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from pathlib import Path

from adapters.config import BridgeConfig, ConfigError, Iec104Station, split_host_port
from adapters.ocpp.ws_direct import proxy_for, proxy_problem
from adapters.runtime import StationTables, check_supported
from adapters.store_api import StoreError, is_postgresql
from adapters.store_open import probe
from adapters.tls import (
    csms_client_context,
    iec104_client_context,
    iec104_server_context,
    south_server_context,
)

_WILDCARDS = frozenset({"", "0.0.0.0", "::", "*"})


def preflight(config: BridgeConfig) -> StationTables:
    """Run every check that needs no port. Raises ConfigError."""
    problems: list[str] = []
    tables: StationTables | None = None
    try:
        tables = check_supported(config)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if not config.stations:
        problems.append(
            f"{config.where(('stations',))}: stations: none configured; add a [[stations]] table"
        )
    problems.extend(_tls_problems(config))
    problems.extend(_store_problems(config))
    problems.extend(_address_problems(config))
    problems.extend(_proxy_problems(config))
    if problems or tables is None:
        raise ConfigError(problems)
    return tables


def _tls_problems(config: BridgeConfig) -> list[str]:
    problems: list[str] = []
    builds: list[tuple[tuple[str | int, ...], Callable[[], object]]] = [
        (("csms",), lambda: csms_client_context(config.csms)),
        (("south",), lambda: south_server_context(config.south)),
        (("south",), lambda: iec104_server_context(config.south)),
    ]
    for index, station in enumerate(config.stations):
        if isinstance(station, Iec104Station):
            builds.append((("stations", index), functools.partial(iec104_client_context, station)))
    for loc, build in builds:
        try:
            build()
        except ConfigError as exc:
            for problem in exc.problems:
                named = problem.partition(": ")[0]  # "csms.ca_file: cannot load …" names its key
                key = tuple(named.split(".")) if "." in named and " " not in named else loc
                problems.append(f"{config.where(key)}: {problem}")
    return problems


def _proxy_problems(config: BridgeConfig) -> list[str]:
    """The proxy the environment names for the CSMS (`https_proxy`, ...) must be one the bridge can
    use: an HTTP proxy (CONNECT); a SOCKS proxy is refused here rather than at every attempt."""
    proxy = proxy_for(config.csms.url)
    problem = proxy_problem(proxy) if proxy is not None else None
    if problem is None:
        return []
    return [f"{config.where(('csms', 'url'))}: csms.url: {problem}"]


def needs_store(config: BridgeConfig) -> bool:
    """Whether a station keeps state (OCPP 2.0.1 pass-through keeps none)."""
    return any(station.protocol != "ocpp2.0.1" for station in config.stations)


def _store_problems(config: BridgeConfig) -> list[str]:
    store = config.bridge.store
    if not needs_store(config) or store == ":memory:":
        return []
    where = config.where(("bridge", "store"))
    if is_postgresql(store):
        try:
            probe(store)
        except StoreError as exc:
            return [f"{where}: bridge.store: {exc}"]
        return []
    path = Path(store)
    folder = path.parent
    if path.is_dir():
        return [f"{where}: bridge.store: {path} is a folder, not a file"]
    if not folder.is_dir():
        return [f"{where}: bridge.store: {path}: its folder {folder} does not exist"]
    if not os.access(folder, os.W_OK | os.X_OK):
        return [f"{where}: bridge.store: {path}: its folder {folder} is not writable"]
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return [f"{where}: bridge.store: {path} is not readable and writable"]
    return []


def _listening(config: BridgeConfig) -> list[tuple[tuple[str, str], str]]:
    """(key, address) of every address `run` listens on."""
    addresses = [(("south", "listen"), config.south.listen)]
    dials_in = any(
        isinstance(station, Iec104Station) and station.dial == "in" for station in config.stations
    )
    if config.south.iec104_listen and dials_in:
        addresses.append((("south", "iec104_listen"), config.south.iec104_listen))
    if config.bridge.health:
        addresses.append((("bridge", "health"), config.bridge.health))
    return addresses


def _address_problems(config: BridgeConfig) -> list[str]:
    problems: list[str] = []
    seen: list[tuple[tuple[str, str], str, int]] = []
    for key, address in _listening(config):
        where = f"{config.where(key)}: {'.'.join(key)}"
        host, port = split_host_port(address)
        try:
            socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except (socket.gaierror, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
            problems.append(f"{where}: host {host!r} does not resolve: {reason}")
            continue
        for other_key, other_host, other_port in seen:
            same_host = host == other_host or host in _WILDCARDS or other_host in _WILDCARDS
            if port != 0 and port == other_port and same_host:
                problems.append(
                    f"{where}: {address} is also [{other_key[0]}] {other_key[1]}; give each its"
                    " own port"
                )
        seen.append((key, host, port))
    return problems
