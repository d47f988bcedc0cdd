"""ocpp-bridge's I/O-free core.

Everything in this package is synchronous and deterministic: bytes, frames and events go in, effects come
out. It imports no asyncio, websockets, c104, sockets or files, and reads no clock and no random source:
time (`now`, monotonic seconds, and `wall`, seconds since the epoch, as arguments of every input) and
id generators are passed in (enforced by tests/core/test_purity.py).
The adapters in the `adapters` package own all I/O.

Grouped by concern: `ocppj/` (OCPP-J itself), `north/` (the 2.0.1 station the CSMS sees), `stations/` (one
package per station kind, each with its `core.py`), `effects.py` (what a core asks of its adapter),
`timestamps.py`. docs/architecture.md is the map: the layers, the walk of a frame, where a change goes.
"""

__version__ = "0.1.0"
