"""The MQTT wire: one broker connection (socket, TLS, framing) and the packets that go over it.

    wire = MqttWire(clock, on_message)                   # on_message(topic bytes, message bytes)
    await wire.open("192.168.1.5", 1883, 5000)           # TCP (tls=True: and the TLS handshake)
    wire.connect("gw", 60, None, None, b"rbamp/gw/availability", b"offline", 1, True)
    await wire.flush(5000)
    while wire.connack is None:
        await wire.receive()                             # waits until the socket has bytes
    pid = wire.publish(b"rbamp/gw/totals", b"{}", True, 1)
    await wire.flush(5000)
    while wire.ack(pid) is None:                         # the PUBACK's code, once it arrived
        await wire.receive()
    wire.close()

This is the only module that knows umqtt.simple and the ports' socket quirks. Nothing here
decides what to publish or when to give up on a broker: that is gateway.mqtt_link.

Why the socket is not left to umqtt.simple: its calls block (connect, every read, the wait for a
PUBACK), and the gateway is one asyncio loop whose metering must not stop while a broker dawdles.
So the wire owns a non-blocking socket. umqtt.simple still encodes PUBLISH and SUBSCRIBE and
decodes incoming PUBLISH and PINGRESP, over an in-memory stand-in for its socket
(``_UmqttSocket``): it writes into a buffer the wire sends, and ``wait_msg()`` is handed a
packet only once it is complete in memory. CONNECT (umqtt's connect() opens its own blocking
socket) and UNSUBSCRIBE (umqtt.simple 1.3.4 has none) are encoded here, and so are the acks
(CONNACK, PUBACK, SUBACK, UNSUBACK), which are read into ``connack`` and ``ack(pid)``.

Waiting for bytes is asyncio's own poll of the socket (MicroPython: its ``Stream``; CPython: the
loop's ``add_reader``): no polling loop. Two short clock-paced loops remain, both rare: the TCP
connect (once per session) and a send the kernel does not take (its buffer full: a broker that
stopped reading).

umqtt.simple reports protocol errors with ``assert``, which frozen builds may compile out: the
caller ends the session on any exception (OSError, MqttError, AssertionError, garbage leading to
IndexError and the like); ``describe_error`` names them.

Blocking that remains: the DNS lookup of a host name (``getaddrinfo`` has no timeout on the
boards; an IP address avoids it) and, with TLS, the handshake (bounded by the socket timeout).

With TLS, ``ca_file`` may hold PEM (one or more certificates) or one DER certificate; they are
loaded as DER, because MicroPython's TLS may be built without a PEM parser. Without ``ca_file``
the connection is encrypted but the broker's certificate is not verified.
"""

import asyncio
import errno
import select
import socket
import struct
import sys

MAX_PACKET = 8192
MAX_TOPIC = 200
CONNECT_POLL_MS = 10
SEND_RETRY_MS = 10
_CHUNK = 512

# "Not now, try again" from a non-blocking socket, by port: EAGAIN/EWOULDBLOCK everywhere; the
# ESP32's lwIP sockets also answer 118 and 119 while a connection is not ready, the RP2 port
# -110; ETIMEDOUT comes from a socket that still had a timeout set (the TLS handshake's).
_BUSY = (errno.EAGAIN, getattr(errno, "EWOULDBLOCK", errno.EAGAIN), errno.ETIMEDOUT, 118, 119, -110)
_CONNECTING = (errno.EINPROGRESS, getattr(errno, "EALREADY", errno.EINPROGRESS)) + _BUSY
_MICROPYTHON = sys.implementation.name == "micropython"

CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class MqttError(Exception):
    """The broker refused us or broke the protocol."""


class _ReplyDeferred(Exception):
    """umqtt.simple tried to read a reply inline (see MqttWire._without_waiting)."""


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return out


