"""The real gateway in real time with its web server on loopback, and a small HTTP client, for the
web tests on every runtime (tests/test_web_api.py, tests/test_web_limits.py).

The gateway is ``gateway.app.Gateway`` itself, on a board profile (``WebBoard``) whose module is
the simulator running in real time in this process (as ``make run`` does with
``RBAMP_SIM_INPROC=1``), whose journal is the NOR flash model and whose ``reset()`` only counts.
Its MQTT link is off (``mqtt.host`` is taken out after loading, as tools/gateway_rig.py does); the
web server is the one under test, started on a free loopback port:

    async def main():
        web = await start(xrt.tmp_path("x"), config_doc(web={"password": "correct horse"}))
        status, headers, body = await request(web.port, "GET", "/api/state")
        await web.stop()

    run(main())
"""

import asyncio
import json
import os

from gateway.app import Gateway
from gateway.board_profile import Board
from gateway.config import load_config
from gateway.log import Logger
from gateway.web_server import WebServer
from norflash import NorFlash
from rbampsim import RealClock
from rbampsim.host import SimHost
from support_broker import listening_socket, run, wait_until  # noqa: F401

SECRETS = {"wifi": "wifi-secret-1", "mqtt": "mqtt-secret-2", "web": "web-secret-3"}


class WebBoard(Board):
    """A board whose module is simulated in real time here; reset() is counted, not done."""

    name = "webtest"

    def __init__(self, data_dir):
        Board.__init__(self)
        self.data_dir = data_dir
        self.clock = RealClock()
        self.host = SimHost(data_dir, self.clock, "UI2@1.3", seed=3, hour=12.0)
        self.flash = NorFlash(block_size=4096, block_count=8)
        self.resets = 0

    def i2c(self, cfg):
        self.host.ensure([module["address"] for module in cfg["modules"]])
        return self.host.bus

    def drdy_pin(self, cfg):
        if cfg["drdy_pin"] is None:
            return None
        return self.host.modules[0].drdy

    def journal_device(self):
        return self.flash

    def unique_id(self):
        return "0a1b2c3d4e5f"

    def watchdog(self, timeout_ms):
        return None

    def wifi_rssi(self):
        return -58

    def ip_address(self):
        return "192.168.4.20"

    def reset(self):
        self.resets += 1

    async def background(self):
        while True:  # the modules' windows on time, as the PC profile keeps them in-process
            self.host.sync()
            await self.clock.asleep_ms(10)


def config_doc(**sections):
    """A config.json document: one UI2 at 0x50 with DRDY, a broker, Wi-Fi; ``sections`` replace
    or add top-level keys (``web={"password": ...}``)."""
    doc = {"device_id": "webtest",
           "wifi": {"ssid": "home", "password": SECRETS["wifi"]},
           "mqtt": {"host": "broker.invalid", "user": "meter", "password": SECRETS["mqtt"]},
           "modules": [{"address": "0x50", "label": "house"}], "drdy_pin": 4,
           "web": {"enabled": False}}
    for key in sections:
        doc[key] = sections[key]
    return doc


def free_port():
    sock, port = listening_socket()
    sock.close()
    return port


def _fresh_dir(path):
    try:
        for name in os.listdir(path):
            os.remove(path + "/" + name)
    except OSError:
        os.mkdir(path)


class Web:
    """A running gateway and its web server (``start``)."""

    def __init__(self, board, gateway, server, port, lines, tasks):
        self.board = board
        self.gateway = gateway
        self.server = server
        self.port = port
        self.lines = lines
        self.tasks = tasks

    def log_text(self):
        return "\n".join(self.lines)

    async def samples_grow(self, by=3, timeout_ms=10000):
        """Metering kept sampling: ``by`` more samples arrive (5 a second) within the time."""
        metering = self.gateway.metering
        start = metering.samples
        await wait_until(lambda: metering.samples >= start + by, timeout_ms, "%d more samples" % by)

    async def stop(self):
        self.server.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except BaseException:  # noqa: B036 - cancelled tasks end with CancelledError
                pass


async def start(data_dir, doc, limits=None, raw_config=None):
    """Write ``doc`` as config.json in a fresh ``data_dir``, boot the gateway from it (MQTT off)
    and serve its web page on a free loopback port."""
    _fresh_dir(data_dir)
    with open(data_dir + "/config.json", "w") as handle:
        handle.write(raw_config if raw_config is not None else json.dumps(doc))
    board = WebBoard(data_dir)
    lines = []
    log = Logger(level="debug", sink=lines.append, keep=16)
    result = load_config(board.config_path, board.last_good_path)
    result.config["mqtt"]["host"] = None  # no broker: the tests look at the web page only
    gateway = Gateway(board, result, log)
    tasks = [asyncio.create_task(gateway.run())]
    await wait_until(lambda: gateway.metering is not None and gateway.metering.samples >= 2, 20000,
                     "the gateway sampling")
    port = free_port()
    server = WebServer(gateway, "127.0.0.1", port, log, limits)
    tasks.append(asyncio.create_task(server.run()))
    web = Web(board, gateway, server, port, lines, tasks)
    await wait_until(lambda: server.server is not None, 5000, "the web server listening")
    return web


# ---------------------------------------------------------------------- the client
async def close_quietly(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except OSError:
        pass  # the server closed first or reset the connection: nothing left to close


async def read_all(reader, limit=1 << 20):
    """Everything until the server closes (it answers once per connection, HTTP/1.0 style); what
    came before a reset if the server reset the connection."""
    data = b""
    while len(data) < limit:
        try:
            chunk = await reader.read(4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def parse_response(data):
    """(status, headers with lower-case names, body) of a complete answer; (None, {}, data)
    when there is none."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1."):
        return None, {}, data
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.decode().strip().lower()
        text = value.decode().strip()
        headers[key] = headers[key] + "\n" + text if key in headers else text
    return status, headers, body


async def exchange(port, data, timeout_s=15):
    """Send raw bytes, read the whole answer: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(read_all(reader), timeout_s)
    finally:
        await close_quietly(writer)
    return parse_response(answer)


def encode_request(method, path, body=None, headers=None):
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
    if body is not None and type(body) is not bytes:
        body = json.dumps(body).encode()
    for name in headers or {}:
        head += "%s: %s\r\n" % (name, headers[name])
    if body is not None:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + (body or b"")


async def request(port, method, path, body=None, headers=None):
    """One HTTP request: (status, headers, body bytes)."""
    return await exchange(port, encode_request(method, path, body, headers))


async def request_json(port, method, path, body=None, headers=None):
    status, headers, data = await request(port, method, path, body, headers)
    return status, headers, json.loads(data) if data else None


def basic(password, user="admin"):
    import binascii

    token = binascii.b2a_base64(("%s:%s" % (user, password)).encode()).strip().decode()
    return {"Authorization": "Basic " + token, "X-Requested-With": "rbamp"}
