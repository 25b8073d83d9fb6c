"""Host-test support for the emulated Pico W (tools/picow/run.mjs): our real firmware image on
rp2040js, with a NOR flash model, the simulated modules on its I2C pins and the USB console.

    result = support_picow.run(files={"config.json": cfg}, sims=["UI2@1.3:0x50:1000,-300"],
                               until="gateway 0.1.0 up", timeout_s=30, tmp=tmp_path)
    result.console, result.flash, result.reboots, result.truth, result.journal_state()

The runner's prerequisites (Node, the vendor archive of rp2040js, the image, MicroPython's unix
port for the littlefs image) are installed or built once; without them a test is skipped with
the reason, except under CI=true, where that is a failure.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import support_firmware

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PICOW = os.path.join(ROOT, "tools", "picow")
RUNNER = os.path.join(PICOW, "run.mjs")
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")

# The flash layout, from the board definition itself (firmware/boards/RBAMP_PICO_W).
_layout = support_firmware.load_module(os.path.join(support_firmware.PICO_W_BOARD, "board_layout.py"),
                                       "picow_board_layout")
FLASH_SIZE = 2 * 1024 * 1024
STORAGE_START = FLASH_SIZE - _layout.STORAGE_LEN
JOURNAL_START = STORAGE_START + _layout.JOURNAL_START
JOURNAL_LEN = _layout.JOURNAL_LEN
FS_START = STORAGE_START + _layout.FS_START
FS_LEN = _layout.FS_LEN
BLOCK = _layout.ERASE_BLOCK

_setup_done = []


def prerequisite_missing(message):
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def ensure_runner():
    """Node and rp2040js (tools/picow/setup.sh, cached in .cache/picow), once per session."""
    if _setup_done:
        return
    if shutil.which("node") is None:
        prerequisite_missing("node is not installed (the emulated Pico W runs rp2040js on Node 18+)")
    proc = subprocess.run([os.path.join(PICOW, "setup.sh")], capture_output=True, text=True)
    if proc.returncode == 2:
        prerequisite_missing("emulator set-up: " + proc.stderr.strip())
    if proc.returncode != 0:
        pytest.fail("tools/picow/setup.sh failed:\n" + proc.stdout + proc.stderr)
    _setup_done.append(True)


def firmware_image():
    """The .uf2 to boot: $PICOW_IMAGE if set, else the image the firmware helper builds."""
    override = os.environ.get("PICOW_IMAGE")
    if override:
        if not os.path.isfile(override):
            pytest.fail("PICOW_IMAGE=%s does not exist" % override)
        return override
    build = getattr(support_firmware, "pico_w_image", None)
    if build is None:
        prerequisite_missing("no Pico W image: tests/support_firmware.py has no pico_w_image() yet "
                             "(set PICOW_IMAGE to a .uf2)")
    return build().uf2


def image_starts_gateway():
    """Our image runs the gateway with only config.json on the filesystem (a frozen main.py)."""
    return os.path.isfile(os.path.join(ROOT, "firmware", "frozen", "main.py"))


def micropython():
    path = os.environ.get("XRT_MPY64") or os.path.join(ROOT, ".venv", "bin", "micropython")
    if not os.path.isfile(path):
        prerequisite_missing("MicroPython's unix port is not at %s (run `make deps`)" % path)
    return path


def fs_image(files, directory):
    """A littlefs image of the board's filesystem holding ``files`` ({name: bytes, str or dict})."""
    os.makedirs(directory, exist_ok=True)
    specs = []
    for name, content in sorted(files.items()):
        host = os.path.join(directory, "fs-" + name.replace("/", "_"))
        if isinstance(content, dict):
            content = json.dumps(content)
        if isinstance(content, str):
            content = content.encode()
        with open(host, "wb") as f:
            f.write(content)
        specs.append("%s=%s" % (name, host))
    out = os.path.join(directory, "fs.img")
    proc = subprocess.run([micropython(), os.path.join(PICOW, "mkfs.py"), out, str(FS_LEN // BLOCK)] + specs,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("mkfs.py failed:\n" + proc.stdout + proc.stderr)
    return out


class RamBlocks:
    """A journal region cut out of a flash dump, as a block device for gateway.store."""

    def __init__(self, data, block_size=BLOCK):
        self.data = bytearray(data)
        self.block_size = block_size

    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        buf[:] = self.data[start:start + len(buf)]

    def writeblocks(self, block, buf, offset=0):
        raise OSError("read-only dump")

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.block_size
        if op == 5:
            return self.block_size
        return 0


def journal_state(journal_bytes):
    """The gateway's own reading of a journal region (gateway.store.EnergyStore.load())."""
    sys.path.insert(0, os.path.join(ROOT, "lib"))
    try:
        from gateway.store import EnergyStore
    finally:
        sys.path.pop(0)
    return EnergyStore(RamBlocks(journal_bytes)).load()


class Result:
    def __init__(self, proc, report, flash, wall_s):
        self.returncode = proc.returncode
        self.stderr = proc.stderr
        self.report = report
        self.console = report.get("console", "")
        self.flash = flash
        self.exit = report.get("exit")
        self.reason = report.get("reason")
        self.reboots = report.get("reboots", 0)
        self.boots = report.get("boots", [])
        self.cuts = report.get("cuts", [])
        self.captures = report.get("captures", {})
        self.truth = report.get("truth")
        self.emulated_s = report.get("emulated_s")
        self.wall_s = wall_s

    @property
    def journal(self):
        return self.flash[JOURNAL_START:JOURNAL_START + JOURNAL_LEN]

    def journal_state(self):
        return journal_state(self.journal)

    def exec_output(self, name):
        """stdout and stderr of an {"exec": ...} step (raw REPL: OK out \\x04 err \\x04>)."""
        text = self.captures[name]
        body = text[text.rindex("OK") + 2:]
        out, _, rest = body.partition("\x04")
        err = rest.split("\x04")[0]
        return out.replace("\r\n", "\n"), err.replace("\r\n", "\n")

    def explain(self):
        return "exit %s (%s)\n--- stderr\n%s\n--- console (end)\n%s" % (
            self.returncode, self.reason, self.stderr[-3000:], self.console[-4000:])


def run(tmp, *, files=None, flash=None, image=True, sims=(), events=(), steps=(), until=None, cuts=(),
        cut_seed=1, cut_dump=False, timeout_s=60, wall_timeout_s=900, config=None):
    """Boot the emulated Pico W once (reboots included) and return a ``Result``.

    ``files``: the filesystem's contents for a fresh flash (config.json as a dict is also handed to
    the runner for the I2C pins). ``flash``: bytes of an earlier run's flash instead (the image is
    loaded over it unless ``image=False``). ``steps``: runner steps (dicts). ``cuts``: power cuts,
    ``N`` or ``(N, fraction)``, one per boot.
    """
    ensure_runner()
    tmp = str(tmp)
    os.makedirs(tmp, exist_ok=True)
    args = ["node", RUNNER, "--quiet", "--timeout-s", str(timeout_s), "--wall-timeout-s", str(wall_timeout_s),
            "--python", VENV_PYTHON if os.path.isfile(VENV_PYTHON) else sys.executable,
            "--report", os.path.join(tmp, "report.json"), "--save-flash", os.path.join(tmp, "flash.bin"),
            "--cut-seed", str(cut_seed)]
    if image:
        args += ["--image", firmware_image() if image is True else image]
    if flash is not None:
        path = os.path.join(tmp, "flash-in.bin")
        with open(path, "wb") as f:
            f.write(flash)
        args += ["--flash", path]
    if files is not None:
        args += ["--fs", fs_image(files, tmp)]
        if config is None and isinstance(files.get("config.json"), dict):
            config = files["config.json"]
    if config is not None:
        path = os.path.join(tmp, "config-for-runner.json")
        with open(path, "w") as f:
            json.dump(config, f)
        args += ["--config", path]
    for sim in sims:
        args += ["--sim", sim]
    for event in events:
        args += ["--event", event]
    for step in steps:
        args += ["--step", json.dumps(step)]
    if until is not None:
        args += ["--until", until]
    for cut in cuts:
        args += ["--cut", "%d:%s" % (cut[0], cut[1]) if isinstance(cut, tuple) else str(cut)]
    if cut_dump:
        args += ["--cut-dump", os.path.join(tmp, "cuts")]
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    wall_s = time.monotonic() - started
    report = {}
    report_path = os.path.join(tmp, "report.json")
    if os.path.isfile(report_path):
        with open(report_path) as f:
            report = json.load(f)
    flash_bytes = b""
    if os.path.isfile(os.path.join(tmp, "flash.bin")):
        with open(os.path.join(tmp, "flash.bin"), "rb") as f:
            flash_bytes = f.read()
    result = Result(proc, report, flash_bytes, wall_s)
    if proc.returncode not in (0, 3):
        raise AssertionError("the emulator failed: " + result.explain())
    return result


def read_dump(path):
    with open(path, "rb") as f:
        return f.read()
