RUNTIMES = ("cpython", "mpy64", "mpy32")

# The simulated buses: exact accounting of transactions, bytes and bus time, the virtual clock
# moved by that time, the machine.I2C surface (scan, pointer reads/writes, writevto, trace) and
# the smbus2.SMBus surface with Linux's errno values.

import struct

import xrt
from rbampsim import SimI2C, SimModule, SimSMBus, VirtualClock, i2c_msg, loads
from support_sim import ADDR, oserror_errno, u8

UID = bytes(range(0x31, 0x3D))
ENODEV, EIO, ENXIO, ETIMEDOUT, EREMOTEIO = 19, 5, 6, 110, 121  # Linux numbers


def wire_us(nbytes, restarts, freq):
    """bus.py's rule: 9 bits per byte, one bit time each for start, stop and every repeated
    start, then the 100 us bus-free gap (tBUF)."""
    bits = 9 * nbytes + 2 + restarts
    return bits * 1000000 // freq + 100


def _module(version=0x04, addr=ADDR, clock=None):
    clock = clock if clock is not None else VirtualClock()
    return SimModule("UI2", version=version, addr=addr, clock=clock, uid=UID,
                     load=loads.Constant([1000.0, 500.0]))


def _booted_bus(kind=SimI2C, version=0x04, freq=None, **kwargs):
    module = _module(version)
    if freq is None:
        bus = kind([module], clock=module.clock, **kwargs)
    else:
        bus = kind([module], freq=freq, clock=module.clock, **kwargs)
    module.clock.advance_ms(250)
    bus.reset_stats()
    return module.clock, module, bus


class _Meter:
    """Measures what one bus call added to the stats and to the virtual clock."""

    def __init__(self, clock, bus):
        self.clock = clock
        self.bus = bus

    def call(self, fn, *args):
        stats = self.bus.stats
        before = (stats.transactions, stats.bytes, stats.total_bus_time_us, self.clock.now_us())
        result = None
        error = None
        try:
            result = fn(*args)
        except OSError as exc:
            error = exc.args[0]
        after = (stats.transactions, stats.bytes, stats.total_bus_time_us, self.clock.now_us())
        delta = [after[i] - before[i] for i in range(4)]
        return result, error, delta


# ---------------------------------------------------------------- SimI2C accounting


def test_56_byte_burst_at_50_khz_costs_10780_us():
    clock, module, bus = _booted_bus()
    t0 = clock.now_us()
    bus.readfrom_mem(ADDR, 0x86, 56)
    # address+W, register, address+R, 56 data bytes = 59 bytes; start, repeated start, stop.
    assert wire_us(59, 1, 50000) == 10780
    assert bus.stats.transactions == 1
    assert bus.stats.bytes == 59
    assert bus.stats.bus_time_us == 10780
    assert clock.now_us() - t0 == 10780


def test_every_machine_i2c_call_is_accounted_exactly():
    clock, module, bus = _booted_bus()
    meter = _Meter(clock, bus)
    buf12 = bytearray(12)
    buf2 = bytearray(2)
    calls = (
        (bus.readfrom_mem, (ADDR, 0x54, 1), 4, 1),
        (bus.readfrom_mem_into, (ADDR, 0x5C, buf12), 15, 1),
        (bus.writeto_mem, (ADDR, 0x29, b"\x01"), 3, 0),
        (bus.readfrom, (ADDR, 4), 5, 0),
        (bus.readfrom_into, (ADDR, buf2), 3, 0),
        (bus.writeto, (ADDR, b"\x54"), 2, 0),
        (bus.writeto, (ADDR, b"\x29\x03"), 3, 0),
        (bus.writevto, (ADDR, (b"\x29", b"\x07")), 3, 0),
        (bus.writeto, (0x00, bytes((0xA5, 0x27, 0, 1, 0))), 6, 0),  # General Call, NACKed
        (bus.readfrom_mem, (0x33, 0x00, 1), 1, 0),  # nobody at 0x33: the address byte only
    )
    total_bytes = 0
    total_us = 0
    for fn, args, nbytes, restarts in calls:
        result, error, delta = meter.call(fn, *args)
        expected = wire_us(nbytes, restarts, 50000)
        assert delta == [1, nbytes, expected, expected], (args, delta)
        total_bytes += nbytes
        total_us += expected
    assert buf12 == UID
    assert u8(bus, 0x29) == 0x07
    stats = bus.stats
    assert stats.transactions == len(calls) + 1
    assert stats.bytes == total_bytes + 4
    assert stats.nacks == 2


