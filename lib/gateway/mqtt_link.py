"""The gateway's MQTT link: one asyncio task that keeps a broker connection alive and publishes.

    link = MqttLink(cfg["mqtt"], device_id, log, backlog=Backlog("/backlog.bin"))
    link.set_ha_prefix("homeassistant")
    link.set_discovery(discovery_messages(...))
    asyncio.create_task(link.run())          # never raises, never returns until stop()
    link.publish_state({...})                # live values: QoS 0, latest only, dropped offline
    link.publish_totals({...})               # retained, QoS 1 (mqtt.qos), latest wins
    link.publish_period({"seq": n, ...})     # held in RAM or into the durable backlog, QoS 1 in seq order
    await link.stop()                        # retained "offline", DISCONNECT

Topics, all under ``<base_topic>/<device_id>/``:

    availability  "online" / "offline", retained; "offline" is also the last will
    state         the state payload (see gateway.discovery), QoS 0, not retained
    totals        the totals payload, retained, QoS mqtt.qos
    period        one period record per period ({"seq": n, "ts": ..., "modules": {...}}), QoS mqtt.qos

plus the Home Assistant discovery messages (retained, QoS mqtt.qos) and a subscription to
``<ha prefix>/status``: when Home Assistant announces "online" (its birth message after a
restart) the discovery messages and "online" are published again.

The link also listens to its own availability topic: a broker that was stalled delivers the last
wills of our earlier, abandoned connections when it recovers, possibly after the new session's
"online"; seeing "offline" there while connected, the link publishes "online" again.

Why the socket is not left to umqtt.simple: its calls block (connect, every read, the wait for a
PUBACK), and the gateway is one asyncio loop whose metering must not stop while a broker dawdles.
So this module owns the socket: non-blocking, with every wait an ``await`` bounded by
``timeout_s``. umqtt.simple still encodes and decodes the packets: its client object is given an
in-memory stream (``_Stream``) instead of a socket. Its methods that wait for a reply inline
(publish at QoS 1, subscribe) hit a read that raises ``_ReplyDeferred`` right after the packet
is written; the reply is then awaited here. Incoming PUBLISH and PINGRESP packets are handed to
its ``wait_msg()`` only once they are complete in memory, so it never waits either. CONNECT
(umqtt's connect() opens its own blocking socket) and UNSUBSCRIBE (umqtt.simple 1.3.4 has none)
are encoded here. umqtt.simple reports protocol errors with ``assert``, which frozen builds may
compile out: every session error (OSError, AssertionError, garbage leading to IndexError and the
like) ends the session, the socket is closed, and the link retries after an exponential backoff
with jitter (1 s .. 60 s; reset only after a session that lasted STABLE_SESSION_MS, so a broker
that accepts and then kicks us does not get hammered).

Blocking that remains: the DNS lookup of a host name (``getaddrinfo`` has no timeout on the
boards; an IP address avoids it) and, with TLS, the handshake (bounded by ``timeout_s`` through
the socket timeout).

Period records go through a ``gateway.backlog.StagedBacklog`` in front of the backlog given:
while connected a record is held in RAM and, acknowledged within its hold time (5 s), never
touches the flash; offline it goes straight to the backlog, and the stage is flushed to it when a
session ends and when ``stop()`` closes the link (the gateway's orderly stop). A record is
acknowledged in the backlog after its PUBACK (after the write at QoS 0). QoS 1 is at-least-once:
a record is published a second time if the connection dies after the broker took it but before
its PUBACK reached us (a stalled broker), or if the gateway dies between the PUBACK and the
acknowledgement; subscribers can drop repeats by ``seq``, which only grows (but see the
StagedBacklog trade-off: a crash can lose staged records and the numbering of acknowledged ones).
Live state goes out before the backlog, so a long catch-up does not freeze the live values.
Without a ``backlog`` argument the link keeps at most
DEFAULT_MEMORY_BACKLOG records in RAM, which a reset loses; the application should pass a
``gateway.backlog.Backlog`` on the board's filesystem, and continue its period numbering from
``link.last_period_seq`` (records with a seq not above it are refused).

``read_retained`` cannot tell "nothing retained" from "no answer in time": both are None.

``stats``: connects, failures, published (messages that completed: PUBACK at QoS 1, written at
QoS 0), pings, backlog_pending (staged included), backlog_staged (in RAM), backlog_dropped (full
backlog), states_dropped (offline),
periods_refused (seq not increasing, or the backlog could not store it), last_error (text of
the exception that ended the last session, never containing credentials).

With TLS, ``ca_file`` may hold PEM (one or more certificates) or one DER certificate; they are
loaded as DER, because MicroPython's TLS may be built without a PEM parser. Without ``ca_file``
the connection is encrypted but the broker's certificate is not verified (a warning says so).
"""

