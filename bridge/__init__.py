"""ocpp-bridge's I/O-free core.

Everything in this package is synchronous and deterministic: bytes, frames and events go in, effects come
out. It imports no asyncio, websockets, c104, sockets or files, and reads no clock and no random source:
time (`now`, monotonic seconds, and `wall`, seconds since the epoch, as arguments of every input) and
id generators are passed in (enforced by tests/core/test_purity.py).
The adapters in the `adapters` package own all I/O.
"""

__version__ = "0.1.0"
