"""Setup mode (gateway.setup_mode) on a virtual clock: when the access point opens (no wifi.ssid,
safe mode, the button, Wi-Fi failing for setup.wifi_wait_s with several attempts; not for a slow
router that comes up within the wait, nor on the PC without the button), when it closes
(setup.ap_minutes, extended by use) and that the station is retried; the SSID and password
scheme, the password on the console only; the catch-all DNS it starts; metering that keeps
counting while it runs (the whole gateway, tests/support_gateway.py). Also the board profile
pieces it uses: the scan list, the PC's scan, button and addresses, and the clock."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import os
import socket
import struct

import support_broker as sb
import xrt
from gateway.board_profile import Board, strongest_networks
from gateway.config import LoadResult, parse_config
from gateway.log import Logger
from gateway.setup_mode import MIN_ATTEMPTS, SetupMode, derived_password, setup_ssid
from rbampsim import VirtualClock
from support_gateway import ListLog, Rig, SimBoard, boot, config, constant

try:
    import asyncio
except ImportError:
    asyncio = None

UID = "b0a4d0c0ffee"
AP_IP = "192.168.4.1"
SCAN = [(b"home", b"\x01" * 6, 6, -61, 3, 0), (b"cafe", b"\x02" * 6, 1, -80, 0, 0),
        (b"home", b"\x03" * 6, 11, -48, 3, 0), (b"", b"\x04" * 6, 3, -30, 3, 1)]


def free_udp_port():
    seed = os.urandom(2)
    start = (seed[0] << 8 | seed[1]) % 40000
    for i in range(200):
        port = 20000 + (start + i * 97) % 40000
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(socket.getaddrinfo("127.0.0.1", port, 0, socket.SOCK_DGRAM)[0][-1])
            return port
        except OSError:
            continue
        finally:
            sock.close()
    raise AssertionError("no free loopback UDP port found")


class RadioBoard(Board):
    """A board profile whose radio is a record of what was asked of it."""

    name = "radio"

    def __init__(self, clock, held=False, ap_fails=False, joins_wifi=True):
        Board.__init__(self)
        self.clock = clock
        self.held = held
        self.ap_fails = ap_fails
        self.joins_wifi = joins_wifi
        self.ap = None
        self.ap_ups = 0
        self.ap_downs = 0
        self.scans = 0
        self.dns_port = free_udp_port()

    def unique_id(self):
        return UID

    def scan(self):
        self.scans += 1
        if self.ap is not None:
            raise AssertionError("scanned with the access point up")
        return strongest_networks(SCAN)

    def ap_up(self, ssid, password):
        if self.ap_fails:
            raise OSError(5, "radio refused")
        self.ap = (ssid, password)
        self.ap_ups += 1
        return AP_IP

    def ap_down(self):
        self.ap = None
        self.ap_downs += 1

    def dns_address(self):
        return ("127.0.0.1", self.dns_port)

    async def button_held(self, cfg):
        await self.clock.asleep_ms(2000)
        return self.held


def result(ssid="home", safe_mode=False, **setup):
    raw = {"mqtt": {"host": "broker.invalid"}, "setup": setup}
    if ssid is not None:
        raw["wifi"] = {"ssid": ssid, "password": "wifi-secret-1"}
    return LoadResult(parse_config(raw), not safe_mode, None, "config.json", safe_mode)


class Station:
    """The gateway's network loop as setup mode sees it: an attempt every ``every_ms``, failing
    until ``up_after_ms`` (None: never)."""

    def __init__(self, setup, clock, every_ms=30000, up_after_ms=None):
        self.setup = setup
        self.clock = clock
        self.every_ms = every_ms
        self.up_after_ms = up_after_ms
        self.attempts = 0

    async def run(self):
        waited = 0
        while True:
            await self.clock.asleep_ms(self.every_ms)
            waited += self.every_ms
            self.attempts += 1
            if self.up_after_ms is not None and waited >= self.up_after_ms:
                self.setup.station_up()
                return
            self.setup.station_failed("Wi-Fi 'home' did not connect within 30 s")


def scenario(setup, steps, station=None):
    """Run setup.run() (and the station) on the board's virtual clock; ``steps`` is a list of
    (seconds to wait, check(setup)) done in order."""
    clock = setup.clock

    async def main():
        tasks = [asyncio.create_task(setup.run())]
        if station is not None:
            tasks.append(asyncio.create_task(station.run()))
        try:
            for seconds, check in steps:
                await clock.asleep_ms(int(seconds * 1000))
                check(setup)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            setup.close("test over")

    asyncio.run(main())


def make(res=None, console=None, **board_args):
    clock = VirtualClock()
    board = RadioBoard(clock, **board_args)
    log = ListLog()
    lines = console if console is not None else []
    setup = SetupMode(board, res if res is not None else result(), log, console=lines.append)
    return setup, board, log, lines


def is_open(expected):
    def check(setup):
        assert setup.active is expected, (setup.active, setup.reason, setup.log.text())
    return check


def test_no_wifi_network_opens_at_boot_with_the_scan_and_the_derived_password():
    setup, board, log, console = make(result(ssid=None))
    seen = {}

    def check(setup):
        seen["networks"] = setup.networks
        seen["ap"] = board.ap
        seen["url"] = setup.page_url

    scenario(setup, [(1, is_open(True)), (0, check)])
    assert seen["networks"] == [("home", -48, True), ("cafe", -80, False)], seen
    assert seen["ap"] == ("rbamp-FFEE", derived_password(UID)), seen
    assert seen["url"] == "http://192.168.4.1/setup"
    assert board.scans == 1 and board.ap_ups == 1
    assert "wifi.ssid" in setup.reason
    password = derived_password(UID)
    assert len(console) == 1 and password in console[0] and "rbamp-FFEE" in console[0], console
    assert password not in log.text() and "rbamp-FFEE" in log.text(), log.text()


def test_safe_mode_opens_at_boot():
    setup, board, _, _ = make(result(ssid=None, safe_mode=True))
    scenario(setup, [(1, is_open(True))])
    assert "safe mode" in setup.reason and board.ap_ups == 1


def test_a_slow_router_that_comes_up_within_the_wait_is_only_retried():
    setup, board, _, _ = make()
    station = Station(setup, setup.clock, up_after_ms=240000)  # 7 failures, then connected at 4 min
    scenario(setup, [(299, is_open(False)), (1200, is_open(False))], station)
    assert board.ap_ups == 0 and board.scans == 0 and station.attempts == 8


def test_wifi_failing_for_the_wait_opens_then_closes_and_the_station_is_retried():
    setup, board, log, _ = make()
    station = Station(setup, setup.clock)
    closed_at = {}

    def still_open_at_10_min(setup):
        assert setup.active and board.ap is not None

    def closed(setup):
        assert not setup.active and board.ap is None and setup.dns is None
        closed_at["attempts"] = station.attempts

    # the button check takes the first 2 s; the attempts fail at 30, 60 ... s; the wait is 300 s
    scenario(setup, [(298, is_open(False)), (6, is_open(True)), (596, still_open_at_10_min), (6, closed),
                     (120, is_open(False)), (0, lambda s: closed_at.update(after=station.attempts)),
                     (182, is_open(True))], station)
    assert "has not connected for 300 s (10 attempts" in log.text(), log.text()
    assert "Wi-Fi 'home' is tried again" in log.text()
    assert closed_at["after"] > closed_at["attempts"], "the station loop went on after the close"
    assert board.ap_ups == 2 and board.ap_downs == 2 and board.scans == 2


def test_too_few_attempts_do_not_open():
    setup, board, _, _ = make()
    station = Station(setup, setup.clock, every_ms=500000)  # a network loop that hardly runs
    scenario(setup, [(1199, is_open(False))], station)
    assert station.attempts == MIN_ATTEMPTS - 1 and board.ap_ups == 0


def test_using_the_page_keeps_the_access_point_up():
    setup, board, _, _ = make(result(ssid=None, ap_minutes=5))

    def use(setup):
        setup.touch()

    scenario(setup, [(1, is_open(True)), (240, use), (240, is_open(True)), (62, is_open(False))])
    assert board.ap_downs == 1


def test_the_button_held_at_boot_opens_it():
    setup, board, _, _ = make(held=True)
    scenario(setup, [(3, is_open(True))])
    assert setup.reason == "the setup button was held at boot"
    setup, board, _, _ = make(held=False)
    scenario(setup, [(3, is_open(False))])
    assert board.ap_ups == 0


def test_on_the_pc_only_the_button_opens_it():
    setup, board, _, _ = make(result(ssid=None), joins_wifi=False)
    setup.station_failed("x")
    scenario(setup, [(3600, is_open(False))])
    assert board.ap_ups == 0


def test_a_configured_password_is_used_and_not_printed():
    setup, board, log, console = make(result(ssid=None, ap_password="my-setup-pw"))
    seen = []
    scenario(setup, [(1, is_open(True)), (0, lambda s: seen.append(board.ap))])
    assert seen == [("rbamp-FFEE", "my-setup-pw")] and console == []
    assert "setup.ap_password" in setup.password_hint and "my-setup-pw" not in setup.password_hint


def test_an_access_point_that_fails_is_said_and_tried_after_the_wait():
    setup, board, log, _ = make(result(ssid=None, wifi_wait_s=60), ap_fails=True)

    def works_now(setup):
        board.ap_fails = False

    scenario(setup, [(1, is_open(False)), (0, works_now), (58, is_open(False)), (3, is_open(True))])
    assert "did not come up" in log.text() and "radio refused" in log.text(), log.text()


def test_a_wifi_chip_that_did_not_start_is_not_asked_again():
    # the Pico W's chip failing to start (the emulated one has none): a second start can block the
    # CPU, so after the failed boot attempt nothing touches the radio and nothing more is logged
    setup, board, log, _ = make(result(ssid=None, wifi_wait_s=60), ap_fails=True)
    seen = {}

    def chip_failed(setup):
        board.radio_failed = True
        seen["scans"] = board.scans
        seen["lines"] = len(log.lines)

    scenario(setup, [(1, is_open(False)), (0, chip_failed), (600, is_open(False))])
    assert seen["scans"] == 1 and board.scans == 1, (seen, board.scans)  # the boot attempt only
    assert len(log.lines) == seen["lines"], log.text()


def test_the_password_never_reaches_the_log_ring():
    clock = VirtualClock()
    board = RadioBoard(clock)
    sink = []
    log = Logger(sink=sink.append, clock=clock)
    console = []
    setup = SetupMode(board, result(ssid=None), log, console=console.append)
    password = derived_password(UID)
    log.error("an error that quotes %s", password)

    async def main():
        assert setup.open("test")
        setup.close("test over")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert password in console[0]
    assert not [line for line in sink + log.recent(16) if password in line], sink
    assert "***" in sink[0]


def test_ssid_and_password_scheme():
    assert setup_ssid("e6614c311b2a4f26") == "rbamp-4F26"
    assert setup_ssid("host1a2b") == "rbamp-1A2B"
    password = derived_password("e6614c311b2a4f26")
    assert password == "d6749456"  # docs/setup.md's example
    assert password != derived_password("e6614c311b2a4f27")
    assert derived_password(UID) == "db9c92b9"  # sha256(b"rbamp-setup:b0a4d0c0ffee")[:4], as docs/setup.md computes


def test_the_dns_answers_with_the_access_point_while_open():
    setup, board, _, _ = make(result(ssid=None))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    target = socket.getaddrinfo("127.0.0.1", board.dns_port, 0, socket.SOCK_DGRAM)[0][-1]
    query = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00\x00\x01\x00\x01"
    replies = []

    async def main():
        assert setup.open("test")
        client.sendto(query, target)

        def answered():
            try:
                replies.append(client.recv(512))
            except OSError:
                pass
            return bool(replies)

        try:
            await sb.wait_until(answered, 5000, "the DNS reply")
        finally:
            setup.close("test over")
        await asyncio.sleep(0)

    try:
        sb.run(main())
    finally:
        client.close()
    assert replies[0][:2] == b"\x42\x42" and replies[0][-4:] == bytes([192, 168, 4, 1]), replies
    assert setup.dns is None and board.ap is None


class RadioSimBoard(SimBoard):
    """The whole gateway's simulated board with the recorded radio of RadioBoard."""

    joins_wifi = True

    def __init__(self, rig):
        SimBoard.__init__(self, rig)
        self.radio = RadioBoard(rig.clock)

    def scan(self):
        return self.radio.scan()

    def ap_up(self, ssid, password):
        return self.radio.ap_up(ssid, password)

    def ap_down(self):
        self.radio.ap_down()

    def dns_address(self):
        return self.radio.dns_address()

    def web_address(self, cfg):
        return ("0.0.0.0", 8080)

    async def button_held(self, cfg):
        return False


