"""The simulator server: the simulated modules of one data folder in a process of their own, in
real time, so they outlive the gateway as a module outlives a board that resets (CPython).

    PYTHONPATH=tools:lib python -m rbampsim.server --data .run [--idle-exit 60]

It builds the modules from ``DATA/config.json`` (``modules[].address``) and ``RBAMP_SIM``,
``RBAMP_SIM_SEED``, ``RBAMP_SIM_HOUR`` (see ``rbampsim.host``), applies what ``DATA/sim_control``
holds, then listens on a loopback port it writes to ``DATA/sim_port`` (``<port> <pid>``). The
protocol is in ``rbampsim.remote``. Every new gateway connection gets the pending sim_control
commands applied before its first transaction is answered; otherwise the file is read every
100 ms. ``DATA/sim_truth.json`` is written every second, after commands and at exit. One server
per data folder (``DATA/sim.lock``); its log is ``DATA/sim.log`` when a gateway started it.

It stops on SIGTERM/SIGINT or the ``x`` request (``stop()`` below), when the data folder goes
away, and, with ``--idle-exit S`` (what a gateway that starts it asks for), after S seconds
without any connection. Host-side helpers for ``make run`` and the tests: ``start``, ``stop``,
``running``.
"""

import argparse
import errno
import fcntl
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

from rbampsim import remote
from rbampsim.host import DEFAULT_ADDRESS, SimHost, addresses_from_config

TICK_S = 0.01
CONTROL_EVERY_S = 0.1
TRUTH_EVERY_S = 1.0
ALREADY_RUNNING = 3


def _log(text):
    sys.stdout.write("%s rbampsim.server[%d]: %s\n" % (time.strftime("%H:%M:%S"), os.getpid(), text))
    sys.stdout.flush()


class _Connection:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.drdy = None  # the module whose DRDY pin this gateway has


class Server:
    def __init__(self, data_dir, host, idle_exit_s=0):
        self.data_dir = data_dir
        self.host = host
        self.idle_exit_s = idle_exit_s
        self.stopping = None
        self.connections = []
        self.selector = selectors.DefaultSelector()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.port = self.listener.getsockname()[1]

    # ------------------------------------------------------------------ the loop
    def run(self):
        self._obey()
        self._write_port_file()
        _log("serving %s on 127.0.0.1:%d (modules %s)" % (self.data_dir, self.port, self._names()))
        next_control = time.monotonic()
        next_truth = next_control + TRUTH_EVERY_S  # after a second of running, as on every second
        last_active = time.monotonic()
        while self.stopping is None:
            for key, _ in self.selector.select(TICK_S):
                if key.data is None:
                    self._accept()
                else:
                    self._serve(key.data)
            now = time.monotonic()
            self.host.sync()  # DRDY pulses and windows on time, even with nobody asking
            if now >= next_control:
                next_control = now + CONTROL_EVERY_S
                self._obey()
            if now >= next_truth:
                next_truth = now + TRUTH_EVERY_S
                self.host.write_truth()
                if not os.path.isdir(self.data_dir):
                    self.stopping = "the data folder is gone"
                if self.connections:
                    last_active = now
                elif self.idle_exit_s and now - last_active > self.idle_exit_s:
                    self.stopping = "no gateway for %d s" % self.idle_exit_s
        self._shutdown()

    def _names(self):
        return ", ".join("0x%02x" % m.addr for m in self.host.modules) or "none yet"

    def _obey(self):
        pending = os.path.exists(os.path.join(self.data_dir, "sim_control"))
        for error in self.host.obey_file():
            _log(error)
        if pending:
            self.host.write_truth()  # a test that changed the hardware sees it in the truth at once

    def _write_port_file(self):
        path = os.path.join(self.data_dir, remote.PORT_FILE)
        with open(path + ".tmp", "w") as f:
            f.write("%d %d\n" % (self.port, os.getpid()))
        os.replace(path + ".tmp", path)

    def _shutdown(self):
        _log("stopping: %s" % self.stopping)
        for conn in list(self.connections):
            self._drop(conn)
        self.selector.close()
        self.listener.close()
        found = remote.read_port_file(self.data_dir)
        if found is not None and found[1] == os.getpid():
            os.remove(os.path.join(self.data_dir, remote.PORT_FILE))
        if os.path.isdir(self.data_dir):
            self.host.write_truth()

    # ------------------------------------------------------------------ connections
    def _accept(self):
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(True)
        sock.settimeout(2)  # a gateway that stops reading mid-response is dropped, not waited for
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(sock)
        self.connections.append(conn)
        self.selector.register(sock, selectors.EVENT_READ, conn)

    def _drop(self, conn):
        self.selector.unregister(conn.sock)
        conn.sock.close()
        self.connections.remove(conn)

    def _serve(self, conn):
        try:
            data = conn.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(conn)  # the gateway exited or was killed
            return
        buf = conn.buf
        buf += data
        while len(buf) >= 4:
            op, addr, reg, n = buf[0], buf[1], buf[2], buf[3]
            size = 4 + (n if op in remote.PAYLOAD_OPS else 0)
            if len(buf) < size:
                break
            payload = bytes(buf[4:size])
            del buf[:size]
            try:
                conn.sock.sendall(self._answer(conn, op, addr, reg, n, payload))
            except OSError:
                self._drop(conn)
                return
            if op == remote.OP_STOP:
                self.stopping = "asked to stop"
                return

    def _answer(self, conn, op, addr, reg, n, payload):
        status = 0
        data = b""
        bus = self.host.bus
        try:
            if op == remote.OP_READ_MEM:
                data = bytearray(n)
                bus.readfrom_mem_into(addr, reg, data)
            elif op == remote.OP_POLL:
                pass
            elif op == remote.OP_WRITE_MEM:
                bus.writeto_mem(addr, reg, payload)
            elif op == remote.OP_READ:
                data = bytearray(n)
                bus.readfrom_into(addr, data)
            elif op == remote.OP_WRITE:
                bus.writeto(addr, payload)
            elif op == remote.OP_SCAN:
                data = bytes(bus.scan())
            elif op == remote.OP_HELLO:
                data = self._hello(conn, payload)
            elif op == remote.OP_PEEK:
                module = self.host.module_at(addr)
                if module is None:
                    raise OSError(errno.ENODEV, "no simulated module at 0x%02x" % addr)
                data = module.read_reg(reg, n)
            elif op == remote.OP_CONTROL:
                self.host.apply(payload.decode())
                self.host.write_truth()
            elif op != remote.OP_STOP:
                raise ValueError("unknown request 0x%02x" % op)
        except OSError as exc:
            # SimI2C raises OSError(ENODEV) (errno in args[0], as MicroPython's ports do)
            code = exc.errno if exc.errno is not None else (exc.args[0] if exc.args else None)
            status = code if isinstance(code, int) and 0 < code < remote.ERROR_MESSAGE else errno.EIO
            data = b""
        except ValueError as exc:
            status = remote.ERROR_MESSAGE
            data = str(exc).encode()[:remote.MAX_BYTES]
        level, edges = 1, 0
        if conn.drdy is not None:
            level = conn.drdy.drdy.value()  # commits what is due, so the edges are current
            edges = conn.drdy.drdy.pulses & 0xFFFF
        return bytes((status, level, edges & 0xFF, edges >> 8, len(data))) + bytes(data)

    def _hello(self, conn, payload):
        addresses = list(payload[4:])
        before = len(self.host.modules)
        self.host.ensure(addresses)
        if len(self.host.modules) != before:
            self.host.write_truth()
        # what a test wrote before this gateway started happens before its first transaction
        self._obey()
        conn.drdy = self.host.module_at(addresses[0]) if addresses else None
        if addresses:  # (tests and stop() connect without modules)
            _log("gateway connected (modules %s)" % ", ".join("0x%02x" % a for a in addresses))
        return remote.MAGIC


