"""`make run`: the real main.py under MicroPython's unix port with the host profile, an embedded
MQTT broker, and a live view of what a subscriber receives.

    make run                         # embedded broker (amqtt) on a free loopback port
    make run BROKER=host:port        # use that broker instead
    make run CONFIG=my-config.json   # another config.json (its mqtt host/port follow the broker)

Ctrl-C stops everything in order: the gateway commits its totals and says offline, then the
broker stops. Data (config copy, flash image, backlog) lives in `.run/` (git-ignored).
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
    log = open(log_path, "a")
    return subprocess.Popen([interpreter, os.path.join(ROOT, "main.py")], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


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


def main():
    parser = argparse.ArgumentParser(description="Run the gateway on this PC")
    parser.add_argument("--broker", default=os.environ.get("BROKER") or "")
    parser.add_argument("--config", default=os.environ.get("CONFIG") or DEFAULT_CONFIG)
    parser.add_argument("--data", default=os.path.join(ROOT, ".run"))
    parser.add_argument("--interpreter", default=os.environ.get("XRT_MPY64") or os.path.join(ROOT, ".venv", "bin", "micropython"))
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: run until Ctrl-C)")
    args = parser.parse_args()
    os.makedirs(args.data, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="rbamp-run-")
    broker = None
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        host, port = host or "127.0.0.1", int(port)
    else:
        host, port = "127.0.0.1", free_port()
        broker = start_amqtt(port, workdir)
    config = prepare_config(args.config, args.data, host, port)
    log_path = os.path.join(args.data, "gateway.log")
    open(log_path, "w").close()
    gateway = start_gateway(args.interpreter, args.data, log_path)
    view = LiveView(host, port, config["mqtt"].get("base_topic") or "rbamp")
    interactive = sys.stdout.isatty()
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    started = time.monotonic()
    try:
        while not stop and gateway.poll() is None:
            if args.duration and time.monotonic() - started > args.duration:
                break
            screen = view.render(tail(log_path, 8))
            if interactive:
                sys.stdout.write("\x1b[2J\x1b[H" + screen + "\n")
            else:
                sys.stdout.write(screen + "\n\n")
            sys.stdout.flush()
            time.sleep(1.0 if interactive else 5.0)
    finally:
        if gateway.poll() is None:
            gateway.send_signal(signal.SIGINT)  # KeyboardInterrupt: commit, offline, exit
            try:
                gateway.wait(10)
            except subprocess.TimeoutExpired:
                gateway.kill()
        view.stop()
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(tail(log_path, 5)))
    print("gateway exited with %s; data in %s" % (gateway.returncode, args.data))
    return 0 if gateway.returncode in (0, None, -2) else 1


if __name__ == "__main__":
    sys.exit(main())
