"""`make run`: the real main.py under MicroPython's unix port with the host profile, its simulated
modules in a simulator server of their own, an embedded MQTT broker, and a live view of what a
subscriber receives.

    make run                         # embedded broker (amqtt) on a free loopback port
    make run BROKER=host:port        # use that broker instead
    make run CONFIG=my-config.json   # another config.json (only its mqtt host/port are replaced)
    make run DATA=dir                # another data folder (default .run)
    make run WEB_PORT=8081           # the gateway's web page on another port (default 8080)
    make run SETUP=1                 # boot the gateway in setup mode (Wi-Fi setup page, captive DNS)

The gateway serves its web page at http://127.0.0.1:WEB_PORT/ (``RBAMP_WEB_PORT`` for the PC's
board profile, which takes it in place of CONFIG's ``web.port``, a board's setting); the URL is
printed before the live view starts and the view shows it. With
SETUP=1 the setup button counts as held at the first boot (the data folder's ``setup_button``
file, which the gateway consumes; a restart after saving boots normally, as a board whose button
was let go), the setup page is http://127.0.0.1:WEB_PORT/setup and the catch-all DNS answers on
UDP 127.0.0.1:DNS_PORT (``RBAMP_DNS_PORT``, default 5353; a PC's port 53 needs root).

Before anything starts, CONFIG goes through the gateway's own parser (gateway.config) and is
refused with the message a board would log; then only mqtt.host and mqtt.port are replaced by the
broker's address. A wrong BROKER, a broker that does not answer, a WEB_PORT (or with SETUP=1 a
DNS_PORT) that another program holds, or a data folder in use by another run (``run.lock``: the
second run names the process holding it; the lock of a run that was killed is taken over) is one
line on stderr, exit status 1, and nothing left running.

The gateway is supervised as a board resets: when it exits or dies (`kill -9 $(cat
.run/gateway.pid)`), it starts again a second later against the same simulated modules, which
kept running (they live in the simulator server, pid in `.run/sim_port`). A gateway that keeps
dying within 10 s of its start is given up on after 5 tries. Ctrl-C stops everything in order:
the gateway commits its totals and says offline, then the simulator and the broker stop. Data
(config copy, flash image, backlog, gateway.log, sim_truth.json) lives in the data folder.
"""

import argparse
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, "tools", "host_config.json")
DEFAULT_WEB_PORT = 8080  # port 80 needs root on a PC
DEFAULT_DNS_PORT = 5353  # port 53 needs root on a PC
SETUP_BUTTON = "setup_button"  # tools/hostboard.py: present at boot means the setup button is held
RESTART_DELAY_S = 1.0
QUICK_DEATH_S = 10.0  # a gateway that dies sooner than this after its start...
MAX_QUICK_DEATHS = 5  # ...this many times in a row is given up on (a restart storm)
LOCK_NAME = "run.lock"

sys.path[:0] = [os.path.join(ROOT, "tools"), os.path.join(ROOT, "lib")]
from live_view import LiveView  # noqa: E402
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
        proc.wait(5)
        raise RunError("the embedded MQTT broker (amqtt) did not start; see %s" % log.name)
    return proc


class RunError(Exception):
    """A reason not to run, said in one line (no traceback); nothing is left running."""


def parse_broker(text):
    """``host:port`` from BROKER; the host and port are judged by the gateway's own parser later."""
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise RunError("BROKER=%s has no port: give host:port, e.g. BROKER=%s:1883" % (text, text or "127.0.0.1"))
    try:
        return host, int(port)
    except ValueError:
        return host, port  # the gateway's parser words it: "mqtt.port: must be an integer ..."


