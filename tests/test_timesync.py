"""gateway.timesync against fake SNTP servers on loopback UDP (127.0.0.1 .. 127.0.0.5, one port):
sane ones, a silent one, insane ones, two that disagree; resyncs and retries in virtual time."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import asyncio
import os
import socket
import struct

import xrt
from gateway.log import Logger
from gateway.timesync import EARLIEST_UTC, MAX_STEP_S, RESYNC_MS, NtpError, TimeSync, parse_reply, request_packet
from rbampsim.clock import VirtualClock

TRUE_UTC = 1796193000  # 2026-12-02 06:30:00 UTC at virtual time 0
NTP_OFFSET = 2208988800
NONCE = b"\x01\x02\x03\x04\x05\x06\x07\x08"
QUICK_TIMEOUT_MS = 300  # only silent servers wait it out


def reply_packet(utc_s, nonce=NONCE, mode=4, stratum=2, leap=0, fraction=0):
    packet = bytearray(48)
    packet[0] = leap << 6 | 4 << 3 | mode
    packet[1] = stratum
    packet[24:32] = nonce
    seconds = (utc_s + NTP_OFFSET) & 0xFFFFFFFF if utc_s else 0
    packet[40:48] = struct.pack("!II", seconds, fraction)
    return packet


def test_parse_reply_takes_only_sane_answers():
    assert parse_reply(reply_packet(TRUE_UTC), NONCE, 0) == TRUE_UTC
    assert parse_reply(reply_packet(TRUE_UTC, fraction=0x80000000), NONCE, 0) == TRUE_UTC + 1  # .5 s rounds up
    assert parse_reply(reply_packet(TRUE_UTC, fraction=0x40000000), NONCE, 400) == TRUE_UTC + 0  # .25 + .2 s
    assert parse_reply(reply_packet(TRUE_UTC, fraction=0x40000000), NONCE, 600) == TRUE_UTC + 1  # .25 + .3 s
    after_2036 = 2240524800  # 2041-01-01: NTP seconds wrapped into era 1
    assert parse_reply(reply_packet(after_2036), NONCE, 0) == after_2036
    refused = [
        (reply_packet(TRUE_UTC, mode=3), "mode 3"),
        (reply_packet(TRUE_UTC, stratum=0), "stratum 0"),
        (reply_packet(TRUE_UTC, stratum=16), "stratum 16"),
        (reply_packet(TRUE_UTC, leap=3), "leap 3"),
        (reply_packet(0), "no transmit time"),
        (reply_packet(EARLIEST_UTC - 1), "before 2025"),
        (reply_packet(TRUE_UTC, nonce=b"\x00" * 8), "not the reply"),
        (reply_packet(TRUE_UTC)[:47], "short"),
    ]
    for packet, reason in refused:
        exc = xrt.raises(NtpError, parse_reply, packet, NONCE, 0)
        assert reason in str(exc), (reason, str(exc))
    request = request_packet(NONCE)
    assert len(request) == 48 and request[0] == 0x23 and bytes(request[40:48]) == NONCE


class FakeBoard:
    name = "board"

    def __init__(self, clock, utc_at_zero=1700000000, network_after=0):
        self.clock = clock
        self.offset = utc_at_zero  # a wrong clock until set
        self.set_calls = []
        self.network_after = network_after
        self.network_checks = 0

    def network_ok(self):
        self.network_checks += 1
        return self.network_checks > self.network_after

    def utc_time(self):
        return self.offset + self.clock.now_us() // 1000000

    def set_utc_time(self, seconds):
        self.set_calls.append(seconds)
        self.offset = seconds - self.clock.now_us() // 1000000


class FakeSntp:
    """One SNTP server on 127.0.0.<n>: answers each request with the true time plus ``skew_s``
    (``reply`` may replace the packet; None keeps it silent)."""

    def __init__(self, host_index, port, clock, skew_s=0, reply=None, silent=False):
        self.host = "127.0.0.%d" % host_index
        self.clock = clock
        self.skew_s = skew_s
        self.reply = reply
        self.silent = silent
        self.requests = 0
        self.request_ms = []  # virtual time of each request
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(socket.getaddrinfo(self.host, port)[0][-1])
        self.sock.setblocking(False)

    def true_utc(self):
        return TRUE_UTC + self.clock.now_us() // 1000000

    def answer_pending(self):
        try:
            request, peer = self.sock.recvfrom(64)
        except OSError:
            return False  # nothing waiting
        self.requests += 1
        self.request_ms.append(self.clock.now_us() // 1000)
        if self.silent:
            return True
        if self.reply is not None:
            packet = self.reply(request)
        else:
            packet = reply_packet(self.true_utc() + self.skew_s, nonce=bytes(request[40:48]))
        self.sock.sendto(packet, peer)
        return True

    def close(self):
        self.sock.close()


class Servers:
    """Fake servers on one port; a task answers them every few real milliseconds."""

    def __init__(self, clock, specs):
        seed = os.urandom(2)
        start = (seed[0] << 8 | seed[1]) % 30000
        last = None
        for attempt in range(50):
            port = 30000 + (start + attempt * 131) % 30000
            made = []
            try:
                for index, spec in enumerate(specs):
                    made.append(FakeSntp(index + 1, port, clock, **spec))
            except OSError as exc:
                last = exc
                for server in made:
                    server.close()
                continue
            self.port = port
            self.all = made
            return
        raise AssertionError("no free UDP port on loopback: %s" % last)

    def hosts(self):
        return [server.host for server in self.all]

    async def serve(self):
        while True:
            for server in self.all:
                server.answer_pending()
            await asyncio.sleep(0.002)

    def close(self):
        for server in self.all:
            server.close()


def config(servers, host=None, enabled=True):
    return {"ntp": {"enabled": enabled, "host": host, "servers": servers}}


def run_with(servers, coro_factory, timeout_s=30):
    async def main():
        serving = asyncio.create_task(servers.serve())
        try:
            return await asyncio.wait_for(coro_factory(), timeout_s)
        finally:
            serving.cancel()
            try:
                await serving
            except BaseException:  # noqa: B036 - the cancelled task ends with CancelledError
                pass

    try:
        return asyncio.run(main())
    finally:
        servers.close()


def make(servers_cfg, clock, board=None, lines=None, host=None, timeout_ms=2000, port=0):
    board = board if board is not None else FakeBoard(clock)
    log = Logger(sink=(lines.append if lines is not None else (lambda line: None)))
    return TimeSync(config(servers_cfg, host), board, log, clock, port=port, timeout_ms=timeout_ms), board


def test_two_servers_that_agree_set_the_clock():
    clock = VirtualClock()
    servers = Servers(clock, [{}, {}, {}])
    sync, board = make(servers.hosts(), clock, port=servers.port)
    assert not sync.synced and sync.utc_now() is None
    assert run_with(servers, sync.sync_once) is True
    assert sync.synced and sync.server == "127.0.0.2"
    assert board.set_calls == [TRUE_UTC]
    assert sync.utc_now() == TRUE_UTC and sync.last_sync_utc == TRUE_UTC
    assert [s.requests for s in servers.all] == [1, 1, 0]  # the third was not needed


def test_a_silent_server_is_skipped():
    lines = []
    clock = VirtualClock()
    servers = Servers(clock, [{"silent": True}, {}, {}])
    hosts = servers.hosts()
    # ntp.host is asked first, then the list (without repeating it)
    sync, board = make(hosts[1:] + [hosts[0]], clock, lines=lines, host=hosts[0], timeout_ms=QUICK_TIMEOUT_MS,
                       port=servers.port)
    assert sync.servers == [hosts[0], hosts[1], hosts[2]]
    assert run_with(servers, sync.sync_once) is True
    assert board.set_calls == [TRUE_UTC]
    assert [s.requests for s in servers.all] == [1, 1, 1]
    assert [line for line in lines if "127.0.0.1: no answer in time" in line], lines


def test_insane_servers_are_refused():
    lines = []
    clock = VirtualClock()

    def unsynchronised(request):
        return reply_packet(TRUE_UTC, nonce=bytes(request[40:48]), leap=3)

    def foreign(request):
        return reply_packet(TRUE_UTC)  # does not echo our request

    def ancient(request):
        return reply_packet(1000000000, nonce=bytes(request[40:48]))

    servers = Servers(clock, [{"reply": unsynchronised}, {"reply": foreign}, {"reply": ancient}, {}, {}])
    sync, board = make(servers.hosts(), clock, lines=lines, port=servers.port)
    assert run_with(servers, sync.sync_once) is True
    assert board.set_calls == [TRUE_UTC] and sync.server == "127.0.0.5"
    for reason in ("not synchronised", "not the reply", "before 2025"):
        assert [line for line in lines if reason in line], (reason, lines)


def test_servers_that_disagree_need_a_third():
    clock = VirtualClock()
    servers = Servers(clock, [{}, {"skew_s": 3600}, {}])
    sync, board = make(servers.hosts(), clock, port=servers.port)
    assert run_with(servers, sync.sync_once) is True
    assert board.set_calls == [TRUE_UTC] and sync.server == "127.0.0.3"

    lines = []
    servers = Servers(clock, [{}, {"skew_s": 3600}])
    sync, board = make(servers.hosts(), clock, lines=lines, port=servers.port)
    assert run_with(servers, sync.sync_once) is False
    assert board.set_calls == [] and not sync.synced
    assert [line for line in lines if "disagree" in line]


def test_one_answer_alone_moves_a_set_clock_only_a_little():
    lines = []
    clock = VirtualClock()
    far = 2 * MAX_STEP_S
    servers = Servers(clock, [{"skew_s": far}, {"silent": True}])
    sync, board = make(servers.hosts(), clock, lines=lines, timeout_ms=QUICK_TIMEOUT_MS, port=servers.port)
    sync.synced = True  # as after an earlier sync to the true time
    board.offset = TRUE_UTC
    assert run_with(servers, sync.sync_once) is False
    assert board.set_calls == []
    assert [line for line in lines if "alone would move the clock by %d s" % far in line], lines

    servers = Servers(clock, [{"skew_s": far}, {"skew_s": far}])
    sync, board = make(servers.hosts(), clock, port=servers.port)
    sync.synced = True
    board.offset = TRUE_UTC
    assert run_with(servers, sync.sync_once) is True
    assert board.set_calls == [TRUE_UTC + far]

    servers = Servers(clock, [{"skew_s": 30}, {"silent": True}])
    sync, board = make(servers.hosts(), clock, timeout_ms=QUICK_TIMEOUT_MS, port=servers.port)
    sync.synced = True
    board.offset = TRUE_UTC
    assert run_with(servers, sync.sync_once) is True
    assert board.set_calls == [TRUE_UTC + 30]


async def run_until(sync, done):
    task = asyncio.create_task(sync.run())
    try:
        while not done():
            await asyncio.sleep(0.001)
    finally:
        task.cancel()
        try:
            await task
        except BaseException:  # noqa: B036 - the cancelled task ends with CancelledError
            pass


def test_waits_for_the_network_then_resyncs_daily():
    clock = VirtualClock()
    servers = Servers(clock, [{}, {}])
    board = FakeBoard(clock, network_after=3)
    sync, _ = make(servers.hosts(), clock, board=board, port=servers.port)
    run_with(servers, lambda: run_until(sync, lambda: len(board.set_calls) >= 3))
    # three polls of the network 5 s apart (virtual time), then a sync a day, each to the true time
    day_s = RESYNC_MS // 1000
    assert board.set_calls[:3] == [TRUE_UTC + 15, TRUE_UTC + 15 + day_s, TRUE_UTC + 15 + 2 * day_s]
    assert board.network_checks >= 6


def test_retries_with_growing_pauses_while_no_server_answers():
    clock = VirtualClock()
    servers = Servers(clock, [{"silent": True}])
    sync, board = make(servers.hosts(), clock, timeout_ms=QUICK_TIMEOUT_MS, port=servers.port)
    silent = servers.all[0]
    run_with(servers, lambda: run_until(sync, lambda: silent.requests >= 4))
    tried_at = silent.request_ms
    pauses = [tried_at[i + 1] - tried_at[i] for i in range(3)]
    assert 30000 <= pauses[0] <= 60000 and 60000 <= pauses[1] <= 120000 and 120000 <= pauses[2] <= 240000, pauses
    assert not sync.synced and board.set_calls == [] and sync.failures >= 3


def test_the_pc_is_synced_from_the_start_and_a_board_without_ntp_never():
    clock = VirtualClock()
    board = FakeBoard(clock, utc_at_zero=TRUE_UTC)
    board.name = "host"
    sync, _ = make(["127.0.0.1"], clock, board=board, port=9)
    assert sync.synced and sync.utc_now() == TRUE_UTC and sync.server == "host clock"
    asyncio.run(sync.run())  # returns at once: no query
    assert board.set_calls == [] and board.network_checks == 0

    board = FakeBoard(clock, utc_at_zero=TRUE_UTC)
    log = Logger(sink=lambda line: None)
    sync = TimeSync(config(["127.0.0.1"], enabled=False), board, log, clock, port=9)
    asyncio.run(sync.run())
    assert not sync.synced and sync.utc_now() is None and board.network_checks == 0


def test_a_board_that_cannot_tell_the_network_state_keeps_waiting():
    class NoNetwork(FakeBoard):
        def network_ok(self):
            self.network_checks += 1
            raise ImportError("no module named 'network'")

    lines = []
    clock = VirtualClock()
    board = NoNetwork(clock)
    sync, _ = make(["127.0.0.1"], clock, board=board, lines=lines, port=9)

    async def main():
        task = asyncio.create_task(sync.run())
        while board.network_checks < 5:
            await asyncio.sleep(0.001)
        assert not task.done()  # the task lives on: the gateway's gather must not end
        task.cancel()
        try:
            await task
        except BaseException:  # noqa: B036 - the cancelled task ends with CancelledError
            pass

    asyncio.run(main())
    assert len([line for line in lines if "cannot tell whether the network is up" in line]) == 1
    assert not sync.synced
