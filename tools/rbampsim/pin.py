"""A DRDY pin look-alike (``machine.Pin`` subset) driven by the simulated module."""


class SimPin:
    IRQ_FALLING = 1
    IRQ_RISING = 2
    IN = 0
    PULL_UP = 1

    def __init__(self, module=None):
        self._module = module
        self._handler = None
        self._trigger = 0
        self._level = 1
        self.pulses = 0
        self.hard = None

    def value(self, level=None):
        if level is not None:
            raise ValueError("DRDY is an input")
        if self._module is not None:
            # Windows are committed lazily: an event due by now must already show on the pin.
            self._module.sync()
        return self._level

    def irq(self, handler=None, trigger=IRQ_FALLING, hard=False):
        """Like machine.Pin.irq; ``hard`` is recorded so tests can see what the caller asked for."""
        if self._module is not None:
            # Edges of windows that ended before this call belong to the previous handler (or none).
            self._module.sync()
        self._handler = handler
        self._trigger = trigger
        self.hard = hard
        if self._module is not None:
            self._module.drdy_changed()

    @property
    def has_handler(self):
        return self._handler is not None and (self._trigger & self.IRQ_FALLING) != 0

    def _set_level(self, level):
        falling = self._level == 1 and level == 0
        self._level = level
        if falling:
            self.pulses += 1
            if self.has_handler:
                self._handler(self)

    def pulse(self):
        """A ~10 us low pulse: fires the falling-edge handler, level is high again on return."""
        if self._level == 0:
            return
        self._set_level(0)
        self._level = 1

    def hold_low(self, low):
        self._set_level(0 if low else 1)