def read_config(source, host, port):
    """The config as the gateway judges it, with only the broker address replaced.

    The file's bytes go through the board's own parser (gateway.config.parse_config: strict JSON,
    duplicate keys, required keys such as mqtt.host), and its message is the one a board would
    log. Only then is mqtt.host/port replaced in what the file says (not in the defaults filled
    in), and the result judged again. Returns (what to write as the gateway's config.json, the
    validated config)."""
    from gateway.config import MAX_FILE_BYTES, ConfigError, parse_config, parse_json

    name = os.path.basename(source)
    try:
        with open(source, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RunError("CONFIG=%s cannot be read: %s" % (source, exc.strerror or exc))
    try:
        parse_config(data, name)
        raw = parse_json(data, name)
    except ConfigError as exc:
        raise RunError("%s (the gateway's verdict on CONFIG=%s; nothing was started)" % (exc, source))
    raw["mqtt"]["host"] = host
    raw["mqtt"]["port"] = port
    try:
        config = parse_config(raw, "BROKER=%s:%s" % (host, port))
    except ConfigError as exc:
        raise RunError("%s (nothing was started)" % exc)
    return json.dumps(raw, indent=2) + "\n", config


def write_config(data_dir, text):
    target = os.path.join(data_dir, "config.json")
    with open(target + ".tmp", "w") as f:
        f.write(text)
    os.replace(target + ".tmp", target)


def parse_port(name, text):
    """A TCP/UDP port number from WEB_PORT or DNS_PORT, or RunError saying what is wrong."""
    try:
        port = int(text)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise RunError("%s=%s is not a port number (1..65535)" % (name, text))
    return port


def check_port_free(name, port, kind):
    """RunError unless this PC lets the gateway listen on 127.0.0.1:port (``kind`` SOCK_STREAM
    for the web page, SOCK_DGRAM for setup mode's DNS), bound as the gateway binds it: another
    program there would leave make run without its page."""
    with socket.socket(socket.AF_INET, kind) as probe:
        if kind == socket.SOCK_STREAM:
            # as asyncio's start_server does: a port left in TIME_WAIT by the last gateway is free
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise RunError("%s=%d: %s port 127.0.0.1:%d is not free (%s): stop what listens there or "
                           "give another, e.g. %s=%d (nothing was started)"
                           % (name, port, "TCP" if kind == socket.SOCK_STREAM else "UDP", port,
                              exc.strerror or exc, name, port + 1))


def check_ports(args, config, web_port, dns_port):
    """RunError when the page's port (or setup mode's DNS port) is taken, else what the live view
    says about them: (web page note, setup note)."""
    web_note, setup_note = "off (web.enabled is false in %s)" % args.config, ""
    if config["web"]["enabled"] or args.setup:
        check_port_free("WEB_PORT", web_port, socket.SOCK_STREAM)
        web_note = "http://127.0.0.1:%d/" % web_port
    if args.setup:
        check_port_free("DNS_PORT", dns_port, socket.SOCK_DGRAM)
        setup_note = ("http://127.0.0.1:%d/setup; its DNS answers every name with 127.0.0.1 on UDP port %d "
                      "(dig @127.0.0.1 -p %d rbamp.example)" % (web_port, dns_port, dns_port))
    return web_note, setup_note


def start_gateway(interpreter, data_dir, log_path, lock_fd, web_port, dns_port):
    """The gateway in a session of its own; it inherits the data folder's lock, so the folder stays
    locked while it lives even if this supervisor was killed."""
    env = dict(os.environ)
    paths = [".frozen", os.path.join(ROOT, "lib"), os.path.join(ROOT, "tools"),
             os.path.join(ROOT, ".cache", "umqtt"), os.path.join(ROOT, ".cache", "weblib")]
    env["MICROPYPATH"] = os.pathsep.join(paths)
    env["RBAMP_DATA"] = data_dir
    env["RBAMP_WEB_PORT"] = str(web_port)
    env["RBAMP_DNS_PORT"] = str(dns_port)
    with open(log_path, "a") as log:
        return subprocess.Popen([interpreter, os.path.join(ROOT, "main.py")], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, pass_fds=(lock_fd,))


def kept_device_id(data_dir, config):
    """config.json's device id, else the one the gateway keeps in its data folder (None until its
    first boot has chosen one)."""
    if config["device_id"]:
        return config["device_id"]
    from gateway.identity import is_device_id

    try:
        with open(os.path.join(data_dir, "device_id")) as f:
            kept = f.read().strip()
    except OSError:
        return None
    return kept if is_device_id(kept) else None


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


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError, ValueError):
        return False


