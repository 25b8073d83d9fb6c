"""The host profile: the gateway on a PC under MicroPython's unix port (``make run``, tests).

It lives with the PC tools, not in the gateway package: it drives the simulator, which no board
has. ``gateway.boards.detect()`` imports it by its module name, ``hostboard``, on any platform
other than esp32 and rp2; that name resolves only where ``tools/`` is on the path (``make run``,
the tests) or where the unix build froze this file in (``firmware/host_manifest.py``). Nothing
copies it to a board (``tools/deploy.py`` takes ``lib/`` only) and no board image freezes it.

    MICROPYPATH=.frozen:lib:tools:.cache/umqtt RBAMP_DATA=.run micropython main.py

The simulated modules (``tools/rbampsim``) run in real time in a
process of their own, the simulator server of the data folder, so they outlive the gateway as a
module outlives a board that resets: a SIGKILLed gateway starts again against a module that kept
its period accumulator. The gateway reaches them through a loopback socket with the
``machine.I2C`` methods and a DRDY pin (``rbampsim.remote``); if no server runs for the data
folder, the first gateway starts one (detached; it stops by itself a minute after the last
gateway left). A frozen build, whose simulator source is not on disk, and
``RBAMP_SIM_INPROC=1`` simulate inside the gateway instead, as before. The journal is the
data folder's block files (``energy.d``, as on stock firmware) and the network is the host's.

Environment: ``RBAMP_DATA`` (data folder, default ``.run``), ``RBAMP_SIM`` (``UI2@1.3`` style:
variant and protocol), ``RBAMP_SIM_SEED``, ``RBAMP_SIM_HOUR`` (the simulated time of day the
household load starts at, default 7); the server takes them from the environment it starts in.
``RBAMP_WEB_PORT``: the web page's port on 127.0.0.1 (default 8080).

Setup mode (``gateway.setup_mode``, docs/setup.md) runs on the PC without a radio: the "access
point" is only recorded (``ap``: (ssid, password) while up), the catch-all DNS listens on
127.0.0.1 at ``RBAMP_DNS_PORT`` (default 5353), the networks a scan finds come from
``RBAMP_HOST_SCAN`` or else the data folder's ``scan.json`` (a JSON list of
``{"ssid": "home", "rssi": -52, "secure": true}``; none without either), and the setup button is
the file ``setup_button`` in the data folder: present at boot means held (the file is consumed,
so one press opens setup mode once). The PC's network is not Wi-Fi: no ``wifi.ssid`` is needed.

Tests drive the simulated hardware from outside through two files in the data folder: commands
written to ``sim_control`` (``unplug 0x50``, ``plug 0x50``, ``reboot 0x50``, ``mains 0x50 off``,
one per line; the file is consumed; commands already there when a gateway connects are applied
before its first bus transaction) and the exact ground truth, rewritten to ``sim_truth.json``
every second (see ``rbampsim.host``).
"""

import os

from gateway.board_profile import Board, strongest_networks

_POLL_MS = 10  # DRDY edges reach the driver at most this late (a window is 200 ms)
_TICK_MS = 10
_CONTROL_EVERY = 100  # ticks: once a second


