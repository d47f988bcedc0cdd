"""What `ocpp-bridge check` warns about: a configuration that is valid but open to anyone on the network.

Rules
- Pure: a function of the loaded configuration (no sockets, no name resolution). An address is loopback
  when it is `localhost` or an IP address in 127.0.0.0/8 or ::1; `0.0.0.0`, `::` and every host name
  are not (a name is not resolved: it may name any interface).
- `south.listen` on a non-loopback address with OCPP stations that have no password: anyone who can
  reach the port and knows (or guesses) a station's id can connect as that charger (and, issue 17, was
  able to freeze the bridge before its queues were bounded). Not warned when `require_client_cert`
  authenticates every charger by its certificate.
- `csms.security_profile = 0` toward a non-loopback CSMS: the bridge's traffic, idTokens and
  transactions included, travels unauthenticated and unencrypted.
- Warnings never make the configuration invalid: `check` prints each on stderr (`warning: ...`) and
  still exits 0.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from adapters.config import BridgeConfig, OcppStation, split_host_port

_SHOWN_IDS = 5  # station ids named in a warning; the rest are counted


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warnings(config: BridgeConfig) -> list[str]:
    """One line per exposure (see the module rules), empty when there is none."""
    warnings: list[str] = []
    south = config.south
    host, port = split_host_port(south.listen)
    if not is_loopback(host) and not south.require_client_cert:
        open_ids = [
            station.id
            for station in config.stations
            if isinstance(station, OcppStation) and station.password is None
        ]
        if open_ids:
            named = ", ".join(repr(i) for i in open_ids[:_SHOWN_IDS])
            more = len(open_ids) - _SHOWN_IDS
            named += f" and {more} more" if more > 0 else ""
            warnings.append(
                f"south.listen: {south.listen} is not a loopback address, and {len(open_ids)}"
                f" station(s) have no password ({named}): anyone who reaches port {port} and knows"
                " a station's id can connect as that charger. Set each one's password"
                " (OCPP_BRIDGE_STATIONS__<ID>__PASSWORD), require client certificates, or listen on"
                " loopback behind a proxy that authenticates"
            )
    csms_host = urlsplit(config.csms.url).hostname or ""
    if config.csms.security_profile == 0 and not is_loopback(csms_host):
        warnings.append(
            f"csms.security_profile: 0 toward {csms_host}, which is not a loopback address: the"
            " bridge connects without authentication or encryption (idTokens and transactions in"
            " clear text). Use profile 2 or 3 (wss://) toward a CSMS on another host"
        )
    return warnings
