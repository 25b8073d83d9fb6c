"""`make firmware BOARD=RBAMP_PICO_W` offline (tools/build_firmware.sh with the sources in
../shared/vendor), and the image it makes: built once per change of its inputs by
support_firmware.pico_w_image() and checked as built: where it sits in flash, its banner, what it
freezes, that it names nothing of the machine that built it. The image's main.py
(firmware/frozen/main.py) runs under MicroPython's unix port. A second build from a clean build
folder in another clone path, compared byte for byte, costs a full build: it runs in CI (CI=true) and with
RBAMP_FIRMWARE_REPRO=1."""

import hashlib
import os
import shutil
import struct
import subprocess
import tarfile

import pytest
from support_firmware import (
    BUILD_SCRIPT,
    PICO_W_INPUTS,
    ROOT,
    VENDOR_DIR,
    FirmwareImage,
    elf_symbol_bytes,
    pico_w_image,
    pico_w_inputs_hash,
    pinned_micropython_version,
)

FLASH_BASE = 0x10000000  # the RP2040's XIP flash
FLASH_BYTES = 2 * 1024 * 1024
STORAGE_BYTES = 848 * 1024  # MICROPY_HW_FLASH_STORAGE_BYTES of the board (test_firmware_layout.py)
APP_BYTES = FLASH_BYTES - STORAGE_BYTES  # 1200 KiB for the firmware; the journal starts right after
UF2_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)
RP2040_FAMILY = 0xE48BFF56
MPY_ARCHIVE = "micropython-v1.25.0-rp2-src.tar.xz"


def script_constant(name):
    with open(BUILD_SCRIPT) as f:
        for line in f:
            if line.startswith(name + "="):
                return line.split("=", 1)[1].split("#")[0].strip().strip('"')
    raise KeyError(name)


def uf2_blocks(path):
    """(target address, payload) of every block of a .uf2, checking each block's framing."""
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) % 512 == 0
    blocks = []
    for at in range(0, len(data), 512):
        magic0, magic1, flags, address, size, number, total, family = struct.unpack_from("<8I", data, at)
        assert (magic0, magic1, struct.unpack_from("<I", data, at + 508)[0]) == UF2_MAGIC
        assert flags & 0x2000 and family == RP2040_FAMILY  # family ID present: RP2040
        assert number == at // 512 and total == len(data) // 512
        blocks.append((address, data[at + 32:at + 32 + size]))
    return blocks


# ---------------------------------------------------------------------- the image as built

def test_image_fills_no_more_than_the_1200_kib_before_the_journal():
    """The linker script of the port spans the whole 2 MiB, so nothing else stops an image that
    grew into the storage region, where the journal would overwrite it."""
    image = pico_w_image()
    blocks = uf2_blocks(image.uf2)
    with open(image.bin, "rb") as f:
        binary = f.read()
    assert blocks[0][0] == FLASH_BASE
    assert b"".join(payload for _, payload in blocks)[:len(binary)] == binary  # the .uf2 is the .bin
    end = max(address + len(payload) for address, payload in blocks)
    assert end - FLASH_BASE <= APP_BYTES, "the image is %d bytes over the %d-byte app area" % (
        end - FLASH_BASE - APP_BYTES, APP_BYTES)


def test_image_banner_names_the_release_and_our_board():
    with open(pico_w_image().bin, "rb") as f:
        binary = f.read()
    # MicroPython's own version (not our git describe: the tree sits inside our work tree) and the
    # release date from SOURCE_DATE_EPOCH, not the day of the build
    assert b"MicroPython %s on 2025-04-15" % pinned_micropython_version().encode() in binary
    assert b"; rbAmp gateway (Pico W) with RP2040" in binary


def test_image_freezes_its_main_the_boot_the_layout_and_the_gateway():
    names = elf_symbol_bytes(pico_w_image().elf, "mp_frozen_names").split(b"\0\0")[0].split(b"\0")
    names = [name.decode() for name in names]
    for name in ("main.py", "_boot.py", "board_layout.py", "gateway/app.py", "rbamp/device.py", "umqtt/simple.py"):
        assert name in names, name
    assert "boot.py" not in names  # a boot.py of the board's own still runs
    assert not [n for n in names if n.split("/")[0] in ("hostboard.py", "rbampsim")]  # the PC's parts


def test_image_names_no_path_of_the_machine_that_built_it():
    """Absolute paths (assert messages' __FILE__, a source or build folder) would make the image
    depend on where the clone sits; none is in it."""
    image = pico_w_image()
    with open(image.bin, "rb") as f:
        binary = f.read()
    for path in (ROOT, os.path.realpath(ROOT), os.path.expanduser("~"), VENDOR_DIR, "/.cache/"):
        assert path.encode() not in binary, path