def as_bytes(value):
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def connect_packet(client_id, keepalive_s, user=None, password=None, will_topic=None,
                   will_message=None, will_qos=0, will_retain=False):
    """An MQTT 3.1.1 CONNECT packet (clean session). Lengths count UTF-8 bytes, not characters."""
    flags = 0x02
    fields = [as_bytes(client_id)]
    if will_topic is not None:
        flags |= 0x04 | (will_qos & 0x03) << 3 | (0x20 if will_retain else 0)
        fields.append(as_bytes(will_topic))
        fields.append(as_bytes(will_message))
    if user is not None:
        flags |= 0x80
        fields.append(as_bytes(user))
        if password is not None:
            flags |= 0x40
            fields.append(as_bytes(password))
    body = bytearray(b"\x00\x04MQTT\x04")
    body.append(flags)
    body.append(keepalive_s >> 8 & 0xFF)
    body.append(keepalive_s & 0xFF)
    for field in fields:
        body.extend(struct.pack("!H", len(field)))
        body.extend(field)
    packet = bytearray(b"\x10")
    packet.extend(_varint(len(body)))
    packet.extend(body)
    return packet


def unsubscribe_packet(pid, topic):
    topic = as_bytes(topic)
    packet = bytearray(b"\xa2")
    packet.extend(_varint(2 + 2 + len(topic)))
    packet.extend(struct.pack("!HH", pid, len(topic)))
    packet.extend(topic)
    return packet


def describe_error(exc):
    """A log-friendly one-liner; umqtt's bare asserts get a name."""
    if isinstance(exc, AssertionError):
        return "protocol error (umqtt.simple assertion %s)" % (exc.args[0] if exc.args else "failed")
    text = str(exc)
    name = type(exc).__name__
    return "%s: %s" % (name, text) if text else name


def _busy(exc, would_block=()):
    if would_block and isinstance(exc, would_block):
        return True
    return bool(exc.args) and exc.args[0] in _BUSY


class _UmqttSocket:
    """What umqtt.simple's client sees as its socket: bytes in memory on both sides.

    ``write`` queues bytes for the wire to send; ``read`` serves bytes already received and
    never waits (``_ReplyDeferred`` while ``deferring``, MqttError past the end of the data)."""

    def __init__(self):
        self.deferring = False
        self.rx = bytearray()
        self.pos = 0
        self.tx = bytearray()
        self.tx_pos = 0

    def write(self, data, length=None):
        view = memoryview(as_bytes(data) if isinstance(data, str) else data)
        if length is not None:
            view = view[:length]
        self.tx.extend(view)
        return len(view)

    def read(self, n):
        if self.deferring:
            raise _ReplyDeferred()
        if len(self.rx) - self.pos < n:
            raise MqttError("packet shorter than its contents claim")
        out = bytes(self.rx[self.pos:self.pos + n])
        self.pos += n
        return out

    def setblocking(self, flag):
        pass  # reads here never wait

    def close(self):
        pass  # the wire closes the real socket

    def feed(self, data):
        """Bytes received: drop what was read, keep the rest and add these."""
        if self.pos:
            self.rx = self.rx[self.pos:]
            self.pos = 0
        self.rx.extend(data)

    def next_packet(self):
        """(first byte, total length) of the complete packet at the read position, or None."""
        rx = self.rx
        start = self.pos
        available = len(rx) - start
        if available < 2:
            return None
        remaining = 0
        shift = 0
        i = 1
        while True:
            if i > 4:
                raise MqttError("malformed remaining length")
            if i >= available:
                return None
            byte = rx[start + i]
            remaining |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        if remaining > MAX_PACKET:
            raise MqttError("incoming packet of %d bytes is over the %d limit" % (remaining, MAX_PACKET))
        total = i + remaining
        return (rx[start], total) if available >= total else None


