"""The installed ocpp-bridge's version (`ocpp-bridge --version`, `ocpp_bridge_build_info`).

Rules
- Read from the installed distribution's metadata (pyproject's `version`), never written twice; a tree
  that is not installed reports "unknown" rather than failing.
"""

from __future__ import annotations

import functools
import importlib.metadata


@functools.cache
def version() -> str:
    try:
        return importlib.metadata.version("ocpp-bridge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
