"""The gateway's MQTT link: one asyncio task that keeps a broker session alive and publishes.

    link = MqttLink(cfg["mqtt"], device_id, log, backlog=Backlog("/backlog.bin"))
    link.set_ha_prefix("homeassistant")
    link.set_discovery(discovery_messages(...))
    asyncio.create_task(link.run())          # never raises, never returns until stop()
    link.publish_state({...})                # live values: QoS 0, latest only, dropped offline
    link.publish_totals({...})               # retained, QoS 1 (mqtt.qos), latest wins
    link.publish_period({"seq": n, ...})     # held in RAM or into the durable backlog, QoS 1 in seq order
    await link.stop()                        # retained "offline", DISCONNECT

``cfg["mqtt"]`` is the section gateway.config validated (every key present, port resolved); it is
not checked again here. Topics and payload shapes: gateway.payloads. Besides them, the Home
Assistant discovery messages (retained, QoS mqtt.qos; an empty one removes an entity's config,
and the caller hears when a round went out) and a subscription to ``<ha prefix>/status``:
when Home Assistant announces "online" (its birth message after a restart) the discovery messages
and "online" are published again.

The link also listens to its own availability topic: a broker that was stalled delivers the last
wills of our earlier, abandoned connections when it recovers, possibly after the new session's
"online"; seeing "offline" there while connected, the link publishes "online" again.

The bytes on the wire are gateway.mqtt_wire's. Here: ``_Session``, one broker session (connect
with the last will, a reader task, every wait for the broker, keepalive), and ``MqttLink``, what
to publish when and the reconnect loop. Nothing polls: the publish_* calls, an arriving packet
(the session's reader task) and stop() set one ``asyncio.Event`` the link waits on, with a
deadline for the next keepalive ping and for the backlog's hold time. Every wait
for the broker is bounded by ``timeout_s``; any failure ends only the session: the socket is
closed and the link retries after an exponential backoff with jitter (1 s .. 60 s; reset only
after a session that lasted STABLE_SESSION_MS, so a broker that accepts and then kicks us does
not get hammered).

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
Without a ``backlog`` argument the link keeps at most DEFAULT_MEMORY_BACKLOG records in RAM,
which a reset loses; the application should pass a ``gateway.backlog.Backlog`` on the board's
filesystem, and continue its period numbering from ``link.last_period_seq`` (records with a seq
not above it are refused).

``read_retained`` cannot tell "nothing retained" from "no answer in time": both are None.

``stats``: connects, failures, published (messages that completed: PUBACK at QoS 1, written at
QoS 0), pings, backlog_pending (staged included), backlog_staged (in RAM), backlog_dropped (full
backlog), states_dropped (offline), periods_refused (seq not increasing, or the backlog could not
store it), last_error (text of the exception that ended the last session, never containing
credentials).
"""

import asyncio
import errno

from gateway import payloads
from gateway.backlog import BacklogError, MemoryBacklog, StagedBacklog
from gateway.backoff import Backoff
from gateway.mqtt_wire import CONNACK_REASONS, MqttError, MqttWire, describe_error
from gateway.payloads import OFFLINE, ONLINE, decode_object
from gateway.payloads import encode_json as _encode_json

STABLE_SESSION_MS = 30000
IDLE_MAX_MS = 60000  # without keepalive the idle link still looks at its clock-driven duties
DEFAULT_MEMORY_BACKLOG = 64
BACKOFF_BASE_MS = 1000
BACKOFF_CAP_MS = 60000


