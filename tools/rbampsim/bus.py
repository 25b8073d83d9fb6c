"""Simulated I2C buses: a ``machine.I2C`` look-alike and an ``smbus2.SMBus`` look-alike.

Both route transactions to ``SimModule`` objects, inject bus faults, and account every transaction
(start, 9 bits a byte, stop, the >= 100 us bus-free gap) at the configured clock. With a virtual clock
the bus time also advances virtual time, so slow byte-wise reads really do straddle RT commits.
"""

try:
    import errno
except ImportError:  # pragma: no cover
    errno = None

from rbampsim import registers as R
from rbampsim.faults import BusFaults

ENODEV = getattr(errno, "ENODEV", 19)
EIO = getattr(errno, "EIO", 5)
ETIMEDOUT = getattr(errno, "ETIMEDOUT", 110)
ENXIO = getattr(errno, "ENXIO", 6)
EREMOTEIO = getattr(errno, "EREMOTEIO", 121)

BUS_FREE_US = 100
GENERAL_CALL = 0x00


class BusStats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.transactions = 0
        self.bytes = 0
        self.nacks = 0
        self.bus_time_us = 0
        self._bus_time_s = 0

    def add(self, nbytes, time_us):
        self.transactions += 1
        self.bytes += nbytes
        self.bus_time_us += time_us
        # Roll whole seconds over so the counter stays a small int on 32-bit builds.
        if self.bus_time_us >= 1000000:
            self.bus_time_us -= 1000000
            self._bus_time_s += 1

    @property
    def total_bus_time_us(self):
        return self._bus_time_s * 1000000 + self.bus_time_us


class _SimBus:
    missing_errno = ENODEV
    nack_errno = EIO

    def __init__(self, modules, freq, clock, advance_clock):
        if isinstance(modules, (list, tuple)):
            modules = list(modules)
        else:
            modules = [modules]
        if not 1000 <= freq <= 1000000:
            raise ValueError("bus frequency must be 1 kHz..1 MHz")
        self.modules = []
        self.clock = clock if clock is not None else (modules[0].clock if modules else None)
        if self.clock is None:
            raise ValueError("a clock is needed (pass clock= or at least one module)")
        for module in modules:
            self.add(module)
        self.freq = freq
        self.stats = BusStats()
        self.faults = BusFaults()
        self.trace = None
        self._advance = advance_clock and hasattr(self.clock, "advance_us")
        self._byte_us_x100 = 900000000 // freq  # 9 bits per byte, in 1/100 us

    def add(self, module):
        if module.clock is not self.clock:
            raise ValueError("a module on this bus must share the bus clock")
        self.modules.append(module)

    def reset_stats(self):
        self.stats.reset()

    def record_trace(self, enabled=True):
        self.trace = [] if enabled else None

    # -- plumbing shared by both bus flavours
    def _target(self, addr):
        if self.faults.stuck:
            self.stats.nacks += 1
            raise OSError(ETIMEDOUT)
        for module in self.modules:
            module.sync()
            if module.addr == addr and module.answers():
                faults = module.faults
                if faults.active and faults.should_nack(self.clock.now_us()):
                    self._nack(module)
                return module
        self.stats.nacks += 1
        self._account(1, 0)
        raise OSError(self.missing_errno)

    def _nack(self, module):
        self.stats.nacks += 1
        if module.faults.ghost:
            module.ghost_pending = True
        count = module.regs[R.I2C_ERR_COUNT] | (module.regs[R.I2C_ERR_COUNT + 1] << 8)
        count = (count + 1) & 0xFFFF
        module.regs[R.I2C_ERR_COUNT] = count & 0xFF
        module.regs[R.I2C_ERR_COUNT + 1] = count >> 8
        self._account(2, 0)
        raise OSError(self.nack_errno)

    def _account(self, nbytes, restarts):
        # start + stop + one bit per repeated start, 9 bits per byte, then the bus-free gap.
        time_us = (nbytes * self._byte_us_x100 + (2 + restarts) * 100000000 // self.freq) // 100 + BUS_FREE_US
        self.stats.add(nbytes, time_us)
        if self._advance:
            self.clock.advance_us(time_us)

    def _record(self, kind, addr, reg, data):
        if self.trace is not None:
            self.trace.append((kind, addr, reg, bytes(data)))

    def _general_call(self, data):
        if self.faults.stuck:
            raise OSError(ETIMEDOUT)
        listeners = []
        if len(data) >= 5 and data[0] == R.GC_MAGIC and data[1] == R.CMD_LATCH_PERIOD:
            group = data[2]
            for module in self.modules:
                module.sync()
                if module.answers() and module.active_fleet:
                    module_group = module.regs[R.GROUP_ID]
                    if group == 0 or module_group == 0 or module_group == group:
                        listeners.append(module)
        self._account(1 + len(data), 0)
        self._record("gc", GENERAL_CALL, None, data)
        if not listeners:
            self.stats.nacks += 1
            raise OSError(self.missing_errno)
        tick = data[3] | (data[4] << 8)
        for module in listeners:
            module.latch_by_general_call(tick)
        return len(data)


class SimI2C(_SimBus):
    """``machine.I2C`` methods over simulated modules; raises OSError(ENODEV/EIO/ETIMEDOUT) like ports."""

    def __init__(self, modules=(), freq=50000, clock=None, advance_clock=True):
        _SimBus.__init__(self, modules, freq, clock, advance_clock)

    def scan(self):
        found = []
        for module in self.modules:
            module.sync()
            if module.answers() and not self.faults.stuck:
                found.append(module.addr)
        found.sort()
        return found

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        module = self._target(addr)
        module.read_into(memaddr, buf, True)
        module.pointer = memaddr
        self._account(3 + len(buf), 1)
        if self.trace is not None:
            self._record("r", addr, memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf, addrsize)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        module = self._target(addr)
        self._account(2 + len(buf), 0)
        if self.trace is not None:
            self._record("w", addr, memaddr, buf)
        module.pointer = memaddr
        module.write(memaddr, buf)

    def readfrom_into(self, addr, buf, stop=True):
        module = self._target(addr)
        module.read_into(module.pointer, buf, True)
        self._account(1 + len(buf), 0)
        if self.trace is not None:
            self._record("r", addr, None, buf)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)

    def writeto(self, addr, buf, stop=True):
        if addr == GENERAL_CALL:
            return self._general_call(buf)
        module = self._target(addr)
        self._account(1 + len(buf), 0)
        if self.trace is not None:
            self._record("w", addr, None, buf)
        if len(buf) >= 1:
            module.pointer = buf[0]
        if len(buf) >= 2:
            module.write(buf[0], buf, 1)
        # machine.I2C counts the ACKs of the data bytes only, not the address byte's.
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        data = bytearray()
        for part in vector:
            data.extend(part)
        return self.writeto(addr, data, stop)


