"""adapters.ops.malloc_policy: after a 256 KiB block (uvloop's TLS read buffer) is freed, the next one is
still mapped afresh, not carved from the heap.

Each case runs in a fresh interpreter: the allocator's state is per process.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from adapters.ops.malloc_policy import fix_mmap_threshold
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)

def mapped(pointer):  # glibc's chunk header: the size word before the block, bit 1 = IS_MMAPPED
    return bool(ctypes.c_size_t.from_address(pointer - ctypes.sizeof(ctypes.c_size_t)).value & 2)

fixed = fix_mmap_threshold() if sys.argv[1] == "fix" else None
first = libc.malloc(256 * 1024)
first_mapped = mapped(first)
libc.free(first)
second = libc.malloc(256 * 1024)
print(fixed, first_mapped, mapped(second))
libc.free(second)
"""

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or "glibc" not in platform.libc_ver(),
    reason="glibc only",
)


def _run(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_glibc_alone_serves_the_second_buffer_from_the_heap() -> None:
    # the behaviour the policy is for: freeing a mapped block raises glibc's threshold
    assert _run("default") == "None True False"


def test_with_the_threshold_fixed_every_buffer_is_mapped_afresh() -> None:
    assert _run("fix") == "True True True"