class _Session:
    """One broker session: its wire, the reader task that wakes the link when a packet comes in,
    and the round trips (each bounded by timeout_ms). ``duty()`` (the link's) runs on every wake
    of a wait and returns the ms until it must run again (None: nothing pending), so records
    staged in RAM are written when overdue even while a PUBACK does not come."""

    def __init__(self, clock, timeout_ms, keepalive_s, wake, duty, on_message, client_class):
        self.clock = clock
        self.timeout_ms = timeout_ms
        self.keepalive_s = keepalive_s
        self.wake = wake
        self._duty = duty
        self.wire = MqttWire(clock, on_message, client_class)
        self._reader = None
        self._broken = None  # what ended the reader task: the session ends with it

    async def open(self, host, port, tls, ca_file, client_id, user, password, will_topic, will_qos):
        wire = self.wire
        await wire.open(host, port, self.timeout_ms, tls, ca_file)
        self._reader = asyncio.create_task(self._read())
        wire.connect(client_id, self.keepalive_s, user, password, will_topic, OFFLINE, will_qos, True)
        await wire.flush(self.timeout_ms)
        await self._expect(self._connack_arrived, "CONNACK")
        code = wire.connack
        if code:
            raise MqttError("broker refused the connection: %s" % CONNACK_REASONS.get(code, "code %d" % code))

    def _connack_arrived(self):
        return self.wire.connack is not None

    async def _read(self):
        wire = self.wire
        try:
            while True:
                if await wire.receive():
                    self.wake.set()
        except Exception as exc:  # handed to the link's task, which ends the session with it
            self._broken = exc
            self.wake.set()

    def check(self):
        """Raise what ended the session (the reader's failure, or close())."""
        if self._broken is not None:
            raise self._broken
        if not self.wire.is_open:
            raise OSError(errno.ECONNRESET, "connection closed")

    def close(self):
        reader = self._reader
        self._reader = None
        if reader is not None:
            reader.cancel()  # before the socket goes: asyncio still watches it for the reader
        self.wire.close()

    async def send_pending(self):
        """What the wire owes the broker (a PUBACK umqtt.simple wrote for a message)."""
        if self.wire.tx_pending():
            await self.wire.flush(self.timeout_ms)

    async def publish(self, topic, payload, retain, qos):
        self.check()
        pid = self.wire.publish(topic, payload, retain, qos)
        await self.wire.flush(self.timeout_ms)
        if qos:
            await self._reply(pid, "PUBACK")

    async def subscribe(self, topic):
        """The SUBACK's code (0x80: refused)."""
        self.check()
        pid = self.wire.subscribe(topic)
        await self.wire.flush(self.timeout_ms)
        return await self._reply(pid, "SUBACK")

    async def unsubscribe(self, topic):
        self.check()
        pid = self.wire.unsubscribe(topic)
        await self.wire.flush(self.timeout_ms)
        await self._reply(pid, "UNSUBACK")

    async def ping(self):
        self.wire.ping()
        await self.wire.flush(self.timeout_ms)

    async def goodbye(self, will_topic, qos):
        await self.publish(will_topic, OFFLINE, True, qos)
        self.wire.disconnect()
        await self.wire.flush(self.timeout_ms)

    def keepalive_due(self):
        """True when a PINGREQ should go out; raises once a sent one went unanswered too long."""
        if not self.keepalive_s:
            return False
        clock = self.clock
        now = clock.ticks_ms()
        wire = self.wire
        if wire.ping_sent_ms is not None:
            if clock.ticks_diff(now, wire.ping_sent_ms) >= self.timeout_ms:
                raise OSError(errno.ETIMEDOUT, "no PINGRESP within %d ms" % self.timeout_ms)
            return False
        half = self.keepalive_s * 500
        return clock.ticks_diff(now, wire.last_tx_ms) >= half or clock.ticks_diff(now, wire.last_rx_ms) >= half

    def idle_ms(self):
        """How long the idle link may wait before the keepalive needs it (a ping, or the deadline
        of its answer)."""
        if not self.keepalive_s:
            return IDLE_MAX_MS
        clock = self.clock
        now = clock.ticks_ms()
        wire = self.wire
        if wire.ping_sent_ms is not None:
            return self.timeout_ms - clock.ticks_diff(now, wire.ping_sent_ms)
        half = self.keepalive_s * 500
        return min(half - clock.ticks_diff(now, wire.last_tx_ms), half - clock.ticks_diff(now, wire.last_rx_ms))

    async def _reply(self, pid, what):
        answer = []

        def arrived():
            code = self.wire.ack(pid)
            if code is not None:
                answer.append(code)
            return bool(answer)

        await self._expect(arrived, what)
        return answer[0]

    async def _expect(self, arrived, what):
        """Wait for the broker's answer (arrived() true) within timeout_ms."""
        clock = self.clock
        start = clock.ticks_ms()
        wake = self.wake
        while True:
            bound = self._duty()
            self.check()
            if arrived():
                return
            await self.send_pending()
            left = self.timeout_ms - clock.ticks_diff(clock.ticks_ms(), start)
            if left <= 0:
                raise OSError(errno.ETIMEDOUT, "no %s within %d ms" % (what, self.timeout_ms))
            if bound is not None and bound < left:
                left = bound if bound > 1 else 1
            wake.clear()
            if not arrived():  # nothing ran since the check above, but the wake-up is cleared now
                await clock.wait_event(wake, left, wake.is_set)


