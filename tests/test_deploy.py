"""`make deploy`, `make deploy-mpy` and `make deploy-config` proven on MicroPython's unix port.

The "board" is the unix port behind a pty made by socat, its working directory a fresh folder
that plays the board's filesystem (mpremote's `cp` writes into it). The real make targets run
against that pty with RESUME=1 NO_RESET=1 (a soft reset or reset would end the process); the
board then boots as a real one does, boot.py then main.py from its root with its own lib/ on
sys.path, with the host profile (tools/hostboard.py, part of this "board's" platform as the
simulated module is; deploy never copies it) and a real mosquitto, and must publish online,
state and totals. Host-side tests.

Only the mpy64 interpreter can be the board: mpremote talks to the raw REPL (Ctrl-A), which the
unix port's own REPL gained after 1.25, the version our mpy32 is built from (it answers Ctrl-A
with a fresh prompt and mpremote reports "could not enter raw repl").
"""

import ast
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request

import pytest
from support_cli import run_module
from support_e2e import Watcher, base_config, require, wait_until
from xrt.broker import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_ID = "deploy-gw"
BASE = "rbamp/%s/" % DEVICE_ID
PACKAGES = ("rbamp", "gateway")
TOOLS = os.path.join(ROOT, "tools")
# microdot goes on every board precompiled (tools/deploy.py): the modules the images freeze
MICRODOT_MPY = {os.path.join("lib", "microdot", name) for name in
                ("__init__.mpy", "microdot.mpy", "helpers.mpy", "sse.mpy")}


def interpreter():
    """mpy64 (see the module docstring for why not mpy32)."""
    return os.environ.get("XRT_MPY64") or os.path.join(ROOT, ".venv", "bin", "micropython")




