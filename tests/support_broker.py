"""Test support for the MQTT link: broker address, an independent observer client, fake servers.

Runs under every runtime. On CPython, umqtt.simple (written for MicroPython) needs the names
``usocket``, ``ustruct`` and ``ubinascii``: ``install_umqtt_names()`` maps them to the standard
modules, here and never in lib/. The observer is umqtt.simple's own client (its own connect(),
not the link's code), over a socket wrapper with a timeout so a test can never hang on it.
"""

import os
import sys

import xrt

try:
    import asyncio
except ImportError:  # every runtime we test has it
    asyncio = None

_counter = [0]


def install_umqtt_names():
    if xrt.is_micropython():
        return
    import binascii
    import socket
    import struct

    sys.modules.setdefault("usocket", socket)
    sys.modules.setdefault("ustruct", struct)
    sys.modules.setdefault("ubinascii", binascii)


def umqtt_module():
    install_umqtt_names()
    import umqtt.simple

    return umqtt.simple


def broker_address():
    host = os.getenv("XRT_MQTT_HOST")
    port = os.getenv("XRT_MQTT_PORT")
    if not host or not port:
        raise xrt.Skip("no broker (the module needs NEEDS_BROKER = True)")
    return host, int(port)


def broker_kind():
    return os.getenv("XRT_MQTT_BROKER") or ""


def unique(name):
    """A name no other test or runtime uses on the shared broker (retained messages persist)."""
    _counter[0] += 1
    return "%s-%s-%d" % (name, xrt.runtime(), _counter[0])


def full_mqtt_config(**overrides):
    """An mqtt section as gateway.config hands it to the link: every key present, the port
    resolved. Values are taken as given (the link trusts them: keepalive 1 s is fine here)."""
    cfg = {"host": None, "port": 1883, "user": None, "password": None, "tls": False, "ca_file": None,
           "client_id": None, "base_topic": "rbamp", "keepalive": 60, "qos": 1, "timeout_s": 5}
    for key in overrides:
        if key not in cfg:
            raise KeyError("not an mqtt config key: %r" % key)
        cfg[key] = overrides[key]
    return cfg


def mqtt_config(**overrides):
    """The mqtt section for the test broker, under a base topic of its own."""
    host, port = broker_address()
    cfg = {"host": host, "port": port, "base_topic": unique("xrt"), "timeout_s": 2}
    cfg.update(overrides)
    return full_mqtt_config(**cfg)


class ListLog:
    """The gateway logger's interface; keeps formatted lines for assertions."""

    def __init__(self):
        self.lines = []

    def _add(self, level, fmt, args):
        self.lines.append("%s %s" % (level, fmt % args if args else fmt))

    def debug(self, fmt, *args):
        self._add("D", fmt, args)

    def info(self, fmt, *args):
        self._add("I", fmt, args)

    def warning(self, fmt, *args):
        self._add("W", fmt, args)

    def error(self, fmt, *args):
        self._add("E", fmt, args)

    def text(self):
        return "\n".join(self.lines)


# ---------------------------------------------------------------------- the observer

class _TimeoutSocket:
    """The socket interface umqtt.simple uses (read/write/setblocking), with a timeout.

    setblocking(True) restores the timeout instead of blocking forever, and a non-blocking read
    with nothing to read returns None, as MicroPython's stream sockets do."""

    def __init__(self, *args):
        import socket

        self._sock = socket.socket(*args)
        self._timeout = 5
        self._sock.settimeout(self._timeout)

    def connect(self, address):
        self._sock.connect(address)

    def settimeout(self, timeout):
        # umqtt.simple's connect(timeout=None) asks for a blocking socket: the guard timeout stays
        self._sock.settimeout(self._timeout if timeout is None else min(timeout, self._timeout))

    def setblocking(self, flag):
        if flag:
            self._sock.settimeout(self._timeout)
        else:
            self._sock.setblocking(False)

    def write(self, data, length=None):
        view = memoryview(data.encode() if isinstance(data, str) else data)
        if length is not None:
            view = view[:length]
        sent = 0
        while sent < len(view):
            sent += self._sock.send(view[sent:])
        return sent

    def read(self, n):
        out = b""
        while len(out) < n:
            try:
                chunk = self._sock.recv(n - len(out))
            except OSError as exc:
                if exc.args and exc.args[0] == 11 and not out:
                    return None
                raise
            if not chunk:
                break
            out += chunk
        return out

    def readable(self):
        import select

        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        return bool(poller.poll(0))

    def close(self):
        self._sock.close()


class _SocketNames:
    """Stands in for umqtt.simple's ``socket`` module name, so its connect() uses _TimeoutSocket."""

    @staticmethod
    def socket(*args):
        return _TimeoutSocket(*args)

    @staticmethod
    def getaddrinfo(host, port, *args):
        import socket

        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)