import errno
import json
import select
import socket
import struct

from gateway.backlog import BacklogError, MemoryBacklog, StagedBacklog
from gateway.backoff import Backoff

ONLINE = b"online"
OFFLINE = b"offline"
STABLE_SESSION_MS = 30000
POLL_MS = 20
IDLE_POLL_MS = 50
MAX_PACKET = 8192
MAX_TOPIC = 200
DEFAULT_MEMORY_BACKLOG = 64
BACKOFF_BASE_MS = 1000
BACKOFF_CAP_MS = 60000

_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}
_WOULD_BLOCK = (errno.EAGAIN, getattr(errno, "EWOULDBLOCK", errno.EAGAIN))
_CONNECTING = (errno.EINPROGRESS, getattr(errno, "EALREADY", errno.EINPROGRESS)) + _WOULD_BLOCK
_ACK_WAITS_MS = (0, 1, 2, 5, 10)


class MqttError(Exception):
    """The broker refused us or broke the protocol."""


class _ReplyDeferred(Exception):
    """umqtt.simple tried to read a reply inline; the link awaits it instead."""


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


def _as_bytes(value):
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def connect_packet(client_id, keepalive_s, user=None, password=None, will_topic=None,
                   will_message=None, will_qos=0, will_retain=False):
    """An MQTT 3.1.1 CONNECT packet (clean session). Lengths count UTF-8 bytes, not characters."""
    flags = 0x02
    fields = [_as_bytes(client_id)]
    if will_topic is not None:
        flags |= 0x04 | (will_qos & 0x03) << 3 | (0x20 if will_retain else 0)
        fields.append(_as_bytes(will_topic))
        fields.append(_as_bytes(will_message))
    if user is not None:
        flags |= 0x80
        fields.append(_as_bytes(user))
        if password is not None:
            flags |= 0x40
            fields.append(_as_bytes(password))
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
    topic = _as_bytes(topic)
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


class _Stream:
    """What umqtt.simple's client sees as its socket: bytes in memory on both sides.

    ``write`` queues for the link to send; ``read`` serves bytes already received and raises
    rather than wait (``_ReplyDeferred`` while ``deferring``, MqttError past the end of the data).
    """

    def __init__(self, sock, would_block=()):
        self.sock = sock
        self.deferring = False
        self._would_block = would_block  # exception types meaning "try again" (CPython's TLS)
        self._rx = bytearray()
        self._pos = 0
        self._tx = bytearray()
        self._tx_pos = 0
        use_recv = hasattr(sock, "recv") and hasattr(sock, "send")
        self._recv = sock.recv if use_recv else sock.read
        self._send = sock.send if use_recv else sock.write
        # asking poll first spares an EAGAIN exception (an allocation) on every idle round;
        # TLS may hold decrypted bytes the kernel no longer shows, hence pending()
        self._pending = getattr(sock, "pending", None)
        try:
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN)
        except (TypeError, ValueError, OSError, AttributeError):
            self._poller = None  # a stream poll() cannot watch: just try to read each round

    # --- the socket interface umqtt.simple uses
    def write(self, data, length=None):
        view = memoryview(_as_bytes(data) if isinstance(data, str) else data)
        if length is not None:
            view = view[:length]
        self._tx.extend(view)
        return len(view)

    def read(self, n):
        if self.deferring:
            raise _ReplyDeferred()
        if len(self._rx) - self._pos < n:
            raise MqttError("packet shorter than its contents claim")
        out = bytes(self._rx[self._pos:self._pos + n])
        self._pos += n
        return out

    def setblocking(self, flag):
        pass  # the real socket stays non-blocking; reads here never wait

    def close(self):
        self.sock.close()

    # --- the link's side
    @property
    def position(self):
        return self._pos

    def tx_pending(self):
        return len(self._tx) - self._tx_pos

    def send_some(self):
        """Send what the kernel takes now; returns the byte count (0 when it would block)."""
        if self._tx_pos >= len(self._tx):
            return 0
        try:
            sent = self._send(memoryview(self._tx)[self._tx_pos:])
        except OSError as exc:
            if self._retry_later(exc):
                return 0
            raise
        if not sent:
            return 0
        self._tx_pos += sent
        if self._tx_pos >= len(self._tx):
            self._tx = bytearray()
            self._tx_pos = 0
        return sent

    def receive_some(self):
        """Move what the kernel has into memory; returns the byte count. OSError once the peer closed."""
        if self._pos:
            self._rx = self._rx[self._pos:]
            self._pos = 0
        if len(self._rx) > 2 * MAX_PACKET:
            return 0
        poller = self._poller
        if poller is not None and not poller.poll(0) and not (self._pending is not None and self._pending()):
            return 0
        try:
            chunk = self._recv(512)
        except OSError as exc:
            if self._retry_later(exc):
                return 0
            raise
        if chunk is None:
            return 0
        if not chunk:
            raise OSError(errno.ECONNRESET, "the broker closed the connection")
        self._rx.extend(chunk)
        return len(chunk)

    def _retry_later(self, exc):
        if self._would_block and isinstance(exc, self._would_block):
            return True
        return bool(exc.args) and exc.args[0] in _WOULD_BLOCK

    def next_packet(self):
        """(first byte, total length) of the complete packet at the read position, or None."""
        rx = self._rx
        start = self._pos
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


