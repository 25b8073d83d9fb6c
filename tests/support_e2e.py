"""End-to-end support (host side): the real main.py under MicroPython with the host profile, its
simulator server (the simulated modules, in a process of their own that outlives the gateway), a
paho-mqtt subscriber that records what arrives, and waits on conditions with deadlines."""

import atexit
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
from rbampsim import remote
from rbampsim import server as simserver

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
    """One gateway process; its data folder survives restarts (the flash image and backlog), and
    so does its simulator server (the modules keep running while the gateway comes and goes).

    ``simulator``: "process" (default for main.py): ``start()`` starts the folder's simulator
    server first if none runs, with this gateway's environment (RBAMP_SIM...), so commands
    written with ``control()`` before ``start()`` apply before the first bus transaction;
    "auto": the gateway starts the server itself, as a plain ``micropython main.py`` does;
    "inproc" (default for another ``script``: a probe that wraps the simulator's methods in the
    gateway's own interpreter): the modules live in the gateway process (RBAMP_SIM_INPROC=1).
    ``stop()`` stops the gateway, then the simulator it used; ``kill9()`` only the gateway."""

    def __init__(self, data_dir, config=None, config_text=None, env=None, script="main.py", simulator=None):
        self.data_dir = data_dir
        self.script = script  # relative to the repository root
        os.makedirs(data_dir, exist_ok=True)
        if config is not None or config_text is not None:
            with open(os.path.join(data_dir, "config.json"), "w") as f:
                f.write(config_text if config_text is not None else json.dumps(config))
        self.env = dict(env or {})
        self.simulator = simulator or ("process" if script == "main.py" else "inproc")
        if self.simulator not in ("process", "auto", "inproc"):
            raise ValueError("simulator must be process, auto or inproc")
        if self.simulator == "inproc":
            self.env["RBAMP_SIM_INPROC"] = "1"
        self.proc = None
        self.sim_proc = None  # the simulator server, when start() started it
        self.sim_pid = None  # the simulator this gateway used (stop() stops that one only)
        self.log_path = os.path.join(data_dir, "gateway.log")

    def _env(self):
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join(
            [".frozen", os.path.join(ROOT, "lib"), os.path.join(ROOT, "tools"),
             os.path.join(ROOT, ".cache", "umqtt"), os.path.join(ROOT, ".cache", "weblib")])
        env["RBAMP_DATA"] = self.data_dir
        if "RBAMP_WEB_PORT" not in self.env:
            from xrt.broker import free_port

            # each gateway's page on a port of its own: tests and their gateways run side by side
            self.env["RBAMP_WEB_PORT"] = str(free_port())
        env.update(self.env)
        return env

    def start(self):
        env = self._env()
        if self.simulator != "inproc":
            _SIM_DIRS.add(self.data_dir)
        if self.simulator == "process":
            self.start_simulator()
        self.log_file = open(self.log_path, "a")
        self.proc = subprocess.Popen([micropython(), os.path.join(ROOT, self.script)], cwd=ROOT,
                                     env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        return self

    def start_simulator(self):
        """The folder's simulator server, started unless one runs already; returns its pid."""
        found = simserver.running(self.data_dir)
        if found is None:
            self.sim_proc = simserver.start(self.data_dir, env=self._env())
            found = (None, self.sim_proc.pid)
        self.sim_pid = found[1]
        return self.sim_pid

    def simulator_pid(self):
        """The pid of the simulator server running for this folder, or None."""
        found = simserver.running(self.data_dir)
        return found[1] if found else None

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill9(self):
        """The gateway dies at once (no commit, no offline); its simulated modules run on."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, keep_simulator=False):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if getattr(self, "log_file", None):
            self.log_file.close()
        if not keep_simulator:
            self.stop_simulator()

    def stop_simulator(self):
        if self.simulator == "auto":
            simserver.stop(self.data_dir)  # whichever the gateway started
        elif self.sim_pid is not None:
            simserver.stop(self.data_dir, pid=self.sim_pid)  # not one a later gateway here started
        if self.sim_proc is not None:
            self.sim_proc.wait(10)
            self.sim_proc = None

    def control(self, command):
        """A sim_control command: applied within 100 ms, or before the first bus transaction of a
        gateway started later."""
        path = os.path.join(self.data_dir, "sim_control")
        with open(path + ".tmp", "w") as f:
            f.write(command + "\n")
        os.replace(path + ".tmp", path)

    def truth(self):
        """sim_truth.json: the simulator writes it a second after it starts (at once after a
        command), then every second."""
        path = os.path.join(self.data_dir, "sim_truth.json")
        wait_until(lambda: os.path.exists(path), 10, "sim_truth.json")
        with open(path) as f:
            return json.load(f)

    def peek(self, addr, reg, size):
        """The simulated module's registers as they are (no bus transaction, nothing changes)."""
        bus = remote.RemoteI2C(self.data_dir, [])
        if not bus.connect():
            raise AssertionError("no simulator server runs for %s" % self.data_dir)
        try:
            return bus.peek(addr, reg, size)
        finally:
            bus.close()


_SIM_DIRS = set()


@atexit.register
def _stop_simulators():
    """Last line: no simulator server outlives the test run, whatever a test left behind."""
    for data_dir in _SIM_DIRS:
        simserver.stop(data_dir)


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

