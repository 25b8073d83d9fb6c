"""Setup mode: the gateway's own Wi-Fi access point, so a phone can give it a network to join.

    setup = SetupMode(board, config_result, log)    # board: the profile; config_result: LoadResult
    asyncio.create_task(setup.run())                # decides when to open and when to close
    setup.station_failed("Wi-Fi 'home' did not connect within 30 s")   # the network loop reports
    setup.station_up()                                                 # ... every attempt
    setup.active, setup.ssid, setup.ap_ip, setup.networks, setup.page_url

When it opens (``run()``; ``open(reason)`` also opens it at once):
- at boot, on a board that joins Wi-Fi, when config.json names no network (``wifi.ssid``) or is
  not usable at all (safe mode: no valid config.json and no last good copy);
- at boot, when the setup button (``setup.button_pin``, to GND) is held for 2 s;
- when Wi-Fi has not connected since boot for ``setup.wifi_wait_s`` (300 s) and the network loop
  has reported at least ``MIN_ATTEMPTS`` failed attempts: a router still booting after the power
  cut that also restarted the gateway gets its time first.

What it does: scans (before the access point is up: a scan takes the radio off the AP's channel),
raises the access point ``rbamp-XXXX`` (the last 4 hex digits of the board's unique id, upper
case) with WPA2 and the password ``setup.ap_password`` or, when that is unset, the first 8 hex
digits of sha256("rbamp-setup:" + unique id in hex), printed on the console every time the access
point comes up (never in the log ring the page and MQTT show), and answers every DNS name with its
own address (``gateway.captive_dns``), so phones open the page (``gateway.web_setup``).

When it closes: ``setup.ap_minutes`` after it opened or after the page was last used
(``touch()``), whichever is later. The station loop goes on all the while (access point and
station coexist); after a close, a board whose Wi-Fi still has not connected opens it again after
another ``setup.wifi_wait_s`` (and ``MIN_ATTEMPTS`` failures when a network is configured).
Metering and the journal never wait for any of it: this is one more asyncio task.

Once Wi-Fi has connected since boot, a later outage never opens it by itself: that is the
router's trouble, retried by the network loop; the button still works at the next boot.
"""

import asyncio

from gateway.captive_dns import CaptiveDns

MIN_ATTEMPTS = 3
CHECK_MS = 1000
SSID_PREFIX = "rbamp-"
PASSWORD_SALT = b"rbamp-setup:"


def setup_ssid(unique_id):
    """The access point's name: "rbamp-" and the last 4 hex digits of the board's id, upper case."""
    return SSID_PREFIX + unique_id[-4:].upper()


def derived_password(unique_id):
    """The access point's password when config.json sets none: the first 8 hex digits of
    sha256(b"rbamp-setup:" + the unique id's hex text). docs/setup.md shows how to compute it."""
    import binascii
    import hashlib

    digest = hashlib.sha256(PASSWORD_SALT + unique_id.encode()).digest()
    return binascii.hexlify(digest[:4]).decode()