class MqttWire:
    """One broker connection. Not reusable: open a new one for each session."""

    def __init__(self, clock, on_message, client_class=None):
        if client_class is None:
            from umqtt.simple import MQTTClient

            client_class = MQTTClient
        self.clock = clock
        self._on_message = on_message
        self._client_class = client_class
        self._client = None
        self._buffers = _UmqttSocket()
        self._sock = None
        self._reader = None  # MicroPython: asyncio's Stream over the socket (its readiness wait)
        self._fd = None      # CPython: the descriptor the loop watches while receive() waits
        self._would_block = ()  # exception types meaning "try again" (CPython's TLS)
        self._chunk = bytearray(_CHUNK)
        self._acks = {}
        self.connack = None
        self.ping_sent_ms = None  # ticks of the PINGREQ that awaits its PINGRESP
        self.last_rx_ms = clock.ticks_ms()
        self.last_tx_ms = self.last_rx_ms

    # ------------------------------------------------------------------ connection
    async def open(self, host, port, timeout_ms, tls=False, ca_file=None):
        """TCP connection (and TLS handshake) bounded by timeout_ms of the clock."""
        clock = self.clock
        start = clock.ticks_ms()
        info = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        if not info:
            raise OSError(errno.EHOSTUNREACH, "no address for %s" % host)
        family, kind, proto, _, address = info[0][:5]
        sock = socket.socket(family, kind, proto)
        self._sock = sock
        sock.setblocking(False)
        try:
            sock.connect(address)
        except OSError as exc:
            if not (exc.args and exc.args[0] in _CONNECTING):
                raise
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        while True:
            events = poller.poll(0)
            if events:
                if events[0][1] & (select.POLLERR | select.POLLHUP):
                    raise OSError(errno.ECONNREFUSED, "connection to %s:%d refused" % (host, port))
                break
            if clock.ticks_diff(clock.ticks_ms(), start) >= timeout_ms:
                raise OSError(errno.ETIMEDOUT, "TCP connect to %s:%d timed out" % (host, port))
            # once per session: asyncio has no portable wait for a connect to complete
            await clock.asleep_ms(CONNECT_POLL_MS)
        poller.unregister(sock)
        if tls:
            sock, self._would_block = _wrap_tls(sock, host, ca_file, timeout_ms)
            self._sock = sock
        if _MICROPYTHON:
            self._reader = asyncio.StreamReader(sock)  # pyright: ignore[reportCallIssue]  # MicroPython's Stream(sock)
        else:
            self._fd = sock.fileno()  # pyright: ignore[reportAttributeAccessIssue]  # CPython only
        self._client = self._client_class("", host, port)
        self._client.sock = self._buffers  # pyright: ignore[reportAttributeAccessIssue]  # umqtt types it by its None
        self._client.set_callback(self._on_message)

    def close(self):
        sock = self._sock
        self._sock = None
        if self._fd is not None:
            # synchronously: the descriptor may be reused before a cancelled receive() runs again
            asyncio.get_event_loop().remove_reader(self._fd)
            self._fd = None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass  # closing a socket the peer already dropped: nothing left to release

    @property
    def is_open(self):
        return self._sock is not None

    def _sock_or_fail(self):
        sock = self._sock
        if sock is None:
            raise OSError(errno.ECONNRESET, "connection closed")
        return sock

    # ------------------------------------------------------------------ packets out
    def connect(self, client_id, keepalive_s, user, password, will_topic, will_message, will_qos, will_retain):
        self._buffers.write(connect_packet(client_id, keepalive_s, user, password, will_topic,
                                           will_message, will_qos, will_retain))

    def publish(self, topic, payload, retain, qos):
        """Queue a PUBLISH; returns its packet id (0 at QoS 0), which ack(pid) reports on."""
        self._wrap_pid()
        self._without_waiting(self._client.publish, topic, payload, retain, qos)  # pyright: ignore[reportOptionalMemberAccess]
        return self._client.pid if qos else 0  # pyright: ignore[reportOptionalMemberAccess]

    def subscribe(self, topic):
        """Queue a SUBSCRIBE at QoS 0; returns its packet id (ack(pid): the SUBACK's code)."""
        if len(topic) > MAX_TOPIC:
            raise ValueError("topic too long to subscribe: %r" % (topic,))
        self._wrap_pid()
        self._without_waiting(self._client.subscribe, topic, 0)  # pyright: ignore[reportOptionalMemberAccess]
        return self._client.pid  # pyright: ignore[reportOptionalMemberAccess]

    def unsubscribe(self, topic):
        client = self._client
        client.pid = client.pid % 0xFFFF + 1  # pyright: ignore[reportOptionalMemberAccess]
        self._buffers.write(unsubscribe_packet(client.pid, topic))  # pyright: ignore[reportOptionalMemberAccess]
        return client.pid  # pyright: ignore[reportOptionalMemberAccess]

    def ping(self):
        self._client.ping()  # pyright: ignore[reportOptionalMemberAccess]
        self.ping_sent_ms = self.clock.ticks_ms()

    def disconnect(self):
        self._buffers.write(b"\xe0\x00")

    @property
    def last_pid(self):
        """The packet id used last (a test sets it to start near the wrap)."""
        return self._client.pid  # pyright: ignore[reportOptionalMemberAccess]

    @last_pid.setter
    def last_pid(self, pid):
        self._client.pid = pid  # pyright: ignore[reportOptionalMemberAccess]

    def _wrap_pid(self):
        # umqtt.simple increments pid without bound; packet ids are 16-bit and never 0
        if self._client.pid >= 0xFFFF:  # pyright: ignore[reportOptionalMemberAccess]
            self._client.pid = 0  # pyright: ignore[reportOptionalMemberAccess]

    def _without_waiting(self, call, *args):
        # umqtt.simple's publish (QoS 1) and subscribe write their packet and then read the reply
        # inline, blocking until it comes. Its client cannot be told not to, and returning bytes
        # from the read would mean forging the broker's reply; so the read of our in-memory
        # socket raises once the packet is written, and only here is that exception caught. The
        # reply is handled when it arrives (receive(), ack()).
        buffers = self._buffers
        buffers.deferring = True
        try:
            call(*args)
        except _ReplyDeferred:
            pass
        finally:
            buffers.deferring = False

    def tx_pending(self):
        buffers = self._buffers
        return len(buffers.tx) - buffers.tx_pos

    async def flush(self, timeout_ms):
        """Send everything queued; OSError(ETIMEDOUT) if the kernel will not take it in time."""
        clock = self.clock
        start = clock.ticks_ms()
        buffers = self._buffers
        while buffers.tx_pos < len(buffers.tx):
            if self._send_some():
                continue
            if clock.ticks_diff(clock.ticks_ms(), start) >= timeout_ms:
                raise OSError(errno.ETIMEDOUT, "the broker does not take our data")
            await clock.asleep_ms(SEND_RETRY_MS)
        buffers.tx = bytearray()
        buffers.tx_pos = 0
        self.last_tx_ms = clock.ticks_ms()

    def _send_some(self):
        sock = self._sock_or_fail()
        buffers = self._buffers
        view = memoryview(buffers.tx)[buffers.tx_pos:]
        try:
            sent = sock.send(view) if hasattr(sock, "send") else sock.write(view)
        except OSError as exc:
            if _busy(exc, self._would_block):
                return 0
            raise
        if not sent:
            return 0
        buffers.tx_pos += sent
        return sent

    # ------------------------------------------------------------------ packets in
    async def receive(self):
        """Wait until the socket has bytes, read them and handle every complete packet (acks,
        CONNACK, PINGRESP; messages go to on_message). Returns the number of packets handled (0:
        a packet is still incomplete). OSError once the broker closed the connection."""
        sock = self._sock_or_fail()
        if _MICROPYTHON:
            try:
                got = await self._reader.readinto(self._chunk)  # pyright: ignore[reportOptionalMemberAccess]
            except OSError as exc:
                if not _busy(exc):
                    raise
                got = None
        else:
            got = await self._receive_cpython(sock)
        if got is None:
            return 0  # woken without data (a TLS record not complete yet)
        if not got:
            raise OSError(errno.ECONNRESET, "the broker closed the connection")
        self._buffers.feed(memoryview(self._chunk)[:got])
        return self.handle_packets()

    async def _receive_cpython(self, sock):
        pending = getattr(sock, "pending", None)
        if not (pending is not None and pending()):  # TLS may hold decrypted bytes the kernel no longer shows
            loop = asyncio.get_event_loop()
            ready = loop.create_future()  # pyright: ignore[reportAttributeAccessIssue]

            def readable():
                if not ready.done():
                    ready.set_result(None)

            loop.add_reader(self._fd, readable)  # pyright: ignore[reportAttributeAccessIssue, reportArgumentType]
            try:
                await ready
            finally:
                if self._fd is not None:
                    loop.remove_reader(self._fd)  # pyright: ignore[reportAttributeAccessIssue]
            sock = self._sock_or_fail()
        try:
            return sock.recv_into(self._chunk)  # pyright: ignore[reportAttributeAccessIssue]  # CPython only
        except OSError as exc:
            if _busy(exc, self._would_block):
                return None
            raise

    def handle_packets(self):
        """Handle every complete packet already received; returns how many."""
        buffers = self._buffers
        handled = 0
        while True:
            head = buffers.next_packet()
            if head is None:
                return handled
            self._dispatch(head[0], head[1])
            self.last_rx_ms = self.clock.ticks_ms()
            handled += 1

    def ack(self, pid):
        """The code of the PUBACK/SUBACK/UNSUBACK for pid (0 or a SUBACK's code), once; else None."""
        return self._acks.pop(pid, None)

    def _dispatch(self, first, total):
        buffers = self._buffers
        kind = first & 0xF0
        end = buffers.pos + total
        if kind == 0x30 or first == 0xD0:
            if first == 0xD0:
                self.ping_sent_ms = None
            self._client.wait_msg()  # pyright: ignore[reportOptionalMemberAccess]
            if buffers.pos != end:
                raise MqttError("umqtt.simple read %d bytes of a %d-byte packet" % (
                    buffers.pos - end + total, total))
            return
        packet = buffers.read(total)
        body = packet[total - 2:] if total >= 4 else b""
        if first == 0x20 and total == 4:
            self.connack = packet[3]
        elif first == 0x40 and total == 4:
            self._acks[body[0] << 8 | body[1]] = 0
        elif first == 0x90 and total == 5:
            self._acks[packet[2] << 8 | packet[3]] = packet[4]
        elif first == 0xB0 and total == 4:
            self._acks[body[0] << 8 | body[1]] = 0
        else:
            raise MqttError("unexpected packet 0x%02x of %d bytes" % (first, total))


