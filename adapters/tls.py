"""TLS contexts for both faces, built once at start-up and shared by every connection.

Rules
- TLS 1.2 is the floor (OCPP 2.0.1 A00.FR.313/416); TLS compression is off (A00.FR.321).
- Toward the CSMS: security profiles 2 and 3 verify the CSMS certificate and its host name against
  `ca_file` (or the system store); profile 3 adds the bridge's client certificate. One `SSLContext` serves
  every station: a context per connection would cost memory and handshake caching.
- Toward chargers: wss:// when a certificate is configured; client certificates are requested when a CA is
  given and required when `require_client_cert` is set.
- IEC 104 (IEC 62351-3 style): TLS on `[south] iec104_listen` when `iec104_cert_file` is set, client
  certificates as for chargers; toward a dial-out charger with `tls = true`, its certificate and host
  name are verified.
- A missing or unreadable file is a start-up error naming the file and the reason.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from adapters.config import ConfigError, CsmsSection, Iec104Station, SouthSection


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    return context


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path, section: str) -> None:
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [f"{section}: cannot load certificate {cert} with key {key}: {exc}"]
        ) from None


def _load_ca(context: ssl.SSLContext, ca: Path, section: str) -> None:
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"{section}: cannot load CA file {ca}: {exc}"]) from None


def csms_client_context(csms: CsmsSection) -> ssl.SSLContext | None:
    """The context for wss:// toward the CSMS, or None for profiles 0 and 1."""
    if csms.security_profile < 2:
        return None
    context = _harden(ssl.create_default_context(ssl.Purpose.SERVER_AUTH))
    if csms.ca_file is not None:
        _load_ca(context, csms.ca_file, "csms.ca_file")
    if csms.security_profile == 3:
        assert csms.cert_file is not None and csms.key_file is not None
        _load_chain(context, csms.cert_file, csms.key_file, "csms.cert_file")
    return context


def south_server_context(south: SouthSection) -> ssl.SSLContext | None:
    """The context for wss:// toward chargers, or None for plain ws://."""
    if south.cert_file is None or south.key_file is None:
        return None
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    _load_chain(context, south.cert_file, south.key_file, "south.cert_file")
    if south.ca_file is not None:
        _load_ca(context, south.ca_file, "south.ca_file")
        context.verify_mode = ssl.CERT_REQUIRED if south.require_client_cert else ssl.CERT_OPTIONAL
    return context


def iec104_server_context(south: SouthSection) -> ssl.SSLContext | None:
    """TLS on `[south] iec104_listen` (IEC 62351-3 style), or None for plain TCP."""
    if south.iec104_cert_file is None or south.iec104_key_file is None:
        return None
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    _load_chain(context, south.iec104_cert_file, south.iec104_key_file, "south.iec104_cert_file")
    if south.iec104_ca_file is not None:
        _load_ca(context, south.iec104_ca_file, "south.iec104_ca_file")
        context.verify_mode = (
            ssl.CERT_REQUIRED if south.iec104_require_client_cert else ssl.CERT_OPTIONAL
        )
    return context


def iec104_client_context(station: Iec104Station) -> ssl.SSLContext | None:
    """TLS toward a dial-out 104 charger (`tls = true`), or None: the charger's certificate is
    verified against `ca_file` (or the system store) and its host name; `cert_file` is the
    bridge's certificate for chargers that ask for one."""
    if not station.tls:
        return None
    section = f"stations: {station.id!r}"
    context = _harden(ssl.create_default_context(ssl.Purpose.SERVER_AUTH))
    if station.ca_file is not None:
        _load_ca(context, station.ca_file, f"{section}: ca_file")
    if station.cert_file is not None and station.key_file is not None:
        _load_chain(context, station.cert_file, station.key_file, f"{section}: cert_file")
    return context