def mpremote(link, *commands, timeout=60):
    done = subprocess.run([sys.executable, "-m", "mpremote", "connect", link, "resume"] + list(commands),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def make(target, **variables):
    argv = ["make", "-s", "-C", ROOT, target] + ["%s=%s" % item for item in variables.items()]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


class UnixPortBoard:
    """The unix port as a board on a pty: `link` is its serial port, `root` its filesystem.

    The port's firmware-provided modules (asyncio in .frozen; umqtt.simple, which stock ESP32
    firmware also carries; from tools/ the PC's board profile, hostboard, and the simulated I2C
    module it drives) are on its path; lib/ is the board's own, relative to its root as on a
    board. The repository's lib/ is not."""

    def __init__(self, workdir):
        self.root = os.path.join(workdir, "board")
        self.link = os.path.join(workdir, "tty")
        self.log_path = os.path.join(workdir, "socat.log")
        os.makedirs(self.root, exist_ok=True)
        self.proc = None
        self.console = None
        self.web_port = free_port()

    def power_on(self):
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join(["", ".frozen", "lib", TOOLS,
                                              os.path.join(ROOT, ".cache", "umqtt")])
        env["RBAMP_DATA"] = "."  # the host profile's config.json and flash image at the root
        env["RBAMP_SIM_INPROC"] = "1"  # the board's simulated module dies with it: nothing lingers
        env["RBAMP_WEB_PORT"] = str(self.web_port)  # the gateway's page, off the PC's default 8080
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["socat", "PTY,link=%s,raw,echo=0" % self.link,
                 "EXEC:%s,pty,raw,echo=0" % interpreter()],
                cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        wait_until(lambda: os.path.exists(self.link) or self.proc.poll() is not None, 10, "the pty")
        assert self.proc.poll() is None, self.log()
        # the interpreter may still be starting (a loaded machine): mpremote's raw REPL entry
        # would time out, so wait until the board answers
        wait_until(self._answers, 60, "the board's REPL to answer mpremote")
        return self

    def _answers(self):
        assert self.proc.poll() is None, self.log()
        done = subprocess.run([sys.executable, "-m", "mpremote", "connect", self.link, "resume", "exec",
                               "print('rbamp-ready')"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        return done.returncode == 0 and "rbamp-ready" in done.stdout

    def boot(self, console_path):
        """What a board does after reset: boot.py, then main.py (mpremote follows its output)."""
        self.console = open(console_path, "ab")
        return subprocess.Popen([sys.executable, "-m", "mpremote", "connect", self.link, "resume",
                                 "exec", "import boot\nimport main"],
                                stdout=self.console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)

    def interrupt(self):
        """Ctrl-C for the running program. A board's USB/UART driver turns the byte mpremote sends
        into KeyboardInterrupt; the unix port does that only for SIGINT, so it gets the signal."""
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            interpreter_pid = int(f.read().split()[0])
        os.kill(interpreter_pid, signal.SIGINT)
        wait_until(self._answers, 60, "the board's REPL after Ctrl-C")

    def power_off(self):
        stop(self.proc)  # socat passes SIGTERM on to the interpreter it started
        self.proc = None
        if os.path.lexists(self.link):  # socat ended by a signal leaves its link behind
            os.unlink(self.link)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def files(self):
        """Every file on the board, relative to its root."""
        found = set()
        for folder, _, names in os.walk(self.root):
            for name in names:
                found.add(os.path.relpath(os.path.join(folder, name), self.root))
        return found


def stop(proc):
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)




@pytest.fixture
def board_factory(tmp_path):
    require(shutil.which("socat"), "socat")
    made = []

    def power_on(name="dev"):
        require(os.access(interpreter(), os.X_OK), "the mpy64 interpreter")
        board = UnixPortBoard(str(tmp_path / name))
        made.append(board)
        return board.power_on()

    yield power_on
    for board in made:
        board.power_off()
        if board.console is not None:
            board.console.close()


def write_config(path, port):
    config = base_config(port, device_id=DEVICE_ID)
    with open(path, "w") as f:
        json.dump(config, f)
    return str(path)


def expected_files(source):
    """The board files deploy must have copied from ``source`` (relative paths), and microdot's
    .mpy files (compiled by deploy from the repository, taken from a bundle)."""
    found = set()
    for package in PACKAGES:
        for name in os.listdir(os.path.join(source, "lib", package)):
            if name.endswith((".py", ".mpy")):
                found.add(os.path.join("lib", package, name))
    if source == ROOT:
        found -= {os.path.join("lib", "rbamp", "manifest.py")}
    return found | MICRODOT_MPY | {"boot.py", "main.py"}


def assert_microdot_is_the_pinned_one_precompiled(board, tmp_path):
    """Each microdot .mpy on the board is mpy-cross's output for the module of the pinned wheel
    (mpy-cross is deterministic: the same source and options give the same bytes)."""
    import zipfile

    import build_mpy

    with open(os.path.join(ROOT, "firmware", "microdot.sha256")) as f:
        sha256, wheel = f.read().split()
    wheel_path = os.path.join(ROOT, ".cache", "weblib", wheel)
    with open(wheel_path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == sha256, wheel_path
    with zipfile.ZipFile(wheel_path) as archive:
        for rel in sorted(MICRODOT_MPY):
            name = rel[len("lib/"):-len(".mpy")] + ".py"
            source = tmp_path / "pinned" / name
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_bytes(archive.read(name))
            build_mpy.compile_file(str(source), str(tmp_path / "pinned" / (name + ".mpy")), source_name=name)
            with open(os.path.join(board.root, rel), "rb") as got:
                assert got.read() == (tmp_path / "pinned" / (name + ".mpy")).read_bytes(), rel


def assert_same_content(board, source, rels):
    for rel in rels:
        with open(os.path.join(source, rel), "rb") as want, open(os.path.join(board.root, rel), "rb") as got:
            assert got.read() == want.read(), rel


def import_origins(board):
    """sys.path and where the packages and the board profile come from, asked of the board before
    it boots."""
    out = mpremote(board.link, "exec",
                   "import sys, rbamp, gateway, hostboard, microdot.microdot, microdot.sse\n"
                   "print('origins', repr(sys.path), rbamp.__file__, gateway.__file__, hostboard.__file__, "
                   "microdot.__file__, microdot.microdot.__file__, microdot.sse.__file__)")
    line = [ln for ln in out.splitlines() if ln.startswith("origins ")][-1]
    head, rbamp_file, gateway_file, profile_file, *microdot_files = line.rsplit(" ", 6)
    # the PC's profile is the platform's (tools/), never a file deploy put on the board
    assert profile_file == os.path.join(TOOLS, "hostboard.py"), profile_file
    # microdot is the board's own, precompiled, whichever way the gateway was deployed
    assert microdot_files == ["lib/microdot/__init__.mpy", "lib/microdot/microdot.mpy", "lib/microdot/sse.mpy"]
    return ast.literal_eval(head[len("origins "):]), rbamp_file, gateway_file


def boot_and_watch(board, broker, console_path):
    watcher = Watcher(broker.port, client_id="deploy-watcher")
    runner = board.boot(console_path)
    try:
        def console():
            with open(console_path, errors="replace") as f:
                return f.read()

        def online():
            return any(payload == b"online" for _, payload, _, _ in watcher.on(BASE + "availability"))

        wait_until(lambda: online() or runner.poll() is not None, 60, "availability online")
        assert runner.poll() is None, console()
        watcher.wait_for(lambda: [s for s in watcher.json_on(BASE + "state")
                                  if s["modules"]["0x50"]["status"] == "ok"], 30, "a state with the module ok")
        # totals with the house load metered: the first period only primes the module, so its
        # totals are zero, and a stop commits only what changed since the last commit
        totals = watcher.wait_for(lambda: [t for t in watcher.json_on(BASE + "totals")
                                           if t["0x50"]["import_wh"][0] > 0], 30, "totals with energy")
        assert len(totals[-1]["0x50"]["import_wh"]) == 2, totals
        # the page, served by the deployed gateway with the board's own (precompiled) microdot
        with urllib.request.urlopen("http://127.0.0.1:%d/api/state" % board.web_port, timeout=10) as answer:
            state = json.loads(answer.read())
        assert state["device_id"] == DEVICE_ID and state["modules"][0]["status"] == "ok", state
        with urllib.request.urlopen("http://127.0.0.1:%d/" % board.web_port, timeout=10) as page:
            assert page.status == 200 and b"/api/events" in page.read()
        return console()
    finally:
        stop(runner)
        watcher.stop()


def test_make_deploy_copies_the_board_files_and_the_board_boots_into_them(tmp_path, broker, board_factory):
    board = board_factory()
    config = write_config(tmp_path / "config.json", broker.port)
    done = make("deploy", PORT=board.link, CONFIG=config, RESUME=1, NO_RESET=1)
    assert done.returncode == 0, done.stdout + done.stderr
    wanted = expected_files(ROOT)
    assert board.files() == wanted | {"config.json"}  # no caches, manifests, egg-info
    assert not [f for f in board.files() if os.path.basename(f).startswith(("hostboard", "rbampsim"))]
    assert_same_content(board, ROOT, wanted - MICRODOT_MPY)
    assert_microdot_is_the_pinned_one_precompiled(board, tmp_path)
    assert "deployed %d files from %s" % (len(wanted), ROOT) in done.stdout, done.stdout
    with open(config, "rb") as want, open(os.path.join(board.root, "config.json"), "rb") as got:
        assert got.read() == want.read()

    path, rbamp_file, gateway_file = import_origins(board)
    assert "lib" in path and not [entry for entry in path if entry.startswith(os.path.join(ROOT, "lib"))], path
    assert (rbamp_file, gateway_file) == ("lib/rbamp/__init__.py", "lib/gateway/__init__.py")
    console = boot_and_watch(board, broker, str(tmp_path / "console.log"))
    assert "device id %s" % DEVICE_ID in console, console
    assert "hunter2-secret" not in console

    # the gateway still runs on the board: Ctrl-C stops it and gives the REPL back for a new config
    board.interrupt()

    # docs/troubleshooting.md: the journal pulled off a stock-firmware board and read by `rbamp
    # journal` (every period is committed as it is latched; the stop commits what came after)
    pulled = tmp_path / "pulled"
    pulled.mkdir()
    mpremote(board.link, "cp", "-r", ":energy.d", str(pulled) + "/")
    journal = run_module("journal", str(pulled / "energy.d"), "--json")
    assert journal.returncode == 0, journal.stdout + journal.stderr
    report = json.loads(journal.stdout)
    assert report["blocks"] == 16 and report["reason"] in ("period", "shutdown"), report
    assert report["scan"]["damaged_slots"] == 0, report
    assert report["layout"] == [{"address": "0x50", "channels": 2}], report
    assert report["totals"][0]["import_wh"] > 0, report
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(base_config(broker.port, device_id="deploy-gw-2")))
    done = make("deploy-config", PORT=board.link, CONFIG=str(newer), RESUME=1, NO_RESET=1)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(os.path.join(board.root, "config.json")) as f:
        assert json.load(f)["device_id"] == "deploy-gw-2"


def test_make_deploy_mpy_replaces_a_source_deploy_and_the_board_boots_the_bundle(tmp_path, broker, board_factory):
    board = board_factory()
    config = write_config(tmp_path / "config.json", broker.port)
    done = make("deploy", PORT=board.link, CONFIG=config, RESUME=1, NO_RESET=1)
    assert done.returncode == 0, done.stdout + done.stderr
    # the bundle goes onto a board that holds the source files and its config already
    done = make("deploy-mpy", PORT=board.link, RESUME=1, NO_RESET=1)
    assert done.returncode == 0, done.stdout + done.stderr
    bundle = os.path.join(ROOT, "build", "mpy-bundle")
    wanted = expected_files(bundle)
    assert all(rel.endswith(".mpy") for rel in wanted if rel.startswith("lib"))
    assert board.files() == wanted | {"config.json"}  # every stale .py (which would shadow) is gone
    assert_same_content(board, bundle, wanted)
    assert_microdot_is_the_pinned_one_precompiled(board, tmp_path)
    assert not [f for f in board.files() if os.path.basename(f).startswith(("hostboard", "rbampsim"))]

    _, rbamp_file, gateway_file = import_origins(board)
    assert (rbamp_file, gateway_file) == ("lib/rbamp/__init__.mpy", "lib/gateway/__init__.mpy")
    boot_and_watch(board, broker, str(tmp_path / "console.log"))


def test_deploy_config_pushes_only_a_valid_config(tmp_path, board_factory):
    board = board_factory()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(base_config(70000, device_id=DEVICE_ID)))
    done = make("deploy-config", PORT=board.link, CONFIG=str(bad), RESUME=1, NO_RESET=1)
    assert done.returncode != 0
    assert "refusing to deploy an invalid config: bad.json: mqtt.port:" in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert board.files() == set()

    good = write_config(tmp_path / "good.json", 1883)
    done = make("deploy-config", PORT=board.link, CONFIG=good, RESUME=1, NO_RESET=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert board.files() == {"config.json"}
    with open(good, "rb") as want, open(os.path.join(board.root, "config.json"), "rb") as got:
        assert got.read() == want.read()


def test_deploy_refuses_a_board_without_config_and_a_missing_port(board_factory):
    board = board_factory()
    done = make("deploy", PORT=board.link, RESUME=1, NO_RESET=1)
    assert done.returncode != 0
    assert "the board has no config.json: give CONFIG=" in done.stderr, done.stderr
    assert board.files() == set()

    done = make("deploy")
    assert done.returncode != 0
    assert "deploy: no serial port: give PORT=/dev/ttyACM0" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_deploy_warns_before_sending_a_config_with_the_examples_placeholder_passwords(tmp_path, board_factory):
    example = tmp_path / "config.json"
    shutil.copyfile(os.path.join(ROOT, "config.example.json"), example)
    example_config = json.loads(example.read_text())
    placeholders = (example_config["wifi"]["password"], example_config["mqtt"]["password"])
    wifi_line = ("deploy: warning: %s: wifi.password is still the placeholder from config.example.json: "
                 "the board will not join the Wi-Fi network until it holds the real password" % example)
    mqtt_line = "deploy: warning: %s: mqtt.password is still the placeholder from config.example.json" % example

    # no board at that port: the warning still comes, so it is given before anything is sent
    done = make("deploy-config", PORT=str(tmp_path / "no-such-port"), CONFIG=str(example), NO_RESET=1)
    assert done.returncode != 0
    assert wifi_line in done.stderr and mqtt_line in done.stderr, done.stderr

    # a warning, not a refusal: the config reaches the board and the last line repeats it
    board = board_factory()
    done = make("deploy-config", PORT=board.link, CONFIG=str(example), RESUME=1, NO_RESET=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert wifi_line in done.stderr and mqtt_line in done.stderr, done.stderr
    assert "(WARNING: wifi.password and mqtt.password still the example's placeholder)" in done.stdout, done.stdout
    assert board.files() == {"config.json"}
    for placeholder in placeholders:
        assert placeholder not in done.stdout + done.stderr

    # real passwords: not a word about placeholders
    config = example_config
    config["wifi"]["password"] = "a-real-wifi-passphrase"
    config["mqtt"]["password"] = "a-real-broker-password"
    example.write_text(json.dumps(config))
    done = make("deploy-config", PORT=board.link, CONFIG=str(example), RESUME=1, NO_RESET=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "placeholder" not in done.stdout + done.stderr, done.stdout + done.stderr
    with open(os.path.join(board.root, "config.json")) as f:
        assert json.load(f)["wifi"]["password"] == "a-real-wifi-passphrase"


def test_mpremote_mip_installs_the_driver_from_the_checkout(board_factory):
    """README's mip line, run from the checkout's root. mpremote installs into the first sys.path
    entry ending in "/lib" (a board's "/lib"); this board's is "lib", hence --target."""
    board = board_factory()
    done = subprocess.run([sys.executable, "-m", "mpremote", "connect", board.link, "resume", "mip", "install",
                           "--target", "lib", "lib/rbamp/package.json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(os.path.join(ROOT, "lib", "rbamp", "package.json")) as f:
        listed = {os.path.join("lib", target) for target, _ in json.load(f)["urls"]}
    assert board.files() == listed
    assert_same_content(board, ROOT, listed)
    out = mpremote(board.link, "exec", "import rbamp\nprint('driver', rbamp.__file__, rbamp.RbAmp.__name__)")
    assert "driver lib/rbamp/__init__.py RbAmp" in out, out
