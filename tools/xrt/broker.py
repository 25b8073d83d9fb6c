"""A real MQTT broker for tests, and a remote control that test bodies can use from any runtime.

A cross-runtime test module that sets ``NEEDS_BROKER = True`` at module level gets a broker of its
own on a free loopback port for as long as its tests run (the pytest plugin calls
``ModuleBroker.start`` before the module's first test and ``close`` after its last). Every
runtime's process sees:

    XRT_MQTT_HOST, XRT_MQTT_PORT   where the broker listens
    XRT_MQTT_BROKER                "mosquitto" or "amqtt"
    XRT_BROKER_CONTROL             a loopback port of the control server (below)

The broker is mosquitto when it is installed (``.ci/run`` installs it), with persistence on so
retained messages and persistent sessions survive a stop/start, as on a real installation; else
amqtt from the venv, whose retained messages do not survive a restart.

Broker outages from inside a test body (CPython or MicroPython alike)::

    from xrt.broker import broker_control
    broker_control("stop")     # broker process ended; returns once the port refuses connections
    broker_control("start")    # same port again; returns once it accepts connections
    broker_control("pause")    # SIGSTOP: TCP connections are still accepted, nothing is answered
    broker_control("resume")   # SIGCONT

Each call is one line over TCP to a thread in the pytest process, which answers "ok" when the
broker is in the requested state. Importing this module does nothing; only ``broker_control``
is meant for MicroPython (the host side imports subprocess and threading inside its functions).
"""

import os
import socket

ENV_HOST = "XRT_MQTT_HOST"
ENV_PORT = "XRT_MQTT_PORT"
ENV_KIND = "XRT_MQTT_BROKER"
ENV_CONTROL = "XRT_BROKER_CONTROL"
COMMANDS = ("stop", "start", "pause", "resume")
READY_TIMEOUT_S = 20


def broker_control(command, timeout_s=60):
    """Ask the pytest process to stop/start/pause/resume this module's broker; waits for "ok"."""
    if command not in COMMANDS:
        raise ValueError("broker_control: unknown command %r (use one of %s)" % (command, COMMANDS))
    port = os.getenv(ENV_CONTROL)
    if not port:
        raise RuntimeError("broker_control: %s is not set (the module needs NEEDS_BROKER = True)" % ENV_CONTROL)
    sock = socket.socket()
    try:
        sock.settimeout(timeout_s)
        sock.connect(socket.getaddrinfo("127.0.0.1", int(port))[0][-1])
        sock.send((command + "\n").encode())
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(128)
            if not chunk:
                break
            reply += chunk
    finally:
        sock.close()
    text = reply.decode().strip()
    if text != "ok":
        raise RuntimeError("broker_control(%r) failed: %s" % (command, text or "no answer"))


# ---------------------------------------------------------------------- host side (CPython only)

def free_port():
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def accepts(port, host="127.0.0.1"):
    try:
        conn = socket.create_connection((host, port), timeout=0.5)
    except OSError:
        return False
    conn.close()
    return True


def mosquitto_path():
    import shutil

    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def amqtt_path():
    import sys

    candidate = os.path.join(os.path.dirname(sys.executable), "amqtt")
    return candidate if os.access(candidate, os.X_OK) else None


