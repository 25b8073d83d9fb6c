"""Put the gateway on a board over its USB serial port with mpremote (`make deploy*`).

    make deploy PORT=/dev/ttyACM0 [CONFIG=config.json]    # lib/{rbamp,gateway,microdot}, boot.py, main.py
    make deploy-mpy PORT=/dev/ttyACM0 [CONFIG=...]        # the same from the .mpy bundle
    make deploy-config PORT=/dev/ttyACM0 CONFIG=...       # config.json only

What reaches the board: the board's .py (or .mpy) files of the packages under ``<source>/lib`` into
``/lib``, with microdot (the web page's framework, pinned in firmware/microdot.sha256) always
precompiled with mpy-cross as ``/lib/microdot/*.mpy`` (from a source deploy too: importing its
source took a peak of 104 KB of heap on mpy32, see tools/build_mpy.py), then ``boot.py``, the
config as ``/config.json`` and last ``main.py``, then a reset so the board boots into the new
code. First ``main.py`` and the packages' old copies are removed: MicroPython imports ``x.py``
before ``x.mpy``, so a stale source file would shadow the new bundle; and a gateway that was
running keeps its watchdog armed after mpremote's Ctrl-C stops it, so a long copy can be cut short
by a reset, after which the board comes back without the gateway and a second ``make deploy``
completes. A partial copy never boots half of the new code.
A config is validated with the gateway's own parser (under CPython) before anything
is sent; without CONFIG the board must already hold a config.json, because a gateway without
one runs in safe mode (metering, no network) and that is rarely what a deploy means. A config
that still holds a placeholder password of ``config.example.json`` is sent, but with a warning
first: a board with the example's Wi-Fi password never joins the network, and the log only says
that it did not connect.

``--resume`` adds mpremote's ``resume`` (no soft reset on connect) and ``--no-reset`` skips the
final reset: both are for MicroPython's unix port behind a pty, where a soft reset or a reset
would end the process (tests/test_deploy.py).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("rbamp", "gateway")
LIBRARY_PACKAGES = ("microdot",)  # not ours, always shipped as .mpy (build_mpy.library_modules)
ROOT_FILES = ("boot.py", "main.py")
EXAMPLE_CONFIG = os.path.join(ROOT, "config.example.json")
SECRET_KEYS = (("wifi", "password"), ("mqtt", "password"))
CONSEQUENCES = {"wifi.password": "the board will not join the Wi-Fi network",
                "mqtt.password": "a broker that checks passwords will refuse the gateway"}
CODE_SUFFIXES = (".py", ".mpy")

# Runs on the board: removes main.py (nothing starts the gateway until the copy is complete) and
# the packages' previous copies (any mix of .py and .mpy).
REMOVE_OLD_CODE = """import os
def _rbamp_rm(path):
    try:
        mode = os.stat(path)[0]
    except OSError:
        return
    if mode & 0x4000:
        for name in os.listdir(path):
            _rbamp_rm(path + '/' + name)
        os.rmdir(path)
    else:
        os.remove(path)
_rbamp_rm('main.py')
for _rbamp_pkg in %r:
    _rbamp_rm('lib/' + _rbamp_pkg)
del _rbamp_rm
""" % (PACKAGES + LIBRARY_PACKAGES,)

CONFIG_PROBE = """import os
try:
    os.stat('config.json')
    print('rbamp-config: present')
except OSError:
    print('rbamp-config: missing')
"""


class DeployError(Exception):
    """A problem the user can fix; reported as one line."""


def package_files(source):
    """Paths (relative to ``source``) of the package files that go on the board.

    From the repository: the board modules as tools/build_mpy.py lists them (package manifests
    left out); lib/ holds board code only, the PC's profile is tools/hostboard.py and never goes
    on a board; microdot is compiled into the staging folder by ``stage``. From a bundle: every
    .py/.mpy under its lib/, which it built from that same list and microdot's .mpy files."""
    if os.path.abspath(source) == ROOT:
        from build_mpy import board_modules

        return board_modules()
    found = []
    for package in PACKAGES + LIBRARY_PACKAGES:
        top = os.path.join(source, "lib", package)
        if not os.path.isdir(top):
            raise DeployError("%s is missing (build it with `make mpy-bundle`)" % top)
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(CODE_SUFFIXES):
                    found.append(os.path.relpath(os.path.join(folder, name), source))
    return found


def stage(source, files, staging):
    """A copy of exactly the board's lib/ tree (no caches, no packaging files) for `cp -r lib :`;
    from the repository, with microdot compiled into it. Returns (its lib/, number of files)."""
    for rel in files:
        target = os.path.join(staging, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(source, rel), target)
    count = len(files)
    if os.path.abspath(source) == ROOT:
        import build_mpy

        try:
            for module_source, name in build_mpy.library_modules():
                build_mpy.compile_file(module_source, os.path.join(staging, "lib", name[:-3] + ".mpy"),
                                       source_name=name)
                count += 1
        except build_mpy.CompileError as exc:
            raise DeployError(str(exc))
    return os.path.join(staging, "lib"), count


def validate_config(path):
    """The gateway's own verdict on a config file; raises DeployError with its message."""
    if not os.path.isfile(path):
        raise DeployError("config file not found: %s" % path)
    sys.path.insert(0, os.path.join(ROOT, "lib"))
    try:
        from gateway.config import load_config
    finally:
        sys.path.pop(0)
    result = load_config(path)
    if not result.ok:
        raise DeployError("refusing to deploy an invalid config: %s" % result.error)
    return result.config


