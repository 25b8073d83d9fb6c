"""Exponential backoff with jitter, for reconnecting to Wi-Fi and to the MQTT broker.

    backoff = Backoff()                 # 1 s .. 60 s
    delay_ms = backoff.next_delay_ms()  # after each failure
    backoff.reset()                     # once the link has proved itself

The n-th delay (n = 0, 1, ...) is drawn uniformly from [ceiling/2, ceiling], where
``ceiling = min(cap_ms, base_ms * 2**n)``. Half the ceiling is kept as a floor so a retry never
comes right after a failure; the random upper half spreads the reconnects of many gateways that
lost the same broker at the same moment.

The random source is a private xorshift generator: MicroPython has no ``random.Random``, and
seeding the global ``random`` would disturb everybody else's use of it. Without a seed it is
seeded from ``os.urandom`` (the hardware RNG on ESP32/RP2040), so two boards that boot together
do not retry in lock-step. With ``seed=`` the sequence is the same on every runtime.
"""

_MASK32 = 0xFFFFFFFF


def _entropy_seed():
    try:
        import os

        raw = os.urandom(4)
        return raw[0] | raw[1] << 8 | raw[2] << 16 | raw[3] << 24
    except (ImportError, AttributeError, OSError, NotImplementedError):
        pass
    import time

    if hasattr(time, "ticks_us"):
        return time.ticks_us()
    return int(time.time() * 1000000)


class Xorshift32:
    """A tiny deterministic generator (Marsaglia's xorshift32); not for cryptography."""

    def __init__(self, seed):
        state = seed & _MASK32
        # zero is the generator's only fixed point
        self._state = state if state else 0x9E3779B9

    def next_u32(self):
        x = self._state
        x ^= (x << 13) & _MASK32
        x ^= x >> 17
        x ^= (x << 5) & _MASK32
        self._state = x
        return x

    def below(self, n):
        """An integer in 0 .. n-1 (n >= 1). The modulo bias is irrelevant for n << 2**32."""
        if n < 1:
            raise ValueError("below() needs n >= 1, got %r" % (n,))
        return self.next_u32() % n


class Backoff:
    def __init__(self, base_ms=1000, cap_ms=60000, seed=None):
        if not isinstance(base_ms, int) or base_ms < 1:
            raise ValueError("base_ms must be a positive int, got %r" % (base_ms,))
        if not isinstance(cap_ms, int) or cap_ms < base_ms:
            raise ValueError("cap_ms must be an int >= base_ms (%d), got %r" % (base_ms, cap_ms))
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self._rng = Xorshift32(_entropy_seed() if seed is None else seed)
        self._ceiling = base_ms
        self.attempts = 0

    def next_delay_ms(self):
        ceiling = self._ceiling
        low = ceiling // 2
        delay = low + self._rng.below(ceiling - low + 1)
        self.attempts += 1
        # doubling stops at the cap, so the ceiling never becomes a big int after many failures
        if ceiling < self.cap_ms:
            self._ceiling = min(self.cap_ms, ceiling * 2)
        return delay

    def ceiling_ms(self):
        """Upper bound of the next delay."""
        return self._ceiling

    def reset(self):
        self._ceiling = self.base_ms
        self.attempts = 0
