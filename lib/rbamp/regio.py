"""Register I/O: the one place that turns bus transactions into register reads and writes.

Every read and write of the driver goes through ``RegisterIO``: one bounded, spaced retry loop,
the throw-away read after a failed transaction (the ESP32 ghost quirk), the wrapping of the bus's
``OSError`` into ``RbAmpIOError``/``RbAmpTimeoutError``, and the counters in ``RbAmpStats``.
``RbAmp`` and ``Provisioning`` both hold the same object.
"""

from rbamp import registers as R
from rbamp.errors import ETIMEDOUT, RbAmpIOError, RbAmpParamError, RbAmpTimeoutError


def check_address(addr):
    if not isinstance(addr, int) or not 0x08 <= addr <= 0x77:
        raise RbAmpParamError("I2C address must be an int in 0x08..0x77, got %r" % (addr,))


class RbAmpStats:
    """Counters of what the driver had to survive (all small ints)."""

    def __init__(self):
        self.reads = 0
        self.writes = 0
        self.bus_errors = 0
        self.retries = 0
        self.rejected = 0  # implausible values (NaN, inf, absurd, ghost) re-read
        self.ghosts = 0
        self.torn = 0  # reads that straddled an RT commit and were re-read
        self.stale = 0
        self.reboots = 0
        self.resumed = 0  # begin(resume=...) that took over a running sequence instead of priming
        self.recovered_periods = 0  # latched periods a restarted master counted (missed + open)

    def to_dict(self):
        return dict((name, getattr(self, name)) for name in (
            "reads", "writes", "bus_errors", "retries", "rejected", "ghosts", "torn", "stale", "reboots",
            "resumed", "recovered_periods"))


class RegisterIO:
    """Reads and writes of one module's registers through a transport (``rbamp.transport``).

    ``burst`` is set once the protocol is known: v1.3 auto-increments multi-byte reads, v1.2
    answers one register per transaction. ``address`` changes with ``RbAmp.change_address``."""

    def __init__(self, transport, address, clock, retries, retry_ms, stats):
        self.transport = transport
        self.address = address
        self.clock = clock
        self.retries = retries
        self.retry_ms = retry_ms
        self.stats = stats
        self.burst = False
        self._byte = bytearray(1)
        self._flush = bytearray(1)
        self.word = bytearray(4)  # scratch for small reads (u16/u32) by the driver's parts

    def _error(self, exc, reg, what):
        code = exc.args[0] if exc.args else None
        if code == ETIMEDOUT:
            return RbAmpTimeoutError("bus stuck while %s (%r)" % (what, exc), self.address, reg)
        return RbAmpIOError("%s failed after %d retries (%r)" % (what, self.retries, exc),
                            self.address, reg, code if isinstance(code, int) else None)

    def _failed(self, exc, attempt, reg, what):
        """Count a failed transaction; raise once the retries are used up, else wait and go on."""
        self.stats.bus_errors += 1
        if attempt >= self.retries:
            raise self._error(exc, reg, what)
        self.stats.retries += 1
        self.clock.sleep_ms(self.retry_ms)

    def read(self, reg, buf):
        """One transaction (a burst on v1.3) into ``buf``, retried with spacing on bus errors.

        After a failed transaction the ESP32 host driver can hand stale buffer bytes to the next
        read without an error (the ghost quirk), so every retry starts with a throw-away read."""
        attempt = 0
        transport = self.transport
        while True:
            try:
                if attempt:
                    transport.read_into(self.address, R.STATUS, self._flush)
                transport.read_into(self.address, reg, buf)
                self.stats.reads += 1
                return
            except OSError as exc:
                self._failed(exc, attempt, reg, "read")
            attempt += 1

    def write_u8(self, reg, value):
        attempt = 0
        while True:
            try:
                self.transport.write_u8(self.address, reg, value)
                self.stats.writes += 1
                return
            except OSError as exc:
                self._failed(exc, attempt, reg, "write")
            attempt += 1

    def write_u16(self, reg, value):
        """Byte at a time: v1.3 keeps only the first byte of a burst write."""
        self.write_u8(reg, value & 0xFF)
        self.write_u8(reg + 1, value >> 8)

    def read_u8(self, reg):
        self.read(reg, self._byte)
        return self._byte[0]

    def read_block(self, reg, buf, off, n):
        """n bytes into buf[off:]: one burst on v1.3 when they fill buf, else byte by byte (no torn
        guard: for registers that do not change on their own)."""
        if self.burst and off == 0 and n == len(buf):
            self.read(reg, buf)
            return
        byte = self._byte
        for i in range(n):
            self.read(reg + i, byte)
            buf[off + i] = byte[0]

    def read_u16(self, reg):
        """A u16 register pair, byte by byte (both bytes are settings that do not change alone)."""
        word = self.word
        self.read_block(reg, word, 0, 2)
        return word[0] | (word[1] << 8)

    def answers(self, addr):
        """True when something ACKs ``addr`` (one plain read, no retries)."""
        try:
            self.transport.read_into(addr, R.PRODUCT_ID, self._byte)
        except OSError:
            return False
        return True

    def scan_quietly(self):
        try:
            return self.transport.scan()
        except OSError:
            return ()

    def write_raw(self, addr, data):
        """A raw write to another address (the General-Call frame of a fleet latch)."""
        self.transport.write_raw(addr, data)