def _wrap_tls(sock, host, ca_file, timeout_ms):
    """The TLS socket and the exception types that mean "would block" on it."""
    import ssl

    # the handshake blocks: bound it by the socket timeout, then go back to non-blocking
    sock.setblocking(True)
    sock.settimeout(timeout_ms / 1000)
    if hasattr(ssl, "SSLContext"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca_file:
            context.verify_mode = ssl.CERT_REQUIRED
            for der in ca_certificates(ca_file):
                context.load_verify_locations(cadata=der)
        else:
            if hasattr(context, "check_hostname"):
                context.check_hostname = False  # pyright: ignore[reportAttributeAccessIssue]  # CPython's ssl only
            context.verify_mode = ssl.CERT_NONE
        wrapped = context.wrap_socket(sock, server_hostname=host)
    else:
        wrapped = ssl.wrap_socket(sock, server_hostname=host)
    wrapped.setblocking(False)
    would_block = tuple(getattr(ssl, name) for name in ("SSLWantReadError", "SSLWantWriteError")
                        if hasattr(ssl, name))
    return wrapped, would_block


def ca_certificates(path):
    """The DER certificates in a CA file (PEM with one or more certificates, or one DER one).

    DER because MicroPython's TLS may be built without a PEM parser (the unix port's is)."""
    from binascii import a2b_base64

    with open(path, "rb") as fh:
        data = fh.read()
    if b"-----BEGIN" not in data:
        return [data]
    found = []
    begin = b"-----BEGIN CERTIFICATE-----"
    end = b"-----END CERTIFICATE-----"
    start = data.find(begin)
    while start >= 0:
        stop = data.find(end, start)
        if stop < 0:
            break
        body = b"".join(data[start + len(begin):stop].split())
        found.append(a2b_base64(body))
        start = data.find(begin, stop)
    if not found:
        raise ValueError("no certificate in %s" % path)
    return found
