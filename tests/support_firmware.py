"""Host-test support for the firmware checks: where things are, and MicroPython's own source.

MicroPython's source is Debian's `micropython` 1.25 package, fetched by tools/build_mpy32.sh into
.cache/mpy32/src for the mpy32 interpreter (`make deps`). Without it these checks are skipped
loudly, except under CI=true where that is a failure.
"""

import glob
import importlib.util
import os

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