class SetupMode:
    def __init__(self, board, config_result, log, console=print):
        self.board = board
        self.clock = board.clock
        self.log = log
        self._console = console  # the board's console (USB serial); the log ring never sees the password
        cfg = config_result.config
        self.config = cfg
        self._safe_mode = config_result.safe_mode
        settings = cfg["setup"]
        self.wait_ms = settings["wifi_wait_s"] * 1000
        self.ap_ms = settings["ap_minutes"] * 60000
        unique_id = board.unique_id()
        self.ssid = setup_ssid(unique_id)
        if settings["ap_password"]:
            self._password = settings["ap_password"]
            self._derived = False
            self.password_hint = "the setup.ap_password of config.json"
        else:
            self._password = derived_password(unique_id)
            self._derived = True
            self.password_hint = ("printed on the board's console when the access point comes up; "
                                  "derived from the board's unique id (docs/setup.md)")
            if hasattr(log, "add_secret"):
                log.add_secret(self._password)  # a line that quotes it (an error text) shows *** instead
        self.active = False
        self.reason = None
        self.networks = []
        self.ap_ip = None
        self.opened = 0  # how many times the access point came up
        self.dns = None
        self._dns_task = None
        self._station_seen = False
        self._failures = 0
        self._last_failure = None
        self._waited_ms = 0  # since boot or the last close
        self._idle_ms = 0    # since the access point came up or the page was last used

    # ------------------------------------------------------------------ what the gateway reports
    def station_failed(self, reason):
        """The network loop's Wi-Fi attempt failed (``reason``: its error text)."""
        self._failures += 1
        self._last_failure = reason

    def station_up(self):
        """The station connected: from now on only the button opens setup mode (next boot)."""
        self._station_seen = True

    def touch(self):
        """The setup page was used: the access point stays up ``setup.ap_minutes`` from now."""
        self._idle_ms = 0

    # ------------------------------------------------------------------ state for the page
    @property
    def page_url(self):
        """The setup page's address on the access point (None while closed or without a web
        server: a profile whose ``web_address`` is None)."""
        address = self.board.web_address(self.config) if self.ap_ip is not None else None
        if address is None:
            return None
        port = address[1]
        return "http://%s%s/setup" % (self.ap_ip, "" if port == 80 else ":%d" % port)

    def _station_possible(self):
        return not self._safe_mode and bool(self.config["wifi"]["ssid"])

    async def _boot_reason(self):
        board = self.board
        if board.joins_wifi and self._safe_mode:
            return "no usable config.json (safe mode)"
        if board.joins_wifi and not self.config["wifi"]["ssid"]:
            return "no Wi-Fi network in config.json (wifi.ssid)"
        try:
            held = await board.button_held(self.config)
        except Exception as exc:  # a pin the port refuses: say so, boot on without the button
            self.log.error("setup mode: the setup button (setup.button_pin) cannot be read: %s", exc)
            return None
        return "the setup button was held at boot" if held else None

    def _waiting_reason(self):
        if not self.board.joins_wifi or self._station_seen or self._waited_ms < self.wait_ms:
            return None
        if self.board.radio_failed:
            return None  # the Wi-Fi chip did not start (said once): no access point until a reset
        seconds = self._waited_ms // 1000
        if not self._station_possible():
            return "no Wi-Fi network configured, %d s after the access point last closed" % seconds
        if self._failures < MIN_ATTEMPTS:
            return None
        return "Wi-Fi %r has not connected for %d s (%d attempts; the last: %s)" % (
            self.config["wifi"]["ssid"], seconds, self._failures, self._last_failure)

    # ------------------------------------------------------------------ the task
    async def run(self):
        """Open at boot if a boot rule says so, then open and close as the rules say. Never returns."""
        reason = await self._boot_reason()
        if reason is not None:
            self.open(reason)
        clock = self.clock
        last = clock.ticks_ms()
        while True:
            await clock.asleep_ms(CHECK_MS)
            now = clock.ticks_ms()
            step = clock.ticks_diff(now, last)  # accumulated: an hour's wait outlasts no tick wrap
            last = now
            if self.active:
                self._idle_ms += step
                if self._idle_ms >= self.ap_ms:
                    self.close("%d min without the setup page being used" % (self.ap_ms // 60000))
            else:
                self._waited_ms += step
                reason = self._waiting_reason()
                if reason is not None:
                    self.open(reason)

    def open(self, reason):
        """Scan, raise the access point and the catch-all DNS. Returns True when the access
        point is up (already up: True at once)."""
        if self.active:
            return True
        board = self.board
        log = self.log
        self.reason = reason
        try:
            self.networks = board.scan()
        except Exception as exc:  # no list: the page still takes a network name typed in
            log.warning("setup mode: the Wi-Fi scan failed (%s); a network name can still be typed in", exc)
            self.networks = []
        try:
            self.ap_ip = board.ap_up(self.ssid, self._password)
        except OSError as exc:
            self._waited_ms = 0
            self._failures = 0
            log.error("setup mode (%s): the access point did not come up: %s", reason, exc)
            return False
        self.active = True
        self.opened += 1
        self._idle_ms = 0
        log.warning("setup mode (%s): Wi-Fi access point %s is up; join it (password: %s) and open %s",
                    reason, self.ssid, self.password_hint, self.page_url)
        if self._derived:
            self._console("setup mode: Wi-Fi access point %s, password %s, page %s"
                          % (self.ssid, self._password, self.page_url))
        self._start_dns()
        return True

    def _start_dns(self):
        host, port = self.board.dns_address()
        dns = CaptiveDns(self.ap_ip, self.log)
        try:
            dns.open(host, port)
        except OSError as exc:
            self.log.error("setup mode: no DNS on %s:%d (%s): phones will not open the page by "
                           "themselves; open %s by hand", host, port, exc, self.page_url)
            return
        self.dns = dns
        self._dns_task = asyncio.create_task(self._serve_dns(dns))

    async def _serve_dns(self, dns):
        try:
            await dns.serve()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the page still answers by address; said, not swallowed
            self.log.exception("setup mode: the DNS responder stopped", exc)

    def close(self, why="closed"):
        """Take the access point and the DNS down; the station loop goes on."""
        if not self.active:
            return
        if self._dns_task is not None:
            self._dns_task.cancel()  # first: its wait on the socket must end before the socket
            self._dns_task = None
        if self.dns is not None:
            self.dns.close()
            self.dns = None
        try:
            self.board.ap_down()
        except OSError as exc:  # the radio keeps the AP up: the next open() raises it again anyway
            self.log.error("setup mode: the access point did not go down: %s", exc)
        self.active = False
        self.ap_ip = None
        self._waited_ms = 0
        self._failures = 0
        self.log.warning("setup mode: access point %s closed (%s)%s", self.ssid, why,
                         "" if self._station_seen or not self._station_possible()
                         else "; Wi-Fi %r is tried again" % self.config["wifi"]["ssid"])
