"""Helpers shared by the simulator tests (runs under every runtime)."""

import struct

from rbampsim import SimI2C, SimModule, VirtualClock, loads

ADDR = 0x50


def make(variant="UI1", version=0x04, powers=None, load=None, boot=True, **kwargs):
    clock = VirtualClock()
    if load is None:
        load = loads.Constant(powers if powers is not None else [100.0, 200.0, 300.0])
    module = SimModule(variant=variant, version=version, addr=ADDR, clock=clock, load=load, **kwargs)
    bus = SimI2C([module], freq=50000, clock=clock)
    if boot:
        clock.advance_ms(250)  # past the cold-boot timeline and the first window
    return clock, module, bus


def u8(bus, reg):
    return bus.readfrom_mem(ADDR, reg, 1)[0]


def u16(bus, reg):
    return u8(bus, reg) | (u8(bus, reg + 1) << 8)


def f32(bus, reg):
    """Burst read of a float (v1.3 semantics)."""
    return struct.unpack("<f", bus.readfrom_mem(ADDR, reg, 4))[0]


def f32_bytewise(bus, reg):
    """Four single-byte reads, as a v1.2 master must do."""
    data = bytearray(4)
    for i in range(4):
        data[i] = u8(bus, reg + i)
    return struct.unpack("<f", data)[0]


def u32_bytewise(bus, reg):
    value = 0
    for i in range(4):
        value |= u8(bus, reg + i) << (8 * i)
    return value


def write(bus, reg, value):
    bus.writeto_mem(ADDR, reg, bytes((value,)))


def command(bus, opcode):
    write(bus, 0x01, opcode)


def latch(clock, bus):
    command(bus, 0x27)
    clock.advance_ms(50)


def oserror_errno(fn, *args):
    try:
        fn(*args)
    except OSError as exc:
        return exc.args[0]
    raise AssertionError("expected OSError")
