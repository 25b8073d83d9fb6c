"""`make run`: the real main.py under MicroPython's unix port with the host profile, its simulated
modules in a simulator server of their own, an embedded MQTT broker, and a live view of what a
subscriber receives.

    make run                         # embedded broker (amqtt) on a free loopback port
    make run BROKER=host:port        # use that broker instead
    make run CONFIG=my-config.json   # another config.json (its mqtt host/port follow the broker)
    make run DATA=dir                # another data folder (default .run)

The gateway is supervised as a board resets: when it exits or dies (`kill -9 $(cat
.run/gateway.pid)`), it starts again a second later against the same simulated modules, which
kept running (they live in the simulator server, pid in `.run/sim_port`). A gateway that keeps
dying within 10 s of its start is given up on after 5 tries. Ctrl-C stops everything in order:
the gateway commits its totals and says offline, then the simulator and the broker stop. Data
(config copy, flash image, backlog, gateway.log, sim_truth.json) lives in the data folder.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, "tools", "host_config.json")
RESTART_DELAY_S = 1.0
QUICK_DEATH_S = 10.0  # a gateway that dies sooner than this after its start...
MAX_QUICK_DEATHS = 5  # ...this many times in a row is given up on (a restart storm)

sys.path.insert(0, os.path.join(ROOT, "tools"))
from rbampsim import server as simserver  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def start_amqtt(port, workdir):
    config = os.path.join(workdir, "amqtt.yaml")
    with open(config, "w") as f:
        f.write("listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:%d\n"
                "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                "    allow_anonymous: true\n" % port)
    amqtt = os.path.join(os.path.dirname(sys.executable), "amqtt")
    log = open(os.path.join(workdir, "broker.log"), "w")
    proc = subprocess.Popen([amqtt, "-c", config], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    if not wait_for_port("127.0.0.1", port, 15):
        proc.kill()
        raise SystemExit("the embedded MQTT broker (amqtt) did not start; see %s" % log.name)
    return proc


def prepare_config(source, data_dir, host, port):
    with open(source) as f:
        config = json.load(f)
    mqtt = config.setdefault("mqtt", {})
    mqtt["host"] = host
    mqtt["port"] = port
    target = os.path.join(data_dir, "config.json")
    with open(target + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
    os.replace(target + ".tmp", target)
    return config


def start_gateway(interpreter, data_dir, log_path):
    env = dict(os.environ)
    paths = [".frozen", os.path.join(ROOT, "lib"), os.path.join(ROOT, "tools"),
             os.path.join(ROOT, ".cache", "umqtt")]
    env["MICROPYPATH"] = os.pathsep.join(paths)
    env["RBAMP_DATA"] = data_dir
    with open(log_path, "a") as log:
        return subprocess.Popen([interpreter, os.path.join(ROOT, "main.py")], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


class LiveView:
    """Subscribes like any consumer would and keeps the latest of everything."""

    def __init__(self, host, port, base):
        import paho.mqtt.client as mqtt

        self.base = base
        self.latest = {}
        self.periods = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rbamp-live-view")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(base + "/#")
        self.client.connect(host, port, 30)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            suffix = msg.topic.split("/", 2)[-1] if msg.topic.count("/") >= 2 else msg.topic
            try:
                value = json.loads(msg.payload)
            except ValueError:
                value = msg.payload.decode(errors="replace")
            if suffix.endswith("period"):
                self.periods.append(value)
                self.periods = self.periods[-5:]
            self.latest[suffix] = value

    def render(self, log_tail):
        with self.lock:
            lines = ["rbAmp gateway (host profile) -- Ctrl-C to stop", ""]
            for key in sorted(self.latest):
                if key.endswith("period"):
                    continue
                value = self.latest[key]
                text = json.dumps(value) if not isinstance(value, str) else value
                lines.append("%-22s %s" % (key, text[:160]))
            for record in self.periods[-3:]:
                lines.append("%-22s %s" % ("period", json.dumps(record)[:160]))
        lines.append("")
        lines.append("gateway log:")
        lines.extend("  " + line for line in log_tail)
        return "\n".join(lines)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def tail(path, count):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-count:]
    except OSError:
        return []


def note(log_path, text):
    """A line of the supervisor's own, in the gateway log (the live view shows its tail)."""
    line = "make run: " + text
    with open(log_path, "a") as f:
        f.write(line + "\n")
    print(line, flush=True)