def test_an_injected_nack_is_a_transaction_on_the_wire():
    clock, module, bus = _booted_bus()
    module.faults.nack_rate = 1.0
    result, error, delta = _Meter(clock, bus).call(bus.readfrom_mem, ADDR, 0x86, 56)
    assert error == EIO
    assert delta[0] == 1 and 1 <= delta[1] < 59
    assert delta[2] == wire_us(delta[1], 0, 50000) == delta[3]
    assert bus.stats.nacks == 1


def test_bus_time_rolls_over_whole_seconds_and_reset_stats_clears():
    clock, module, bus = _booted_bus()
    t0 = clock.now_us()
    buf = bytearray(56)
    for _ in range(100):
        bus.readfrom_mem_into(ADDR, 0x86, buf)
    stats = bus.stats
    assert stats.transactions == 100 and stats.bytes == 5900
    assert stats.total_bus_time_us == 100 * 10780
    assert stats.bus_time_us == 100 * 10780 - 1000000  # the sub-second part stays a small int
    assert clock.now_us() - t0 == 100 * 10780
    bus.reset_stats()
    assert (stats.transactions, stats.bytes, stats.nacks, stats.total_bus_time_us) == (0, 0, 0, 0)


def test_bus_time_scales_with_the_clock_rate():
    for freq in (50000, 100000, 400000):
        clock, module, bus = _booted_bus(freq=freq)
        bus.readfrom_mem(ADDR, 0x86, 56)
        assert bus.stats.bus_time_us == wire_us(59, 1, freq), freq
    clock, module, bus = _booted_bus(freq=100000)
    bus.readfrom_mem(ADDR, 0x86, 56)
    assert bus.stats.bus_time_us == 5440


def test_without_advance_clock_time_stands_still_but_is_still_counted():
    clock, module, bus = _booted_bus(advance_clock=False)
    t0 = clock.now_us()
    bus.readfrom_mem(ADDR, 0x86, 56)
    assert clock.now_us() == t0
    assert bus.stats.bus_time_us == 10780


def test_slow_byte_wise_reads_really_take_bus_time():
    # 4 one-byte reads of a float at 50 kHz last 3.5 ms: long enough to straddle an RT commit.
    clock, module, bus = _booted_bus(version=0x03)
    t0 = clock.now_us()
    for i in range(4):
        bus.readfrom_mem(ADDR, 0xA6 + i, 1)
    assert clock.now_us() - t0 == 4 * wire_us(4, 1, 50000) == 3520


# ---------------------------------------------------------------- SimI2C surface


def test_scan_lists_answering_modules_in_order():
    clock = VirtualClock()
    modules = [_module(addr=a, clock=clock) for a in (0x60, 0x10, 0x50)]
    bus = SimI2C(modules, clock=clock)
    assert bus.scan() == []  # all still in their boot NACK window
    clock.advance_ms(20)
    assert bus.scan() == [0x10, 0x50, 0x60]
    modules[0].unplug()
    modules[1].power_cycle()
    assert bus.scan() == [0x50]
    extra = _module(addr=0x08, clock=clock)
    bus.add(extra)
    clock.advance_ms(20)
    assert bus.scan() == [0x08, 0x10, 0x50]


def test_readfrom_and_writeto_use_the_register_pointer():
    clock, module, bus = _booted_bus()
    assert bus.writeto(ADDR, b"\x5c") == 1  # pointer only
    assert bus.readfrom(ADDR, 4) == UID[:4]
    buf = bytearray(12)
    bus.readfrom_into(ADDR, buf)
    assert buf == UID
    bus.readfrom_mem(ADDR, 0x54, 1)  # a memory read moves the pointer too
    assert bus.readfrom(ADDR, 1) == b"\x01"
    # A write with data: pointer then the first data byte only (no write auto-increment).
    assert bus.writeto(ADDR, b"\x68AB") == 3
    assert bus.readfrom_mem(ADDR, 0x68, 2) == b"A\x00"
    assert bus.readfrom(ADDR, 1) == b"A"


def test_readfrom_on_v12_repeats_the_first_byte():
    clock, module, bus = _booted_bus(version=0x03)
    bus.writeto(ADDR, b"\x5c")
    assert bus.readfrom(ADDR, 4) == bytes((UID[0],)) * 4