def _pid_in(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def lock_data_folder(data_dir):
    """An exclusive lock on the data folder for this run: two gateways writing one journal would
    interleave it. The lock (flock on ``run.lock``, which holds the owner's pid) is the kernel's:
    it ends with the last process holding it, so a run that was killed leaves no lock behind, only
    its pid in the file, and the gateway inherits it (an orphaned gateway keeps the folder locked).
    Returns the lock's file descriptor; RunError names who holds it."""
    path = os.path.join(data_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        owner = _pid_in(path)
        gateway = _pid_in(os.path.join(data_dir, "gateway.pid"))
        if owner is not None and _alive(owner):
            holder = "make run (process %d)" % owner
        else:
            holder = "a gateway left running by a make run that is gone (process %s)" % (gateway or "unknown")
        raise RunError("the data folder %s is in use by %s: stop that one first, or give another "
                       "folder (DATA=dir)" % (data_dir, holder))
    previous = _pid_in(path)
    os.ftruncate(fd, 0)
    os.write(fd, b"%d\n" % os.getpid())
    if previous is not None and previous != os.getpid():
        print("make run: took over the lock of %s from process %d, which is gone"
              % (data_dir, previous), flush=True)
    return fd


def unlock_data_folder(fd):
    """A clean end: the file no longer names this process (the next run has nothing to take over)."""
    os.ftruncate(fd, 0)
    os.close(fd)


def stop_gateway(gateway):
    if gateway.poll() is None:
        gateway.send_signal(signal.SIGINT)  # KeyboardInterrupt: commit, offline, exit
        try:
            gateway.wait(10)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait(5)


def stop_all(gateway, view, simulator, broker, data, pid_path):
    """Each step runs even if one before it failed, so nothing is left running."""
    steps = []
    if gateway is not None:
        steps.append(lambda: stop_gateway(gateway))
    if view is not None:
        steps.append(view.stop)
    if simulator is not None:
        steps.append(lambda: stop_simulator(simulator, data))
    if broker is not None:
        steps.append(lambda: stop_process(broker))
    failures = []
    for step in steps:
        try:
            step()
        except Exception as exc:  # go on stopping the rest, then say what failed
            failures.append(exc)
    if os.path.exists(pid_path):
        os.remove(pid_path)
    if failures:
        raise failures[0]


def stop_simulator(simulator, data):
    simserver.stop(data, pid=simulator.pid)
    stop_process(simulator)


def stop_process(proc):
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def main():
    parser = argparse.ArgumentParser(description="Run the gateway on this PC")
    parser.add_argument("--broker", default=os.environ.get("BROKER") or "")
    parser.add_argument("--config", default=os.environ.get("CONFIG") or DEFAULT_CONFIG)
    parser.add_argument("--data", default=os.path.join(ROOT, ".run"), help="the data folder (default .run)")
    parser.add_argument("--interpreter", default=os.environ.get("XRT_MPY64") or os.path.join(ROOT, ".venv", "bin", "micropython"))
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: run until Ctrl-C)")
    parser.add_argument("--web-port", default=os.environ.get("WEB_PORT") or str(DEFAULT_WEB_PORT),
                        help="the web page's port on 127.0.0.1 (default %d)" % DEFAULT_WEB_PORT)
    parser.add_argument("--setup", action="store_true",
                        default=os.environ.get("SETUP", "") not in ("", "0", "no", "false"),
                        help="boot the gateway in setup mode (as with its setup button held)")
    parser.add_argument("--dns-port", default=os.environ.get("DNS_PORT") or str(DEFAULT_DNS_PORT),
                        help="setup mode's catch-all DNS on 127.0.0.1 (default %d)" % DEFAULT_DNS_PORT)
    args = parser.parse_args()
    stop = []
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *a: stop.append(1))
    try:
        return supervise(args, stop)
    except RunError as exc:
        print("make run: %s" % exc, file=sys.stderr, flush=True)
        return 1


def supervise(args, stop):
    """Judge BROKER and CONFIG, lock the data folder, start the broker (or reach the given one),
    the simulator and the gateway, and show the live view until Ctrl-C or --duration."""
    if args.broker:
        host, port = parse_broker(args.broker)
        broker_note = ""
    else:
        host, port = "127.0.0.1", free_port()
        broker_note = " (embedded amqtt; give BROKER=host:port for another)"
    config_text, config = read_config(args.config, host, port)
    web_port = parse_port("WEB_PORT", args.web_port)
    dns_port = parse_port("DNS_PORT", args.dns_port)
    data = os.path.abspath(args.data)
    os.makedirs(data, exist_ok=True)
    lock_fd = lock_data_folder(data)
    workdir = tempfile.mkdtemp(prefix="rbamp-run-")
    broker = simulator = gateway = view = None
    pid_path = os.path.join(data, "gateway.pid")
    log_path = os.path.join(data, "gateway.log")
    gave_up = False
    try:
        # after the lock: a second run on the same folder is told about the first, not its port
        web_note, setup_note = check_ports(args, config, web_port, dns_port)
        if not args.broker:
            broker = start_amqtt(port, workdir)
        verdict = ("%s: accepted by the gateway's config parser (device_id %s, %d module(s)); only "
                   "mqtt.host/port set to the broker" % (args.config, config["device_id"] or "chosen at the first boot",
                                                         len(config["modules"])))
        try:
            view = LiveView(host, port, config, lambda: kept_device_id(data, config), broker_note, verdict,
                            web_note, setup_note)
        except OSError as exc:
            raise RunError("no MQTT broker at %s:%d (%s): start it, or leave BROKER out for the "
                           "embedded one" % (host, port, exc.strerror or exc))
        write_config(data, config_text)
        print("make run: " + verdict, flush=True)
        print("make run: web page " + web_note, flush=True)
        if setup_note:
            print("make run: setup mode " + setup_note, flush=True)
            open(os.path.join(data, SETUP_BUTTON), "w").close()  # held at the first boot only
        open(log_path, "w").close()
        simulator = simserver.start(data)  # before the gateway: the modules are there at its boot
        gateway = start_gateway(args.interpreter, data, log_path, lock_fd, web_port, dns_port)
        gateway_started = time.monotonic()
        with open(pid_path, "w") as f:
            f.write("%d\n" % gateway.pid)
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
                gateway = start_gateway(args.interpreter, data, log_path, lock_fd, web_port, dns_port)
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
        try:
            stop_all(gateway, view, simulator, broker, data, pid_path)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            unlock_data_folder(lock_fd)
    print("\n".join(tail(log_path, 5)))
    print("gateway exited with %s; data in %s" % (gateway.returncode, data))
    if gave_up:
        return 1
    return 0 if gateway.returncode in (0, None, -2) else 1


if __name__ == "__main__":
    sys.exit(main())
