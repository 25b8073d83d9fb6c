"""The host profile's way to the simulator server (``rbampsim.server``): a ``machine.I2C``
look-alike and a DRDY pin over a loopback TCP socket. Runs on MicroPython and CPython.

The server of a data folder writes ``DATA/sim_port`` (``<port> <pid>``). One request, one
response, strictly in turn:

    request   op, addr, reg, n                 4 bytes, then n payload bytes for h, w, W, c
    response  status, drdy, edges (u16 LE), m  5 bytes, then m data bytes

    op  h hello   payload: bus frequency (u32 LE) then the gateway's module addresses, the first
                  one wired to DRDY; the server creates modules it lacks, applies pending
                  sim_control, and answers ``rbampsim1``
        r readfrom_mem_into(addr, reg, n)  -> n bytes      w writeto_mem(addr, reg, payload)
        R readfrom_into(addr, n)           -> n bytes      W writeto(addr, payload)
        s scan()                           -> addresses    p nothing: DRDY level and edges only
        k peek(addr, reg, n): registers as they are, no bus transaction (tests)
        c a sim_control command, applied now               x stop the server

``status`` is 0, or the errno the in-process ``SimI2C`` raises (ENODEV: nobody at the address,
EIO: NACK, ETIMEDOUT: bus stuck), raised here as the same ``OSError``; 255 carries a message
(a ``ValueError`` in the simulator). ``drdy`` is the level of this connection's DRDY pin and
``edges`` counts its falling edges: every response brings them, and the pin calls the driver's
IRQ handler once per new edge, so an edge during a byte-wise v1.2 pass is seen as it would be
on a board. When the server is gone, transactions fail with ETIMEDOUT (a hung bus) and the link
tries to connect again once a second.
"""

import os
import socket
import time

try:
    import errno

    ETIMEDOUT = errno.ETIMEDOUT
except (ImportError, AttributeError):  # pragma: no cover
    ETIMEDOUT = 110

PORT_FILE = "sim_port"
MAGIC = b"rbampsim1"
MAX_BYTES = 255
ERROR_MESSAGE = 255
SPAWN_WAIT_MS = 20000
RECONNECT_MS = 1000

OP_HELLO = 0x68  # h
OP_READ_MEM = 0x72  # r
OP_WRITE_MEM = 0x77  # w
OP_READ = 0x52  # R
OP_WRITE = 0x57  # W
OP_SCAN = 0x73  # s
OP_POLL = 0x70  # p
OP_PEEK = 0x6B  # k
OP_CONTROL = 0x63  # c
OP_STOP = 0x78  # x
PAYLOAD_OPS = (OP_HELLO, OP_WRITE_MEM, OP_WRITE, OP_CONTROL)


def _ms():
    return time.monotonic_ns() // 1000000 if hasattr(time, "monotonic_ns") else time.ticks_ms()


def _since(start):
    now = _ms()
    return time.ticks_diff(now, start) if hasattr(time, "ticks_diff") else now - start


def _sleep_ms(ms):
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


def _absolute(path):
    return path if path.startswith("/") else os.getcwd().rstrip("/") + "/" + path


def read_port_file(data_dir):
    """(port, pid) from ``DATA/sim_port``, or None."""
    try:
        with open(data_dir + "/" + PORT_FILE) as f:
            words = f.read().split()
        return int(words[0]), int(words[1])
    except (OSError, ValueError, IndexError):
        return None


def server_program():
    """(root, python) to start the server with, or None where its source is not on disk (a
    frozen build: the host profile then simulates in its own process)."""
    here = globals().get("__file__") or ""
    if "/" not in here:
        return None
    tools = _absolute(here).rsplit("/", 2)[0]
    try:
        os.stat(tools + "/rbampsim/server.py")
    except OSError:
        return None
    root = tools.rsplit("/", 1)[0]
    python = os.getenv("RBAMP_SIM_PYTHON")
    if not python:
        python = root + "/.venv/bin/python"
        try:
            os.stat(python)
        except OSError:
            python = "python3"
    return root, python


