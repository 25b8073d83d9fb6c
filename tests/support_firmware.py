"""Host-test support for the firmware checks: where things are, MicroPython's own source, and the
Pico W image.

MicroPython's source is Debian's `micropython` 1.25 package, fetched by tools/build_mpy32.sh into
.cache/mpy32/src for the mpy32 interpreter (`make deps`). The Pico W image is built from the
offline sources by `pico_w_image()`, once per change of its inputs. Without them these checks are
skipped loudly, except under CI=true where that is a failure.
"""

import fcntl
import glob
import hashlib
import importlib.util
import os
import shutil
import struct
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS_DIR = os.path.join(ROOT, "firmware", "boards")
ESP32_BOARD = os.path.join(BOARDS_DIR, "RBAMP_ESP32")
PICO_W_BOARD = os.path.join(BOARDS_DIR, "RBAMP_PICO_W")


def pinned_micropython_version():
    with open(os.path.join(ROOT, "firmware", "MICROPYTHON_VERSION")) as f:
        return f.read().strip()


def micropython_source():
    """The MicroPython source tree (Debian's, from the mpy32 build), or skip / fail in CI."""
    found = sorted(glob.glob(os.path.join(ROOT, ".cache", "mpy32", "src", "micropython-*")))
    found = [path for path in found if os.path.isfile(os.path.join(path, "tools", "manifestfile.py"))]
    if found:
        return found[0]
    message = "MicroPython's source is not in .cache/mpy32/src (run `make deps`)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def load_module(path, name):
    """A Python file loaded as a module by path (not importable by name: board files, tools)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gateway_boards():
    """lib/gateway/boards.py, loaded fresh (it reads sys.platform and imports lazily)."""
    return load_module(os.path.join(ROOT, "lib", "gateway", "boards.py"), "gateway_boards_under_test")


# ---------------------------------------------------------------------- the Pico W image

VENDOR_DIR = os.environ.get("VENDOR_DIR") or os.path.join(os.path.dirname(ROOT), "shared", "vendor")
BUILD_SCRIPT = os.path.join(ROOT, "tools", "build_firmware.sh")
FIRMWARE_CACHE = os.path.join(ROOT, ".cache", "firmware")
CANNOT_BUILD_HERE = 3  # build_firmware.sh: no toolchain and no way to install it, or no offline sources
KEEP_IMAGES = 3  # cached images kept in .cache/firmware (newest first); older ones are removed

# What goes into the Pico W image, besides the offline sources: a change to any of these files
# builds it again (microdot's pin names the modules make weblib puts into .cache/weblib). boot.py and main.py of the repository are not in the image (the image's own
# main.py is firmware/frozen/main.py); ESP32 files are not in it either.
PICO_W_INPUTS = ("firmware/boards/RBAMP_PICO_W", "firmware/frozen", "firmware/MICROPYTHON_VERSION",
                 "manifest.py", "lib", "tools/build_firmware.sh", "tools/fetch_microdot.sh",
                 "firmware/microdot.sha256")


class FirmwareImage:
    """A built image: the .uf2 (what a board or the emulator loads), the .bin and the .elf."""

    def __init__(self, directory, board):
        name = "rbamp-gateway-%s-micropython-%s" % (board, pinned_micropython_version())
        self.directory = directory
        self.uf2 = os.path.join(directory, name + ".uf2")
        self.bin = os.path.join(directory, name + ".bin")
        self.elf = os.path.join(directory, name + ".elf")

    def __repr__(self):
        return "FirmwareImage(%r)" % self.uf2


def _input_files(root, paths):
    for rel in paths:
        full = os.path.join(root, rel)
        if os.path.isfile(full):
            yield rel
            continue
        for dirpath, dirnames, names in os.walk(full):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.endswith(".egg-info"))
            for name in sorted(names):
                if not name.endswith(".pyc"):
                    yield os.path.relpath(os.path.join(dirpath, name), root)


def pico_w_inputs_hash(root=ROOT):
    """sha256 over the image's inputs: the files of PICO_W_INPUTS, the offline archives' checksums
    (SHA256SUMS, which the build checks the archives against) and SOURCE_DATE_EPOCH if set."""
    digest = hashlib.sha256()
    for rel in sorted(_input_files(root, PICO_W_INPUTS)):
        with open(os.path.join(root, rel), "rb") as f:
            digest.update(rel.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    try:
        with open(os.path.join(VENDOR_DIR, "SHA256SUMS"), "rb") as f:
            digest.update(f.read())
    except OSError:
        digest.update(b"no offline sources")  # the build will say so
    digest.update(os.environ.get("SOURCE_DATE_EPOCH", "").encode())
    return digest.hexdigest()


_built = {}


def pico_w_image():
    """The Pico W image of the current sources, built with `tools/build_firmware.sh RBAMP_PICO_W`
    (the offline sources, as `make firmware BOARD=RBAMP_PICO_W` does) only when no image of the
    same inputs is cached in .cache/firmware/<inputs hash>/: the build (one to a few minutes) runs
    once per change of the sources, and once per CI run. Returns a FirmwareImage (.uf2, .bin, .elf).

    Where the toolchain cannot be installed or the offline sources are absent the calling test is
    skipped, except under CI=true where that is a failure; a failing build always fails.

        image = pico_w_image()
        boot(image.uf2)
    """
    key = pico_w_inputs_hash()
    if key not in _built:
        _built[key] = _build_pico_w(key)
    outcome, value = _built[key]
    if outcome == "skip":
        if os.environ.get("CI") == "true":
            pytest.fail(value)
        pytest.skip(value)
    if outcome == "fail":
        pytest.fail(value)
    return value


def _build_pico_w(key):
    directory = os.path.join(FIRMWARE_CACHE, key[:16])
    image = FirmwareImage(directory, "RBAMP_PICO_W")
    os.makedirs(FIRMWARE_CACHE, exist_ok=True)
    with open(os.path.join(FIRMWARE_CACHE, ".image.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building the same image
        if os.path.isfile(image.uf2):
            os.utime(directory)  # recently used: kept by _prune_images
            return "ok", image
        staging = directory + ".tmp"
        shutil.rmtree(staging, ignore_errors=True)
        log_path = directory + ".log"
        with open(log_path, "w") as log:
            result = subprocess.run([BUILD_SCRIPT, "RBAMP_PICO_W"], cwd=ROOT, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=log, text=True, timeout=3600, check=False,
                                    env=dict(os.environ, DIST_DIR=staging))
        with open(log_path, errors="replace") as f:
            tail = f.read()[-3000:]
        if result.returncode == CANNOT_BUILD_HERE:
            return "skip", "the Pico W image cannot be built here: " + tail.strip().splitlines()[-1]
        if result.returncode != 0:
            return "fail", "tools/build_firmware.sh RBAMP_PICO_W failed (%d); %s:\n%s" % (
                result.returncode, log_path, tail)
        if pico_w_inputs_hash() != key:  # the sources changed during the build: used, not cached
            return "ok", FirmwareImage(staging, "RBAMP_PICO_W")
        os.replace(staging, directory)
        _prune_images(keep=directory)
        return "ok", image


def _prune_images(keep):
    found = [os.path.join(FIRMWARE_CACHE, name) for name in os.listdir(FIRMWARE_CACHE)
             if len(name) == 16 and all(c in "0123456789abcdef" for c in name)]
    found.sort(key=os.path.getmtime, reverse=True)
    for old in [path for path in found if path != keep][KEEP_IMAGES - 1:]:
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(old + ".log"):
            os.remove(old + ".log")


def elf_symbol_bytes(path, name, length=None):
    """The bytes of a symbol in an ELF32 little-endian file (the Arm images): `length` bytes or the
    symbol's own size, read from the section that holds its address."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x7fELF\x01\x01", "not an ELF32 little-endian file: %s" % path
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
    sections = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
    symtab = next(s for s in sections if s[1] == 2)  # SHT_SYMTAB
    strtab = sections[symtab[6]]
    for at in range(symtab[4], symtab[4] + symtab[5], 16):
        st_name, value, size = struct.unpack_from("<III", data, at)
        end = data.index(b"\0", strtab[4] + st_name)
        if data[strtab[4] + st_name:end] != name.encode():
            continue
        for s in sections:
            if s[1] == 1 and s[3] <= value < s[3] + s[5]:  # SHT_PROGBITS holding the address
                start = s[4] + value - s[3]
                return data[start:start + (length or size)]
    raise KeyError(name)