class Broker:
    """One broker process on a fixed loopback port, restartable on that port."""

    def __init__(self, workdir, port=None, kind=None, extra_config=""):
        self.workdir = workdir
        self.extra_config = extra_config  # more mosquitto.conf lines, e.g. a TLS listener
        os.makedirs(workdir, exist_ok=True)
        self.port = port or free_port()
        if kind is None:
            kind = "mosquitto" if mosquitto_path() else ("amqtt" if amqtt_path() else None)
        if kind is None:
            raise RuntimeError("no MQTT broker: install mosquitto (apt-get install mosquitto) or amqtt")
        self.kind = kind
        self.proc = None
        self.paused = False
        self._log = None

    def _command(self):
        if self.kind == "mosquitto":
            import getpass

            conf = os.path.join(self.workdir, "mosquitto.conf")
            with open(conf, "w", encoding="utf-8") as fh:
                fh.write("listener %d 127.0.0.1\n" % self.port)
                fh.write("allow_anonymous true\n")
                fh.write("persistence true\n")
                fh.write("persistence_location %s/\n" % self.workdir)
                fh.write("log_dest stderr\n")
                fh.write("log_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
                # run as root, mosquitto would switch to the 'mosquitto' user and lose the workdir
                fh.write("user %s\n" % getpass.getuser())
                fh.write(self.extra_config)
            return [mosquitto_path(), "-c", conf]
        conf = os.path.join(self.workdir, "amqtt.yaml")
        with open(conf, "w", encoding="utf-8") as fh:
            fh.write("listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:%d\n" % self.port)
            fh.write("plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                     "    allow_anonymous: true\n  amqtt.plugins.sys.broker.BrokerSysPlugin:\n"
                     "    sys_interval: 0\n")
        return [amqtt_path(), "-c", conf]

    def start(self):
        import subprocess
        import time

        if self.proc is not None:
            return
        self._log = open(os.path.join(self.workdir, "broker.log"), "ab")
        self.proc = subprocess.Popen(self._command(), stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir)
        self.paused = False
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not accepts(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s; log: %s" % (self.kind, self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("%s did not listen on port %d within %d s; log: %s"
                                   % (self.kind, self.port, READY_TIMEOUT_S, self.log_tail()))
            time.sleep(0.05)

    def stop(self):
        import signal
        import subprocess
        import time

        proc = self.proc
        if proc is None:
            return
        if self.paused:
            proc.send_signal(signal.SIGCONT)
            self.paused = False
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        deadline = time.monotonic() + 10
        while accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def pause(self):
        import signal

        if self.proc is None:
            raise RuntimeError("broker is not running")
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        import signal

        if self.proc is None:
            raise RuntimeError("broker is not running")
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def log_tail(self, size=2000):
        try:
            with open(os.path.join(self.workdir, "broker.log"), "rb") as fh:
                return fh.read()[-size:].decode(errors="replace")
        except OSError:
            return "(no log)"


class ModuleBroker:
    """A Broker plus the control server; ``env`` is what test processes need to see."""

    def __init__(self, broker):
        import threading

        self.broker = broker
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(4)
        # accept() must wake up now and then: closing a socket does not interrupt it on Linux
        self._server.settimeout(0.5)
        self.control_port = self._server.getsockname()[1]
        self._closing = False
        self._thread = threading.Thread(target=self._serve, name="xrt-broker-control", daemon=True)
        self._thread.start()
        self.env = {
            ENV_HOST: "127.0.0.1",
            ENV_PORT: str(broker.port),
            ENV_KIND: broker.kind,
            ENV_CONTROL: str(self.control_port),
        }

    @classmethod
    def start(cls, workdir, kind=None):
        broker = Broker(workdir, kind=kind)
        broker.start()
        return cls(broker)

    def _serve(self):
        while not self._closing:
            try:
                conn, _ = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    line = b""
                    while not line.endswith(b"\n"):
                        chunk = conn.recv(64)
                        if not chunk:
                            break
                        line += chunk
                    command = line.decode().strip()
                    with self._lock:
                        if command not in COMMANDS:
                            raise ValueError("unknown command %r" % command)
                        getattr(self.broker, command)()
                    conn.sendall(b"ok\n")
                except Exception as exc:  # the answer carries the failure to the test body
                    try:
                        conn.sendall(("error: %s\n" % exc).encode())
                    except OSError:
                        pass

    def close(self):
        self._closing = True
        try:
            self._server.close()
        except OSError:
            pass
        with self._lock:
            self.broker.stop()
