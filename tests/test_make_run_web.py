"""`make run`'s web page and setup mode on the PC, from the outside: the URL it prints before the
live view, the page and /api/state on WEB_PORT with the values the same gateway publishes over
MQTT, and with SETUP=1 the setup page and the catch-all DNS on a high port. Host-side tests."""

import json
import os
import signal
import socket
import struct
import urllib.error
import urllib.request

from support_e2e import Watcher, wait_until
from support_run_host import kill_marked, new_mark, start
from xrt.broker import free_port

DEVICE_ID = "rbamp-host"  # tools/host_config.json
STATE_TOPIC = "rbamp/%s/state" % DEVICE_ID
TOTALS_TOPIC = "rbamp/%s/totals" % DEVICE_ID


def get(port, path, timeout_s=5):
    """(status, content type, body) of a GET to the gateway's page; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout_s) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers.get("Content-Type", ""), answer.read()


def answers(port, path):
    try:
        return get(port, path)[0] == 200
    except OSError:
        return False  # not listening yet


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def text_of(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def stop_run(proc, mark):
    """Ctrl-C to make run's session, as in a terminal; then nothing of it may be left."""
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        kill_marked(mark)


def live_values_of_state(state):
    """The live readings of module 0x50 in an MQTT state payload."""
    module = state["modules"]["0x50"]
    return (module.get("voltage"), module.get("frequency"), module.get("current"), module.get("power"),
            module.get("power_factor"), module.get("reactive_power"))


def live_values_of_page(module):
    """The same readings in /api/state's module entry."""
    channels = module["channels"]
    return (module["voltage_v"], module["frequency_hz"], [c["current_a"] for c in channels],
            [c["power_w"] for c in channels], [c["pf"] for c in channels], [c["reactive_var"] for c in channels])


def test_make_run_serves_the_page_with_the_values_of_its_mqtt_state(tmp_path, broker):
    web_port = free_port()
    url = "http://127.0.0.1:%d/" % web_port
    mark = new_mark()
    out_path = tmp_path / "run.out"
    watcher = Watcher(broker.port, topics=("rbamp/%s/#" % DEVICE_ID,), client_id="page-watcher")
    proc = start(["--broker", "127.0.0.1:%d" % broker.port, "--web-port", str(web_port), "--duration", "120",
                  "--data", str(tmp_path / "run")], mark, out_path)
    try:
        wait_until(lambda: "rbAmp gateway on this PC" in text_of(out_path) or proc.poll() is not None, 60,
                   "the first screen of the live view")
        output = text_of(out_path)
        assert "make run: web page " + url in output, output[-3000:]
        assert output.index("make run: web page " + url) < output.index("rbAmp gateway on this PC")
        assert "web page  " + url in output.split("rbAmp gateway on this PC")[1]  # the view shows it

        wait_until(lambda: answers(web_port, "/") or proc.poll() is not None, 60, "the page at " + url)
        status, kind, body = get(web_port, "/")
        assert status == 200 and kind.startswith("text/html"), (status, kind)
        assert b"<html" in body.lower() and b"/api/events" in body

        def ok_states():
            return [s for s in watcher.json_on(STATE_TOPIC) if s["modules"]["0x50"]["status"] == "ok"]

        wait_until(ok_states, 60, "an MQTT state with the simulated module ok")
        for _ in range(3):  # three reads of the page's state, each a round of the gateway's
            status, kind, body = get(web_port, "/api/state")
            assert status == 200 and kind.startswith("application/json"), (status, kind)
            page = json.loads(body)
            totals = watcher.json_on(TOTALS_TOPIC)
            assert page["device_id"] == DEVICE_ID
            module = page["modules"][0]
            assert [m["key"] for m in page["modules"]] == ["0x50"] and module["label"] == "house"
            assert module["status"] == "ok" and module["variant"] == "UI2" and len(module["channels"]) == 2
            assert page["firmware"] == ok_states()[-1]["firmware"]
            # The page's live values are the ones of the gateway's last read, which it publishes:
            # the same numbers arrive over MQTT (already, or with the next state message).
            shown = live_values_of_page(module)
            assert 200 < shown[0] < 260 and 49 < shown[1] < 51, shown  # the simulator's mains
            wait_until(lambda shown=shown: shown in [live_values_of_state(s) for s in ok_states()], 30,
                       "an MQTT state with the page's values %r" % (shown,))
            # Lifetime totals never run behind what was published before the page was read.
            if totals:
                published = totals[-1]["0x50"]
                for ch, channel in enumerate(module["channels"]):
                    assert channel["import_wh"]["total"] >= published["import_wh"][ch] - 0.001, (channel, published)
                    assert channel["export_wh"]["total"] >= published["export_wh"][ch] - 0.001, (channel, published)
            before = len(ok_states())
            wait_until(lambda before=before: len(ok_states()) > before, 30, "the next MQTT state")

        def metered_on_the_page():
            page = json.loads(get(web_port, "/api/state")[2])
            return page["modules"][0]["channels"][0]["import_wh"]["total"] > 0

        wait_until(metered_on_the_page, 60, "the house load's energy on the page")  # a period latched
    finally:
        watcher.stop()
        stop_run(proc, mark)
    output = text_of(out_path)
    assert "gateway exited with 0" in output, output[-3000:]
    assert "Traceback" not in text_of(tmp_path / "run" / "gateway.log")