def stop_gateway(gateway):
    if gateway.poll() is None:
        gateway.send_signal(signal.SIGINT)  # KeyboardInterrupt: commit, offline, exit
        try:
            gateway.wait(10)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait(5)


def main():
    parser = argparse.ArgumentParser(description="Run the gateway on this PC")
    parser.add_argument("--broker", default=os.environ.get("BROKER") or "")
    parser.add_argument("--config", default=os.environ.get("CONFIG") or DEFAULT_CONFIG)
    parser.add_argument("--data", default=os.path.join(ROOT, ".run"), help="the data folder (default .run)")
    parser.add_argument("--interpreter", default=os.environ.get("XRT_MPY64") or os.path.join(ROOT, ".venv", "bin", "micropython"))
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: run until Ctrl-C)")
    args = parser.parse_args()
    data = os.path.abspath(args.data)
    os.makedirs(data, exist_ok=True)
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    workdir = tempfile.mkdtemp(prefix="rbamp-run-")
    broker = simulator = gateway = view = None
    pid_path = os.path.join(data, "gateway.pid")
    log_path = os.path.join(data, "gateway.log")
    gave_up = False
    try:
        if args.broker:
            host, _, port = args.broker.rpartition(":")
            host, port = host or "127.0.0.1", int(port)
        else:
            host, port = "127.0.0.1", free_port()
            broker = start_amqtt(port, workdir)
        config = prepare_config(args.config, data, host, port)
        open(log_path, "w").close()
        simulator = simserver.start(data)  # before the gateway: the modules are there at its boot
        gateway = start_gateway(args.interpreter, data, log_path)
        gateway_started = time.monotonic()
        with open(pid_path, "w") as f:
            f.write("%d\n" % gateway.pid)
        view = LiveView(host, port, config["mqtt"].get("base_topic") or "rbamp")
        interactive = sys.stdout.isatty()
        started = next_screen = time.monotonic()
        quick_deaths = 0
        while not stop:
            now = time.monotonic()
            if args.duration and now - started > args.duration:
                break
            code = gateway.poll()
            if code is not None:
                quick_deaths = quick_deaths + 1 if now - gateway_started < QUICK_DEATH_S else 0
                if quick_deaths >= MAX_QUICK_DEATHS:
                    note(log_path, "the gateway died %d times in a row within %d s of its start (last exit %s); "
                         "giving up" % (quick_deaths, QUICK_DEATH_S, code))
                    gave_up = True
                    break
                note(log_path, "gateway exited with %s; starting it again in %d s, as a board resets"
                     % (code, RESTART_DELAY_S))
                deadline = now + RESTART_DELAY_S
                while not stop and time.monotonic() < deadline:
                    time.sleep(0.05)
                if stop:
                    break
                gateway = start_gateway(args.interpreter, data, log_path)
                gateway_started = time.monotonic()
                with open(pid_path, "w") as f:
                    f.write("%d\n" % gateway.pid)
            if now >= next_screen:
                next_screen = now + (1.0 if interactive else 5.0)
                screen = view.render(tail(log_path, 8))
                if interactive:
                    sys.stdout.write("\x1b[2J\x1b[H" + screen + "\n")
                else:
                    sys.stdout.write(screen + "\n\n")
                sys.stdout.flush()
            time.sleep(0.1)
    finally:
        # Each step runs even if one before it failed, so nothing is left running.
        if gateway is not None:
            stop_gateway(gateway)
        if view is not None:
            view.stop()
        if simulator is not None:
            simserver.stop(data, pid=simulator.pid)
            try:
                simulator.wait(10)
            except subprocess.TimeoutExpired:
                simulator.kill()
                simulator.wait(5)
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
        if os.path.exists(pid_path):
            os.remove(pid_path)
    print("\n".join(tail(log_path, 5)))
    print("gateway exited with %s; data in %s" % (gateway.returncode, data))
    if gave_up:
        return 1
    return 0 if gateway.returncode in (0, None, -2) else 1


if __name__ == "__main__":
    sys.exit(main())
