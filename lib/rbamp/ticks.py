"""Spans of master time between two tick readings, wrap-safe on 2**30-tick ports.

A span keeps both ``ticks_us`` (for sub-ms precision over short spans) and ``ticks_ms`` (for spans
longer than ``ticks_us`` can tell apart once it wraps), plus the sub-ms remainder carried to the
next span, so integrating many short spans loses nothing. All small ints: nothing allocates.
"""

_US_WINDOW_MS = 500000  # below this a ticks_us difference is still unambiguous on 2**30-wrap ports


class TickSpan:
    """The start of a span: ``start(us, ms, carry_us)``, then ``elapsed_ms(now_us, now_ms)``."""

    def __init__(self, clock):
        self.clock = clock
        self.us = 0
        self.ms = 0
        self.carry_us = 0
        self.started = False
        self.next_carry_us = 0  # the carry elapsed_ms() left for the span that starts where it ends

    def start(self, us, ms, carry_us=0):
        self.us = us
        self.ms = ms
        self.carry_us = carry_us
        self.started = True

    def stop(self):
        self.started = False
        self.carry_us = 0

    def elapsed_ms(self, now_us, now_ms):
        """Whole ms from the start (plus its carry) to now; the sub-ms rest goes to next_carry_us."""
        clock = self.clock
        dms = clock.ticks_diff(now_ms, self.ms)
        if dms < _US_WINDOW_MS:
            dus = clock.ticks_diff(now_us, self.us) + self.carry_us
            if dus < 0:
                dus = 0
            ms = dus // 1000
            self.next_carry_us = dus - ms * 1000
            return ms
        self.next_carry_us = 0
        return dms
