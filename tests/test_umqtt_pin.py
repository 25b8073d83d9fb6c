"""The umqtt.simple the tests import is the one the firmware images freeze.

The images freeze micropython-lib's umqtt/simple.py at the commit MicroPython v1.25.0 pins
(manifest.py's require("umqtt.simple")); gateway's MQTT wire code depends on the order of the reads
inside its publish/subscribe/wait_msg, so the tests must run against that very file. `make umqtt`
(tools/fetch_umqtt.sh) extracts it from ../shared/vendor into .cache/umqtt, which the harness puts
on every runtime's path (XRT_EXTRA_PATH). firmware/umqtt-simple.sha256 records its SHA-256; here
each runtime hashes the module it actually imported. tests/test_manifest.py checks that the Pico W
manifest resolves to a file of the same hash in the vendor tree, and that the unix build freezes
the same copy. A mismatch means a changed pin or a stale copy: run `make umqtt`, and if the pin
itself moved, check the MQTT code against the new file before updating the recorded hash.
"""

RUNTIMES = ("cpython", "mpy64", "mpy32")

import binascii
import hashlib

import xrt


def _repository():
    """The repository root, from where the harness found xrt (tools/xrt/__init__.py)."""
    path = xrt.__file__
    for _ in range(3):
        path = path[:path.rfind("/")]
    return path


def _pin():
    with open(_repository() + "/firmware/umqtt-simple.sha256") as f:
        sha256, member = f.read().split()
    return sha256, member


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1024)
            if not chunk:
                break
            digest.update(chunk)
    return binascii.hexlify(digest.digest()).decode()


def test_the_umqtt_simple_every_runtime_imports_is_the_file_the_images_freeze():
    import umqtt.simple

    imported = umqtt.simple.__file__
    want, member = _pin()
    got = _sha256_of(imported)
    assert got == want, (
        "%s under %s has sha256 %s, but the images freeze %s of MicroPython's tree with sha256 %s "
        "(firmware/umqtt-simple.sha256): run `make umqtt`" % (imported, xrt.runtime(), got, member, want))
    assert imported.endswith("/umqtt/simple.py"), imported  # the source, not a stale compiled copy
