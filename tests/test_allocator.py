"""runtime.allocator: after retain_freed_memory, glibc serves a large array from the heap, not a fresh mapping."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Run in a child process: the setting is process-wide. hblks counts the chunks malloc has mmapped right now.
PROBE = """
import ctypes, numpy as np
from prestissimo.runtime.allocator import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def mapped_chunks_while_holding_24_mb():
    held = np.ones(6 << 20, np.float32)  # under the 32 MB cap some glibc versions set
    return libc.mallinfo2().hblks - baseline

baseline = libc.mallinfo2().hblks
before = mapped_chunks_while_holding_24_mb()
ok = retain_freed_memory()
baseline = libc.mallinfo2().hblks
print(before, mapped_chunks_while_holding_24_mb(), ok)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_large_arrays_come_from_the_heap_once_freed_memory_is_retained():
    try:
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    except subprocess.CalledProcessError as e:
        if "mallinfo2" in e.stderr:
            pytest.skip("glibc older than 2.33 has no mallinfo2")
        raise
    before, after, ok = out.split()
    assert ok == "True"
    assert int(before) == 1  # glibc's default: a 24 MB array is a mapping of its own
    assert int(after) == 0   # retained: it comes from the heap and stays there when freed


def test_it_reports_whether_it_could_change_anything():
    code = "from prestissimo.runtime.allocator import retain_freed_memory as r; print(r())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(platform.libc_ver()[0] == "glibc")
