"""The container's HEALTHCHECK: `python -m adapters.ops.healthcheck [CONFIG]` asks the configured `/health`.

Rules
- The address is `[bridge] health` of the configuration (default /etc/ocpp-bridge/bridge.toml) with its
  environment overrides, as `run` reads it: a health port other than 8409 is followed, never assumed.
  A wildcard host (0.0.0.0, ::) is asked on loopback.
- Exit 0 when /health answers 200 within 3 s; 1 otherwise, with one line on stderr saying why. With
  `health = ""` (the endpoint off) there is nothing to ask: exit 0, and the line says so.
- No third-party HTTP client: the slim image has no curl, and this runs every 30 s.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from adapters.config import ConfigError, load_config, split_host_port

DEFAULT_CONFIG = Path("/etc/ocpp-bridge/bridge.toml")
TIMEOUT = 3.0
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def health_url(address: str) -> str:
    host, port = split_host_port(address)
    host = _LOOPBACK.get(host, host)
    return f"http://[{host}]:{port}/health" if ":" in host else f"http://{host}:{port}/health"


def main(argv: list[str]) -> int:
    config_path = Path(argv[0]) if argv else DEFAULT_CONFIG
    try:
        config = load_config(config_path, os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"healthcheck: {exc.problems[0]}" + "\n")
        return 1
    if not config.bridge.health:
        sys.stderr.write("healthcheck: [bridge] health is off; nothing to ask" + "\n")
        return 0
    url = health_url(config.bridge.health)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
            status = answer.status
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"healthcheck: {url}: {exc}" + "\n")
        return 1
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
