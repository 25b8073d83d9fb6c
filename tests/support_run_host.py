"""`make run` (tools/run_host.py) from the outside: start it with a marker in its environment, and
find every process it left behind by that marker, whatever session each moved to (the broker,
the simulator server and the gateway all inherit the environment)."""

import os
import subprocess
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_HOST = os.path.join(ROOT, "tools", "run_host.py")
MARK = "RBAMP_RUN_HOST_TEST_MARK"


def new_mark():
    return uuid.uuid4().hex


def environment(mark):
    """The test's environment with the mark, without make run's own variables, and the web page
    on a free port (WEB_PORT, which --web-port overrides): 8080 may be another run's."""
    from xrt.broker import free_port

    env = dict(os.environ)
    env[MARK] = mark
    for name in ("BROKER", "CONFIG", "DATA", "SETUP", "DNS_PORT"):
        env.pop(name, None)
    env["WEB_PORT"] = str(free_port())
    return env


def run(args, mark, timeout_s=120):
    """run_host.py to its end; the CompletedProcess (text)."""
    return subprocess.run([sys.executable, RUN_HOST] + list(args), capture_output=True, text=True,
                          timeout=timeout_s, stdin=subprocess.DEVNULL, env=environment(mark))


def start(args, mark, out_path):
    """run_host.py in a session of its own (as in a terminal), its output to ``out_path``."""
    with open(out_path, "w") as out:
        return subprocess.Popen([sys.executable, RUN_HOST] + list(args), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=environment(mark), start_new_session=True)


def marked_processes(mark):
    """Pids of the live (not zombie) processes carrying ``mark`` in their environment."""
    needle = ("%s=%s" % (MARK, mark)).encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open("/proc/%s/stat" % name) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        found.append(int(name))
    return found


def kill_marked(mark):
    """Last line of a test: nothing it started outlives it."""
    import signal

    for pid in marked_processes(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass  # ended meanwhile