def test_metering_keeps_counting_while_setup_mode_runs():
    rig = Rig("setup_metering", [("UI2", 0x04, 0x50, constant(1000.0, 500.0))])
    cfg = config([{"address": 0x50}], period_s=60)
    seen = {}

    async def during(gateway):
        board = RadioSimBoard(rig)
        setup = SetupMode(board, LoadResult(gateway.config, True, None, "config.json", False), gateway.log,
                          console=lambda line: None)
        await rig.clock.asleep_ms(60000)
        seen["samples"] = gateway.metering.samples
        seen["commits"] = gateway.metering.commits
        task = asyncio.create_task(setup.run())
        await rig.clock.asleep_ms(1000)
        seen["open"] = setup.active  # no wifi.ssid in this config: opens at once
        await rig.clock.asleep_ms(11 * 60000)
        seen["closed"] = not setup.active
        seen["samples_after"] = gateway.metering.samples
        seen["commits_after"] = gateway.metering.commits
        seen["periods_after"] = gateway.metering.periods
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        setup.close("test over")
        seen["ups"] = board.radio.ap_ups

    gateway, log = boot(rig, cfg, 0, during)
    assert "fatal" not in log.text(), log.text()
    assert seen["open"] and seen["closed"] and seen["ups"] == 1, (seen, log.text())
    sampled = seen["samples_after"] - seen["samples"]
    assert sampled >= 5 * 660 * 0.95, seen  # 5 Hz for the 11 minutes the access point was up and after
    assert seen["commits_after"] > seen["commits"] and seen["periods_after"] >= 11, seen