def dns_query(port, name, qtype=1, ident=0x5A17):
    """One DNS query over UDP to 127.0.0.1:port; (rcode, [A record addresses]) of the answer."""
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.sendto(packet, ("127.0.0.1", port))
        reply, _ = client.recvfrom(2048)
    got_ident, flags, questions, count = struct.unpack_from(">HHHH", reply)
    assert got_ident == ident and flags & 0x8000, reply  # our answer
    at = 12
    for _ in range(questions):
        while reply[at]:
            at += 1 + reply[at]
        at += 5  # the root label, type and class
    addresses = []
    for _ in range(count):
        if reply[at] & 0xC0 == 0xC0:
            at += 2  # a pointer to the name
        else:
            while reply[at]:
                at += 1 + reply[at]
            at += 1
        rtype, _, _, length = struct.unpack_from(">HHIH", reply, at)
        at += 10
        if rtype == 1:
            addresses.append(socket.inet_ntoa(reply[at:at + length]))
        at += length
    return flags & 0xF, addresses


def test_make_run_setup_boots_into_setup_mode_with_its_page_and_dns(tmp_path):
    """SETUP=1: the setup button is held at the first boot; the setup page answers on WEB_PORT and
    the catch-all DNS on DNS_PORT answers every name with the "access point's" address, 127.0.0.1."""
    web_port, dns_port = free_port(), free_udp_port()
    setup_url = "http://127.0.0.1:%d/setup" % web_port
    data = tmp_path / "run"
    mark = new_mark()
    out_path = tmp_path / "run.out"
    proc = start(["--setup", "--web-port", str(web_port), "--dns-port", str(dns_port), "--duration", "120",
                  "--data", str(data)], mark, out_path)
    try:
        wait_until(lambda: "rbAmp gateway on this PC" in text_of(out_path) or proc.poll() is not None, 60,
                   "the first screen of the live view")
        output = text_of(out_path)
        line = "make run: setup mode %s; its DNS answers every name with 127.0.0.1 on UDP port %d" % (setup_url,
                                                                                                     dns_port)
        assert line in output, output[-3000:]
        assert output.index(line) < output.index("rbAmp gateway on this PC")
        assert "setup     " + setup_url in output.split("rbAmp gateway on this PC")[1]

        wait_until(lambda: answers(web_port, "/setup") or proc.poll() is not None, 60, setup_url)
        status, kind, body = get(web_port, "/setup")
        assert status == 200 and kind.startswith("text/html") and b"<html" in body.lower(), (status, kind)
        assert not (data / "setup_button").exists()  # the gateway took the press at its boot
        page = json.loads(get(web_port, "/api/state")[2])
        assert page["wifi"]["mode"] == "setup", page["wifi"]
        status, kind, body = get(web_port, "/api/setup/networks")
        assert status == 200 and isinstance(json.loads(body), (list, dict)), body

        for name in ("connectivitycheck.gstatic.com", "captive.apple.com", "rbamp.example"):
            rcode, addresses = dns_query(dns_port, name)
            assert rcode == 0 and addresses == ["127.0.0.1"], (name, rcode, addresses)
        assert proc.poll() is None
    finally:
        stop_run(proc, mark)
    assert "gateway exited with 0" in text_of(out_path), text_of(out_path)[-3000:]
