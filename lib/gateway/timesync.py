"""The board's clock from SNTP servers: set once the network is up, checked against a second
server, resynced daily, retried with backoff.

    sync = TimeSync(cfg, board, log, board.clock)
    asyncio.create_task(sync.run())     # returns at once when there is nothing to do
    sync.synced, sync.last_sync_utc, sync.server
    sync.utc_now()                      # seconds since 1970 UTC, or None until synced

Servers: ``ntp.host`` first when set, then ``ntp.servers``, asked one after the other (UDP port
123, one request each, ``timeout_ms`` per server) until two answers agree within ``AGREE_S``
seconds. One answer alone sets a clock that was never set, or moves a set one by at most
``MAX_STEP_S``; answers that disagree (and no third that settles it) set nothing. The clock
is set through ``board.set_utc_time(seconds since 1970)``.

An answer counts only if it is a server reply (mode 4) to this request (it echoes our transmit
timestamp), from a synchronised server (stratum 1..15, leap indicator not 3 "unsynchronised"),
with a transmit time that is not zero and not before 2025. Half the round trip is added.

On the PC (``board.name == "host"``) the PC keeps its own time: synced from the start, no query
is ever sent. On a board with ``ntp.enabled`` false the clock is never known (``synced`` stays
False: day totals count since boot).

Waiting for an answer is asyncio's own wait on the socket (MicroPython: its ``Stream``;
CPython: ``loop.sock_recv``) under ``wait_for``, which bounds it in real time: a network answer
does not come sooner because a test's clock runs virtual. The pauses between syncs and retries
go through the clock seam. The name lookup (``getaddrinfo``) blocks on the boards, as for MQTT.
"""

import asyncio
import errno
import socket
import struct
import sys

NTP_PORT = 123
TIMEOUT_MS = 2000           # per server
AGREE_S = 5                 # two answers within this of each other agree
MAX_STEP_S = 86400          # one answer alone moves a set clock by at most this
RESYNC_MS = 24 * 3600 * 1000
RETRY_BASE_MS = 60 * 1000   # all servers failed: retry after 1 min, doubling up to 1 h
RETRY_CAP_MS = 3600 * 1000
NETWORK_POLL_MS = 5000
EARLIEST_UTC = 1735689600   # 2025-01-01: a clock before this was never set
_NTP_TO_UNIX = 2208988800   # seconds from 1900-01-01 to 1970-01-01
_PACKET = 48
_MICROPYTHON = sys.implementation.name == "micropython"
# "not now" from a non-blocking socket: EAGAIN everywhere; the RP2 port also says -110
_TRY_AGAIN = (errno.EAGAIN, getattr(errno, "EWOULDBLOCK", errno.EAGAIN), -110)


class NtpError(Exception):
    """A server's answer that cannot be used (the message says why)."""


class Answer:
    def __init__(self, server, utc_s, ticks_ms):
        self.server = server
        self.utc_s = utc_s        # UTC seconds at ticks_ms
        self.ticks_ms = ticks_ms


def request_packet(nonce):
    """An SNTP client request (version 4, mode 3) whose transmit timestamp is ``nonce`` (8 bytes)."""
    packet = bytearray(_PACKET)
    packet[0] = 0x23
    packet[40:48] = nonce
    return packet