class Observer:
    """An independent MQTT client (umqtt.simple's own connect) that records what it receives.

    ``poll()`` never waits: it handles only what has arrived. With ``persistent=True`` the broker
    keeps the session (and queues QoS 1 messages) while the observer is away; ``reconnect()``
    picks it up again."""

    def __init__(self, *topics, qos=0, persistent=False, client_id=None):
        module = umqtt_module()
        module.socket = _SocketNames
        self.host, self.port = broker_address()
        self.client_id = client_id or unique("obs")
        self.topics = topics
        self.qos = qos
        self.persistent = persistent
        self.messages = []
        self._class = module.MQTTClient
        self.client = None
        self.connect()

    def connect(self):
        client = self._class(self.client_id, self.host, self.port, keepalive=0)
        client.set_callback(self._received)
        client.connect(clean_session=not self.persistent)
        self.client = client
        for topic in self.topics:
            client.subscribe(topic, self.qos)

    def reconnect(self):
        self.close(abrupt=True)
        self.connect()

    def _received(self, topic, message):
        self.messages.append((topic.decode() if isinstance(topic, bytes) else topic, bytes(message)))

    def poll(self):
        sock = self.client.sock
        while sock.readable():
            self.client.wait_msg()

    def sync(self, timeout_ms=5000):
        """Round trip through the broker: once our own message comes back, the broker has handled
        everything we sent before it (e.g. the PUBACKs for QoS 1 deliveries)."""
        topic = "xrt-sync/" + self.client_id
        if topic not in self.topics:
            self.client.subscribe(topic, 0)
            self.topics = self.topics + (topic,)
        before = len(self.payloads(topic))
        self.publish(topic, b"sync")
        if not poll_until(lambda: len(self.payloads(topic)) > before, timeout_ms, self):
            raise AssertionError("no round trip through the broker within %d ms" % timeout_ms)

    def payloads(self, topic):
        return [m for t, m in self.messages if t == topic]

    def last(self, topic):
        found = self.payloads(topic)
        return found[-1] if found else None

    def publish(self, topic, message, retain=False):
        self.client.publish(topic.encode(), message if isinstance(message, bytes) else message.encode(), retain)

    def clear(self):
        self.messages = []

    def close(self, abrupt=False):
        if self.client is None:
            return
        try:
            if abrupt:
                self.client.sock.close()
            else:
                self.client.disconnect()
        except OSError:
            pass
        self.client = None


def retained(topic, wait_ms=3000):
    """The retained payload on topic as a fresh subscriber sees it (None if there is none).

    Retained messages are delivered right after SUBACK; a message published afterwards on a
    marker topic by the same client comes back after them, which ends the wait without guessing."""
    marker = unique("marker")
    observer = Observer(topic, marker)
    try:
        observer.publish(marker, b"end")
        if not poll_until(lambda: observer.payloads(marker), wait_ms, observer):
            raise AssertionError("the marker message did not come back within %d ms" % wait_ms)
        found = observer.payloads(topic)
        return found[-1] if found else None
    finally:
        observer.close()


# ---------------------------------------------------------------------- waiting

def _ticks():
    import time

    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def _elapsed(start):
    import time

    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(_ticks(), start)
    return _ticks() - start


def poll_until(condition, timeout_ms, *observers):
    """Blocking wait (no asyncio) until condition() or the deadline; returns condition()."""
    import time

    start = _ticks()
    while True:
        for observer in observers:
            observer.poll()
        if condition():
            return True
        if _elapsed(start) >= timeout_ms:
            return bool(condition())
        time.sleep(0.005)


async def wait_until(condition, timeout_ms, what, *observers):
    """Await condition() (polling the observers) with a deadline; AssertionError naming `what`."""
    start = _ticks()
    while True:
        for observer in observers:
            observer.poll()
        if condition():
            return
        if _elapsed(start) >= timeout_ms:
            raise AssertionError("timed out after %d ms waiting for %s" % (timeout_ms, what))
        await asyncio.sleep(0.005)


def run(coro, timeout_s=60):
    """asyncio.run with an overall deadline, so a broken test fails instead of hanging."""

    async def guarded():
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(guarded())


async def finish(link, task, graceful=False):
    """Stop the link and make sure its task is gone (the next test gets a clean loop)."""
    await link.stop(graceful=graceful)
    if not task.done():
        task.cancel()
    try:
        await task
    except BaseException:  # noqa: B036 - a cancelled task ends with CancelledError
        pass


# ---------------------------------------------------------------------- fake servers

def listening_socket(backlog=4):
    """(socket, port) listening on loopback. MicroPython sockets have no getsockname(), so ports
    are tried from a per-process starting point until one binds."""
    import socket

    seed = os.urandom(2)
    start = (seed[0] << 8 | seed[1]) % 40000
    for i in range(200):
        port = 20000 + (start + i * 97) % 40000
        sock = socket.socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            sock.listen(backlog)
            return sock, port
        except OSError:
            sock.close()
    raise AssertionError("no free loopback port found")


class FakeServer:
    """Accepts connections in an asyncio task and answers each with `reply` (bytes, or None to
    stay silent), then either keeps the connection open or closes it. With a virtual `clock` it
    naps on that clock, so virtual time cannot run past a reply it has yet to send."""

    def __init__(self, reply=None, close_after_reply=False, clock=None):
        self.clock = clock
        self.sock, self.port = listening_socket()
        self.sock.setblocking(False)
        self.reply = reply
        self.close_after_reply = close_after_reply
        self.accepted = 0
        self.received = b""
        self._conns = []
        self._stopped = False

    async def serve(self):
        while not self._stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                conn = None
            if conn is not None:
                self.accepted += 1
                conn.setblocking(False)
                self._conns.append(conn)
                if self.reply is not None:
                    conn.send(self.reply)
                    if self.close_after_reply:
                        conn.close()
                        self._conns.remove(conn)
            for c in self._conns:
                try:
                    data = c.recv(256)
                    if data:
                        self.received += data
                except OSError:
                    pass
            if self.clock is not None:
                await self.clock.asleep_ms(1)
            else:
                await asyncio.sleep(0.005)

    def close(self):
        self._stopped = True
        for c in self._conns:
            c.close()
        self._conns = []
        self.sock.close()
