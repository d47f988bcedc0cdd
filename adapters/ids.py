"""Message ids for the CALLs the bridge sends.

Rules
- Unique across connections and restarts for the same station (OCPP 2.0.1 part 4 §4.1.4): a random
  64-bit prefix drawn once per process, then a counter. At most 36 characters (16 + 1 + 19 digits).
- Cheaper than a UUID per message, and the counter makes ids sortable in a trace.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable


def message_id_source() -> Callable[[], str]:
    prefix = secrets.token_hex(8)
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"
