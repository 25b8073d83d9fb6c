"""Host-side MQTT tests (CPython only): the broker harness itself, the link inside a MicroPython
process that is killed with SIGKILL, and the amqtt fallback broker. paho-mqtt is the independent
subscriber here."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from xrt import broker as xbroker
from xrt.pytest_plugin import interpreter_for

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UMQTT_DIR = os.environ.get("XRT_EXTRA_PATH") or os.path.join(REPO, ".cache", "umqtt")


def wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %s s waiting for %s" % (timeout_s, what))
        time.sleep(0.01)


class PahoWatcher:
    """paho-mqtt subscriber collecting (topic, payload, retain) in a background thread."""

    def __init__(self, port, *topics):
        import paho.mqtt.client as mqtt

        self.messages = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-%d" % id(self))
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        for topic in topics:
            self._subscribed.clear()
            self.client.subscribe(topic, 1)
            assert self._subscribed.wait(5), "no SUBACK for %s" % topic

    def _on_message(self, client, userdata, message):
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def payloads(self, topic):
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def matching(self, prefix):
        with self._lock:
            return [(t, p) for t, p, _ in self.messages if t.startswith(prefix)]

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def retained_value(port, topic):
    watcher = PahoWatcher(port, topic)
    try:
        # retained messages are delivered right after the SUBACK the constructor waited for;
        # a round trip on a marker topic proves they are all in
        marker = "marker/%d" % id(watcher)
        done = threading.Event()
        watcher.client.message_callback_add(marker, lambda *args: done.set())
        watcher.client.subscribe(marker, 0)
        watcher.client.publish(marker, b"x")
        assert done.wait(5)
        found = watcher.payloads(topic)
        return found[-1] if found else None
    finally:
        watcher.close()


@pytest.fixture
def broker(tmp_path):
    b = xbroker.Broker(str(tmp_path / "broker"))
    b.start()
    yield b
    b.stop()


def test_harness_broker_stops_starts_pauses_and_keeps_retained_messages(broker, tmp_path):
    if broker.kind != "mosquitto":
        pytest.skip("mosquitto not installed")
    watcher = PahoWatcher(broker.port)
    watcher.client.publish("keep/me", b"42", qos=1, retain=True).wait_for_publish(5)
    watcher.close()
    module = xbroker.ModuleBroker(broker)
    old = os.environ.get(xbroker.ENV_CONTROL)
    os.environ[xbroker.ENV_CONTROL] = module.env[xbroker.ENV_CONTROL]
    try:
        xbroker.broker_control("stop")
        assert not xbroker.accepts(broker.port)
        xbroker.broker_control("start")
        assert xbroker.accepts(broker.port)
        assert retained_value(broker.port, "keep/me") == b"42"  # persistence across the restart
        xbroker.broker_control("pause")
        # a stopped process: the kernel still completes the TCP handshake, MQTT gets no answer
        assert xbroker.accepts(broker.port)
        import paho.mqtt.client as mqtt

        probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        probe.connect("127.0.0.1", broker.port)
        assert probe.loop(timeout=0.5) == mqtt.MQTT_ERR_SUCCESS and not probe.is_connected()
        probe.socket().close()
        xbroker.broker_control("resume")
        assert retained_value(broker.port, "keep/me") == b"42"
        with pytest.raises(ValueError, match="unknown command"):
            xbroker.broker_control("explode")
        import socket

        with socket.create_connection(("127.0.0.1", module.control_port), timeout=5) as raw:
            raw.sendall(b"explode\n")
            assert raw.recv(200).startswith(b"error: unknown command")
    finally:
        if old is None:
            os.environ.pop(xbroker.ENV_CONTROL, None)
        else:
            os.environ[xbroker.ENV_CONTROL] = old
        module.close()
    assert not xbroker.accepts(broker.port)


GATEWAY_SCRIPT = """
import asyncio
from gateway.mqtt_link import MqttLink
from gateway.discovery import discovery_messages

class Log:
    def _p(self, level, fmt, args):
        print(level, fmt % args if args else fmt)
    def debug(self, fmt, *args): self._p("D", fmt, args)
    def info(self, fmt, *args): self._p("I", fmt, args)
    def warning(self, fmt, *args): self._p("W", fmt, args)
    def error(self, fmt, *args): self._p("E", fmt, args)

cfg = {"host": "127.0.0.1", "port": PORT, "user": None, "password": None, "tls": False, "ca_file": None,
       "client_id": None, "base_topic": "kill", "keepalive": 60, "qos": 1, "timeout_s": 2}