class HostBoard(Board):
    name = "host"
    joins_wifi = False  # the PC's own network: no wifi.ssid needed, setup mode only on request

    def __init__(self):
        Board.__init__(self)
        self.data_dir = os.getenv("RBAMP_DATA") or ".run"
        try:
            os.mkdir(self.data_dir)
        except OSError:
            pass  # already there
        self._bus = None
        self._pin = None
        self._inproc = None  # the SimHost when the modules live in this process
        self.resets = 0
        self.ap = None  # (ssid, password) while the setup "access point" is up

    def _connect(self, cfg):
        addresses = [module_cfg["address"] for module_cfg in cfg["modules"]]
        freq = cfg["i2c"]["freq"]
        from rbampsim import remote

        if os.getenv("RBAMP_SIM_INPROC") != "1" and remote.server_program() is not None:
            self._bus = remote.open_bus(self.data_dir, addresses, freq)
            self._pin = self._bus.pin if addresses else None
            return
        from rbampsim import RealClock
        from rbampsim.host import SimHost

        host = SimHost.from_env(self.data_dir, RealClock(), os.getenv, freq)
        host.ensure(addresses)
        for error in host.obey_file():
            print(error)
        self._inproc = host
        self._bus = host.bus
        self._pin = host.module_at(addresses[0]).drdy if addresses else None

    def i2c(self, cfg):
        if self._bus is None:
            self._connect(cfg)
        return self._bus

    def drdy_pin(self, cfg):
        if self._bus is None:
            self._connect(cfg)
        return self._pin

    def unique_id(self):
        return "host%04x" % (os.getpid() & 0xFFFF) if hasattr(os, "getpid") else "host"

    async def network_up(self, cfg, log):
        return True

    def network_ok(self):
        return True

    def wifi_rssi(self):
        return None  # the PC's own network: no Wi-Fi signal of ours to report

    def ip_address(self):
        return None  # not known to MicroPython's unix port without a connection to look at

    def web_address(self, cfg):
        """Loopback only (the PC's page is for the person at the PC), on ``RBAMP_WEB_PORT``
        (``make run WEB_PORT=``; default 8080: port 80 needs root on a PC)."""
        text = os.getenv("RBAMP_WEB_PORT") or "8080"
        try:
            port = int(text)
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise ValueError("RBAMP_WEB_PORT must be a TCP port number (1..65535), not %r" % text)
        return ("127.0.0.1", port)

    def scan(self):
        text = os.getenv("RBAMP_HOST_SCAN")
        source = "RBAMP_HOST_SCAN"
        if not text:
            source = self.path("scan.json")
            try:
                with open(source) as f:
                    text = f.read()
            except OSError:
                return []  # nothing to show: the setup page still takes a name typed in
        import json

        try:
            listed = json.loads(text)
            found = [(item["ssid"].encode(), b"", 0, int(item["rssi"]), 3 if item.get("secure", True) else 0, 0)
                     for item in listed]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError("%s: not a JSON list of {\"ssid\": str, \"rssi\": int, \"secure\": bool} (%s: %s)"
                             % (source, type(exc).__name__, exc))
        return strongest_networks(found)

    def ap_up(self, ssid, password):
        self.ap = (ssid, password)
        return "127.0.0.1"

    def ap_down(self):
        self.ap = None

    def dns_address(self):
        text = os.getenv("RBAMP_DNS_PORT") or "5353"
        try:
            port = int(text)
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise ValueError("RBAMP_DNS_PORT must be a UDP port number (1..65535), not %r" % text)
        return ("127.0.0.1", port)

    async def button_held(self, cfg):
        path = self.path("setup_button")
        try:
            os.remove(path)
        except OSError:
            return False  # no file: not pressed
        return True

    def set_utc_time(self, seconds):
        return None  # the PC keeps its own clock (its NTP daemon sets it), never the gateway

    def watchdog(self, timeout_ms):
        return None

    def reset(self):
        self.resets += 1
        raise SystemExit(3)

    async def background(self):
        """Bring the simulator's DRDY edges to the driver's IRQ handler every 10 ms (each bus
        transaction brings them too); in-process, keep the modules' windows on time and obey
        ``sim_control`` and write ``sim_truth.json`` once a second."""
        if self._inproc is not None:
            await self._run_inproc()
            return
        if self._pin is None:
            return
        bus = self._bus
        pin = self._pin
        while True:
            if pin.handler is not None:
                try:
                    bus.poll()
                except OSError:
                    pass  # the server is gone: the bus calls report it, the link reconnects
            await self.clock.asleep_ms(_POLL_MS)

    async def _run_inproc(self):
        host = self._inproc
        ticks = 0
        while True:
            host.sync()
            ticks += 1
            if ticks >= _CONTROL_EVERY:
                ticks = 0
                for error in host.obey_file():
                    print(error)
                host.write_truth()
            await self.clock.asleep_ms(_TICK_MS)