class _Periods:
    """Period records on their way to the broker: a StagedBacklog (RAM stage in front of the
    durable backlog) and when the link writes it (see the module docstring)."""

    def __init__(self, backlog, clock, log):
        if backlog is None:
            backlog = MemoryBacklog(DEFAULT_MEMORY_BACKLOG)
            log.warning("mqtt: no backlog file given; up to %d period records are kept in RAM only",
                        DEFAULT_MEMORY_BACKLOG)
        # a StagedBacklog given as it is keeps its own hold time and bounds (tests use that)
        self.backlog = backlog if isinstance(backlog, StagedBacklog) else StagedBacklog(backlog, clock)
        self.log = log
        self.refused = 0
        self._spill_failing = False

    def queue(self, record, connected):
        """Held in RAM while connected, else durable at once; False if it could not be queued."""
        seq = record[payloads.SEQ]
        # also here: while the link awaits a PUBACK it may not look at the stage for a while
        self.spill_late()
        try:
            if connected:
                self.backlog.hold(seq, _encode_json(record))
            else:
                self.backlog.append(seq, _encode_json(record))
        except (ValueError, BacklogError) as exc:
            self.refused += 1
            self.log.error("mqtt: period record %d not queued: %s", seq, exc)
            return False
        return True

    def oldest(self):
        """(seq, payload) of the oldest pending record, or None (none, or it was unreadable)."""
        backlog = self.backlog
        if not len(backlog):
            return None
        try:
            return backlog.oldest()
        except BacklogError as exc:
            self.log.error("mqtt: backlog unreadable (%s); discarding its oldest record", exc)
            backlog.discard_oldest()
            return None

    def sent(self, seq):
        try:
            self.backlog.ack(seq)
        except BacklogError as exc:
            # the record stays pending and is sent again: a duplicate beats a loss
            self.log.error("mqtt: could not mark period %d as sent: %s", seq, exc)

    def spill_late(self):
        """Write the staged records whose acknowledgement is overdue."""
        try:
            self.backlog.spill_due()
        except BacklogError as exc:
            # they stay staged (in RAM) and are still published; a later round tries again, and
            # a filesystem that keeps failing is logged once, not every round
            if not self._spill_failing:
                self._spill_failing = True
                self.log.error("mqtt: could not write overdue period records to the backlog: %s", exc)
            return
        self._spill_failing = False

    def duty(self):
        """Write the overdue staged records; the ms until the next may be (None: none staged)."""
        self.spill_late()
        return self.backlog.hold_ms if self.backlog.staged else None

    def flush_stage(self):
        """The session ended or the link stops: staged records go to the durable backlog."""
        try:
            self.backlog.flush()
        except BacklogError as exc:
            self.log.error("mqtt: %d period records kept in RAM only: %s", self.backlog.staged, exc)


class _RetainedRequest:
    def __init__(self, topic):
        self.topic = topic
        self.subscribed = False
        self.done = False
        self.value = None
        self.answered = asyncio.Event()