def test_release_epoch_is_micropythons_commit_time():
    """SOURCE_DATE_EPOCH defaults to the v1.25.0 commit time, which the vendor archive's file
    times carry (its README: every mtime is the commit time of the version archived)."""
    archive = os.path.join(VENDOR_DIR, MPY_ARCHIVE)
    if not os.path.isfile(archive):
        pytest.skip("no %s" % archive)
    with tarfile.open(archive) as tar:
        first = tar.next()
    assert int(script_constant("MPY_RELEASE_EPOCH")) == first.mtime


def test_the_tests_umqtt_simple_comes_from_the_archive_the_image_is_built_from():
    """tools/fetch_umqtt.sh extracts the tests' umqtt.simple (tests/test_umqtt_pin.py) from the
    MicroPython archive this script builds the image from; tests/test_manifest.py resolves the
    image's require("umqtt.simple") in that archive to the same pinned file."""
    fetch = os.path.join(ROOT, "tools", "fetch_umqtt.sh")
    with open(fetch) as f:
        names = [line.split("=", 1)[1].strip().strip('"') for line in f if line.startswith("archive_name=")]
    assert names == [script_constant("MPY_ARCHIVE")] == ["micropython-$pinned-rp2-src.tar.xz"], names
    with open(fetch) as f:
        assert 'pinned=$(cat "$root/firmware/MICROPYTHON_VERSION")' in f.read()


@pytest.mark.skipif(os.environ.get("RBAMP_FIRMWARE_REPRO") != "1" and os.environ.get("CI") != "true",
                    reason="a second full image build (1-3 minutes): runs in CI, or with RBAMP_FIRMWARE_REPRO=1")
def test_image_is_byte_reproducible_from_a_clean_build_in_another_clone(tmp_path):
    image = pico_w_image()
    clone = tmp_path / "elsewhere" / "clone"
    for rel in PICO_W_INPUTS:
        source = os.path.join(ROOT, rel)
        if os.path.isdir(source):
            shutil.copytree(source, clone / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / rel)
    if not pico_w_inputs_hash(str(clone)).startswith(os.path.basename(image.directory)):
        pytest.fail("the sources changed while the test ran; run it again")
    out = subprocess.run([str(clone / "tools" / "build_firmware.sh"), "RBAMP_PICO_W"], capture_output=True,
                         text=True, timeout=3600, stdin=subprocess.DEVNULL, check=False,
                         env=dict(os.environ, VENDOR_DIR=VENDOR_DIR, DIST_DIR=str(tmp_path / "dist"),
                                  BUILD_DIR=str(tmp_path / "build")))
    assert out.returncode == 0, out.stderr[-3000:]
    again = FirmwareImage(str(tmp_path / "dist"), "RBAMP_PICO_W")
    for first, second in ((image.uf2, again.uf2), (image.bin, again.bin)):
        with open(first, "rb") as f, open(second, "rb") as g:
            assert hashlib.sha256(f.read()).hexdigest() == hashlib.sha256(g.read()).hexdigest(), second


# ---------------------------------------------------------------------- the image's main.py

FROZEN_MAIN = os.path.join(ROOT, "firmware", "frozen", "main.py")
STUB_APP = "def main():\n    print('gateway started')\n"


def interpreters():
    found = []
    for variable, default in (("XRT_MPY64", os.path.join(ROOT, ".venv", "bin", "micropython")),
                              ("XRT_MPY32", os.path.join(ROOT, ".cache", "mpy32", "micropython-32-plain"))):
        path = os.environ.get(variable) or default
        if os.path.isfile(path):
            found.append(path)
    if not found:
        pytest.fail("no MicroPython interpreter (make deps)")
    return found


def run_frozen_main(board):
    """firmware/frozen/main.py as the board runs it: in the filesystem's root (the cwd), with the
    gateway importable (a stand-in that says it started)."""
    stub = board.parent / "frozen"
    (stub / "gateway").mkdir(parents=True, exist_ok=True)
    (stub / "gateway" / "__init__.py").write_text("")
    (stub / "gateway" / "app.py").write_text(STUB_APP)
    outputs = []
    for interpreter in interpreters():
        out = subprocess.run([interpreter, FROZEN_MAIN], cwd=str(board), capture_output=True, text=True, timeout=30,
                             check=False, env=dict(os.environ, MICROPYPATH=str(stub)))
        outputs.append((out.returncode, out.stdout + out.stderr))
    return outputs


def test_frozen_main_starts_the_gateway_on_a_board_with_only_its_config(tmp_path):
    board = tmp_path / "board"
    board.mkdir()
    (board / "config.json").write_text("{}")
    for code, output in run_frozen_main(board):
        assert (code, output) == (0, "gateway started\n")


def test_a_main_py_on_the_board_runs_instead_of_the_gateway_as_main(tmp_path):
    board = tmp_path / "board"
    board.mkdir()
    (board / "main.py").write_text("import sys\nprint('mine', __name__, 'os' in globals(), 'main' in globals())\n")
    for code, output in run_frozen_main(board):
        assert (code, output) == (0, "mine __main__ False False\n")


