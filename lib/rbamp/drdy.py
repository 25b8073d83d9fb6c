"""DRDY: the wake-up flag set from a pin interrupt and awaited by a task, and the line's watch.

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


class LoopFlag:
    """ThreadSafeFlag's behaviour over an ``asyncio.Event``, for MicroPython's unix port. Its
    ``select.poll`` (the POSIX variant, 1.25 and 1.29) moves its array of sockets when it grows
    past a multiple of 4 and then points a registered object that is not a socket (such as a
    ThreadSafeFlag) at garbage: the interpreter crashes once several sockets are polled at once
    (the web page's connections). The boards' poll has no such array. The unix port has no pin
    interrupts: DRDY comes from the simulator in the same thread, which an Event serves."""

    def __init__(self):
        self._event = asyncio.Event()

    def set(self):
        self._event.set()

    def clear(self):
        self._event.clear()

    async def wait(self):
        await self._event.wait()
        self._event.clear()


def make_flag():
    import sys

    flag_class = getattr(asyncio, "ThreadSafeFlag", None)
    if flag_class is None:
        return HostFlag()
    if sys.platform == "linux":  # MicroPython's unix port (see LoopFlag)
        return LoopFlag()
    return flag_class()


class DrdyWatch:
    """The module's DRDY line: the pin interrupt counts the edge, notes its time and sets the flag
    (no bus access in the handler); a task waits for it with a timeout."""

    def __init__(self, clock, window_ms):
        self.clock = clock
        self.window_ms = window_ms
        self.pin = None
        self.flag = None
        self.edges = 0
        self.edge_ms = 0
        self._seen = 0
        self._handler = self._on_edge  # bound once: the IRQ must not allocate
        self._check = self.pending

    @property
    def attached(self):
        return self.flag is not None

    @property
    def held_low(self):
        """DRDY reads low: an event in EVENT_MASK holds it (no edges come; not a lost module)."""
        return self.pin is not None and self.pin.value() == 0

    def attach(self, pin, trigger=None):
        self.flag = make_flag()
        self.pin = pin
        trig = trigger if trigger is not None else getattr(pin, "IRQ_FALLING", 2)
        try:
            pin.irq(handler=self._handler, trigger=trig, hard=True)
        except TypeError:
            # ESP32's Pin.irq has no hard= argument (its handlers are always scheduled)
            pin.irq(handler=self._handler, trigger=trig)

    def detach(self):
        if self.pin is not None:
            self.pin.irq(handler=None)

    def _on_edge(self, pin):
        self.edge_ms = self.clock.ticks_ms()
        self.edges = (self.edges + 1) & 0x3FFFFFFF
        flag = self.flag
        if flag is not None:  # always, once attach() installed this handler
            flag.set()

    def pending(self):
        return self.edges != self._seen

    async def wait(self, timeout_ms):
        """True on a new edge; False when none came in time or none can come (see RbAmp.wait_drdy)."""
        clock = self.clock
        if self.flag is None:
            await clock.asleep_ms(self.window_ms)
            return False
        if self.held_low and not self.pending():
            # held low by a masked event: no edges will come, pace by the window instead
            await clock.asleep_ms(self.window_ms)
            return False
        got = await clock.wait_event(self.flag, timeout_ms, self._check)
        self._seen = self.edges
        return got