def _quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def spawn_server(data_dir, idle_exit_s=60):
    """Start a detached server for ``data_dir`` (it outlives the gateway that started it; it
    stops by itself after ``idle_exit_s`` without any gateway connected)."""
    program = server_program()
    if program is None:
        raise OSError(ETIMEDOUT, "the simulator server's source is not on this machine")
    root, python = program
    data_dir = _absolute(data_dir)
    command = ("cd %s && PYTHONPATH=%s exec %s -m rbampsim.server --data %s --idle-exit %d"
               " </dev/null >>%s 2>&1 &" % (_quote(root), _quote(root + "/tools:" + root + "/lib"),
                                            _quote(python), _quote(data_dir), idle_exit_s,
                                            _quote(data_dir + "/sim.log")))
    os.system(command)


def open_bus(data_dir, addresses, freq=50000, spawn=True):
    """A ``RemoteI2C`` connected to the server of ``data_dir``, starting one if none answers."""
    bus = RemoteI2C(data_dir, addresses, freq)
    if bus.connect():
        return bus
    if not spawn:
        raise OSError(ETIMEDOUT, "no simulator server runs for %s" % data_dir)
    spawn_server(data_dir)
    start = _ms()
    while _since(start) < SPAWN_WAIT_MS:
        _sleep_ms(50)
        if bus.connect():
            return bus
    raise OSError(ETIMEDOUT, "the simulator server did not start within %d s; see %s/sim.log"
                  % (SPAWN_WAIT_MS // 1000, data_dir))


class RemotePin:
    """The DRDY pin (``machine.Pin`` subset the driver uses): its level and falling edges come
    with every response of the bus it belongs to."""

    IRQ_FALLING = 1
    IRQ_RISING = 2
    IN = 0
    PULL_UP = 1

    def __init__(self, bus):
        self._bus = bus
        self.level = 1
        self.handler = None
        self.hard = None
        self.edges = 0

    def value(self, level=None):
        if level is not None:
            raise ValueError("DRDY is an input")
        self._bus.poll()
        return self.level

    def irq(self, handler=None, trigger=IRQ_FALLING, hard=False):
        # edges from before this call belong to the previous handler (or none)
        try:
            self._bus.poll(fire=False)
        except OSError:
            self._bus._edges = None  # no server now: the next answer sets the baseline
        self.handler = handler if trigger & self.IRQ_FALLING else None
        self.hard = hard

    def _fire(self, count):
        self.edges += count
        handler = self.handler
        if handler is not None:
            for _ in range(count):
                handler(self)


class RemoteI2C:
    """``machine.I2C`` methods over the simulator server's modules."""

    def __init__(self, data_dir, addresses, freq=50000, timeout_s=2):
        self.data_dir = data_dir
        self.addresses = list(addresses)
        self.freq = freq
        self.timeout_s = timeout_s
        self.pin = RemotePin(self)
        self.transactions = 0
        self.server_pid = None
        self._sock = None
        self._cpython = False
        self._failed_ms = None
        self._edges = None
        self._req = bytearray(4 + MAX_BYTES)
        self._hdr = bytearray(5)
        self._data = bytearray(MAX_BYTES)

    # ------------------------------------------------------------------ connection
    def connect(self):
        """Connect and say hello; False when no server answers for the data folder."""
        self.close()
        found = read_port_file(self.data_dir)
        if found is None:
            return False
        port, pid = found
        sock = socket.socket()
        try:
            sock.settimeout(self.timeout_s)
            sock.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            try:
                sock.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: requests go out at once
            except OSError:
                pass  # only latency
        except OSError:
            sock.close()
            return False
        self._sock = sock
        self._cpython = hasattr(sock, "recv_into")
        self._edges = None
        hello = bytearray(4 + len(self.addresses))
        freq = self.freq
        for i in range(4):
            hello[i] = (freq >> (8 * i)) & 0xFF
        for i, addr in enumerate(self.addresses):
            hello[4 + i] = addr
        try:
            data = self._exchange(OP_HELLO, 0, 0, hello)
        except OSError:
            return False
        if data != MAGIC:
            self.close()
            return False
        self.server_pid = pid
        self._failed_ms = None
        return True

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _link(self):
        if self._sock is None:
            # the server went away: like a hung bus, retried once a second, not on every call
            if self._failed_ms is not None and _since(self._failed_ms) < RECONNECT_MS:
                raise OSError(ETIMEDOUT)
            if not self.connect():
                self._failed_ms = _ms()
                raise OSError(ETIMEDOUT)
        return self._sock

    # ------------------------------------------------------------------ the exchange
    def _send(self, sock, n):
        if self._cpython:
            sock.sendall(memoryview(self._req)[:n])
        else:
            sock.write(self._req, n)

    def _recv(self, sock, buf, n):
        if n == 0:
            return
        if self._cpython:
            view = memoryview(buf)
            got = 0
            while got < n:
                chunk = sock.recv_into(view[got:n])
                if not chunk:
                    raise OSError(ETIMEDOUT)
                got += chunk
        elif sock.readinto(buf, n) != n:
            raise OSError(ETIMEDOUT)

    def _exchange(self, op, addr, reg, payload=None, into=None, n=0, fire=True):
        """One transaction. Returns None when the data went ``into`` the caller's buffer, else
        the data as bytes."""
        sock = self._sock if op == OP_HELLO else self._link()
        req = self._req
        req[0] = op
        req[1] = addr
        req[2] = reg
        if payload is not None:
            n = len(payload)
            if n > MAX_BYTES:
                raise ValueError("the simulator link carries at most %d bytes a transaction" % MAX_BYTES)
            req[4:4 + n] = payload
        req[3] = n
        hdr = self._hdr
        try:
            self._send(sock, 4 + (n if payload is not None else 0))
            self._recv(sock, hdr, 5)
            m = hdr[4]
            status = hdr[0]
            if status == 0 and into is not None and m == len(into):
                self._recv(sock, into, m)
                data = None
            else:
                self._recv(sock, self._data, m)
                data = bytes(self._data[:m])
        except OSError:
            # the stream may be out of step now: drop it and connect again later
            self.close()
            self._failed_ms = _ms()
            raise OSError(ETIMEDOUT)
        self.transactions += 1
        pin = self.pin
        pin.level = hdr[1] & 1
        edges = hdr[2] | (hdr[3] << 8)
        last = self._edges
        self._edges = edges
        if last is not None and fire and edges != last:
            pin._fire((edges - last) & 0xFFFF)
        if status == ERROR_MESSAGE:
            raise ValueError((data or b"").decode())
        if status:
            raise OSError(status)
        if into is not None and data is not None:
            for i in range(len(into)):  # only when the sizes disagree, i.e. never from the server
                into[i] = data[i] if i < len(data) else 0
            return None
        return data

    # ------------------------------------------------------------------ machine.I2C
    def scan(self):
        return list(self._exchange(OP_SCAN, 0, 0))

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        if len(buf) > MAX_BYTES:
            raise ValueError("the simulator link carries at most %d bytes a transaction" % MAX_BYTES)
        self._exchange(OP_READ_MEM, addr, memaddr, None, buf, len(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf, addrsize)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._exchange(OP_WRITE_MEM, addr, memaddr, buf)

    def readfrom_into(self, addr, buf, stop=True):
        if len(buf) > MAX_BYTES:
            raise ValueError("the simulator link carries at most %d bytes a transaction" % MAX_BYTES)
        self._exchange(OP_READ, addr, 0, None, buf, len(buf))

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)

    def writeto(self, addr, buf, stop=True):
        self._exchange(OP_WRITE, addr, 0, buf)
        return len(buf)  # machine.I2C counts the ACKed data bytes

    def writevto(self, addr, vector, stop=True):
        data = bytearray()
        for part in vector:
            data.extend(part)
        return self.writeto(addr, data, stop)

    # ------------------------------------------------------------------ beyond machine.I2C
    def poll(self, fire=True):
        """Fetch the DRDY level and deliver new edges (the host profile does this every 10 ms)."""
        self._exchange(OP_POLL, 0, 0, fire=fire)

    def peek(self, addr, reg, n):
        """Registers as they are, without a bus transaction (for tests)."""
        return self._exchange(OP_PEEK, addr, reg, n=n)

    def control(self, command):
        """A sim_control command, applied before this returns."""
        self._exchange(OP_CONTROL, 0, 0, command.encode())

    def stop_server(self):
        self._exchange(OP_STOP, 0, 0)
        self.close()