def test_an_empty_main_py_leaves_the_board_at_the_repl(tmp_path):
    board = tmp_path / "board"
    board.mkdir()
    (board / "main.py").write_text("")
    for code, output in run_frozen_main(board):
        assert (code, output) == (0, "")


def test_frozen_main_starts_the_gateway_as_the_repositorys_main_does():
    with open(os.path.join(ROOT, "main.py")) as f:
        entry = [line for line in f.read().splitlines() if line and not line.startswith("#")]
    with open(FROZEN_MAIN) as f:
        frozen = f.read()
    assert entry == ["from gateway.app import main", "main()"]
    for line in entry:
        assert "    " + line + "\n" in frozen


# ---------------------------------------------------------------------- make firmware's checks

def make_vendor(tmp_path, good=True):
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    lines = []
    for name in (MPY_ARCHIVE, "picotool-2.1.1-src.tar.xz"):
        (vendor / name).write_bytes(b"not really " + name.encode())
        digest = hashlib.sha256((vendor / name).read_bytes()).hexdigest()
        lines.append("%s  %s\n" % (digest if good else "0" * 64, name))
    (vendor / "SHA256SUMS").write_text("".join(lines))
    return vendor


def run_script(args, env_extra, path=None):
    env = dict(os.environ, DIST_DIR="/nonexistent/dist", **env_extra)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([BUILD_SCRIPT] + args, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, env=env, check=False)


def test_offline_build_refuses_an_archive_that_does_not_match_its_checksum(tmp_path):
    out = run_script(["RBAMP_PICO_W"], {"VENDOR_DIR": str(make_vendor(tmp_path, good=False))})
    assert out.returncode == 3
    assert "does not match its SHA256SUMS line" in out.stderr and MPY_ARCHIVE in out.stderr


def test_offline_build_names_the_missing_sources(tmp_path):
    out = run_script(["RBAMP_PICO_W"], {"VENDOR_DIR": str(tmp_path / "nowhere")})
    assert out.returncode == 3 and "no offline sources" in out.stderr and "MPY_DIR" in out.stderr


def test_esp32_needs_a_checkout_of_its_own():
    out = run_script(["RBAMP_ESP32"], {})
    assert out.returncode == 2 and "the offline sources are for the Pico W only" in out.stderr


def bare_path(tmp_path, extra=()):
    """A PATH with the shell tools the script uses and no compiler, cmake or make."""
    bin_dir = tmp_path / "bare-bin"
    bin_dir.mkdir()
    for tool in ("bash", "cat", "echo", "ls", "tr", "xargs", "dirname", "basename", "grep", "sha256sum", "id", "nproc",
                 "mkdir", "rm", "tar", "xz", "touch", "mv", "sed", "cp", "env", "flock", "head") + tuple(extra):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bin_dir / tool)
    return bin_dir


@pytest.mark.skipif(not os.path.isdir(VENDOR_DIR), reason="no offline sources in %s" % VENDOR_DIR)
@pytest.mark.parametrize("apt", ["works", "fails", "absent"])
def test_a_missing_toolchain_is_installed_with_apt_or_named(apt, tmp_path):
    """Where arm-none-eabi-gcc, cmake or make are missing, the script asks apt-get for the
    packages (as root; a developer through sudo), or says what to install where it cannot."""
    bin_dir = bare_path(tmp_path)
    log = tmp_path / "apt.log"
    if apt != "absent":
        status = 0 if apt == "works" else 100
        (bin_dir / "apt-get").write_text('#!/bin/bash\necho "$*" >> "%s"\nexit %d\n' % (log, status))
        os.chmod(bin_dir / "apt-get", 0o755)
    (bin_dir / "id").unlink()
    (bin_dir / "id").write_text("#!/bin/bash\necho 0\n")  # root, as in CI
    os.chmod(bin_dir / "id", 0o755)
    out = run_script(["RBAMP_PICO_W"], {"VENDOR_DIR": VENDOR_DIR}, path=str(bin_dir))
    assert out.returncode == 3, out.stderr
    message = out.stderr.strip().splitlines()[-1]
    packages = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib cmake build-essential"
    if apt == "absent":
        assert "no apt-get to install it" in message and packages in message
        return
    calls = log.read_text().splitlines()
    assert calls[0] == "-o DPkg::Lock::Timeout=600 update -qq"
    if apt == "works":  # the stand-in installs nothing: the script checks again and says so
        assert calls[1].startswith("-o DPkg::Lock::Timeout=600 install -y -qq " + packages)
        assert "still missing after apt-get install: arm-none-eabi-gcc" in message
    else:
        assert len(calls) == 1 and "could not install" in message