class MqttLink:
    def __init__(self, mqtt_cfg, device_id, log, clock=None, client_class=None, rng_seed=None, backlog=None):
        if clock is None:
            from rbamp.clock import SYSTEM_CLOCK

            clock = SYSTEM_CLOCK
        self.log = log
        self.clock = clock
        self._client_class = client_class
        self._prefix = payloads.topic_prefix(mqtt_cfg["base_topic"], device_id)
        self.device_id = device_id
        self.host = mqtt_cfg["host"]
        self.port = mqtt_cfg["port"]
        self._user = mqtt_cfg["user"]
        self._password = mqtt_cfg["password"]
        if self._password is not None and self._user is None:
            # MQTT 3.1.1 allows a password only together with a user name
            log.warning("mqtt: a password without a user name is not sent")
            self._password = None
        self._tls = mqtt_cfg["tls"]
        self._ca_file = mqtt_cfg["ca_file"]
        self.client_id = mqtt_cfg["client_id"] or device_id
        self.base_topic = mqtt_cfg["base_topic"]
        self.keepalive_s = mqtt_cfg["keepalive"]
        self.qos = mqtt_cfg["qos"]
        self.timeout_ms = int(mqtt_cfg["timeout_s"] * 1000)
        self._backoff = Backoff(BACKOFF_BASE_MS, BACKOFF_CAP_MS, seed=rng_seed)
        self._periods = _Periods(backlog, clock, log)
        self.backlog = self._periods.backlog
        self.connected = False
        self._availability = self.topic(payloads.AVAILABILITY).encode()
        self._state_topic = self.topic(payloads.STATE).encode()
        self._totals_topic = self.topic(payloads.TOTALS).encode()
        self._period_topic = self.topic(payloads.PERIOD).encode()
        self._wake = asyncio.Event()  # new work, a packet in, a failure, stop()
        self._stopped = asyncio.Event()  # run() ended
        self._state = None
        self._totals = None
        self._last_totals = None
        self._energy_day = None  # publish_energy_day
        self._discovery = []
        self._discovery_published = None
        self._discovery_due = False
        self._module_status = {}   # module key -> ONLINE/OFFLINE, kept for every session
        self._module_status_due = {}
        self._ha_status = None
        self._ha_subscribed = None
        self._birth = False
        self._watching_availability = False
        self._reannounce = False
        self._requests = []
        self._unsubscribe = []
        self._session = None  # a _Session while connecting or connected
        self._session_ms = None
        self._running = False
        self._stopping = False
        self._graceful = True
        self._connects = 0
        self._failures = 0
        self._published = 0
        self._pings = 0
        self._states_dropped = 0
        self._last_error = None
        self._tls_warned = False

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
            "periods_refused": self._periods.refused,
            "last_error": self._last_error,
        }

    def publish_state(self, payload):
        """Queue the live state; returns False (and drops it) while offline."""
        if not self.connected:
            self._states_dropped += 1
            return False
        self._state = _encode_json(payload)
        self._wake.set()
        return True

    def publish_totals(self, payload):
        self._totals = _encode_json(payload)
        self._wake.set()

    def publish_energy_day(self, payload):
        """Queue today's and yesterday's energy (``payloads.energy_day``), retained: only the newest
        is kept until it goes out."""
        self._energy_day = _encode_json(payload)
        self._wake.set()

    def publish_period(self, record):
        """Queue a period record (in RAM while connected, else in the durable backlog); returns
        False if it could not be queued."""
        if not isinstance(record, dict) or not isinstance(record.get(payloads.SEQ), int):
            raise ValueError("a period record is a dict with an int 'seq', got %r" % (record,))
        if not self._periods.queue(record, self.connected):
            return False
        self._wake.set()
        return True

    def set_module_available(self, key, available):
        """Per-module availability (retained ``<base>/<id>/module/<key>/availability``): the
        sensors of a module that does not answer show unavailable while the others go on."""
        payload = ONLINE if available else OFFLINE
        if self._module_status.get(key) != payload:
            self._module_status[key] = payload
            self._module_status_due[key] = payload
            self._wake.set()

    def module_availability_topic(self, key):
        return self.topic(payloads.module_availability(key))

    def set_discovery(self, messages, published=None):
        """The retained discovery messages, (topic, payload) pairs; an empty payload removes a
        config. ``messages`` may also be a function returning them: then they are built each
        time they are published (on connect and on Home Assistant's birth) instead of being held
        in RAM (~10 KB for one module). ``published(pairs)``, if given, is called with the
        (topic, payload) bytes pairs after every round that published all of them (each
        acknowledged at QoS 1), e.g. to forget configs whose removal went out."""
        if callable(messages):
            _encode_discovery(messages())  # a builder that fails does so now, not at the next connect
            self._discovery = messages
        else:
            self._discovery = _encode_discovery(messages)
        self._discovery_published = published
        self._discovery_due = True
        self._wake.set()

    def set_ha_prefix(self, prefix):
        self._ha_status = None if prefix is None else payloads.ha_status_topic(prefix).encode()
        self._wake.set()

    async def read_retained(self, topic_suffix, timeout_ms):
        """The retained JSON object on <base>/<id>/<suffix>, or None (none, not a JSON object,
        or no answer within timeout_ms). While it waits, that topic is not published to."""
        request = _RetainedRequest(self.topic(topic_suffix).encode())
        self._requests.append(request)
        self._wake.set()
        try:
            await _wait(self.clock, request.answered, timeout_ms, lambda: request.done)
            return request.value
        finally:
            self._requests.remove(request)
            if request.subscribed and self.connected:
                self._unsubscribe.append(request.topic)
                self._wake.set()

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
                    await self._run_session()
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
                await _wait(clock, self._wake, delay, self._stop_requested)
        finally:
            self._close()
            self._running = False
            self._stopped.set()

    async def stop(self, graceful=True):
        """Publish retained "offline" and disconnect (graceful), or just drop the connection so
        the broker publishes the last will. Returns once the link is closed."""
        self._stopping = True
        self._graceful = graceful
        if not graceful:
            self._close()
        self._wake.set()
        if self._running:
            await _wait(self.clock, self._stopped, 2 * self.timeout_ms + 1000, self._not_running)
        elif graceful and self.connected and self._session is not None:
            try:
                await self._goodbye()
            except Exception as exc:
                self._note_failure(exc)
        self._close()

    def _stop_requested(self):
        return self._stopping

    def _not_running(self):
        return not self._running

    # ------------------------------------------------------------------ session
    async def _run_session(self):
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
            self._wake.clear()  # from here on, whatever sets it is news for the wait below
            if await self._step():
                await self.clock.asleep_ms(0)  # one message per round: let the metering run
                continue
            wait = self._session.idle_ms()  # pyright: ignore[reportOptionalMemberAccess]
            bound = self._periods.duty()
            if bound is not None and bound < wait:
                wait = bound
            await self.clock.wait_event(self._wake, wait if wait > 1 else 1, self._wake.is_set)

    async def _step(self):
        """One round of work; returns True if something was sent."""
        self._periods.spill_late()
        session = self._session
        session.check()  # pyright: ignore[reportOptionalMemberAccess]
        await session.send_pending()  # pyright: ignore[reportOptionalMemberAccess]
        if not self._watching_availability:
            self._watching_availability = True
            await self._subscribe(self._availability)
            return True
        if self._ha_status != self._ha_subscribed:
            await self._follow_ha_prefix()
            return True
        if self._reannounce:
            self._reannounce = False
            self.log.warning("mqtt: the broker says we are offline (a stale last will); announcing online again")
            await self._publish(self._availability, ONLINE, True, self.qos)
            return True
        for request in self._requests:
            if not request.subscribed:
                request.subscribed = True
                if (await self._subscribe(request.topic)) & 0x80:
                    request.done = True
                    request.answered.set()
                return True
        if self._unsubscribe:
            await self._session.unsubscribe(self._unsubscribe.pop())  # pyright: ignore[reportOptionalMemberAccess]
            return True
        if self._birth:
            self._birth = False
            self.log.info("mqtt: Home Assistant is online; publishing discovery again")
            await self._publish(self._availability, ONLINE, True, self.qos)
            self._discovery_due = True
            return True
        if self._discovery_due:
            self._discovery_due = False
            messages = self._discovery
            if callable(messages):
                messages = _encode_discovery(messages())
            for topic, payload in messages:
                await self._publish(topic, payload, True, self.qos)
            if self._discovery_published is not None:
                self._discovery_published(messages)
            return True
        if self._module_status_due:
            for key in list(self._module_status_due):
                payload = self._module_status_due.pop(key)
                await self._publish(self.module_availability_topic(key).encode(), payload, True, self.qos)
            return True
        return await self._publish_data()

    async def _publish_data(self):
        totals = self._totals
        if totals is not None and not self._held(self._totals_topic):
            await self._publish(self._totals_topic, totals, True, self.qos)
            self._last_totals = totals
            if self._totals is totals:
                self._totals = None
            return True
        energy_day = self._energy_day
        if energy_day is not None:
            await self._publish(self.topic(payloads.ENERGY_DAY).encode(), energy_day, True, self.qos)
            if self._energy_day is energy_day:
                self._energy_day = None
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
        session = self._session
        if session.keepalive_due():  # pyright: ignore[reportOptionalMemberAccess]
            self._pings += 1
            await session.ping()  # pyright: ignore[reportOptionalMemberAccess]
            return True
        return False

    def _held(self, topic):
        for request in self._requests:
            if request.topic == topic:
                return True
        return False

    async def _publish_oldest_period(self):
        entry = self._periods.oldest()
        if entry is not None:
            await self._publish(self._period_topic, entry[1], False, self.qos)
            self._periods.sent(entry[0])

    async def _follow_ha_prefix(self):
        old = self._ha_subscribed
        wanted = self._ha_status
        self._ha_subscribed = wanted
        if old is not None:
            await self._session.unsubscribe(old)  # pyright: ignore[reportOptionalMemberAccess]
        if wanted is not None and (await self._subscribe(wanted)) & 0x80:
            self.log.warning("mqtt: the broker refused the subscription to %s", wanted.decode())

    async def _publish(self, topic, payload, retain, qos):
        await self._session.publish(topic, payload, retain, qos)  # pyright: ignore[reportOptionalMemberAccess]
        self._published += 1

    async def _subscribe(self, topic):
        return await self._session.subscribe(topic)  # pyright: ignore[reportOptionalMemberAccess]

    async def _goodbye(self):
        await self._session.goodbye(self._availability, self.qos)  # pyright: ignore[reportOptionalMemberAccess]
        self._published += 1
        self.log.info("mqtt: disconnected")

    # ------------------------------------------------------------------ connection
    async def _open(self):
        if self._tls and not self._ca_file and not self._tls_warned:
            self._tls_warned = True
            self.log.warning("mqtt: TLS without ca_file: the broker's certificate is not verified")
        session = _Session(self.clock, self.timeout_ms, self.keepalive_s, self._wake, self._periods.duty,
                           self._on_message, self._client_class)
        self._session = session
        await session.open(self.host, self.port, self._tls, self._ca_file, self.client_id, self._user,
                           self._password, self._availability, self.qos)

    def _close(self):
        session = self._session
        self._session = None
        self.connected = False
        self._ha_subscribed = None
        self._watching_availability = False
        self._reannounce = False
        self._unsubscribe = []
        for request in self._requests:
            request.subscribed = False
        if session is not None:
            session.close()
        self._periods.flush_stage()

    def _note_failure(self, exc):
        self.connected = False
        self._failures += 1
        self._last_error = describe_error(exc)

    def _on_message(self, topic, message):
        if self._ha_status is not None and topic == self._ha_status and message == ONLINE:
            self._birth = True
        elif topic == self._availability and message == OFFLINE and self.connected and not self._stopping:
            self._reannounce = True
        for request in self._requests:
            if not request.done and request.topic == topic:
                request.value = decode_object(message)
                request.done = True
                request.answered.set()


async def _wait(clock, event, timeout_ms, condition):
    """Until condition() or timeout_ms pass; ``event`` wakes the check. Returns condition()."""
    start = clock.ticks_ms()
    while not condition():
        left = timeout_ms - clock.ticks_diff(clock.ticks_ms(), start)
        if left <= 0:
            return False
        event.clear()  # nothing runs between the check above and the wait: no wake-up is lost
        await clock.wait_event(event, left, event.is_set)
    return True


def _encode_discovery(messages):
    return [(topic.encode(), payload.encode() if isinstance(payload, str) else bytes(payload))
            for topic, payload in messages]