def test_writevto_joins_the_vector():
    clock, module, bus = _booted_bus()
    assert bus.writevto(ADDR, [b"\x29", memoryview(b"\x0f")]) == 2
    assert u8(bus, 0x29) == 0x0F
    assert bus.writevto(ADDR, (b"\x2b", b"", b"\x04")) == 2
    assert u8(bus, 0x2B) == 0x04


def test_wire_trace_records_successful_transactions():
    clock, module, bus = _booted_bus()
    assert bus.trace is None
    bus.record_trace()
    bus.readfrom_mem(ADDR, 0x54, 1)
    bus.writeto_mem(ADDR, 0x29, b"\x01")
    bus.writeto(ADDR, b"\x5c")
    bus.readfrom(ADDR, 2)
    oserror_errno(bus.readfrom_mem, 0x33, 0x00, 1)  # absent: nothing on the trace
    assert bus.trace == [
        ("r", ADDR, 0x54, b"\x01"),
        ("w", ADDR, 0x29, b"\x01"),
        ("w", ADDR, None, b"\x5c"),
        ("r", ADDR, None, UID[:2]),
    ]
    bus.record_trace(False)
    bus.readfrom_mem(ADDR, 0x54, 1)
    assert bus.trace is None


def test_bus_construction_is_validated():
    clock = VirtualClock()
    module = _module(clock=clock)
    xrt.raises(ValueError, SimI2C, [module], 500)
    xrt.raises(ValueError, SimI2C, [module], 2000000)
    xrt.raises(ValueError, SimI2C, [])  # no module and no clock
    xrt.raises(ValueError, SimI2C, [module], 50000, VirtualClock())  # clocks must match
    bus = SimI2C(module)  # a single module is accepted too; its clock is the bus clock
    assert bus.clock is clock
    assert bus.freq == 50000


# ---------------------------------------------------------------- SimSMBus


def test_smbus_i2c_rdwr_write_then_read():
    clock, module, bus = _booted_bus(SimSMBus)
    assert bus.freq == 100000
    t0 = clock.now_us()
    write = i2c_msg.write(ADDR, [0x5C])
    read = i2c_msg.read(ADDR, 12)
    bus.i2c_rdwr(write, read)
    assert bytes(list(read)) == UID
    assert len(read) == 12
    # one combined transaction: (1 + 1) + (1 + 12) bytes, one repeated start
    assert bus.stats.transactions == 1 and bus.stats.bytes == 15
    assert bus.stats.bus_time_us == wire_us(15, 1, 100000) == 1480
    assert clock.now_us() - t0 == 1480
    bus.i2c_rdwr(i2c_msg.write(ADDR, [0x29, 0x0B]))
    assert bus.read_byte_data(ADDR, 0x29) == 0x0B
    bus.i2c_rdwr(i2c_msg.write(ADDR, [0x54]))
    read = i2c_msg.read(ADDR, 1)
    bus.i2c_rdwr(read)  # a read on its own continues at the pointer
    assert list(read) == [0x01]


def test_smbus_byte_and_block_calls():
    clock, module, bus = _booted_bus(SimSMBus)
    meter = _Meter(clock, bus)
    result, error, delta = meter.call(bus.read_byte_data, ADDR, 0x54)
    assert result == 0x01 and delta[1:3] == [4, wire_us(4, 1, 100000)]
    result, error, delta = meter.call(bus.write_byte_data, ADDR, 0x29, 0x05)
    assert error is None and delta[1:3] == [3, wire_us(3, 0, 100000)]
    assert bus.read_byte_data(ADDR, 0x29) == 0x05
    result, error, delta = meter.call(bus.read_i2c_block_data, ADDR, 0x5C, 12)
    assert result == list(UID) and delta[1:3] == [15, wire_us(15, 1, 100000)]
    rt = bus.read_i2c_block_data(ADDR, 0x86, 32)
    assert struct.unpack("<f", bytes(rt[:4]))[0] == 230.0
    result, error, delta = meter.call(bus.write_i2c_block_data, ADDR, 0x68, [0x41, 0x42, 0x43])
    assert delta[1:3] == [5, wire_us(5, 0, 100000)]
    assert bus.read_i2c_block_data(ADDR, 0x68, 3) == [0x41, 0x00, 0x00]  # first byte only
    result, error, delta = meter.call(bus.write_byte, ADDR, 0x54)
    assert delta[1:3] == [2, wire_us(2, 0, 100000)]
    result, error, delta = meter.call(bus.read_byte, ADDR)
    assert result == 0x01 and delta[1:3] == [2, wire_us(2, 0, 100000)]


