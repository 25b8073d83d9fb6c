"""Lets the simulator's own bookkeeping run while the code under test holds ``micropython.heap_lock()``.

The simulator stands for hardware, which does not use the board's heap. Tests lock the heap around
driver calls to prove the driver allocates nothing; when such a call reaches the simulator and it
must do real work (commit windows, latch a period), the simulator unlocks for that work only and
locks again before returning to the driver.
"""

try:
    import micropython
except ImportError:
    micropython = None


def _locked():
    try:
        bytearray(1)
    except MemoryError:
        return True
    return False


def release():
    """Unlock the heap fully; return how many levels were unlocked (for ``restore``)."""
    if micropython is None:
        return 0
    levels = 0
    while _locked():
        micropython.heap_unlock()
        levels += 1
        if levels > 64:
            raise RuntimeError("heap stays locked")
    return levels


def restore(levels):
    for _ in range(levels):
        micropython.heap_lock()