def main(argv=None):
    parser = argparse.ArgumentParser(description="Simulated rbAmp modules for one data folder")
    parser.add_argument("--data", required=True, help="the gateway's data folder")
    parser.add_argument("--idle-exit", type=float, default=0,
                        help="stop after this many seconds without any connection (0: never)")
    args = parser.parse_args(argv)
    # Started by a gateway through a shell: keep none of its files (an inherited MQTT socket
    # would keep the broker from seeing the gateway die) and leave its session, so that signals
    # meant for the gateway do not reach the modules.
    os.closerange(3, 4096)
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader (start() below)
    data_dir = os.path.abspath(args.data)
    if not os.path.isdir(data_dir):
        _log("no data folder %s" % data_dir)
        return 2
    lock = open(os.path.join(data_dir, "sim.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _log("a simulator already runs for %s" % data_dir)
        return ALREADY_RUNNING
    from rbampsim.clock import RealClock

    try:
        host = SimHost.from_env(data_dir, RealClock(), os.environ.get)
    except ValueError as exc:
        _log(str(exc))
        return 2
    host.ensure(addresses_from_config(os.path.join(data_dir, "config.json")) or [DEFAULT_ADDRESS])
    server = Server(data_dir, host, args.idle_exit)

    def on_signal(signum, frame):
        server.stopping = "signal %d" % signum

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    server.run()
    return 0


# ---------------------------------------------------------------------- host-side helpers
def _alive(pid):
    """True while the process exists and is not a zombie (an orphan may wait to be reaped)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def running(data_dir):
    """(port, pid) of the server that answers for ``data_dir``, or None."""
    found = remote.read_port_file(data_dir)
    if found is None or not _alive(found[1]):
        return None
    bus = remote.RemoteI2C(data_dir, [])
    try:
        return found if bus.connect() else None
    finally:
        bus.close()


def stop(data_dir, pid=None, timeout_s=10):
    """Stop the server of ``data_dir`` (only if its pid is ``pid``, when given) and wait until
    its process is gone. True if one was stopped."""
    found = running(data_dir)
    if found is None or (pid is not None and found[1] != pid):
        return False
    bus = remote.RemoteI2C(data_dir, [])
    if bus.connect():
        try:
            bus.stop_server()
        except OSError:
            pass  # it is stopping
    deadline = time.monotonic() + timeout_s
    while _alive(found[1]):
        if time.monotonic() > deadline:
            os.kill(found[1], signal.SIGKILL)
            break
        time.sleep(0.02)
    return True


def start(data_dir, env=None, timeout_s=20):
    """Start a server for ``data_dir`` as a child of this process (the caller stops it with
    ``stop`` and then waits for the returned Popen). A server already running there is stopped
    first, so the new one has this environment's RBAMP_SIM settings."""
    stop(data_dir)
    tools = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lib = os.path.join(os.path.dirname(tools), "lib")
    child_env = dict(env if env is not None else os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join([tools, lib])
    log = open(os.path.join(data_dir, "sim.log"), "a")
    proc = subprocess.Popen([sys.executable, "-m", "rbampsim.server", "--data", os.path.abspath(data_dir)],
                            env=child_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout_s
    while True:
        found = remote.read_port_file(data_dir)
        if found is not None and found[1] == proc.pid:
            return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)
            with open(os.path.join(data_dir, "sim.log"), errors="replace") as f:
                tail = f.read()[-2000:]
            raise RuntimeError("the simulator server did not start for %s:\n%s" % (data_dir, tail))
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main())