def test_smbus_block_limit_is_32_bytes_like_smbus2():
    clock, module, bus = _booted_bus(SimSMBus)
    assert len(bus.read_i2c_block_data(ADDR, 0x86, 32)) == 32
    before = bus.stats.transactions
    read_error = xrt.raises(ValueError, bus.read_i2c_block_data, ADDR, 0x86, 33)
    write_error = xrt.raises(ValueError, bus.write_i2c_block_data, ADDR, 0x68, list(range(33)))
    assert bus.stats.transactions == before  # refused before touching the bus
    assert bus.read_byte_data(ADDR, 0x68) == 0
    if not xrt.is_micropython():
        import smbus2

        real = smbus2.SMBus()  # no bus opened: the length check comes first
        assert str(read_error) == str(xrt.raises(ValueError, real.read_i2c_block_data, ADDR, 0, 33))
        assert str(write_error) == str(xrt.raises(ValueError, real.write_i2c_block_data, ADDR, 0,
                                                  list(range(33))))


def test_smbus_errnos_are_linux_ones():
    clock, module, bus = _booted_bus(SimSMBus)
    absent = 0x33
    calls = (
        (bus.read_byte_data, (absent, 0x00)),
        (bus.write_byte_data, (absent, 0x29, 1)),
        (bus.read_i2c_block_data, (absent, 0x00, 4)),
        (bus.write_i2c_block_data, (absent, 0x29, [1])),
        (bus.read_byte, (absent,)),
        (bus.write_byte, (absent, 0)),
        (bus.i2c_rdwr, (i2c_msg.write(absent, [0]), i2c_msg.read(absent, 1))),
    )
    for fn, args in calls:
        assert oserror_errno(fn, *args) == ENXIO, fn
    module.faults.nack_rate = 1.0
    present = [(fn, (ADDR,) + args[1:]) for fn, args in calls[:-1]]
    present.append((bus.i2c_rdwr, (i2c_msg.write(ADDR, [0]), i2c_msg.read(ADDR, 1))))
    for fn, args in present:
        assert oserror_errno(fn, *args) == EREMOTEIO, fn
    module.faults.nack_rate = 0.0
    bus.faults.stuck = True
    assert oserror_errno(bus.read_byte_data, ADDR, 0x00) == ETIMEDOUT
    bus.faults.stuck = False
    module.unplug()
    assert oserror_errno(bus.read_byte_data, ADDR, 0x00) == ENXIO


def test_smbus_general_call_through_i2c_rdwr():
    clock, module, bus = _booted_bus(SimSMBus)
    frame = [0xA5, 0x27, 0, 0x05, 0x00]
    assert oserror_errno(bus.i2c_rdwr, i2c_msg.write(0x00, frame)) == ENXIO  # nobody listens
    bus.write_byte_data(ADDR, 0x27, 1)
    bus.write_byte_data(ADDR, 0x01, 0x32)  # save
    bus.write_byte_data(ADDR, 0x01, 0x01)  # reset: the fleet bit applies from the next boot
    clock.advance_ms(350)
    bus.i2c_rdwr(i2c_msg.write(0x00, frame))
    clock.advance_ms(50)
    assert bus.read_i2c_block_data(ADDR, 0x59, 2) == [0x05, 0x00]


def test_smbus_close_and_context_manager():
    clock, module, bus = _booted_bus(SimSMBus)
    with bus as same:
        assert same is bus
        assert same.read_byte_data(ADDR, 0x54) == 0x01
    assert bus.fd is None


def test_smbus_accepts_real_smbus2_messages():
    if xrt.is_micropython():
        raise xrt.Skip("smbus2 is a CPython package")
    from smbus2 import i2c_msg as real_msg

    clock, module, bus = _booted_bus(SimSMBus)
    read = real_msg.read(ADDR, 12)
    bus.i2c_rdwr(real_msg.write(ADDR, [0x5C]), read)
    assert bytes(read) == UID
    assert list(read) == list(UID)
    bus.i2c_rdwr(real_msg.write(ADDR, [0x29, 0x0D]))
    assert bus.read_byte_data(ADDR, 0x29) == 0x0D
    assert bus.stats.bytes == 15 + 3 + 4
