"""The setup mode's routes (gateway.web_setup) through HTTP on loopback, with the real gateway
metering in real time (tests/support_web.py) and its setup mode open on a board whose radio is a
record: the page and the network list, the operating systems' probe URLs and unknown host names
redirected to the page, saving that writes a config.json the board's own checker accepts (and
restarts), bad values answered 400 with the key and nothing written, blank passwords that keep
the stored ones, cross-site saves refused, and everything but the list refused outside setup
mode."""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import json
import os
import socket

import xrt
from gateway.app import Gateway
from gateway.board_profile import strongest_networks
from gateway.config import load_config, parse_config
from gateway.log import Logger
from gateway.setup_mode import SetupMode
from gateway.web_server import WebServer
from gateway.web_setup import PROBES
from support_web import (SECRETS, Web, WebBoard, config_doc, exchange, free_port, request, request_json, run,
                         wait_until)

try:
    import asyncio
except ImportError:
    asyncio = None

SCAN = [(b"home", b"\x01" * 6, 6, -61, 3, 0), (b"cafe", b"\x02" * 6, 1, -80, 0, 0),
        (b"home", b"\x03" * 6, 11, -48, 3, 0)]
SAVE = {"X-Requested-With": "rbamp"}


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


class SetupBoard(WebBoard):
    """WebBoard with a recorded radio: the access point's address is loopback, where the page is."""

    joins_wifi = True

    def __init__(self, data_dir, web_port):
        WebBoard.__init__(self, data_dir)
        self.web_port = web_port
        self.dns_port = free_udp_port()
        self.ap = None

    def scan(self):
        return strongest_networks(SCAN)

    def ap_up(self, ssid, password):
        self.ap = (ssid, password)
        return "127.0.0.1"

    def ap_down(self):
        self.ap = None

    def dns_address(self):
        return ("127.0.0.1", self.dns_port)

    def web_address(self, cfg):
        return ("127.0.0.1", self.web_port)

    async def button_held(self, cfg):
        return False


async def start(name, doc, active=True):
    """The gateway booted from ``doc`` (MQTT off), setup mode open (or not), its web server on
    a free loopback port."""
    data_dir = xrt.tmp_path(name)
    try:
        for entry in os.listdir(data_dir):
            os.remove(data_dir + "/" + entry)
    except OSError:
        os.mkdir(data_dir)
    with open(data_dir + "/config.json", "w") as handle:
        handle.write(json.dumps(doc))
    port = free_port()
    board = SetupBoard(data_dir, port)
    lines = []
    log = Logger(level="debug", sink=lines.append, keep=16)
    result = load_config(board.config_path, board.last_good_path)
    result.config["mqtt"]["host"] = None  # no broker: the tests look at the web page only
    gateway = Gateway(board, result, log)
    gateway.setup = SetupMode(board, result, log, console=lines.append)
    tasks = [asyncio.create_task(gateway.run())]
    await wait_until(lambda: gateway.metering is not None and gateway.metering.samples >= 2, 20000,
                     "the gateway sampling")
    if active:
        assert gateway.setup.open("test")
    server = WebServer(gateway, "127.0.0.1", port, log)
    tasks.append(asyncio.create_task(server.run()))
    web = Web(board, gateway, server, port, lines, tasks)
    await wait_until(lambda: server.server is not None, 5000, "the web server listening")
    return web


async def stop(web):
    web.gateway.setup.close("test over")
    await web.stop()


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def raw_get(path, host):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode()