class i2c_msg:  # noqa: N801 - same name as smbus2's class
    """smbus2's ``i2c_msg`` surface: ``i2c_msg.read(addr, n)`` / ``i2c_msg.write(addr, data)``."""

    I2C_M_RD = 0x0001

    def __init__(self, addr, flags, data):
        self.addr = addr
        self.flags = flags
        self.buf = data
        self.len = len(data)

    @staticmethod
    def read(address, length):
        return i2c_msg(address, i2c_msg.I2C_M_RD, bytearray(length))

    @staticmethod
    def write(address, buf):
        if isinstance(buf, str):
            buf = buf.encode()
        return i2c_msg(address, 0, bytearray(buf))

    def __len__(self):
        return self.len

    def __iter__(self):
        return iter(self.buf[: self.len])

    def __bytes__(self):
        return bytes(self.buf[: self.len])


def _msg_data(msg):
    """Bytes of a write message, ours or a real smbus2.i2c_msg (ctypes buffer)."""
    if isinstance(msg.buf, (bytes, bytearray)):
        return msg.buf
    return bytes(msg)


def _fill_read_msg(msg, data):
    if isinstance(msg.buf, bytearray):
        for i in range(len(data)):
            msg.buf[i] = data[i]
        return
    import ctypes  # a real smbus2.i2c_msg: its buf is a ctypes char pointer

    ctypes.memmove(msg.buf, bytes(data), len(data))


class SimSMBus(_SimBus):
    """The ``smbus2.SMBus`` surface over simulated modules, with Linux's errno values."""

    missing_errno = ENXIO
    nack_errno = EREMOTEIO
    BLOCK_MAX = 32
    i2c_msg = i2c_msg

    def __init__(self, modules=(), freq=100000, clock=None, advance_clock=True, bus=1):
        _SimBus.__init__(self, modules, freq, clock, advance_clock)
        self.bus = bus
        self.fd = 3

    def close(self):
        self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def i2c_rdwr(self, *msgs):
        total = 0
        restarts = -1
        for msg in msgs:
            restarts += 1
            if msg.addr == GENERAL_CALL and not msg.flags & i2c_msg.I2C_M_RD:
                self._general_call(_msg_data(msg))
                continue
            module = self._target(msg.addr)
            if msg.flags & i2c_msg.I2C_M_RD:
                if isinstance(msg.buf, bytearray):
                    module.read_into(module.pointer, msg.buf, True)
                    if self.trace is not None:
                        self._record("r", msg.addr, module.pointer, msg.buf)
                else:
                    data = bytearray(msg.len)
                    module.read_into(module.pointer, data, True)
                    _fill_read_msg(msg, data)
                    if self.trace is not None:
                        self._record("r", msg.addr, module.pointer, data)
            else:
                data = _msg_data(msg)
                if self.trace is not None:
                    self._record("w", msg.addr, None, data)
                if len(data) >= 1:
                    module.pointer = data[0]
                if len(data) >= 2:
                    module.write(data[0], data, 1)
            total += 1 + msg.len
        self._account(total, restarts if restarts > 0 else 0)

    def read_byte_data(self, addr, register, force=None):
        buf = bytearray(1)
        module = self._target(addr)
        module.read_into(register, buf, True)
        module.pointer = register
        self._account(4, 1)
        return buf[0]

    def write_byte_data(self, addr, register, value, force=None):
        module = self._target(addr)
        self._account(3, 0)
        module.pointer = register
        module.write(register, bytes((value & 0xFF,)))

    def read_i2c_block_data(self, addr, register, length, force=None):
        if length > self.BLOCK_MAX:
            raise ValueError("Desired block length over %d bytes" % self.BLOCK_MAX)
        buf = bytearray(length)
        module = self._target(addr)
        module.read_into(register, buf, True)
        module.pointer = register
        self._account(3 + length, 1)
        return list(buf)

    def write_i2c_block_data(self, addr, register, data, force=None):
        if len(data) > self.BLOCK_MAX:
            raise ValueError("Data length cannot exceed %d bytes" % self.BLOCK_MAX)
        module = self._target(addr)
        self._account(2 + len(data), 0)
        module.pointer = register
        module.write(register, bytes(data))

    def read_byte(self, addr, force=None):
        buf = bytearray(1)
        module = self._target(addr)
        module.read_into(module.pointer, buf, True)
        self._account(2, 0)
        return buf[0]

    def write_byte(self, addr, value, force=None):
        module = self._target(addr)
        self._account(2, 0)
        module.pointer = value & 0xFF
