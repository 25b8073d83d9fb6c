"""Bus backends: ``machine.I2C`` on MicroPython, ``smbus2.SMBus`` on Linux. Chosen from the bus object.

A transport moves bytes and raises the bus's own ``OSError``; retries and sanity checks live in the
device. ``read_into`` is one transaction (a burst on v1.3 firmware); callers that talk to v1.2
firmware pass one-byte buffers only.
"""


class I2CTransport:
    """``machine.I2C`` (or anything with ``readfrom_mem_into``/``writeto_mem``)."""

    def __init__(self, bus):
        self.bus = bus
        self._byte = bytearray(1)

    def read_into(self, addr, reg, buf):
        self.bus.readfrom_mem_into(addr, reg, buf)

    def write_u8(self, addr, reg, value):
        self._byte[0] = value
        self.bus.writeto_mem(addr, reg, self._byte)

    def write_raw(self, addr, data):
        self.bus.writeto(addr, data)

    def scan(self):
        return self.bus.scan()


class SMBusTransport:
    """``smbus2.SMBus``: bursts through ``i2c_rdwr`` (block reads stop at 32 bytes, the RT block is 56)."""

    def __init__(self, bus):
        self.bus = bus
        msg = getattr(bus, "i2c_msg", None)
        if msg is None:
            from smbus2 import i2c_msg as msg  # pyright: ignore[reportMissingImports]  # CPython only
        self._msg = msg

    def read_into(self, addr, reg, buf):
        n = len(buf)
        if n == 1:
            buf[0] = self.bus.read_byte_data(addr, reg)
            return
        write = self._msg.write(addr, bytes((reg,)))
        read = self._msg.read(addr, n)
        self.bus.i2c_rdwr(write, read)
        i = 0
        for value in read:
            buf[i] = value
            i += 1

    def write_u8(self, addr, reg, value):
        self.bus.write_byte_data(addr, reg, value)

    def write_raw(self, addr, data):
        self.bus.i2c_rdwr(self._msg.write(addr, bytes(data)))

    def scan(self):
        found = []
        for addr in range(0x08, 0x78):
            try:
                self.bus.read_byte(addr)
            except OSError:
                continue
            found.append(addr)
        return found


def transport_for(bus):
    if hasattr(bus, "readfrom_mem_into"):
        return I2CTransport(bus)
    if hasattr(bus, "i2c_rdwr") and hasattr(bus, "read_byte_data"):
        return SMBusTransport(bus)
    raise TypeError("unsupported bus %r: pass a machine.I2C or an smbus2.SMBus" % (bus,))
