"""End-to-end support (host side): the real main.py under MicroPython with the host profile, a
paho-mqtt subscriber that records what arrives, and waits on conditions with deadlines."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def micropython():
    return os.environ.get("XRT_MPY64") or os.path.join(ROOT, ".venv", "bin", "micropython")


def base_config(port, **overrides):
    config = {
        "device_id": "e2e-gw",
        "mqtt": {"host": "127.0.0.1", "port": port, "base_topic": "rbamp", "timeout_s": 2,
                 "password": "hunter2-secret", "user": "meter"},
        "modules": [{"address": 80, "label": "house"}],
        "period_s": 2,
        "publish": {"interval_s": 1, "power_change_w": 50},
        "commit": {"growth_wh": 5, "interval_s": 5},
        "homeassistant": {"discovery": True, "prefix": "homeassistant"},
        "ntp": {"enabled": False},
        "log_level": "info",
    }
    for key, value in overrides.items():
        config[key] = value
    return config


class Gateway:
    """One gateway process; its data folder survives restarts (the flash image and backlog)."""

    def __init__(self, data_dir, config=None, config_text=None, env=None, script="main.py"):
        self.data_dir = data_dir
        self.script = script  # relative to the repository root
        os.makedirs(data_dir, exist_ok=True)
        if config is not None or config_text is not None:
            with open(os.path.join(data_dir, "config.json"), "w") as f:
                f.write(config_text if config_text is not None else json.dumps(config))
        self.env = env or {}
        self.proc = None
        self.log_path = os.path.join(data_dir, "gateway.log")

    def start(self):
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join(
            [".frozen", os.path.join(ROOT, "lib"), os.path.join(ROOT, "tools"),
             os.path.join(ROOT, ".cache", "umqtt")])
        env["RBAMP_DATA"] = self.data_dir
        env.update(self.env)
        self.log_file = open(self.log_path, "a")
        self.proc = subprocess.Popen([micropython(), os.path.join(ROOT, self.script)], cwd=ROOT,
                                     env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "log_file", None):
            self.log_file.close()

    def control(self, command):
        path = os.path.join(self.data_dir, "sim_control")
        with open(path + ".tmp", "w") as f:
            f.write(command + "\n")
        os.replace(path + ".tmp", path)

    def truth(self):
        with open(os.path.join(self.data_dir, "sim_truth.json")) as f:
            return json.load(f)


class Watcher:
    """A subscriber on everything: messages in arrival order, retained flags kept."""

    def __init__(self, port, topics=("#",), client_id="e2e-watcher", clean_session=True):
        import paho.mqtt.client as mqtt

        self.messages = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean_session)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p=None: (c.subscribe([(t, 1) for t in topics]), subscribed.set())
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("watcher could not connect to the broker")

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain, time.monotonic()))

    def on(self, topic):
        with self.lock:
            return [m for m in self.messages if m[0] == topic]

    def json_on(self, topic):
        return [json.loads(m[1]) for m in self.on(topic)]

    def wait_for(self, predicate, timeout_s, what):
        return wait_until(predicate, timeout_s, what)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout_s, what))


def fresh_dir(tmp_root, name):
    path = os.path.join(tmp_root, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def require(condition, what):
    """Skip a test whose tool is missing on a developer's machine; fail it in CI, which installs it."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("%s is required in CI (.ci/run installs it)" % what)
    pytest.skip("%s is not available" % what)