link = MqttLink(cfg, "gw-kill", Log(), rng_seed=1)
link.set_ha_prefix("hakill")
link.set_discovery(discovery_messages("hakill", "kill", "gw-kill",
    [{"address": 0x50, "label": "house", "channels": 2, "has_voltage": True}],
    {"name": "rbamp-gateway", "sw_version": "0.1.0"}))

async def main():
    asyncio.create_task(link.run())
    n = 0
    while True:
        await asyncio.sleep(0.1)
        n += 1
        link.publish_state({"modules": {"0x50": {"status": "ok", "voltage": 230.0, "power": [n, -n]}}})
        if n % 5 == 0:
            link.publish_period({"seq": n // 5, "ts": None, "modules": {}})
            link.publish_totals({"0x50": {"import_wh": [n * 1.0, 0.0], "export_wh": [0.0, n * 0.5]}})

asyncio.run(main())
"""


def test_sigkill_of_the_gateway_process_makes_the_broker_publish_offline(broker, tmp_path):
    binary = interpreter_for("mpy32") or interpreter_for("mpy64")
    if binary is None:
        pytest.skip("no MicroPython interpreter")
    script = tmp_path / "gateway_kill.py"
    script.write_text(GATEWAY_SCRIPT.replace("PORT", str(broker.port)))
    watcher = PahoWatcher(broker.port, "kill/#", "hakill/#")
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([".frozen", os.path.join(REPO, "lib"), UMQTT_DIR])
    proc = subprocess.Popen([binary, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: watcher.payloads("kill/gw-kill/availability") == [b"online"], 10, "online")
        # 7 gateway diagnostics, the module's status, then its 2 + 2 * 6 measuring sensors
        wait_for(lambda: len(watcher.matching("hakill/")) == 7 + 1 + 2 + 2 * 6, 10, "22 discovery messages")
        wait_for(lambda: len(watcher.payloads("kill/gw-kill/period")) >= 2, 10, "two period records")
        measuring = 0
        for topic, payload in watcher.matching("hakill/"):
            config = json.loads(payload)
            state_topic = config["~"] + config["stat_t"][1:]
            assert state_topic in ("kill/gw-kill/state", "kill/gw-kill/totals"), config
            assert config["dev"]["ids"] == ["gw-kill"] and config["uniq_id"].startswith("gw-kill_")
            if config.get("ent_cat") != "diagnostic":
                measuring += 1
                assert config["uniq_id"].startswith("gw-kill_50_"), config
        assert measuring == 2 + 2 * 6
        state = json.loads(watcher.payloads("kill/gw-kill/state")[-1])
        assert state["modules"]["0x50"]["voltage"] == 230.0
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: watcher.payloads("kill/gw-kill/availability")[-1:] == [b"offline"], 10, "the last will")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        watcher.close()
    output = proc.stdout.read().decode(errors="replace")
    assert "connected to 127.0.0.1" in output, output
    assert retained_value(broker.port, "kill/gw-kill/availability") == b"offline"
    periods = [json.loads(p)["seq"] for p in watcher.payloads("kill/gw-kill/period")]
    assert periods == list(range(1, len(periods) + 1))


def test_the_link_works_with_the_amqtt_fallback_broker(tmp_path):
    if xbroker.amqtt_path() is None:
        pytest.skip("amqtt not installed in the venv")
    b = xbroker.Broker(str(tmp_path / "amqtt"), kind="amqtt")
    b.start()
    try:
        script = tmp_path / "amqtt_link.py"
        script.write_text(AMQTT_SCRIPT.replace("PORT", str(b.port)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(REPO, "lib"), os.path.join(REPO, "tests"),
                                             os.path.join(REPO, "tools"), UMQTT_DIR])
        env["XRT_RUNTIME"] = "cpython"
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "RESULT ok" in done.stdout, done.stdout + done.stderr
    finally:
        b.stop()


AMQTT_SCRIPT = """
import asyncio
import support_broker as sb
sb.install_umqtt_names()
from gateway.mqtt_link import MqttLink

cfg = sb.full_mqtt_config(host="127.0.0.1", port=PORT, base_topic="am", timeout_s=3)
log = sb.ListLog()
link = MqttLink(cfg, "gw", log, rng_seed=1)

async def main():
    task = asyncio.create_task(link.run())
    for _ in range(500):
        if link.connected:
            break
        await asyncio.sleep(0.02)
    assert link.connected, log.text()
    link.publish_totals({"0x50": {"import_wh": [7.5]}})
    link.publish_period({"seq": 1})
    for _ in range(500):
        if not len(link.backlog) and link.stats["published"] >= 3:
            break
        await asyncio.sleep(0.02)
    assert len(link.backlog) == 0, link.stats
    other = MqttLink(dict(cfg, client_id="reader"), "gw", sb.ListLog(), rng_seed=2)
    reader = asyncio.create_task(other.run())
    value = await other.read_retained("totals", 5000)
    assert value == {"0x50": {"import_wh": [7.5]}}, value
    await other.stop()
    await link.stop()
    for t in (task, reader):
        if not t.done():
            t.cancel()
    print("RESULT ok")

asyncio.run(main())
"""


def _make_certificates(folder):
    """A test CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")

    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=xrt test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem",
        "-days", "2", "-subj", "/CN=another CA")


TLS_SCRIPT = """
import asyncio
import support_broker as sb
sb.install_umqtt_names()
from gateway.mqtt_link import MqttLink

for name, ca in (("right", CA), ("none", None), ("wrong", OTHER)):
    cfg = sb.full_mqtt_config(host="127.0.0.1", port=PORT, tls=True, ca_file=ca, base_topic="tls", timeout_s=3)
    log = sb.ListLog()
    link = MqttLink(cfg, "gw-" + name, log, rng_seed=1)

    async def main():
        task = asyncio.create_task(link.run())
        queued = False
        for _ in range(500):
            if link.stats["failures"] or (queued and link.stats["published"] >= 2):  # online, totals
                break
            if link.connected and not queued:
                link.publish_totals({"via": name})
                queued = True
            await asyncio.sleep(0.02)
        await link.stop()
        if not task.done():
            task.cancel()

    asyncio.run(main())
    print("RESULT", name, link.stats["connects"], link.stats["failures"], link.stats["last_error"])
    print(log.text())
"""


# ids without the bare runtime names: the plugin tallies "[mpy64]" items as cross-runtime ones
@pytest.mark.parametrize("runtime", ["cpython", "mpy64"], ids=["link-on-cpython", "link-on-mpy64"])
def test_tls_with_a_ca_file_verifies_the_broker(tmp_path, runtime):
    if runtime == "mpy64" and interpreter_for("mpy64") is None:
        pytest.skip("no mpy64 interpreter")  # mpy32 is built without ssl
    _make_certificates(tmp_path)
    tls_port = xbroker.free_port()
    extra = "listener %d 127.0.0.1\ncertfile %s\nkeyfile %s\n" % (
        tls_port, tmp_path / "server.pem", tmp_path / "server.key")
    b = xbroker.Broker(str(tmp_path / "broker"), extra_config=extra)
    if b.kind != "mosquitto":
        pytest.skip("the TLS listener needs mosquitto")
    b.start()
    watcher = PahoWatcher(b.port, "tls/#")
    try:
        script = tmp_path / "tls_link.py"
        script.write_text(TLS_SCRIPT.replace("PORT", str(tls_port)).replace("OTHER", repr(str(tmp_path / "other.pem")))
                          .replace("CA", repr(str(tmp_path / "ca.pem"))))
        env = dict(os.environ)
        env["XRT_RUNTIME"] = runtime
        if runtime == "cpython":
            env["PYTHONPATH"] = os.pathsep.join([os.path.join(REPO, d) for d in ("lib", "tests", "tools")] + [UMQTT_DIR])
            cmd = [sys.executable, str(script)]
        else:
            env["MICROPYPATH"] = os.pathsep.join([".frozen"] + [os.path.join(REPO, d) for d in ("lib", "tests", "tools")]
                                                 + [UMQTT_DIR])
            cmd = [interpreter_for("mpy64"), str(script)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
        out = done.stdout + done.stderr
        assert done.returncode == 0, out
        results = dict((line.split()[1], line.split(None, 4)[2:]) for line in out.splitlines()
                       if line.startswith("RESULT"))
        assert results["right"][:2] == ["1", "0"], out
        assert results["none"][:2] == ["1", "0"], out
        assert "not verified" in out
        assert results["wrong"][0] == "0" and results["wrong"][1] != "0", out  # refused: unknown CA
        wait_for(lambda: watcher.payloads("tls/gw-right/totals") == [b'{"via":"right"}'], 10, "totals over TLS")
        assert watcher.payloads("tls/gw-none/totals") == [b'{"via":"none"}']
        assert watcher.payloads("tls/gw-wrong/totals") == []
    finally:
        watcher.close()
        b.stop()