def example_placeholders(example_path=EXAMPLE_CONFIG):
    """{"wifi.password": value, ...}: the example config's passwords, which are placeholders."""
    with open(example_path) as handle:
        example = json.load(handle)
    found = {}
    for section, key in SECRET_KEYS:
        value = example.get(section, {}).get(key)
        if value:
            found[section + "." + key] = value
    return found


def placeholder_keys(config, placeholders):
    """The password keys of a validated config that still hold the example's placeholder."""
    found = []
    for section, key in SECRET_KEYS:
        name = section + "." + key
        if name in placeholders and config[section][key] == placeholders[name]:
            found.append(name)
    return found


def warn_about_placeholders(path, config):
    """One line per placeholder password, before anything is sent; returns the keys, so the last
    line can repeat it after mpremote's output. The value is the example's and no secret, but it
    is not printed all the same: no password ever is."""
    try:
        placeholders = example_placeholders()
    except (OSError, ValueError) as exc:
        print("deploy: note: placeholder passwords not checked: %s unreadable (%s)" % (EXAMPLE_CONFIG, exc),
              file=sys.stderr)
        return []
    keys = placeholder_keys(config, placeholders)
    for key in keys:
        print("deploy: warning: %s: %s is still the placeholder from config.example.json: %s until "
              "it holds the real password" % (path, key, CONSEQUENCES[key]), file=sys.stderr)
    return keys


def placeholder_note(keys):
    return " (WARNING: %s still the example's placeholder)" % " and ".join(keys) if keys else ""


def mpremote(port, resume, *commands, capture=False):
    argv = [sys.executable, "-m", "mpremote", "connect", port]
    if resume:
        argv.append("resume")
    argv.extend(commands)
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, text=True,
                          stdout=subprocess.PIPE if capture else None)
    if done.returncode != 0:
        raise DeployError("mpremote failed (exit %d) on %s" % (done.returncode, port))
    return done.stdout or ""


def board_has_config(port, resume):
    out = mpremote(port, resume, "exec", CONFIG_PROBE, capture=True)
    if "rbamp-config: present" in out:
        return True
    if "rbamp-config: missing" in out:
        return False
    raise DeployError("unexpected answer from the board while looking for config.json: %r" % out[-200:])


def deploy(args):
    source = os.path.abspath(args.source)
    for name in ROOT_FILES:
        if not os.path.isfile(os.path.join(source, name)):
            raise DeployError("%s is missing in %s" % (name, source))
    files = package_files(source)
    placeholders = []
    if args.config:
        placeholders = warn_about_placeholders(args.config, validate_config(args.config))
    elif not board_has_config(args.port, args.resume):
        raise DeployError("the board has no config.json: give CONFIG=path/to/config.json "
                          "(start from config.example.json)")
    commands = ["exec", REMOVE_OLD_CODE]
    with tempfile.TemporaryDirectory(prefix="rbamp-deploy-") as staging:
        lib, count = stage(source, files, staging)
        # ":." and not ":": the unix port's os.stat("") fails, and mpremote would then copy
        # lib's contents instead of lib itself; "." is the root on a board too (its cwd)
        commands += ["+", "cp", "-r", lib, ":."]
        commands += ["+", "cp", os.path.join(source, "boot.py"), ":."]
        if args.config:
            commands += ["+", "cp", args.config, ":config.json"]
        commands += ["+", "cp", os.path.join(source, "main.py"), ":."]
        if not args.no_reset:
            commands += ["+", "reset"]
        mpremote(args.port, args.resume, *commands)
    print("deployed %d files from %s to %s%s%s" % (count + len(ROOT_FILES), source, args.port,
                                                  " with " + args.config if args.config else "",
                                                  placeholder_note(placeholders)))


def deploy_config(args):
    if not args.config:
        raise DeployError("make deploy-config needs CONFIG=path/to/config.json")
    placeholders = warn_about_placeholders(args.config, validate_config(args.config))
    commands = ["cp", args.config, ":config.json"]
    if not args.no_reset:
        commands += ["+", "reset"]
    mpremote(args.port, args.resume, *commands)
    print("deployed %s to %s as config.json%s" % (args.config, args.port, placeholder_note(placeholders)))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Copy the gateway to a board with mpremote")
    parser.add_argument("--port", default="", help="the board's serial port, e.g. /dev/ttyACM0")
    parser.add_argument("--config", default="", help="config.json to put on the board")
    parser.add_argument("--source", default=ROOT,
                        help="folder holding lib/, boot.py and main.py (the repository, or the .mpy bundle)")
    parser.add_argument("--config-only", action="store_true", help="push only config.json")
    parser.add_argument("--resume", action="store_true", help="no soft reset on connect (unix port)")
    parser.add_argument("--no-reset", action="store_true", help="leave the board running its REPL")
    args = parser.parse_args(argv)
    if not args.port:
        print("deploy: no serial port: give PORT=/dev/ttyACM0 (list them with `mpremote devs`)", file=sys.stderr)
        return 2
    try:
        if args.config_only:
            deploy_config(args)
        else:
            deploy(args)
    except DeployError as exc:
        print("deploy: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