class _RetainedRequest:
    def __init__(self, topic):
        self.topic = topic
        self.subscribed = False
        self.done = False
        self.value = None


class MqttLink:
    def __init__(self, mqtt_cfg, device_id, log, clock=None, client_class=None, rng_seed=None, backlog=None):
        if clock is None:
            from rbamp.clock import SYSTEM_CLOCK

            clock = SYSTEM_CLOCK
        if client_class is None:
            from umqtt.simple import MQTTClient

            client_class = MQTTClient
        self.log = log
        self.clock = clock
        self._client_class = client_class
        self._read_config(mqtt_cfg, device_id)
        self.device_id = device_id
        self._backoff = Backoff(BACKOFF_BASE_MS, BACKOFF_CAP_MS, seed=rng_seed)
        if backlog is None:
            backlog = MemoryBacklog(DEFAULT_MEMORY_BACKLOG)
            log.warning("mqtt: no backlog file given; up to %d period records are kept in RAM only",
                        DEFAULT_MEMORY_BACKLOG)
        # a StagedBacklog given as it is keeps its own hold time and bounds (tests use that)
        self.backlog = backlog if isinstance(backlog, StagedBacklog) else StagedBacklog(backlog, clock)
        self._spill_failing = False
        self.connected = False
        self.poll_ms = POLL_MS
        self.idle_poll_ms = IDLE_POLL_MS
        self._availability = self.topic("availability").encode()
        self._state_topic = self.topic("state").encode()
        self._totals_topic = self.topic("totals").encode()
        self._period_topic = self.topic("period").encode()
        self._state = None
        self._totals = None
        self._last_totals = None
        self._discovery = []
        self._discovery_due = False
        self._module_status = {}   # module key -> b"online"/b"offline", kept for every session
        self._module_status_due = {}
        self._ha_status = None
        self._ha_subscribed = None
        self._birth = False
        self._watching_availability = False
        self._reannounce = False
        self._requests = []
        self._unsubscribe = []
        self._stream = None
        self._client = None
        self._replies = {}
        self._connack = None
        self._last_tx_ms = 0
        self._last_rx_ms = 0
        self._ping_at = None
        self._session_ms = None
        self._running = False
        self._stopping = False
        self._graceful = True
        self._connects = 0
        self._failures = 0
        self._published = 0
        self._pings = 0
        self._states_dropped = 0
        self._periods_refused = 0
        self._last_error = None
        self._tls_warned = False

    def _read_config(self, cfg, device_id):
        if not isinstance(cfg, dict):
            raise ValueError("mqtt config must be a dict, got %s" % type(cfg).__name__)
        if not isinstance(device_id, str) or not device_id:
            raise ValueError("device_id must be a non-empty str, got %r" % (device_id,))
        host = cfg.get("host")
        if not isinstance(host, str) or not host:
            raise ValueError("mqtt.host must be a non-empty str, got %r" % (host,))
        tls = bool(cfg.get("tls") or False)
        port = cfg.get("port")
        if port is None:
            port = 8883 if tls else 1883
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError("mqtt.port must be an int in 1..65535, got %r" % (port,))
        keepalive = cfg.get("keepalive", 60)
        if not isinstance(keepalive, int) or not 0 <= keepalive < 65536:
            raise ValueError("mqtt.keepalive must be an int in 0..65535 s, got %r" % (keepalive,))
        qos = cfg.get("qos", 1)
        if qos not in (0, 1):
            raise ValueError("mqtt.qos must be 0 or 1, got %r" % (qos,))
        timeout_s = cfg.get("timeout_s", 5)
        if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise ValueError("mqtt.timeout_s must be a positive number, got %r" % (timeout_s,))
        base = cfg.get("base_topic") or "rbamp"
        if not isinstance(base, str):
            raise ValueError("mqtt.base_topic must be a str, got %r" % (base,))
        self.host = host
        self.port = port
        self._user = cfg.get("user")
        self._password = cfg.get("password")
        if self._password is not None and self._user is None:
            # MQTT 3.1.1 allows a password only together with a user name
            self.log.warning("mqtt: a password without a user name is not sent")
            self._password = None
        self._tls = tls
        self._ca_file = cfg.get("ca_file")
        self.client_id = cfg.get("client_id") or device_id
        self.base_topic = base
        self.keepalive_s = keepalive
        self.qos = qos
        self.timeout_ms = int(timeout_s * 1000)
        self._prefix = "%s/%s/" % (base, device_id)

    # ------------------------------------------------------------------ the application's API
    def topic(self, suffix):
        return self._prefix + suffix

    @property
    def last_period_seq(self):
        """The highest period seq ever queued (0 if none): continue numbering above it."""
        return self.backlog.last_seq

    @property
    def stats(self):
        return {
            "connects": self._connects,
            "failures": self._failures,
            "published": self._published,
            "pings": self._pings,
            "backlog_pending": len(self.backlog),
            "backlog_staged": self.backlog.staged,
            "backlog_dropped": self.backlog.dropped,
            "states_dropped": self._states_dropped,
            "periods_refused": self._periods_refused,
            "last_error": self._last_error,
        }

    def publish_state(self, payload):
        """Queue the live state; returns False (and drops it) while offline."""
        if not self.connected:
            self._states_dropped += 1
            return False
        self._state = _encode_json(payload)
        return True

    def publish_totals(self, payload):
        self._totals = _encode_json(payload)

    def publish_period(self, record):
        """Queue a period record (in RAM while connected, else in the durable backlog); returns
        False if it could not be queued."""
        if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
            raise ValueError("a period record is a dict with an int 'seq', got %r" % (record,))
        seq = record["seq"]
        # also here: while the link awaits a PUBACK its own rounds do not check the stage
        self._spill_late()
        try:
            if self.connected:
                self.backlog.hold(seq, _encode_json(record))
            else:
                self.backlog.append(seq, _encode_json(record))
        except (ValueError, BacklogError) as exc:
            self._periods_refused += 1
            self.log.error("mqtt: period record %d not queued: %s", seq, exc)
            return False
        return True

    def set_module_available(self, key, available):
        """Per-module availability (retained ``<base>/<id>/module/<key>/availability``): the
        sensors of a module that does not answer show unavailable while the others go on."""
        payload = ONLINE if available else OFFLINE
        if self._module_status.get(key) != payload:
            self._module_status[key] = payload
            self._module_status_due[key] = payload

    def module_availability_topic(self, key):
        return self.topic("module/%s/availability" % key)

    def set_discovery(self, messages):
        """The retained discovery messages, (topic, payload) pairs. ``messages`` may also be a
        function returning them: then they are built each time they are published (on connect
        and on Home Assistant's birth) instead of being held in RAM (~10 KB for one module)."""
        if callable(messages):
            _encode_discovery(messages())  # fail now, not at the next connect
            self._discovery = messages
        else:
            self._discovery = _encode_discovery(messages)
        self._discovery_due = True

    def set_ha_prefix(self, prefix):
        if prefix is None:
            self._ha_status = None
            return
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("the Home Assistant prefix must be a non-empty str, got %r" % (prefix,))
        self._ha_status = (prefix + "/status").encode()

    async def read_retained(self, topic_suffix, timeout_ms):
        """The retained JSON object on <base>/<id>/<suffix>, or None (none, not a JSON object,
        or no answer within timeout_ms). While it waits, that topic is not published to."""
        request = _RetainedRequest(self.topic(topic_suffix).encode())
        self._requests.append(request)
        clock = self.clock
        start = clock.ticks_ms()
        try:
            while not request.done:
                left = timeout_ms - clock.ticks_diff(clock.ticks_ms(), start)
                if left <= 0:
                    break
                await clock.asleep_ms(min(self.poll_ms, left))
            return request.value
        finally:
            self._requests.remove(request)
            if request.subscribed and self.connected:
                self._unsubscribe.append(request.topic)

    async def run(self):
        """Connect, publish, reconnect: forever, until stop(). Never raises."""
        if self._running:
            self.log.error("mqtt: run() is already active")
            return
        self._running = True
        clock = self.clock
        try:
            while not self._stopping:
                self._session_ms = None
                try:
                    await self._session()
                except Exception as exc:  # any failure ends only this session
                    if not self._stopping:
                        self._note_failure(exc)
                self._close()
                if self._stopping:
                    break
                started = self._session_ms
                if started is not None and clock.ticks_diff(clock.ticks_ms(), started) >= STABLE_SESSION_MS:
                    self._backoff.reset()
                delay = self._backoff.next_delay_ms()
                self.log.warning("mqtt: %s; retrying in %d ms", self._last_error, delay)
                await self._pause(delay)
        finally:
            self._close()
            self._running = False

    async def stop(self, graceful=True):
        """Publish retained "offline" and disconnect (graceful), or just drop the connection so
        the broker publishes the last will. Returns once the link is closed."""
        self._stopping = True
        self._graceful = graceful
        if not graceful:
            self._close()
        clock = self.clock
        if self._running:
            limit = 2 * self.timeout_ms + 1000
            start = clock.ticks_ms()
            while self._running and clock.ticks_diff(clock.ticks_ms(), start) < limit:
                await clock.asleep_ms(self.poll_ms)
        elif graceful and self.connected and self._stream is not None:
            try:
                await self._goodbye()
            except Exception as exc:
                self._note_failure(exc)
        self._close()

    # ------------------------------------------------------------------ session
    async def _session(self):
        await self._open()
        self.connected = True
        self._connects += 1
        self._session_ms = self.clock.ticks_ms()
        self.log.info("mqtt: connected to %s:%d as %s", self.host, self.port, self.client_id)
        await self._publish(self._availability, ONLINE, True, self.qos)
        self._discovery_due = True
        for key in self._module_status:
            self._module_status_due[key] = self._module_status[key]
        if self._totals is None and self._last_totals is not None:
            # the broker may have lost its retained copy while we were away
            self._totals = self._last_totals
        while True:
            if self._stopping:
                if self._graceful:
                    await self._goodbye()
                return
            busy = await self._step()
            await self.clock.asleep_ms(0 if busy else self.idle_poll_ms)

    def _spill_late(self):
        """Write the staged period records whose acknowledgement is overdue."""
        try:
            self.backlog.spill_due()
        except BacklogError as exc:
            # they stay staged (in RAM) and are still published; a later round tries again, and
            # a filesystem that keeps failing is logged once, not every 50 ms
            if not self._spill_failing:
                self._spill_failing = True
                self.log.error("mqtt: could not write overdue period records to the backlog: %s", exc)
            return
        self._spill_failing = False

    def _flush_stage(self):
        """The session ended or the link stops: staged period records go to the durable backlog."""
        try:
            self.backlog.flush()
        except BacklogError as exc:
            self.log.error("mqtt: %d period records kept in RAM only: %s", self.backlog.staged, exc)

    async def _step(self):
        """One round of work; returns True if something was sent."""
        self._spill_late()
        self._service()
        if self._stream.tx_pending():
            await self._flush()
        if not self._watching_availability:
            self._watching_availability = True
            await self._subscribe(self._availability)
        if self._ha_status != self._ha_subscribed:
            await self._follow_ha_prefix()
        if self._reannounce:
            self._reannounce = False
            self.log.warning("mqtt: the broker says we are offline (a stale last will); announcing online again")
            await self._publish(self._availability, ONLINE, True, self.qos)
        for request in self._requests:
            if not request.subscribed:
                request.subscribed = True
                code = await self._subscribe(request.topic)
                if code & 0x80:
                    request.done = True
                return True
        while self._unsubscribe:
            await self._unsubscribe_from(self._unsubscribe.pop())
        if self._birth:
            self._birth = False
            self.log.info("mqtt: Home Assistant is online; publishing discovery again")
            await self._publish(self._availability, ONLINE, True, self.qos)
            self._discovery_due = True
        if self._discovery_due:
            self._discovery_due = False
            messages = self._discovery
            if callable(messages):
                messages = _encode_discovery(messages())
            for topic, payload in messages:
                await self._publish(topic, payload, True, self.qos)
            return True
        if self._module_status_due:
            for key in list(self._module_status_due):
                payload = self._module_status_due.pop(key)
                await self._publish(self.module_availability_topic(key).encode(), payload, True, self.qos)
            return True
        totals = self._totals
        if totals is not None and not self._held(self._totals_topic):
            await self._publish(self._totals_topic, totals, True, self.qos)
            self._last_totals = totals
            if self._totals is totals:
                self._totals = None
            return True
        # before the backlog: a long catch-up must not freeze the live values
        state = self._state
        if state is not None:
            self._state = None
            await self._publish(self._state_topic, state, False, 0)
            return True
        if len(self.backlog):
            await self._publish_oldest_period()
            return True
        if self._keepalive_due():
            await self._ping()
        return False

    def _held(self, topic):
        for request in self._requests:
            if request.topic == topic:
                return True
        return False

    async def _publish_oldest_period(self):
        backlog = self.backlog
        try:
            entry = backlog.oldest()
        except BacklogError as exc:
            self.log.error("mqtt: backlog unreadable (%s); discarding its oldest record", exc)
            backlog.discard_oldest()
            return
        seq, payload = entry  # pyright: ignore[reportGeneralTypeIssues]  # not None: the caller checked len()
        await self._publish(self._period_topic, payload, False, self.qos)
        try:
            backlog.ack(seq)
        except BacklogError as exc:
            # the record stays pending and is sent again: a duplicate beats a loss
            self.log.error("mqtt: could not mark period %d as sent: %s", seq, exc)

    async def _follow_ha_prefix(self):
        old = self._ha_subscribed
        wanted = self._ha_status
        self._ha_subscribed = wanted
        if old is not None:
            await self._unsubscribe_from(old)
        if wanted is not None:
            code = await self._subscribe(wanted)
            if code & 0x80:
                self.log.warning("mqtt: the broker refused the subscription to %s", wanted.decode())

    async def _goodbye(self):
        await self._publish(self._availability, OFFLINE, True, self.qos)
        self._stream.write(b"\xe0\x00")
        await self._flush()
        self.log.info("mqtt: disconnected")

    # ------------------------------------------------------------------ connection
    async def _open(self):
        clock = self.clock
        start = clock.ticks_ms()
        info = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)
        if not info:
            raise OSError(errno.EHOSTUNREACH, "no address for %s" % self.host)
        family, kind, proto, _, address = info[0][:5]
        sock = socket.socket(family, kind, proto)
        self._stream = _Stream(sock)
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
                flags = events[0][1]
                if flags & (select.POLLERR | select.POLLHUP):
                    raise OSError(errno.ECONNREFUSED, "connection to %s:%d refused" % (self.host, self.port))
                break
            if clock.ticks_diff(clock.ticks_ms(), start) >= self.timeout_ms:
                raise OSError(errno.ETIMEDOUT, "TCP connect to %s:%d timed out" % (self.host, self.port))
            await clock.asleep_ms(self.poll_ms)
        poller.unregister(sock)
        if self._tls:
            sock, would_block = self._wrap_tls(sock)
            self._stream = _Stream(sock, would_block)
        client = self._client_class(self.client_id, self.host, self.port, self._user, self._password,
                                    self.keepalive_s)
        # umqtt.simple types sock by the None it starts with; the link hands it its own stream
        client.sock = self._stream  # pyright: ignore[reportAttributeAccessIssue]
        client.set_callback(self._on_message)
        self._client = client
        self._replies = {}
        self._connack = None
        self._ping_at = None
        self._stream.write(connect_packet(self.client_id, self.keepalive_s, self._user, self._password,
                                          self._availability, OFFLINE, self.qos, True))
        await self._flush()
        self._last_rx_ms = clock.ticks_ms()
        await self._wait(self._connack_arrived, "CONNACK")
        code = self._connack
        if code:
            raise MqttError("broker refused the connection: %s" % _CONNACK_REASONS.get(code, "code %d" % code))

    def _connack_arrived(self):
        return self._connack is not None

    def _wrap_tls(self, sock):
        """The TLS socket and the exception types that mean "would block" on it."""
        import ssl

        # the handshake blocks: bound it by the socket timeout, then go back to non-blocking
        sock.setblocking(True)
        sock.settimeout(self.timeout_ms / 1000)
        if not self._ca_file and not self._tls_warned:
            self._tls_warned = True
            self.log.warning("mqtt: TLS without ca_file: the broker's certificate is not verified")
        if hasattr(ssl, "SSLContext"):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if self._ca_file:
                context.verify_mode = ssl.CERT_REQUIRED
                for der in ca_certificates(self._ca_file):
                    context.load_verify_locations(cadata=der)
            else:
                if hasattr(context, "check_hostname"):
                    context.check_hostname = False  # pyright: ignore[reportAttributeAccessIssue]  # CPython's ssl only
                context.verify_mode = ssl.CERT_NONE
            wrapped = context.wrap_socket(sock, server_hostname=self.host)
        else:
            wrapped = ssl.wrap_socket(sock, server_hostname=self.host)
        wrapped.setblocking(False)
        would_block = tuple(getattr(ssl, name) for name in ("SSLWantReadError", "SSLWantWriteError")
                            if hasattr(ssl, name))
        return wrapped, would_block

    def _close(self):
        stream = self._stream
        self._stream = None
        self.connected = False
        self._ha_subscribed = None
        self._watching_availability = False
        self._reannounce = False
        self._unsubscribe = []
        for request in self._requests:
            request.subscribed = False
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
        self._flush_stage()

    def _note_failure(self, exc):
        self.connected = False
        self._failures += 1
        self._last_error = describe_error(exc)

    async def _pause(self, delay_ms):
        clock = self.clock
        start = clock.ticks_ms()
        while not self._stopping:
            left = delay_ms - clock.ticks_diff(clock.ticks_ms(), start)
            if left <= 0:
                return
            await clock.asleep_ms(min(left, 200))

    # ------------------------------------------------------------------ packets
    def _stream_or_fail(self):
        stream = self._stream
        if stream is None:
            raise OSError(errno.ECONNRESET, "connection closed")
        return stream

    async def _flush(self):
        stream = self._stream_or_fail()
        clock = self.clock
        start = clock.ticks_ms()
        while stream.tx_pending():
            if stream.send_some():
                continue
            if clock.ticks_diff(clock.ticks_ms(), start) >= self.timeout_ms:
                raise OSError(errno.ETIMEDOUT, "the broker does not take our data")
            await clock.asleep_ms(self.poll_ms)
            stream = self._stream_or_fail()
        self._last_tx_ms = clock.ticks_ms()

    def _service(self):
        """Receive what has arrived and handle every complete packet. Never waits."""
        stream = self._stream_or_fail()
        while True:
            got = stream.receive_some()
            while True:
                head = stream.next_packet()
                if head is None:
                    break
                self._dispatch(stream, head[0], head[1])
                self._last_rx_ms = self.clock.ticks_ms()
            if not got:
                return

    def _dispatch(self, stream, first, total):
        kind = first & 0xF0
        end = stream.position + total
        if kind == 0x30 or first == 0xD0:
            if first == 0xD0:
                self._ping_at = None
            self._client.wait_msg()
            if stream.position != end:
                raise MqttError("umqtt.simple read %d bytes of a %d-byte packet" % (
                    stream.position - end + total, total))
            return
        packet = stream.read(total)
        body = packet[total - 2:] if total >= 4 else b""
        if first == 0x20 and total == 4:
            self._connack = packet[3]
        elif first == 0x40 and total == 4:
            self._replies[body[0] << 8 | body[1]] = 0
        elif first == 0x90 and total == 5:
            self._replies[packet[2] << 8 | packet[3]] = packet[4]
        elif first == 0xB0 and total == 4:
            self._replies[body[0] << 8 | body[1]] = 0
        else:
            raise MqttError("unexpected packet 0x%02x of %d bytes" % (first, total))

    def _on_message(self, topic, message):
        if self._ha_status is not None and topic == self._ha_status and message == ONLINE:
            self._birth = True
        elif topic == self._availability and message == OFFLINE and self.connected and not self._stopping:
            self._reannounce = True
        for request in self._requests:
            if not request.done and request.topic == topic:
                request.value = _decode_object(message)
                request.done = True

    def _next_pid(self):
        client = self._client
        client.pid = client.pid % 0xFFFF + 1
        return client.pid

    def _wrap_pid(self):
        # umqtt.simple increments pid without bound; packet ids are 16-bit and never 0
        if self._client.pid >= 0xFFFF:
            self._client.pid = 0

    async def _publish(self, topic, payload, retain, qos):
        stream = self._stream_or_fail()
        self._wrap_pid()
        stream.deferring = True
        try:
            self._client.publish(topic, payload, retain, qos)
        except _ReplyDeferred:
            pass
        finally:
            stream.deferring = False
        await self._flush()
        if qos:
            await self._await_reply(self._client.pid, "PUBACK")
        self._published += 1

    async def _subscribe(self, topic):
        stream = self._stream_or_fail()
        if len(topic) > MAX_TOPIC:
            raise ValueError("topic too long to subscribe: %r" % (topic,))
        self._wrap_pid()
        stream.deferring = True
        try:
            self._client.subscribe(topic, 0)
        except _ReplyDeferred:
            pass
        finally:
            stream.deferring = False
        await self._flush()
        return await self._await_reply(self._client.pid, "SUBACK")

    async def _unsubscribe_from(self, topic):
        stream = self._stream_or_fail()
        stream.write(unsubscribe_packet(self._next_pid(), topic))
        await self._flush()
        await self._await_reply(self._client.pid, "UNSUBACK")

    async def _await_reply(self, pid, what):
        replies = self._replies

        def arrived():
            return pid in replies

        await self._wait(arrived, what)
        return replies.pop(pid)

    async def _wait(self, arrived, what):
        """Service the socket until arrived() or timeout_s; waits lengthen so a slow broker costs no CPU."""
        clock = self.clock
        start = clock.ticks_ms()
        step = 0
        while True:
            self._service()
            self._spill_late()  # a PUBACK that never comes must not keep records off the flash
            if self._stream_or_fail().tx_pending():
                await self._flush()
            if arrived():
                return
            if clock.ticks_diff(clock.ticks_ms(), start) >= self.timeout_ms:
                raise OSError(errno.ETIMEDOUT, "no %s within %d ms" % (what, self.timeout_ms))
            wait = _ACK_WAITS_MS[step] if step < len(_ACK_WAITS_MS) else self.poll_ms
            step += 1
            await clock.asleep_ms(wait)

    def _keepalive_due(self):
        """True when a PINGREQ should go out; raises once a sent one went unanswered too long."""
        if not self.keepalive_s:
            return False
        clock = self.clock
        now = clock.ticks_ms()
        if self._ping_at is not None:
            if clock.ticks_diff(now, self._ping_at) >= self.timeout_ms:
                raise OSError(errno.ETIMEDOUT, "no PINGRESP within %d ms" % self.timeout_ms)
            return False
        half = self.keepalive_s * 500
        return clock.ticks_diff(now, self._last_tx_ms) >= half or clock.ticks_diff(now, self._last_rx_ms) >= half

    async def _ping(self):
        self._pings += 1
        self._client.ping()
        self._ping_at = self.clock.ticks_ms()
        await self._flush()


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


def _encode_discovery(messages):
    encoded = []
    for entry in messages:
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValueError("discovery messages are (topic, payload) pairs, got %r" % (entry,))
        topic, payload = entry
        if not isinstance(topic, str) or not topic:
            raise ValueError("bad discovery topic %r" % (topic,))
        encoded.append((topic.encode(), _as_bytes(payload)))
    return encoded


def _encode_json(payload):
    return json.dumps(payload, separators=(",", ":")).encode()


def _decode_object(message):
    if not message:
        return None
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