# ---------------------------------------------------------------------- board profile pieces
def test_the_scan_list_is_strongest_first_once_per_name_without_hidden_ones():
    found = SCAN + [(b"\xff\xfe", b"\x05" * 6, 1, -20, 3, 0), (b"cafe", b"\x06" * 6, 1, -90, 0, 0)]
    assert strongest_networks(found) == [("home", -48, True), ("cafe", -80, False)]


def _setenv(key, value):
    if hasattr(os, "environ"):  # CPython: os.putenv would leave os.getenv's view unchanged
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    elif value is None:
        os.unsetenv(key)
    else:
        os.putenv(key, value)


def test_the_pc_profile_scans_a_file_has_a_button_file_and_loopback_addresses():
    import hostboard

    names = ("RBAMP_DATA", "RBAMP_HOST_SCAN", "RBAMP_DNS_PORT", "RBAMP_WEB_PORT")
    saved = [os.getenv(name) for name in names]
    _setenv("RBAMP_DATA", xrt.tmp_path("pc_profile"))
    for name in names[1:]:
        _setenv(name, None)
    try:
        _check_the_pc_profile(hostboard.HostBoard())
    finally:
        for i in range(len(names)):
            _setenv(names[i], saved[i])


def _check_the_pc_profile(board):
    path = board.path("scan.json")
    with open(path, "w") as f:
        f.write('[{"ssid": "b", "rssi": -70, "secure": false}, {"ssid": "a", "rssi": -40}, '
                '{"ssid": "b", "rssi": -50, "secure": false}]')
    try:
        assert board.scan() == [("a", -40, True), ("b", -50, False)]
        with open(path, "w") as f:
            f.write('{"ssid": "a"}')
        error = xrt.raises(ValueError, board.scan)
        assert "scan.json" in str(error), error
    finally:
        os.remove(path)
    assert board.scan() == []
    button = board.path("setup_button")
    with open(button, "w") as f:
        f.write("")
    assert asyncio.run(board.button_held(None)) is True
    assert asyncio.run(board.button_held(None)) is False  # consumed: one press, one setup mode
    assert board.ap_up("rbamp-1A2B", "pw") == "127.0.0.1" and board.ap == ("rbamp-1A2B", "pw")
    board.ap_down()
    assert board.ap is None
    assert board.dns_address() == ("127.0.0.1", 5353)
    assert board.web_address(None) == ("127.0.0.1", 8080)
    _setenv("RBAMP_DNS_PORT", "53530")
    _setenv("RBAMP_WEB_PORT", "0")
    assert board.dns_address() == ("127.0.0.1", 53530)
    assert "RBAMP_WEB_PORT" in str(xrt.raises(ValueError, board.web_address, None))
    assert board.joins_wifi is False and board.set_utc_time(0) is None


