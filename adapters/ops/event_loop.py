"""The event loop the bridge runs on, chosen by `[bridge] event_loop`, and what is tuned before it runs.

Rules
- `auto` (the default) is uvloop when it can be imported, else the standard library's loop; `uvloop`
  insists on it (a configuration naming it where it is not installed is refused at start-up);
  `asyncio` is the standard library's loop.
- Why uvloop: measured with bench/ on loopback (2 cores, Python 3.11), the same bridge costs less CPU
  per relayed frame, and a TLS connection costs about 35 KiB of RSS instead of the standard loop's
  290 KiB, most of that a 256 KiB read buffer that asyncio's `SSLProtocol` allocates (and zero-fills)
  per connection.
- On the standard loop that read buffer is bounded to `TLS_READ_BUFFER` (32 KiB): a TLS record holds
  at most 16 KiB, so reads take a few more calls for a large frame and nothing else changes. It is a
  class attribute of asyncio's own `SSLProtocol` (`max_size`), set once for the process and only when
  it has that attribute.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
TLS_READ_BUFFER = 32 * 1024

T = TypeVar("T")


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def resolve(choice: EventLoopChoice) -> Literal["uvloop", "asyncio"]:
    """The loop `choice` means on this machine. Raises RuntimeError for uvloop where it is missing."""
    if choice == "asyncio":
        return "asyncio"
    if uvloop_available():
        return "uvloop"
    if choice == "uvloop":
        raise RuntimeError("bridge.event_loop: uvloop is not installed (pip install uvloop)")
    return "asyncio"


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory for `asyncio.Runner`; on the standard loop it also bounds the TLS read buffer."""
    if resolve(choice) == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    bound_tls_read_buffer()
    return asyncio.new_event_loop


def bound_tls_read_buffer(size: int = TLS_READ_BUFFER) -> None:
    from asyncio import sslproto

    protocol: Any = getattr(sslproto, "SSLProtocol", None)
    if protocol is not None and isinstance(getattr(protocol, "max_size", None), int):
        protocol.max_size = min(protocol.max_size, size)


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice) -> T:
    """`asyncio.run(main)` on the loop `choice` resolves to."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def loop_name() -> str:
    """What the running loop is, for the start-up log line."""
    loop = asyncio.get_running_loop()
    module = type(loop).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
