"""The board profile every board shares: where config.json, the backlog and the journal live, how
the I2C bus, the DRDY pin, Wi-Fi, the watchdog and a reset are made. A profile overrides what
differs on its board (``gateway.boards`` holds the ESP32 and Pico W ones and picks one with
``detect()``; the PC's profile lives with the PC tools, ``tools/hostboard.py``).

Kept apart from ``gateway.boards`` so a profile defined outside the package (the PC's) can build
on this class without importing the module that looks profiles up: no import cycle.

    from gateway.board_profile import Board

    class MyBoard(Board):
        name = "mine"

        def watchdog(self, timeout_ms):
            return None          # no watchdog on this board

    board = MyBoard()
    bus = board.i2c(cfg)         # cfg: the validated config.json
    print(board.config_path)     # /config.json
"""

JOURNAL_BLOCK_SIZE = 4096
JOURNAL_BLOCKS = 16

# MicroPython on the RP2040 and the ESP32 counts time from 2000-01-01; the unix port and CPython
# from 1970-01-01. Wall-clock seconds leave a profile counted from 1970 on every port.
_SECONDS_1970_TO_2000 = 946684800


BUTTON_HOLD_MS = 2000
BUTTON_READ_MS = 50


def strongest_networks(found):
    """[(ssid, rssi, secure)] from ``WLAN.scan()`` entries (ssid bytes, bssid, channel, rssi,
    security, hidden): one entry per name with its strongest signal, strongest first; hidden
    networks and names that are not UTF-8 are left out (they cannot be picked from a list)."""
    best = {}
    for entry in found:
        try:
            ssid = entry[0].decode() if isinstance(entry[0], (bytes, bytearray)) else str(entry[0])
        except UnicodeError:
            continue
        if not ssid:
            continue
        rssi = int(entry[3])
        known = best.get(ssid)
        if known is None or rssi > known[1]:
            best[ssid] = (ssid, rssi, entry[4] != 0)
    networks = list(best.values())
    networks.sort(key=_by_signal)
    return networks


def _by_signal(network):
    return (-network[1], network[0])