def test_in_setup_mode_the_page_opens_itself_and_saving_writes_a_valid_config():
    async def main():
        web = await start("active", config_doc())
        page_url = "http://127.0.0.1:%d/setup" % web.port
        try:
            status, headers, body = await request(web.port, "GET", "/setup")
            assert status == 200 and headers["content-type"].startswith("text/html")
            assert b"rbAmp gateway setup" in body and b"/api/setup" in body
            status, _, listed = await request_json(web.port, "GET", "/api/setup/networks")
            assert status == 200 and listed["active"] is True and listed["ssid"] == "rbamp-4E5F", listed
            assert listed["networks"] == [{"ssid": "home", "rssi": -48, "secure": True},
                                          {"ssid": "cafe", "rssi": -80, "secure": False}], listed
            assert listed["current"] == {"ssid": "home", "mqtt_host": "broker.invalid", "mqtt_port": None,
                                         "mqtt_user": "meter"}, listed
            for secret in SECRETS.values():
                assert secret not in json.dumps(listed)

            # the probes and any host name the catch-all DNS sent here: to the page
            for path in PROBES:
                status, headers, _ = await request(web.port, "GET", path)
                assert status == 302 and headers["location"] == page_url, (path, status, headers)
            for path in ("/", "/library/test/success.html", "/api/state"):
                status, headers, _ = await exchange(web.port, raw_get(path, "captive.apple.com"))
                assert status == 302 and headers["location"] == page_url, (path, status, headers)
            status, _, _ = await exchange(web.port, raw_get("/", "127.0.0.1:%d" % web.port))
            assert status == 200, "an address is the gateway's own: the main page as usual"

            # bad values: 400 with the key, nothing written
            before = read(web.board.config_path)
            form = {"ssid": "attic", "password": "attic-password", "mqtt_host": "192.168.1.5",
                    "mqtt_port": 70000, "mqtt_user": "meter", "mqtt_password": ""}
            status, _, answer = await request_json(web.port, "POST", "/api/setup", form, SAVE)
            assert status == 400 and answer["key"] == "mqtt.port", answer
            for change, key in (({"mqtt_port": "18x3"}, "mqtt.port"), ({"password": "short"}, "wifi.password"),
                                ({"mqtt_host": ""}, "mqtt.host"), ({"ssid": " "}, "wifi.ssid"),
                                ({"ssid": 5}, "ssid"), ({"colour": "red"}, "colour")):
                bad = dict(form)
                bad["mqtt_port"] = 1883
                for name in change:
                    bad[name] = change[name]
                status, _, answer = await request_json(web.port, "POST", "/api/setup", bad, SAVE)
                assert status == 400 and answer["key"] == key and answer["error"], (change, answer)
            status, _, answer = await request_json(web.port, "POST", "/api/setup", b"{not json", SAVE)
            assert status == 400, answer
            form["mqtt_port"] = "1884"
            status, _, answer = await request_json(web.port, "POST", "/api/setup", form)
            assert status == 403 and "cross-site" in answer["error"], answer
            assert read(web.board.config_path) == before and web.board.resets == 0

            # a good one: written, checked by the board's own parser, the old file kept, restart
            status, _, answer = await request_json(web.port, "POST", "/api/setup", form, SAVE)
            assert status == 200 and answer["restarting"] is True, answer
            await wait_until(lambda: web.board.resets == 1, 5000, "the restart")
            written = read(web.board.config_path)
            cfg = parse_config(written)
            assert cfg["wifi"]["ssid"] == "attic" and cfg["wifi"]["password"] == "attic-password"
            assert (cfg["mqtt"]["host"], cfg["mqtt"]["port"], cfg["mqtt"]["user"]) == ("192.168.1.5", 1884, "meter")
            assert cfg["mqtt"]["password"] == SECRETS["mqtt"], "a blank broker password keeps the stored one"
            assert cfg["device_id"] == "webtest" and cfg["modules"][0]["label"] == "house", "the rest is kept"
            assert read(web.board.last_good_path) == before
            assert "restarting: setup saved" in web.log_text()
            await web.samples_grow()
        finally:
            await stop(web)

    run(main(), 120)


def test_a_blank_wifi_password_keeps_the_stored_one_for_the_same_network_only():
    async def main():
        web = await start("blank", config_doc())
        try:
            form = {"ssid": "home", "password": "", "mqtt_host": "broker.lan", "mqtt_port": "",
                    "mqtt_user": "", "mqtt_password": ""}
            status, _, answer = await request_json(web.port, "POST", "/api/setup", form, SAVE)
            assert status == 200, answer
            cfg = parse_config(read(web.board.config_path))
            assert cfg["wifi"]["password"] == SECRETS["wifi"]
            assert cfg["mqtt"]["user"] is None and cfg["mqtt"]["password"] is None and cfg["mqtt"]["port"] == 1883
            form["ssid"] = "cafe"
            status, _, answer = await request_json(web.port, "POST", "/api/setup", form, SAVE)
            assert status == 200, answer
            cfg = parse_config(read(web.board.config_path))
            assert cfg["wifi"]["ssid"] == "cafe" and cfg["wifi"]["password"] is None, "another network: open"
        finally:
            await stop(web)

    run(main(), 120)


def test_outside_setup_mode_only_the_network_list_answers():
    async def main():
        web = await start("inactive", config_doc(), active=False)
        try:
            before = read(web.board.config_path)
            form = {"ssid": "attic", "password": "attic-password", "mqtt_host": "192.168.1.5"}
            status, _, answer = await request_json(web.port, "POST", "/api/setup", form, SAVE)
            assert status == 409 and "not active" in answer["error"], answer
            for path in PROBES:
                status, _, _ = await request(web.port, "GET", path)
                assert status == 404, (path, status)
            status, _, _ = await exchange(web.port, raw_get("/", "captive.apple.com"))
            assert status == 200, "no redirects outside setup mode"
            status, _, _ = await exchange(web.port, raw_get("/nothing/here", "captive.apple.com"))
            assert status == 404
            status, _, listed = await request_json(web.port, "GET", "/api/setup/networks")
            assert status == 200 and listed["active"] is False and listed["networks"] == [], listed
            assert read(web.board.config_path) == before and web.board.resets == 0
            assert web.board.ap is None
        finally:
            await stop(web)

    run(main(), 120)
