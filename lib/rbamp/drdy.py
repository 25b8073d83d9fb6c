"""The DRDY wake-up flag: set from a pin interrupt, awaited by a task.

MicroPython has ``asyncio.ThreadSafeFlag``, safe to set from a hard or soft IRQ. CPython has none;
``HostFlag`` does the same job for callbacks from another thread (e.g. a GPIO library).
"""

import asyncio


class HostFlag:
    def __init__(self):
        self._event = None
        self._loop = None
        self._pending = False

    def _bind(self):
        if self._event is None:
            self._event = asyncio.Event()
            self._loop = asyncio.get_event_loop()
            if self._pending:
                self._event.set()

    def set(self):
        if self._event is None:
            self._pending = True
            return
        try:
            running = asyncio.get_running_loop()  # pyright: ignore[reportAttributeAccessIssue]  # CPython's asyncio
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
        else:
            self._loop.call_soon_threadsafe(self._event.set)

    def clear(self):
        self._pending = False
        if self._event is not None:
            self._event.clear()

    async def wait(self):
        self._bind()
        await self._event.wait()
        self._event.clear()
        self._pending = False


def make_flag():
    flag_class = getattr(asyncio, "ThreadSafeFlag", None)
    return flag_class() if flag_class is not None else HostFlag()
