"""The README's first command: `make run` (tools/run_host.py) with its embedded broker, headless:
its data folder, its supervision of the gateway (restarted as a board resets) and its Ctrl-C."""

import json
import os
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_make_run_shows_what_a_subscriber_receives_and_stops_cleanly(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "run_host.py"), "--duration", "16",
                          "--data", str(tmp_path / "run")], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    screens = out.stdout
    assert "availability           online" in screens
    assert '"status": "ok"' in screens and "totals" in screens, screens[-3000:]
    assert "INFO stopping" in screens and "gateway exited with 0" in screens
    assert os.path.exists(tmp_path / "run" / "energy.d" / "0" / "b")


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


def test_make_run_restarts_a_killed_gateway_like_a_board_and_ctrl_c_leaves_nothing_running(tmp_path):
    """`make run DATA=dir` in its own process group, as in a terminal: the gateway is killed
    with SIGKILL and comes back online at the (embedded) broker against the same simulator;
    Ctrl-C to the group stops the gateway, the simulator and the broker."""
    from rbampsim import remote
    from support_e2e import Watcher, wait_until

    data = tmp_path / "my data"  # a space: the folder's path is quoted all the way down
    with open(tmp_path / "make.out", "w") as out:
        make = subprocess.Popen(["make", "-s", "-C", ROOT, "run", "DATA=%s" % str(data).replace(" ", "\\ ")],
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
