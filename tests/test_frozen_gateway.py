"""The freeze works: the mpy32 interpreter built with our code frozen in (firmware/host_manifest.py,
the unix variant of manifest.py) runs the gateway's host profile from the frozen modules alone, in
a folder holding nothing but main.py and the data, against a real broker, and serves its web page
(the gateway's web modules and microdot, frozen too); and the frozen code is the optimised build
the board images get. Host-side tests."""

import json
import os
import shutil
import signal
import subprocess
import urllib.request

import pytest
from support_e2e import Watcher, base_config, wait_until
from support_firmware import ROOT
from xrt import broker as xbroker

BASE = "rbamp/e2e-gw/"


@pytest.fixture(scope="module")
def frozen_interpreter():
    """tools/build_mpy32.sh with the host manifest; rebuilt only when the frozen files changed."""
    result = subprocess.run([os.path.join(ROOT, "tools", "build_mpy32.sh"), os.path.join(ROOT, ".cache", "mpy32"),
                             os.path.join(ROOT, "firmware", "host_manifest.py")],
                            capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        message = "the frozen mpy32 build failed: " + result.stderr[-2000:]
        if os.environ.get("CI") == "true" or result.returncode != 3:  # 3: no apt here, not a failure
            pytest.fail(message)
        pytest.skip(message)
    return result.stdout.split()[-1]


@pytest.fixture
def broker(tmp_path):
    b = xbroker.Broker(str(tmp_path / "broker"))  # mosquitto, or amqtt from the venv
    b.start()
    yield b
    b.stop()


def test_gateway_runs_from_the_frozen_modules_alone(frozen_interpreter, broker, tmp_path):
    board = tmp_path / "board"
    data = board / "data"
    data.mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "main.py"), board / "main.py")  # what a board runs from its filesystem
    (data / "config.json").write_text(json.dumps(base_config(broker.port)))
    web_port = xbroker.free_port()
    # no lib/, no tools/, no umqtt or microdot copy
    env = dict(os.environ, MICROPYPATH=".frozen", RBAMP_DATA=str(data), RBAMP_WEB_PORT=str(web_port))
    watcher = Watcher(broker.port)
    log_path = tmp_path / "gateway.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([frozen_interpreter, "main.py"], cwd=str(board), env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def state_with_module():
            states = watcher.json_on(BASE + "state")
            return states and states[-1]["modules"]["0x50"]["status"] == "ok"

        wait_until(lambda: watcher.on(BASE + "availability"), 60, "availability")
        assert watcher.on(BASE + "availability")[-1][1] == b"online"
        wait_until(state_with_module, 60, "a state with the simulated module ok")
        wait_until(lambda: watcher.json_on(BASE + "totals"), 60, "totals")
        assert "0x50" in watcher.json_on(BASE + "totals")[-1]
        with urllib.request.urlopen("http://127.0.0.1:%d/" % web_port, timeout=10) as page:
            assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
            assert b"/api/events" in page.read()
        with urllib.request.urlopen("http://127.0.0.1:%d/api/state" % web_port, timeout=10) as answer:
            state = json.loads(answer.read())
        assert state["device_id"] == "e2e-gw" and state["modules"][0]["status"] == "ok", state
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        wait_until(lambda: watcher.on(BASE + "availability")[-1][1] == b"offline", 10, "offline on stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        watcher.stop()
    text = log_path.read_text(errors="replace")
    assert "INFO stopping" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert sorted(os.listdir(board)) == ["data", "main.py"]  # nothing else was needed or written


TRACE_SNIPPET = """
import sys, gateway.flashdev
open('short.img', 'w').write('x')
try:
    gateway.flashdev.FileBlockDevice('short.img', 4096, 16)
except ValueError as exc:
    sys.print_exception(exc)
print('FILE', gateway.flashdev.__file__)
"""


def _flashdev_frame(interpreter, micropypath, cwd):
    out = subprocess.run([interpreter, "-c", TRACE_SNIPPET], capture_output=True, text=True, cwd=cwd, timeout=30, check=False,
                         env=dict(os.environ, MICROPYPATH=micropypath))
    assert out.returncode == 0, out.stdout + out.stderr
    frame = [line.strip() for line in out.stdout.splitlines() if "flashdev.py" in line and "line" in line]
    module_file = [line.split(" ", 1)[1] for line in out.stdout.splitlines() if line.startswith("FILE ")]
    return frame, module_file[0]


def test_frozen_code_is_built_at_opt_3_and_needs_no_source_path(frozen_interpreter, tmp_path):
    """opt=3 drops line numbers (and asserts) from the bytecode: a traceback through frozen code
    reports line 1 where the same code loaded from source reports the real line."""
    frozen_frame, frozen_file = _flashdev_frame(frozen_interpreter, ".frozen", str(tmp_path))
    source_frame, source_file = _flashdev_frame(frozen_interpreter, os.path.join(ROOT, "lib"), str(tmp_path))
    assert frozen_frame == ['File "gateway/flashdev.py", line 1, in __init__']
    assert len(source_frame) == 1 and not source_frame[0].endswith("line 1, in __init__"), source_frame
    # A frozen module's __file__ is its name in the image, not a path on any filesystem, so no
    # board code may build paths from it.
    assert frozen_file == "gateway/flashdev.py" and source_file.startswith(ROOT)
    for package in ("rbamp", "gateway"):
        for name in os.listdir(os.path.join(ROOT, "lib", package)):
            if name.endswith(".py") and name != "manifest.py":
                with open(os.path.join(ROOT, "lib", package, name)) as f:
                    assert "__file__" not in f.read(), package + "/" + name