def parse_reply(reply, nonce, rtt_ms):
    """UTC seconds (int) from a server's reply to the request carrying ``nonce``; NtpError if it
    is not a sane answer to it."""
    if len(reply) < _PACKET:
        raise NtpError("short reply (%d bytes)" % len(reply))
    leap = reply[0] >> 6
    mode = reply[0] & 7
    stratum = reply[1]
    if mode != 4:
        raise NtpError("not a server reply (mode %d)" % mode)
    if bytes(reply[24:32]) != bytes(nonce):
        raise NtpError("not the reply to our request")
    if leap == 3 or not 1 <= stratum <= 15:
        raise NtpError("server not synchronised (leap %d, stratum %d)" % (leap, stratum))
    seconds, fraction = struct.unpack("!II", reply[40:48])
    if not seconds and not fraction:
        raise NtpError("no transmit time")
    if seconds < 0x80000000:
        seconds += 0x100000000  # NTP era 1 (after 2036-02-07)
    fraction_ms = (fraction * 1000) >> 32
    utc_s = seconds - _NTP_TO_UNIX + (fraction_ms + rtt_ms // 2 + 500) // 1000
    if utc_s < EARLIEST_UTC:
        raise NtpError("time before 2025 (%d)" % utc_s)
    return utc_s


def _nonce(clock):
    try:
        import os

        return os.urandom(8)
    except (ImportError, AttributeError, OSError, NotImplementedError):
        return struct.pack("!II", clock.ticks_us(), clock.ticks_ms())


class TimeSync:
    def __init__(self, config, board, log, clock, port=NTP_PORT, timeout_ms=TIMEOUT_MS):
        self.board = board
        self.log = log
        self.clock = clock
        self.port = port
        self.timeout_ms = timeout_ms
        ntp = config["ntp"]
        servers = [ntp["host"]] if ntp["host"] else []
        for name in ntp["servers"]:
            if name not in servers:
                servers.append(name)
        self.servers = servers
        self.enabled = ntp["enabled"]
        self.synced = False
        self.last_sync_utc = None
        self.server = None
        self.syncs = 0
        self.failures = 0  # rounds in which no server gave a usable time
        self._network_warned = False
        if board.name == "host":  # the PC keeps its own time (its NTP daemon sets it)
            self.synced = True
            self.last_sync_utc = board.utc_time()
            self.server = "host clock"

    def utc_now(self):
        """Seconds since 1970 UTC by the board's clock, or None until it was set."""
        return self.board.utc_time() if self.synced else None

    async def run(self):
        """Sync when the network is up, then daily; never raises. Returns at once on the PC and
        when NTP is off."""
        if self.board.name == "host" or not self.enabled or not self.servers:
            return
        from gateway.backoff import Backoff

        backoff = Backoff(RETRY_BASE_MS, RETRY_CAP_MS)
        while True:
            while not self._network_ok():
                await self.clock.asleep_ms(NETWORK_POLL_MS)
            try:
                done = await self.sync_once()
            except Exception as exc:  # a bug must not end the task: log it and try later
                self.log.exception("ntp: sync failed", exc)
                done = False
            if done:
                backoff.reset()
                await self.clock.asleep_ms(RESYNC_MS)
            else:
                self.failures += 1
                delay = backoff.next_delay_ms()
                self.log.warning("ntp: no usable time; retry in %d s", delay // 1000)
                await self.clock.asleep_ms(delay)

    def _network_ok(self):
        try:
            return self.board.network_ok()
        except Exception as exc:  # a port without a network module: keep waiting, say it once
            if not self._network_warned:
                self._network_warned = True
                self.log.error("ntp: cannot tell whether the network is up (%s)", exc)
            return False

    async def sync_once(self):
        """Ask the servers until two agree (or all were asked); set the clock. True if it was set."""
        answers = []
        for server in self.servers:
            try:
                answer = await self.query(server)
            except (OSError, NtpError, asyncio.TimeoutError) as exc:
                self.log.warning("ntp: %s: %s", server, _describe(exc))
                continue
            for earlier in answers:
                if abs(self._projected(earlier, answer.ticks_ms) - answer.utc_s) <= AGREE_S:
                    self._set(answer, "%s and %s agree" % (earlier.server, server))
                    return True
            answers.append(answer)
        if len(answers) == 1:
            answer = answers[0]
            if self.synced:
                step = answer.utc_s - self._board_utc_at(answer.ticks_ms)
                if abs(step) > MAX_STEP_S:
                    self.log.warning("ntp: %s alone would move the clock by %d s; not taken without a "
                                     "second server that agrees", answer.server, step)
                    return False
            self._set(answer, "the only answer")
            return True
        if answers:
            self.log.warning("ntp: the servers disagree (%s); clock not set",
                             ", ".join("%s %d" % (a.server, a.utc_s) for a in answers))
        return False

    async def query(self, server):
        """One request to ``server``; an Answer, or OSError / NtpError / asyncio.TimeoutError."""
        info = socket.getaddrinfo(server, self.port, 0, socket.SOCK_DGRAM)
        if not info:
            raise OSError("no address for %s" % server)
        family, kind, proto, _, address = info[0][:5]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.connect(address)  # replies from anywhere else are not ours
            nonce = _nonce(self.clock)
            sent_ms = self.clock.ticks_ms()
            sock.send(request_packet(nonce))
            reply = await self._receive(sock)
            received_ms = self.clock.ticks_ms()
        finally:
            sock.close()
        rtt_ms = self.clock.ticks_diff(received_ms, sent_ms)
        return Answer(server, parse_reply(reply, nonce, rtt_ms if rtt_ms > 0 else 0), received_ms)

    async def _receive(self, sock):
        if _MICROPYTHON:
            buf = bytearray(_PACKET)
            got = await asyncio.wait_for_ms(_datagram_into(sock, buf), self.timeout_ms)  # pyright: ignore[reportAttributeAccessIssue]
            return memoryview(buf)[:got]
        loop = asyncio.get_event_loop()
        return await asyncio.wait_for(loop.sock_recv(sock, 64), self.timeout_ms / 1000)  # pyright: ignore[reportAttributeAccessIssue]

    def _projected(self, answer, ticks_ms):
        return answer.utc_s + self.clock.ticks_diff(ticks_ms, answer.ticks_ms) // 1000

    def _board_utc_at(self, ticks_ms):
        return self.board.utc_time() - self.clock.ticks_diff(self.clock.ticks_ms(), ticks_ms) // 1000

    def _set(self, answer, why):
        utc_s = self._projected(answer, self.clock.ticks_ms())
        step = utc_s - self.board.utc_time()
        self.board.set_utc_time(utc_s)
        first = not self.synced
        self.synced = True
        self.last_sync_utc = utc_s
        self.server = answer.server
        self.syncs += 1
        if first:
            self.log.info("ntp: clock set from %s (%s)", answer.server, why)
        else:
            self.log.info("ntp: clock checked with %s (%s), moved %d s", answer.server, why, step)


async def _datagram_into(sock, buf):
    """MicroPython: wait (asyncio's poll of the socket) until a datagram is in ``buf``; a wake-up
    without one (the ports' "try again") waits again."""
    reader = asyncio.StreamReader(sock)  # pyright: ignore[reportCallIssue]  # MicroPython's Stream(sock)
    while True:
        try:
            got = await reader.readinto(buf)
        except OSError as exc:
            if not (exc.args and exc.args[0] in _TRY_AGAIN):
                raise
            got = None
        if got is not None:
            return got


def _describe(exc):
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__