def test_boards_serve_every_interface_on_the_configured_ports():
    board = RadioBoard(VirtualClock())
    cfg = result().config
    cfg["web"]["port"] = 8081
    assert Board.web_address(board, cfg) == ("0.0.0.0", 8081)
    assert Board.dns_address(board) == ("0.0.0.0", 53)


def test_utc_time_counts_from_1970_on_a_port_counting_from_2000():
    import time

    board = RadioBoard(VirtualClock())
    now = board.utc_time()
    assert now > 1700000000 and abs(now - time.time()) <= 1  # this PC's port counts from 1970
    board._epoch_offset = 946684800  # as on the RP2040 and the ESP32, whose time.time() counts from 2000
    assert board.utc_time() - now in (946684800, 946684801)

    class RTC:
        set_to = None

        def datetime(self, fields):
            RTC.set_to = fields

    class FakeMachine:
        pass

    FakeMachine.RTC = RTC
    import sys

    saved = sys.modules.get("machine")
    sys.modules["machine"] = FakeMachine
    try:
        board.set_utc_time(1796184000 + 946684800)
    finally:
        if saved is None:
            del sys.modules["machine"]
        else:
            sys.modules["machine"] = saved
    # the RTC is given the port's own calendar fields of (seconds - 2000's offset): on a board its
    # gmtime counts from 2000, so that is the same instant; here gmtime counts from 1970
    expected = time.gmtime(1796184000)
    assert RTC.set_to == (expected[0], expected[1], expected[2], expected[6], expected[3], expected[4],
                          expected[5], 0), RTC.set_to