class Board:
    """Common behaviour; a profile overrides what differs."""

    name = "generic"
    data_dir = ""

    def __init__(self):
        from rbamp.clock import SYSTEM_CLOCK

        self.clock = SYSTEM_CLOCK
        self.radio_failed = False  # the Wi-Fi chip did not start: not touched again until a reset
        self._epoch_offset = None  # seconds from 1970 to this port's epoch, looked up once

    def path(self, name):
        return self.data_dir + "/" + name if self.data_dir else "/" + name

    @property
    def config_path(self):
        return self.path("config.json")

    @property
    def last_good_path(self):
        return self.path("config.last_good.json")

    def i2c(self, cfg):
        from machine import I2C, Pin

        i2c_cfg = cfg["i2c"]
        if i2c_cfg["scl"] is not None:  # config.json gives both pins or neither
            return I2C(i2c_cfg["bus"], scl=Pin(i2c_cfg["scl"]), sda=Pin(i2c_cfg["sda"]), freq=i2c_cfg["freq"])
        return I2C(i2c_cfg["bus"], freq=i2c_cfg["freq"])

    def drdy_pin(self, cfg):
        if cfg["drdy_pin"] is None:
            return None
        from machine import Pin

        return Pin(cfg["drdy_pin"], Pin.IN, Pin.PULL_UP)

    def journal_device(self):
        """The journal as block files on the board's filesystem (a single ``energy.img`` from an
        earlier version is moved into them first, byte for byte)."""
        from gateway.flashdev import BlockFilesDevice, adopt_image

        path = self.path("energy.d")
        adopt_image(self.path("energy.img"), path, JOURNAL_BLOCK_SIZE, JOURNAL_BLOCKS)
        return BlockFilesDevice(path, JOURNAL_BLOCK_SIZE, JOURNAL_BLOCKS)

    def reclaim_journal(self, device):
        """The journal device holds data that is not a journal; return a device to format.

        Journal files are moved aside (kept as ``<name>.foreign``, nothing is destroyed) and blank
        ones take their place. A dedicated flash region is returned as it is: nothing but the
        journal lives there, and foreign bytes only mean it was never formatted (a first boot
        after flashing our image over a layout that kept a filesystem in that range).
        """
        from gateway.flashdev import BlockFilesDevice, FileBlockDevice, remove_tree

        if not isinstance(device, (FileBlockDevice, BlockFilesDevice)):
            return device
        import os

        device.close()
        kept = device.path + ".foreign"
        try:
            os.stat(kept)
            if isinstance(device, BlockFilesDevice):
                remove_tree(kept)
            else:
                os.remove(kept)
        except OSError:
            pass  # no older copy to replace
        os.rename(device.path, kept)
        return type(device)(device.path, device.block_size, device.block_count)

    def archive_journal(self, device, seq):
        """Copy the whole journal device into ``energy.<seq>.img`` (a journal image that
        ``rbamp journal`` reads) before a config change drops totals from the live journal.
        Returns the file's path once the copy is complete and synced; an existing copy of the
        same sequence number is kept as it is (the same journal was already kept aside)."""
        import os

        path = self.path("energy.%d.img" % seq)
        try:
            os.stat(path)
            return path
        except OSError:
            pass  # not kept yet
        blocks = device.ioctl(4, 0)
        size = device.ioctl(5, 0)
        buf = bytearray(size)
        partial = path + ".part"
        with open(partial, "wb") as f:
            for block in range(blocks):
                device.readblocks(block, buf, 0)
                f.write(buf)
        os.rename(partial, path)  # a copy cut short by a power cut never looks complete
        return path

    def unique_id(self):
        import machine

        return "".join("%02x" % b for b in machine.unique_id())

    async def network_up(self, cfg, log):
        """Join Wi-Fi; returns when connected (the caller bounds and retries it)."""
        import network

        wifi = cfg["wifi"]
        if not wifi["ssid"]:
            raise OSError("wifi.ssid is not set in config.json")
        if self.radio_failed:
            raise OSError("the Wi-Fi chip did not start at boot; reset the board to try again")
        try:
            wlan = network.WLAN(network.STA_IF)
            wlan.active(True)
            if wifi["hostname"]:
                network.hostname(wifi["hostname"])
            if not wlan.isconnected():
                wlan.connect(wifi["ssid"], wifi["password"] or "")  # None: an open network
        except OSError as exc:
            # The driver refuses (a wrong password or a missing network only show in the status,
            # not as an error): the radio did not start. It is not started again: on the Pico W
            # a second start after a failed one can block the whole CPU (seen on the emulated
            # chip), and metering must go on without the network.
            self.radio_failed = True
            raise OSError("the Wi-Fi chip did not start (%s)" % exc)
        for _ in range(300):
            if wlan.isconnected():
                return True
            await self.clock.asleep_ms(100)
        raise OSError("Wi-Fi %r did not connect within 30 s" % wifi["ssid"])

    def network_ok(self):
        import network

        return network.WLAN(network.STA_IF).isconnected()

    # ------------------------------------------------------------------ setup mode (gateway.setup_mode)
    joins_wifi = True  # the network is this board's Wi-Fi station, joined with config.json's wifi.ssid

    def scan(self):
        """The Wi-Fi networks in reach: [(ssid, rssi dBm, secure)], strongest first, each name once.
        The station interface is made active for it; call it before raising the access point
        (scanning with the AP up takes the radio off the AP's channel, and its clients with it)."""
        import network

        if self.radio_failed:
            raise OSError("the Wi-Fi chip did not start at boot; reset the board to try again")
        wlan = network.WLAN(network.STA_IF)
        self._start_radio(wlan)
        try:
            return strongest_networks(wlan.scan())
        except OSError as exc:
            self._scan_refused(wlan, exc)
        return strongest_networks(wlan.scan())

    def _scan_refused(self, wlan, exc):
        """The scan raised: the ESP32 refuses to scan while the station is connecting, so stop
        that and let the caller scan once more."""
        if wlan.isconnected():
            raise exc
        wlan.disconnect()

    def ap_up(self, ssid, password):
        """Raise the setup access point (WPA2 with ``password``); returns its IPv4 address."""
        import network

        if self.radio_failed:
            raise OSError("the Wi-Fi chip did not start at boot; reset the board to try again")
        ap = network.WLAN(network.AP_IF)
        self._start_radio(ap)  # the ESP32 takes the AP's settings only while it is active
        security = getattr(network.WLAN, "SEC_WPA2", None)
        if security is None:  # the Pico W names no plain WPA2: its firmware sets WPA2-AES at boot
            ap.config(ssid=ssid, key=password)
        else:
            ap.config(ssid=ssid, key=password, security=security)
        return ap.ifconfig()[0]

    def _start_radio(self, interface):
        """Make a Wi-Fi interface active. A chip that refuses is never started again (as in
        ``network_up``): on the Pico W a second start after a failed one can block the whole CPU
        until the watchdog resets the board, seen on the emulated chip, which has no Wi-Fi."""
        try:
            interface.active(True)
        except OSError as exc:
            self.radio_failed = True
            raise OSError("the Wi-Fi chip did not start (%s)" % exc)

    def ap_down(self):
        import network

        network.WLAN(network.AP_IF).active(False)

    def dns_address(self):
        """Where the setup mode's catch-all DNS listens: (host, port)."""
        return ("0.0.0.0", 53)

    async def button_held(self, cfg):
        """True when ``setup.button_pin`` (to GND, pull-up on) reads low for the whole of
        ``BUTTON_HOLD_MS``: one high read (a bounce, a brief touch, no button) is a no."""
        number = cfg["setup"]["button_pin"]
        if number is None:
            return False
        from machine import Pin

        pin = Pin(number, Pin.IN, Pin.PULL_UP)
        for _ in range(BUTTON_HOLD_MS // BUTTON_READ_MS):
            if pin.value():
                return False
            await self.clock.asleep_ms(BUTTON_READ_MS)
        return True

    def _station(self):
        """The Wi-Fi station interface while it is connected, else None. Never touched after the
        chip failed to start (a second start can block the whole CPU on the Pico W)."""
        if self.radio_failed:
            return None
        try:
            import network
        except ImportError:  # a port without networking (a profile on the unix port): no Wi-Fi
            return None
        wlan = network.WLAN(network.STA_IF)
        return wlan if wlan.isconnected() else None

    def wifi_rssi(self):
        """The Wi-Fi signal in dBm while connected, else None (a diagnostic: unknown is fine)."""
        wlan = self._station()
        return None if wlan is None else wlan.status("rssi")

    def ip_address(self):
        """The board's IPv4 address while connected, else None."""
        wlan = self._station()
        return None if wlan is None else wlan.ifconfig()[0]

    def web_address(self, cfg):
        """Where the web server listens: (host, port). A board serves every interface (its
        station address and, in setup mode, its access point's)."""
        return ("0.0.0.0", cfg["web"]["port"])

    def _port_epoch_offset(self):
        if self._epoch_offset is None:
            import time

            self._epoch_offset = _SECONDS_1970_TO_2000 if time.gmtime(0)[0] == 2000 else 0
        return self._epoch_offset

    def utc_time(self):
        """Seconds since 1970-01-01 UTC by the board's clock, whatever epoch the port counts
        from (an int; meaningful only once the clock was set, see ``set_utc_time``)."""
        import time

        return int(time.time()) + self._port_epoch_offset()

    def set_utc_time(self, seconds):
        """Set the board's real-time clock to ``seconds`` since 1970-01-01 UTC (from NTP)."""
        import time

        import machine

        t = time.gmtime(int(seconds) - self._port_epoch_offset())  # 8 fields on boards, 9 elsewhere
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))

    def watchdog(self, timeout_ms):
        from machine import WDT

        return WDT(timeout=timeout_ms)

    def reset(self):
        import machine

        machine.reset()

    async def background(self):
        """Profile-specific task (the host profile drives its simulated module here)."""
        return None
